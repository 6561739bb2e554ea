/**
 * @module The one cross-instance bus: typed, named channels. A message published on a channel
 * reaches every subscriber of that channel on every instance — this one's at once, in `publish`,
 * and the others' through Postgres `NOTIFY`. On SQLite, where one process is the only server, it
 * stays in the process. Messages one instance publishes on a channel arrive everywhere in the
 * order it published them.
 *
 * `NOTIFY` payloads are limited to 8000 bytes. A larger message is stored in `bus_payloads` and
 * only its id is sent; each receiver reads the row (rows are swept after a minute). Nothing is
 * dropped for its size.
 *
 * A notification sent while an instance's listening connection was down is lost to it; when the
 * connection is back, subscribers that keep state (caches, revocation lists) get `onResync` and
 * reload or forget what they hold.
 */
import { eq, lt } from 'drizzle-orm'
import type { Logger } from '../lib/logger.ts'
import { newId } from '../lib/ids.ts'
import type { Database } from './index.ts'

/** A channel's name and, as a type, its messages: `defineChannel<Invalidation>('auth')`. */
export interface ChannelDef<T> {
  readonly name: string
  /** never set: carries the message type */
  readonly _message?: T
}

export const defineChannel = <T>(name: string): ChannelDef<T> => {
  if (!/^[a-z][a-z0-9_]{0,40}$/.test(name)) throw new Error(`bad bus channel name: ${name}`)
  return { name }
}

export interface SubscribeOptions {
  /** called when messages may have been missed (the listening connection came back) */
  onResync?: () => void
}

/** `from.here`: the message was published by this instance (delivered from `publish` itself). */
export type Handler<T> = (message: T, from: { here: boolean }) => void

export interface Bus {
  publish<T>(channel: ChannelDef<T>, message: T): Promise<void>
  /** Receive every message of `channel`, from this instance and the others; returns an unsubscribe. */
  subscribe<T>(channel: ChannelDef<T>, handler: Handler<T>, opts?: SubscribeOptions): () => void
  /** resolves once every subscription made so far listens on the database */
  ready(): Promise<void>
  close(): Promise<void>
}

/** Below Postgres' 8000-byte NOTIFY limit, with room for the envelope. */
export const MAX_INLINE_BYTES = 7800
const PAYLOAD_TTL_MS = 60_000

interface Envelope {
  /** the publishing instance */
  o: string
  /** the message, inline */
  m?: unknown
  /** or the id of its bus_payloads row */
  r?: string
}

interface Subscription {
  handler: Handler<unknown>
  opts: SubscribeOptions
}

