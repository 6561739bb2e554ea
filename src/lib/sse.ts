/**
 * @module The one server-sent-events helper. Every stream: headers and a first line at once,
 * `id`/`event`/one-line JSON `data` per event, `: ping` heartbeats, a final `shutdown` event when
 * the server stops, and cleanup in `finally` when the client goes.
 */

export interface SseEvent {
  id?: number | string
  event: string
  data: unknown
}

export interface SseOptions {
  /** aborted when the server shuts down: the stream ends with a `shutdown` event */
  shutdown?: AbortSignal
  /** heartbeat interval; API.md promises 15 s */
  pingMs?: number
  headers?: Record<string, string>
}

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-store',
  'x-accel-buffering': 'no',
  connection: 'keep-alive',
} as const

const encoder = new TextEncoder()
const LINE_BREAK = /[\r\n]/

/** One event as wire text. `event` and `id` may not contain line breaks (they would forge fields). */
export function formatEvent(e: SseEvent): string {
  if (LINE_BREAK.test(e.event) || (e.id !== undefined && LINE_BREAK.test(String(e.id)))) throw new Error('SSE event and id must not contain line breaks')
  // JSON.stringify escapes \n inside strings, so data is always a single line.
  return `${e.id === undefined ? '' : `id: ${e.id}\n`}event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`
}

const CONNECTED = encoder.encode(': connected\n\n')
const PING = encoder.encode(': ping\n\n')
const SHUTDOWN = encoder.encode(formatEvent({ event: 'shutdown', data: { reason: 'server_shutdown' } }))

/**
 * One timer per ping interval and one listener per shutdown signal, shared by every open stream:
 * with thousands of idle subscribers, a timer and a listener each would cost more than the streams.
 */
const pingGroups = new Map<number, { timer: Timer; streams: Set<() => void> }>()
function onPing(ms: number, ping: () => void): () => void {
  let group = pingGroups.get(ms)
  if (!group) {
    const streams = new Set<() => void>()
    const timer = setInterval(() => {
      for (const p of streams) p()
    }, ms)
    timer.unref?.()
    pingGroups.set(ms, (group = { timer, streams }))
  }
  group.streams.add(ping)
  const g = group
  return () => {
    g.streams.delete(ping)
    if (g.streams.size === 0) {
      clearInterval(g.timer)
      pingGroups.delete(ms)
    }
  }
}

const shutdownGroups = new WeakMap<AbortSignal, Set<() => void>>()
function onShutdown(signal: AbortSignal, close: () => void): () => void {
  let group = shutdownGroups.get(signal)
  if (!group) {
    const streams = new Set<() => void>()
    signal.addEventListener('abort', () => {
      for (const c of [...streams]) c()
    }, { once: true })
    shutdownGroups.set(signal, (group = streams))
  }
  group.add(close)
  const g = group
  return () => void g.delete(close)
}

/**
 * Stream the events of `source` as an SSE Response. `source` gets a signal that aborts when the
 * stream ends for any reason (client gone, server shutdown), so a source blocked waiting for its
 * next event can stop at once; its iterator is also closed.
 */
export function sseResponse(source: (signal: AbortSignal) => AsyncIterable<SseEvent>, opts: SseOptions = {}): Response {
  const ended = new AbortController()
  const iterator = source(ended.signal)[Symbol.asyncIterator]()
  let closed = false
  let unsubscribe: (() => void)[] = []

  const finish = () => {
    if (closed) return false
    closed = true
    for (const u of unsubscribe) u()
    unsubscribe = []
    ended.abort()
    void iterator.return?.()
    return true
  }

  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      const send = (bytes: Uint8Array) => {
        if (!closed) controller.enqueue(bytes)
      }
      send(CONNECTED)
      const shutdown = () => {
        send(SHUTDOWN)
        if (finish()) controller.close()
      }
      if (opts.shutdown?.aborted) return shutdown()
      unsubscribe.push(onPing(opts.pingMs ?? 15_000, () => send(PING)))
      if (opts.shutdown) unsubscribe.push(onShutdown(opts.shutdown, shutdown))
      void (async () => {
        try {
          for (;;) {
            const next = await iterator.next()
            if (next.done || closed) break
            send(encoder.encode(formatEvent(next.value)))
          }
          if (finish()) controller.close()
        } catch (error) {
          send(encoder.encode(formatEvent({ event: 'error', data: { code: 'INTERNAL_ERROR', message: 'The stream failed' } })))
          if (finish()) controller.close()
          throw error
        }
      })().catch(() => {})
    },
    cancel() {
      finish()
    },
  })
  return new Response(stream, { headers: opts.headers ? { ...SSE_HEADERS, ...opts.headers } : SSE_HEADERS })
}
