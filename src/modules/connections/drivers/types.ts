/**
 * @module What every driver offers the connections service: a pool for one connection that runs
 * one vetted statement read-only (layer b) under a timeout that cancels it on the database and a
 * row cap read incrementally (layer c), reads the schema from the catalogue, and says what it is.
 * Drivers throw StatementFailed (the database refused or failed the statement, or it was cancelled
 * for its time) or Unreachable (no session could be opened); an aborted `signal` rejects with its reason.
 */
import type { Driver, QueryResult, SchemaTable } from '../types.ts'

export interface DriverTarget {
  driver: Driver
  /** the host as the connection names it: what TLS checks the certificate against */
  host: string | null
  /** where to connect: the address the outbound guard checked, or the host itself for who may reach private addresses */
  address: string | null
  port: number | null
  database: string | null
  username: string | null
  password: string | null
  ssl: boolean
  /** SQLite: the local file to open read-only */
  file: string | null
}

export interface RunLimits {
  /** rows kept; one more is read to know whether there were more (`truncated`) */
  maxRows: number
  timeoutMs: number
  signal?: AbortSignal
}

export interface ServerInfo {
  version: string
  tablesCount: number
}

export interface DriverPool {
  /** one statement in a read-only transaction, under the timeout and the row cap */
  run(sql: string, limits: RunLimits): Promise<QueryResult>
  /** tables and views with their columns, from the catalogue in one or two queries */
  schema(timeoutMs: number): Promise<SchemaTable[]>
  /** what the server is and how many tables it shows */
  probe(timeoutMs: number): Promise<ServerInfo>
  /** close every session; statements running are cancelled */
  close(): Promise<void>
}

export interface DriverOptions {
  /** how long opening a session may take (TCP, TLS, authentication) */
  connectTimeoutMs: number
  /** sessions per pool */
  maxSessions: number
}

/** The database refused or failed the statement (its own message), or it was cancelled for its time: the caller may correct it. */
export class StatementFailed extends Error {
  override name = 'StatementFailed'
}

/** No session could be opened or it broke: refused, timed out, bad credentials, no such database. */
export class Unreachable extends Error {
  override name = 'Unreachable'
}

export const timedOut = (ms: number) => new StatementFailed(`The query ran longer than ${ms} ms and was cancelled`)

/**
 * Watches a running statement: `cancel` is called once, when the time is up (`graceMs` after it,
 * when the server's own limit should come first) or `signal` aborts.
 * `settle` turns the statement's own failure into what the caller sees (the abort's reason, the
 * timeout, or the error itself).
 */
export function watchStatement(timeoutMs: number, signal: AbortSignal | undefined, cancel: () => void, graceMs = 0) {
  let why: 'time' | 'signal' | undefined
  const fire = (reason: 'time' | 'signal') => {
    if (why) return
    why = reason
    cancel()
  }
  const timer = setTimeout(() => fire('time'), timeoutMs + graceMs)
  const onAbort = () => fire('signal')
  signal?.addEventListener('abort', onAbort, { once: true })
  // after the caller holds the watch: `cancel` may use it
  if (signal?.aborted) queueMicrotask(onAbort)
  return {
    get cancelled() {
      return why !== undefined
    },
    /** what to throw for `error` (or, without one, for a cancelled statement that ended quietly) */
    failure(error?: unknown): unknown {
      if (why === 'signal') return signal!.reason
      if (why === 'time') return timedOut(timeoutMs)
      return error
    },
    done() {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    },
  }
}

/**
 * A session from a pool, waited for at most `ms` (a server that accepts and never finishes the
 * handshake, or a proxy that closes at once, would leave a driver retrying) and not past `signal`.
 * A session that comes after the caller gave up goes back to the pool (`giveBack`).
 */
export function sessionWithin<T>(pending: Promise<T>, ms: number, signal: AbortSignal | undefined, giveBack: (session: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false
    const finish = (fn: () => void) => {
      if (settled) return false
      settled = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      fn()
      return true
    }
    const timer = setTimeout(() => finish(() => reject(new Unreachable('the database did not answer in time (connect timeout)'))), ms)
    const onAbort = () => finish(() => reject(signal!.reason))
    signal?.addEventListener('abort', onAbort, { once: true })
    if (signal?.aborted) onAbort()
    pending.then(
      (session) => {
        if (!finish(() => resolve(session))) giveBack(session)
      },
      (error) => finish(() => reject(error)),
    )
  })
}