export function createBus(deps: { database: Database; logger: Logger }): Bus {
  const { database, logger } = deps
  const origin = newId()
  const subscribers = new Map<string, Set<Subscription>>()
  const pg = database.client.kind === 'postgres' ? database.client.sql : undefined
  /** per channel: the tail of its outgoing and incoming queues, which keep messages in order */
  const sending = new Map<string, Promise<unknown>>()
  const receiving = new Map<string, Promise<unknown>>()
  const listening = new Map<string, Promise<{ unlisten(): Promise<void> }>>()
  const sweep = pg ? setInterval(() => void sweepPayloads(), PAYLOAD_TTL_MS) : undefined
  sweep?.unref?.()

  const pgChannel = (name: string) => `hearth_${name}`

  const HERE = { here: true }
  const THERE = { here: false }

  function deliver(name: string, message: unknown, from: { here: boolean }) {
    for (const s of subscribers.get(name) ?? []) {
      try {
        s.handler(message, from)
      } catch (error) {
        logger.error('bus subscriber failed', { error, channel: name })
      }
    }
  }

  async function send(name: string, message: unknown) {
    const { db, t } = database
    const json = JSON.stringify({ o: origin, m: message } satisfies Envelope)
    if (Buffer.byteLength(json) <= MAX_INLINE_BYTES) return pg!.notify(pgChannel(name), json)
    const [row] = await db.insert(t.busPayloads).values({ channel: name, payload: JSON.stringify(message) }).returning({ id: t.busPayloads.id })
    await pg!.notify(pgChannel(name), JSON.stringify({ o: origin, r: row!.id } satisfies Envelope))
  }

  async function receive(name: string, raw: string) {
    const envelope = JSON.parse(raw) as Envelope
    if (envelope.o === origin) return // delivered here already, in publish
    if (envelope.r === undefined) return deliver(name, envelope.m, THERE)
    const { db, t } = database
    const [row] = await db.select({ payload: t.busPayloads.payload }).from(t.busPayloads).where(eq(t.busPayloads.id, envelope.r))
    if (!row) return logger.warn('bus: a stored message is gone before it was read', { channel: name })
    deliver(name, JSON.parse(row.payload), THERE)
  }

  async function sweepPayloads() {
    const { db, t } = database
    await db
      .delete(t.busPayloads)
      .where(lt(t.busPayloads.createdAt, new Date(Date.now() - PAYLOAD_TTL_MS)))
      .catch((error) => logger.warn('bus: could not sweep stored messages', { error }))
  }

  function listen(name: string) {
    if (!pg || listening.has(name)) return
    let connected = false
    const onNotify = (raw: string) => {
      const tail = (receiving.get(name) ?? Promise.resolve()).then(() => receive(name, raw)).catch((error) => logger.warn('bus: bad message', { error, channel: name }))
      receiving.set(name, tail)
    }
    // called on the first LISTEN and again each time the listening connection is re-established
    const onListen = () => {
      if (!connected) return void (connected = true)
      logger.info('bus: listening again; subscribers resync', { channel: name })
      for (const s of subscribers.get(name) ?? []) s.opts.onResync?.()
    }
    const started = pg.listen(pgChannel(name), onNotify, onListen)
    started.catch((error) => logger.error('bus: could not listen', { error, channel: name }))
    listening.set(name, started)
  }

  return {
    publish<T>(channel: ChannelDef<T>, message: T): Promise<void> {
      deliver(channel.name, message, HERE)
      if (!pg) return Promise.resolve()
      const tail = (sending.get(channel.name) ?? Promise.resolve()).catch(() => {}).then(() => send(channel.name, message))
      sending.set(channel.name, tail)
      return tail.then(() => {})
    },

    subscribe<T>(channel: ChannelDef<T>, handler: Handler<T>, opts: SubscribeOptions = {}) {
      let set = subscribers.get(channel.name)
      if (!set) subscribers.set(channel.name, (set = new Set()))
      const sub: Subscription = { handler: handler as Handler<unknown>, opts }
      set.add(sub)
      listen(channel.name)
      return () => void set.delete(sub)
    },

    async ready() {
      await Promise.all(listening.values())
    },

    async close() {
      clearInterval(sweep)
      await Promise.allSettled(sending.values())
      const subs = await Promise.allSettled(listening.values())
      await Promise.allSettled(subs.map((s) => (s.status === 'fulfilled' ? s.value.unlisten() : undefined)))
      listening.clear()
      subscribers.clear()
    },
  }
}

/**
 * A map kept until a channel says it is stale: on every instance, a message on `channel` drops the
 * keys `staleKeys` names (all of them by default), and a resync drops everything. A load that was
 * running while something was dropped is not kept, so a value read before a change never
 * outlives it. `changed(message)` announces a change (here at once, elsewhere through the bus).
 */
export function createChannelCache<K, V, M>(bus: Bus, channel: ChannelDef<M>, opts: { maxSize: number; staleKeys?: (message: M) => K[] }) {
  const entries = new Map<K, V>()
  let generation = 0
  const dropAll = () => {
    generation++
    entries.clear()
  }
  bus.subscribe(
    channel,
    (message) => {
      if (!opts.staleKeys) return dropAll()
      generation++
      for (const key of opts.staleKeys(message)) entries.delete(key)
    },
    { onResync: dropAll },
  )
  return {
    has: (key: K) => entries.has(key),
    /** the kept value (check `has` first: a kept value may be undefined) */
    get: (key: K) => entries.get(key) as V,
    /** the value of `key`, loaded (and kept) when it is not kept yet */
    async load(key: K, read: () => Promise<V>): Promise<V> {
      if (entries.has(key)) return entries.get(key) as V
      const seen = generation
      const value = await read()
      if (seen === generation) {
        if (entries.size >= opts.maxSize) entries.clear()
        entries.set(key, value)
      }
      return value
    },
    changed: (message: M) => bus.publish(channel, message),
  }
}
