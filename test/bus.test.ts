/**
 * The bus: typed channels, one delivery per subscriber and instance, in order; messages over
 * Postgres' 8000-byte NOTIFY limit arrive whole; a listening connection that comes back makes
 * subscribers resync.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { count } from 'drizzle-orm'
import { createBus, createChannelCache, defineChannel, MAX_INLINE_BYTES, type Bus } from '../src/db/bus.ts'
import { createDb, type Database } from '../src/db/index.ts'
import { createLogger } from '../src/lib/logger.ts'
import { DIALECTS, eachDialect, createTestDatabase, type TestDatabase } from './helpers/db.ts'

const logger = createLogger('silent')
const notes = defineChannel<{ n: number; text?: string }>('test_notes')

const pgOf = (database: Database) => {
  if (database.client.kind !== 'postgres') throw new Error('needs Postgres')
  return database.client.sql
}

/** Resolves once `pred` holds (checked every 10 ms), or fails after `ms`. */
async function until(pred: () => boolean, ms = 5000) {
  const deadline = Date.now() + ms
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await Bun.sleep(10)
  }
}

test('channel names are checked', () => {
  expect(() => defineChannel('Bad Name')).toThrow()
  expect(() => defineChannel('')).toThrow()
  expect(defineChannel('tasks_2').name).toBe('tasks_2')
})

eachDialect('bus on one instance', (dialect) => {
  let db: TestDatabase
  let bus: Bus
  beforeAll(async () => {
    db = await createTestDatabase(dialect)
    bus = createBus({ database: db.database, logger })
  })
  afterAll(async () => {
    await bus.close()
    await db.drop()
  })

  test('a subscriber here gets each message once, at once, marked as from here; unsubscribe stops it', async () => {
    const got: [number, boolean][] = []
    const off = bus.subscribe(notes, (m, from) => got.push([m.n, from.here]))
    await bus.ready()
    const sent = bus.publish(notes, { n: 1 })
    expect(got).toEqual([[1, true]]) // before the publish has even resolved
    await sent
    await bus.publish(notes, { n: 2 })
    await Bun.sleep(100) // a NOTIFY echo, were there one, would have come back by now
    expect(got).toEqual([
      [1, true],
      [2, true],
    ])
    off()
    await bus.publish(notes, { n: 3 })
    expect(got.length).toBe(2)
  })

  test('a channel cache: a change drops the keys it names (or all); a load racing a change is not kept', async () => {
    const cache = createChannelCache<string, number, { id?: string }>(bus, defineChannel('test_cache'), { maxSize: 10, staleKeys: (m) => (m.id ? [m.id] : []) })
    let reads = 0
    const read = (v: number) => async () => (reads++, v)
    expect(await cache.load('a', read(1))).toBe(1)
    expect(await cache.load('b', read(2))).toBe(2)
    expect(await cache.load('a', read(99))).toBe(1) // kept
    expect(reads).toBe(2)
    await cache.changed({ id: 'a' })
    expect([cache.has('a'), cache.has('b')]).toEqual([false, true])
    // a load that was running when a change came answers its value but does not keep it
    const { promise: gate, resolve: open } = Promise.withResolvers<void>()
    const racing = cache.load('c', async () => (await gate, 3))
    await cache.changed({ id: 'other' })
    open()
    expect(await racing).toBe(3)
    expect(cache.has('c')).toBe(false)
  })

  test('a failing subscriber does not keep the message from the others', async () => {
    const got: number[] = []
    const offA = bus.subscribe(notes, () => {
      throw new Error('boom')
    })
    const offB = bus.subscribe(notes, (m) => got.push(m.n))
    await bus.publish(notes, { n: 7 })
    expect(got).toEqual([7])
    offA()
    offB()
  })
})

for (const dialect of DIALECTS.filter((d) => d === 'postgres')) {
  describe(`bus across two instances [${dialect}]`, () => {
    let db: TestDatabase
    let second: Database
    let a: Bus
    let b: Bus
    beforeAll(async () => {
      db = await createTestDatabase(dialect)
      second = createDb({ url: db.url, dataDir: db.dataDir })
      a = createBus({ database: db.database, logger })
      b = createBus({ database: second, logger })
    })
    afterAll(async () => {
      await a.close()
      await b.close()
      await second.close()
      await db.drop()
    })

    test('B gets every message A publishes, once and in order, large ones (by reference) whole', async () => {
      const onA: number[] = []
      const onB: { n: number; length: number; here: boolean }[] = []
      const offA = a.subscribe(notes, (m) => onA.push(m.n))
      const offB = b.subscribe(notes, (m, from) => onB.push({ n: m.n, length: m.text?.length ?? 0, here: from.here }))
      await Promise.all([a.ready(), b.ready()])
      const big = 'x'.repeat(100_000)
      const sizes = [0, 100_000, 10, MAX_INLINE_BYTES, 0, 100_000, 5]
      // published without waiting for each other: the order must hold anyway
      await Promise.all(sizes.map((size, n) => a.publish(notes, { n, text: big.slice(0, size) })))
      await until(() => onB.length === sizes.length)
      await Bun.sleep(100)
      expect(onB).toEqual(sizes.map((length, n) => ({ n, length, here: false })))
      expect(onA).toEqual(sizes.map((_, n) => n)) // no echo of its own messages
      const [stored] = await db.database.db.select({ n: count() }).from(db.database.t.busPayloads)
      expect(Number(stored!.n)).toBeGreaterThanOrEqual(3) // the two 100 KB messages and the one just over the limit
      offA()
      offB()
    })

    test("when B's listening connection is cut, it comes back, B resyncs, and messages flow again", async () => {
      let resyncs = 0
      const onB: number[] = []
      const off = b.subscribe(notes, (m) => onB.push(m.n), { onResync: () => resyncs++ })
      await b.ready()
      await a.publish(notes, { n: 1 })
      await until(() => onB.length === 1)
      // both instances' listening connections (the test cannot tell them apart); each comes back
      const killed = await pgOf(db.database)`
        SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'listen%'`
      expect(killed.length).toBeGreaterThan(0)
      await until(() => resyncs > 0, 10_000)
      await a.publish(notes, { n: 2 })
      await until(() => onB.includes(2))
      expect(onB).toEqual([1, 2])
      off()
    })
  })
}
