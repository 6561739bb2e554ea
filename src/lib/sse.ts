/**
 * @module The one server-sent-events helper. Every stream: headers and a first line at once,
 * `id`/`event`/one-line JSON `data` per event, `: ping` heartbeats, a final `shutdown` event when
 * the server stops, a final event of the server's choosing when its subscription is ended (a
 * revoked session, a deleted conversation: src/runs/subscriptions.ts), and cleanup in `finally`
 * when the client goes.
 */

export interface SseEvent {
  id?: number | string
  event: string
  data: unknown
  /** the event as wire text, kept after the first write so many subscribers share it */
  wire?: string
}

export interface SseOptions {
  /** aborted when the server shuts down: the stream ends with a `shutdown` event */
  shutdown?: AbortSignal
  /** heartbeat interval; API.md promises 15 s */
  pingMs?: number
  headers?: Record<string, string>
  /** the stream's place among its user's open subscriptions: released when it ends; ending it from outside writes `final` and closes the stream */
  subscription?: StreamSubscription
}

/** What sseResponse needs of a subscription (src/runs/subscriptions.ts). */
export interface StreamSubscription {
  onEnd(end: (final: Omit<SseEvent, 'id'>) => void): void
  release(): void
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
 * Where a stream's events come from. `read` is synchronous: the next event, `undefined` when none
 * is ready yet, `null` when there will be no more; `wait` calls `wake` once more may be ready and
 * returns a function that cancels the wait.
 */
export interface EventFeed {
  read(): SseEvent | null | undefined
  wait(wake: () => void): () => void
  /** the client went away or the server is stopping */
  close?(): void
}

/**
 * The events of `feed` as an SSE Response. Pull-based: whatever is ready is written in one chunk,
 * and an idle stream holds nothing but its Response and one waiting callback.
 */
export function sseResponse(feed: EventFeed, opts: SseOptions = {}): Response {
  let closed = false
  let unsubscribe: (() => void)[] = []
  let cancelWait: (() => void) | undefined
  let controllerRef: ReadableStreamDefaultController<Uint8Array> | undefined

  const finish = () => {
    if (closed) return false
    closed = true
    for (const u of unsubscribe) u()
    unsubscribe = []
    cancelWait?.()
    feed.close?.()
    opts.subscription?.release()
    return true
  }

  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controllerRef = controller
      controller.enqueue(CONNECTED)
      const shutdown = () => {
        if (closed) return
        controller.enqueue(SHUTDOWN)
        finish()
        controller.close()
      }
      if (opts.shutdown?.aborted) return shutdown()
      unsubscribe.push(onPing(opts.pingMs ?? 15_000, () => !closed && controllerRef?.enqueue(PING)))
      if (opts.shutdown) unsubscribe.push(onShutdown(opts.shutdown, shutdown))
      opts.subscription?.onEnd((final) => {
        if (closed) return
        controller.enqueue(encoder.encode(formatEvent(final)))
        finish()
        controller.close()
      })
    },
    async pull(controller) {
      for (;;) {
        if (closed) return
        let out = ''
        let e: SseEvent | null | undefined
        while ((e = feed.read())) out += e.wire ??= formatEvent(e)
        if (out) controller.enqueue(encoder.encode(out))
        if (e === null) {
          if (finish()) controller.close()
          return
        }
        if (out) return
        await new Promise<void>((resolve) => {
          cancelWait = feed.wait(() => {
            cancelWait = undefined
            resolve()
          })
        })
      }
    },
    cancel() {
      finish()
    },
  })
  return new Response(stream, { headers: opts.headers ? { ...SSE_HEADERS, ...opts.headers } : SSE_HEADERS })
}

/**
 * A byte stream made elsewhere (the gateway passes its upstream's own SSE through) held as a
 * subscription: released when it ends, whichever way; ended from outside, it writes `final(event)`
 * in its own wire format, closes, and cancels the source (which aborts the upstream call).
 */
export function subscribedBody(source: ReadableStream<Uint8Array>, subscription: StreamSubscription, final: (e: Omit<SseEvent, 'id'>) => string): ReadableStream<Uint8Array> {
  const reader = source.getReader()
  let closed = false
  const finish = () => {
    if (closed) return false
    closed = true
    subscription.release()
    return true
  }
  return new ReadableStream<Uint8Array>({
    start(controller) {
      subscription.onEnd((e) => {
        if (!finish()) return
        controller.enqueue(encoder.encode(final(e)))
        controller.close()
        void reader.cancel().catch(() => {})
      })
    },
    async pull(controller) {
      let next: Awaited<ReturnType<typeof reader.read>>
      try {
        next = await reader.read()
      } catch (error) {
        if (finish()) controller.error(error)
        return
      }
      if (closed) return
      if (next.done) {
        finish()
        controller.close()
      } else controller.enqueue(next.value)
    },
    cancel(reason) {
      finish()
      return reader.cancel(reason)
    },
  })
}

/**
 * How a client reads an SSE answer of `E` events. Eden yields each event of a `text/event-stream`
 * body as an `{ id, event, data }` object, but types a route by its handler's return type, and a
 * Response says nothing: a handler answering with `sseResponse` states its events with this. Types
 * only — the value stays the Response.
 */
export const asEventStream = <E extends { event: string; data: unknown }>(response: Response) => response as unknown as AsyncGenerator<Spelled<E>, void>

/**
 * `T` written out to its leaves. Being unexported, it makes declaration emit print the structure
 * instead of naming the server's own types, so the client package (client/) needs none of them. A
 * union of strings is rebuilt from its members: mapped member by member it would keep its name.
 */
type Spelled<T> = [T] extends [string] ? { [K in T]: K }[T] : T extends string | number | boolean | null | undefined ? T : unknown extends T ? T : T extends readonly (infer U)[] ? Spelled<U>[] : { [K in keyof T]: Spelled<T[K]> }

/** A feed over any async iterable (for sources that are not run logs). */
export function feedOf(source: (signal: AbortSignal) => AsyncIterable<SseEvent>): EventFeed {
  const ended = new AbortController()
  const iterator = source(ended.signal)[Symbol.asyncIterator]()
  const ready: SseEvent[] = []
  let done = false
  let failed = false
  let wake: (() => void) | undefined
  void (async () => {
    try {
      for (;;) {
        const next = await iterator.next()
        if (next.done) break
        ready.push(next.value)
        wake?.()
      }
    } catch {
      failed = true
      ready.push({ event: 'error', data: { code: 'INTERNAL_ERROR', message: 'The stream failed' } })
    } finally {
      done = true
      wake?.()
    }
  })()
  return {
    read: () => ready.shift() ?? (done || failed ? null : undefined),
    wait(w) {
      wake = () => {
        wake = undefined
        w()
      }
      return () => void (wake = undefined)
    },
    close() {
      ended.abort()
      void iterator.return?.(undefined)
    },
  }
}
