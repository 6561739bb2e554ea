/**
 * @module The MCP connection manager: one SDK client per server and set of credentials, shared by
 * every call that uses that server with those credentials (stdio: one process; HTTP: one session).
 * A connection opens on first use, closes after `idleMs` without calls (default 5 minutes), opens
 * again on the next use after its process died — at once after one failure, then with a growing
 * wait while starts keep failing — and every connection closes (each process group killed) on
 * `close()`. Transports: stdio (stdio.ts), streamable HTTP, and legacy SSE (for `sse` servers, and
 * for `http` servers whose streamable endpoint answers 4xx, as the MCP spec's compatibility rule says).
 */
import { Client, ProtocolError, SdkError, SdkErrorCode, SdkHttpError, SSEClientTransport, StreamableHTTPClientTransport, type Transport } from '@modelcontextprotocol/client'
import type { Logger } from '../../lib/logger.ts'
import { upstreamText } from '../../llm/index.ts'
import { ProcessTransport } from './stdio.ts'

export interface ServerTarget {
  serverId: string
  /** the server's owner; null for a global server */
  ownerId: string | null
  transport: 'stdio' | 'http' | 'sse'
  command: string | null
  args: string[]
  /** stdio: the child's whole environment */
  env: Record<string, string>
  url: string | null
  headers: Record<string, string>
  /** the longest wait for an answer: the handshake, a listing, a call */
  timeoutMs: number
  /** whose user_vars `env`/`headers` hold; null when nobody's (the connection is then everyone's) */
  userId: string | null
  /** HTTP transports send with this (the outbound guard's fetch for whoever chose the URL) */
  fetch: typeof fetch
}

export interface ConnectionStatus {
  serverId: string
  ownerId: string | null
  /** whose user_vars the connection runs with; null when nobody's */
  userId: string | null
  status: 'connected' | 'error'
  error: string | null
}

/** A connection could not be opened, or was lost: `reason` says why in words a user can act on. */
export class ConnectionFailed extends Error {
  constructor(
    readonly reason: string,
    cause?: unknown,
  ) {
    super(reason, { cause })
  }
}

const DEFAULT_IDLE_MS = 5 * 60_000

/** Wait before the next start after `failures` failed starts or crashes in a row: none after the first, then 1 s doubling to 60 s. */
export const defaultBackoff = (failures: number) => (failures <= 1 ? 0 : Math.min(60_000, 1000 * 2 ** (failures - 2)))

interface Entry {
  key: string
  target: ServerTarget
  client: Client | undefined
  transport: Transport | undefined
  starting: Promise<Client> | undefined
  inFlight: number
  idle: ReturnType<typeof setTimeout> | undefined
  /** failed starts and crashes since the last good start */
  failures: number
  retryAt: number
  lastError: string | undefined
  stopped: boolean
}

/** Bun's fetch gives up on a response silent for its idle timeout, which a long tool call over HTTP may be. */
const withoutIdleTimeout = (send: typeof fetch): typeof fetch => ((input: string | URL | Request, init?: BunFetchRequestInit) => send(input, { ...init, timeout: false })) as typeof fetch

/** A transport-level failure in words: what the SDK and fetch say, trimmed for users (never an address the guard refused to reach beyond its own text). */
export function failureText(error: unknown): string {
  if (error instanceof ConnectionFailed) return error.reason
  if (error instanceof SdkHttpError) return `the server answered HTTP ${error.status}${error.message ? `: ${upstreamText(error.message)}` : ''}`
  if (error instanceof SdkError && error.code === SdkErrorCode.ConnectionClosed) return 'the server closed the connection'
  const message = error instanceof Error ? error.message : String(error)
  return upstreamText(message) || 'the connection failed'
}

const isTimeout = (error: unknown) => error instanceof SdkError && error.code === SdkErrorCode.RequestTimeout

/** A 4xx from the streamable HTTP endpoint: the server may speak the older HTTP+SSE transport. */
const isClientError = (error: unknown) => error instanceof SdkHttpError && typeof error.status === 'number' && error.status >= 400 && error.status < 500

