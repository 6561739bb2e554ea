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

/**
 * Stream the events of `source` as an SSE Response. `source` gets a signal that aborts when the
 * stream ends for any reason (client gone, server shutdown), so a source blocked waiting for its
 * next event can stop at once; its iterator is also closed.
 */
export function sseResponse(source: (signal: AbortSignal) => AsyncIterable<SseEvent>, opts: SseOptions = {}): Response {
  const ended = new AbortController()
  const iterator = source(ended.signal)[Symbol.asyncIterator]()
  let ping: Timer | undefined
  let closed = false
  let onShutdown: (() => void) | undefined

  const finish = () => {
    if (closed) return false
    closed = true
    clearInterval(ping)
    if (onShutdown) opts.shutdown?.removeEventListener('abort', onShutdown)
    ended.abort()
    void iterator.return?.()
    return true
  }

  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      const write = (text: string) => {
        if (!closed) controller.enqueue(encoder.encode(text))
      }
      write(': connected\n\n')
      ping = setInterval(() => write(': ping\n\n'), opts.pingMs ?? 15_000)
      onShutdown = () => {
        write(formatEvent({ event: 'shutdown', data: { reason: 'server_shutdown' } }))
        if (finish()) controller.close()
      }
      if (opts.shutdown?.aborted) return onShutdown()
      opts.shutdown?.addEventListener('abort', onShutdown, { once: true })
      void (async () => {
        try {
          for (;;) {
            const next = await iterator.next()
            if (next.done || closed) break
            write(formatEvent(next.value))
          }
          if (finish()) controller.close()
        } catch (error) {
          write(formatEvent({ event: 'error', data: { code: 'INTERNAL_ERROR', message: 'The stream failed' } }))
          if (finish()) controller.close()
          throw error
        }
      })().catch(() => {})
    },
    cancel() {
      finish()
    },
  })
  return new Response(stream, { headers: { ...SSE_HEADERS, ...opts.headers } })
}
