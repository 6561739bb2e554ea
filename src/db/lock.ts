/**
 * @module A named lock around a read-then-write. On Postgres: a transaction holding
 * `pg_advisory_xact_lock(hashtext(name))`, so it holds across instances. On SQLite, where all
 * writers are this one process, an in-process queue per name (awaits inside a SQLite
 * "transaction" would let other requests interleave, so none is used). `tryWithLock` never
 * waits: for work one instance at a time should do, where "not now" is a fine answer.
 */
import { sql } from 'drizzle-orm'
import type { Database, Db } from './index.ts'

const queues = new Map<string, Promise<unknown>>()

export async function withLock<T>(database: Database, name: string, fn: (db: Db) => Promise<T>): Promise<T> {
  if (database.dialect === 'postgres') {
    return database.db.transaction(async (tx) => {
      await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext(${name}))`)
      return fn(tx as unknown as Db)
    })
  }
  const key = `${database.client.kind === 'sqlite' ? database.client.sqlite.filename : ''}\0${name}`
  const previous = queues.get(key) ?? Promise.resolve()
  const run = previous.then(() => fn(database.db), () => fn(database.db))
  const tail = run.catch(() => {})
  queues.set(key, tail)
  try {
    return await run
  } finally {
    if (queues.get(key) === tail) queues.delete(key)
  }
}

const held = new Set<string>()

/**
 * Run `fn` unless `name` is held now — on Postgres by any instance (a transaction holding
 * `pg_try_advisory_xact_lock(hashtext(name))`), on SQLite by this process — and answer at once
 * with `{ acquired: false }` when it is. Unlike `withLock`, `fn` runs outside that transaction, on
 * the pool, so long work done in many short statements commits as it goes: the lock's
 * transaction holds only the lock (and one connection) meanwhile. A process that dies lets go.
 */
export async function tryWithLock<T>(database: Database, name: string, fn: () => Promise<T>): Promise<{ acquired: true; value: T } | { acquired: false }> {
  if (database.dialect === 'postgres') {
    return database.db.transaction(async (tx) => {
      const [row] = await tx.execute<{ locked: boolean }>(sql`SELECT pg_try_advisory_xact_lock(hashtext(${name})) AS locked`)
      if (!row?.locked) return { acquired: false as const }
      return { acquired: true as const, value: await fn() }
    })
  }
  const key = `${database.client.kind === 'sqlite' ? database.client.sqlite.filename : ''}\0${name}`
  if (held.has(key)) return { acquired: false }
  held.add(key)
  try {
    return { acquired: true, value: await fn() }
  } finally {
    held.delete(key)
  }
}