export function createConnections(deps: { logger: Logger; version: string; idleMs?: number; backoffMs?: (failures: number) => number; onStatus?: (s: ConnectionStatus) => void }) {
  const { logger } = deps
  const idleMs = deps.idleMs ?? DEFAULT_IDLE_MS
  const backoffMs = deps.backoffMs ?? defaultBackoff
  const entries = new Map<string, Entry>()

  const report = (e: Entry, status: ConnectionStatus['status'], error: string | null) => deps.onStatus?.({ serverId: e.target.serverId, ownerId: e.target.ownerId, userId: e.target.userId, status, error })

  function failed(e: Entry, reason: string) {
    e.failures++
    e.retryAt = Date.now() + backoffMs(e.failures)
    e.lastError = reason
    report(e, 'error', reason)
  }

  /** The handshake over `transport`; on failure the transport is closed (a process killed) and the reason thrown. */
  async function handshake(e: Entry, transport: Transport): Promise<Client> {
    const client = new Client({ name: 'hearth', version: deps.version }, { capabilities: {} })
    client.onerror = (error) => logger.debug('mcp transport error', { server_id: e.target.serverId, error: error.message })
    client.onclose = () => lost(e, client)
    e.transport = transport
    try {
      await client.connect(transport, { timeout: e.target.timeoutMs })
      return client
    } catch (error) {
      await Promise.allSettled([client.close(), transport.close()])
      throw new ConnectionFailed(startFailure(e, transport, error), error)
    }
  }

  function startFailure(e: Entry, transport: Transport, error: unknown): string {
    const timedOut = isTimeout(error) ? `the server did not answer the MCP handshake within ${e.target.timeoutMs} ms` : undefined
    if (!(transport instanceof ProcessTransport)) return timedOut ?? failureText(error)
    logger.warn('mcp server did not start', { server_id: e.target.serverId, exit: transport.describeExit(), stderr: transport.stderrTail.slice(-1000), garbage_lines: transport.garbageLines })
    const lines = transport.garbageLines
    const garbage = lines ? ` (it wrote ${lines} line${lines === 1 ? '' : 's'} to stdout that ${lines === 1 ? 'is' : 'are'} not JSON-RPC)` : ''
    // a timeout first: the process it names was stopped here, after the timeout
    if (timedOut) return timedOut + garbage
    const exit = transport.describeExit()
    return exit ? `the server process ${exit} before it answered${garbage}` : failureText(error)
  }

  function open(e: Entry): Promise<Client> {
    const t = e.target
    if (t.transport === 'stdio') return handshake(e, new ProcessTransport({ command: t.command!, args: t.args, env: t.env }))
    const url = new URL(t.url!)
    const options = { fetch: withoutIdleTimeout(t.fetch), requestInit: { headers: t.headers } }
    const sse = () => handshake(e, new SSEClientTransport(url, options))
    if (t.transport === 'sse') return sse()
    return handshake(e, new StreamableHTTPClientTransport(url, options)).catch(async (error: ConnectionFailed) => {
      if (!isClientError(error.cause)) throw error
      return sse()
    })
  }

  /** A connected client for `e`: its own, the one being opened, or a new one (not while a failing server waits out its backoff, unless `fresh`). */
  function ready(e: Entry, fresh: boolean): Promise<Client> {
    if (e.client) return Promise.resolve(e.client)
    if (e.starting) return e.starting
    const wait = e.retryAt - Date.now()
    if (wait > 0 && !fresh) return Promise.reject(new ConnectionFailed(`${e.lastError ?? 'the server failed'}; it failed ${e.failures} times in a row, next attempt in ${Math.ceil(wait / 1000)} s`))
    e.starting = open(e).then(
      (client) => {
        e.starting = undefined
        if (e.stopped) {
          void client.close()
          throw new ConnectionFailed('the server was changed or removed while it started')
        }
        e.client = client
        e.failures = 0
        e.lastError = undefined
        report(e, 'connected', null)
        return client
      },
      (error: ConnectionFailed) => {
        e.starting = undefined
        if (!e.stopped) failed(e, error.reason)
        throw error
      },
    )
    return e.starting
  }

  /** The connection went away without being closed here: the process exited, the session ended. */
  function lost(e: Entry, client: Client) {
    if (e.client !== client || e.stopped) return
    e.client = undefined
    const exit = e.transport instanceof ProcessTransport ? e.transport.describeExit() : undefined
    failed(e, exit ? `the server process ${exit}` : 'the server closed the connection')
  }

  /** After a failure that is not the server's own answer (a network error, an HTTP error): the next use opens a new connection. */
  function discard(e: Entry, client: Client) {
    if (e.client !== client) return
    e.client = undefined
    void client.close().catch(() => {})
  }

  async function stop(e: Entry) {
    e.stopped = true
    clearTimeout(e.idle)
    if (entries.get(e.key) === e) entries.delete(e.key)
    const client = e.client
    e.client = undefined
    await client?.close().catch(() => {})
  }

  function entryFor(key: string, target: ServerTarget): Entry {
    let e = entries.get(key)
    if (!e) {
      e = { key, target, client: undefined, transport: undefined, starting: undefined, inFlight: 0, idle: undefined, failures: 0, retryAt: 0, lastError: undefined, stopped: false }
      entries.set(key, e)
    }
    return e
  }

  return {
    /**
     * Run `work` with the connection for `target` (opened first when needed). Calls to one
     * connection run concurrently. A failure to connect throws ConnectionFailed; what `work`
     * throws is passed on, and when it is not the server's own answer the connection is dropped.
     */
    async use<T>(target: ServerTarget, work: (client: Client) => Promise<T>, options: { fresh?: boolean } = {}): Promise<T> {
      const e = entryFor(connectionKey(target), target)
      e.inFlight++
      clearTimeout(e.idle)
      try {
        const client = await ready(e, options.fresh ?? false)
        try {
          return await work(client)
        } catch (error) {
          const exit = e.transport instanceof ProcessTransport ? e.transport.describeExit() : undefined
          if (exit && error instanceof SdkError && error.code === SdkErrorCode.ConnectionClosed) throw new ConnectionFailed(`the server process ${exit} during the call`, error)
          if (!(error instanceof ProtocolError) && !isTimeout(error) && target.transport !== 'stdio') discard(e, client)
          throw error
        }
      } finally {
        if (--e.inFlight === 0 && !e.stopped) {
          e.idle = setTimeout(() => e.inFlight === 0 && void stop(e), idleMs)
          e.idle.unref?.()
        }
      }
    },

    /** Close every connection to a server (it was changed or deleted); calls under way fail. */
    async drop(serverId: string) {
      await Promise.all([...entries.values()].filter((e) => e.target.serverId === serverId).map(stop))
    },

    /** Close everything: every process group is killed. */
    async close() {
      await Promise.all([...entries.values()].map(stop))
    },

    /** The connections now open or opening (tests, the bench). */
    live() {
      return [...entries.values()].map((e) => ({
        serverId: e.target.serverId,
        userId: e.target.userId,
        connected: !!e.client,
        inFlight: e.inFlight,
        pid: e.transport instanceof ProcessTransport ? e.transport.pid : undefined,
      }))
    },
  }
}

export type Connections = ReturnType<typeof createConnections>

const keys = new WeakMap<ServerTarget, string>()

/** Callers share a connection when they would open the same one: same server, same resolved command or URL and credentials, same user's values. */
export function connectionKey(t: ServerTarget): string {
  let key = keys.get(t)
  if (key === undefined) {
    const what = JSON.stringify([t.transport, t.command, t.args, t.env, t.url, t.headers, t.userId])
    key = `${t.serverId}:${new Bun.CryptoHasher('sha256').update(what).digest('hex')}`
    keys.set(t, key)
  }
  return key
}
