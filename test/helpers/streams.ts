/** Follow a chat stream in the background: when its first delta came, when and how it ended. */
import { readEvents, type ReceivedEvent } from './sse.ts'

export interface FollowedStream {
  /** every event so far (grows while the stream is open) */
  events: ReceivedEvent[]
  /** resolves at the first `delta` (or when the stream ends without one) */
  started: Promise<void>
  /** resolves when the stream ends: all its events, and performance.now() then */
  ended: Promise<{ events: ReceivedEvent[]; at: number }>
  /** 'open' if the stream is still open after `ms`, else 'ended' */
  openAfter(ms: number): Promise<'open' | 'ended'>
  deltas(): number
}

export function follow(res: Response | Promise<Response>): FollowedStream {
  const events: ReceivedEvent[] = []
  let markStarted!: () => void
  const started = new Promise<void>((resolve) => (markStarted = resolve))
  let isEnded = false
  const ended = (async () => {
    const r = await res
    if (r.status !== 200) throw new Error(`the stream answered ${r.status}: ${await r.text()}`)
    await readEvents(r, (e) => {
      events.push(e)
      if (e.event === 'delta') markStarted()
      return false
    })
    isEnded = true
    markStarted()
    return { events, at: performance.now() }
  })()
  ended.catch(() => markStarted())
  return {
    events,
    started,
    ended,
    async openAfter(ms) {
      await Promise.race([ended.catch(() => {}), Bun.sleep(ms)])
      return isEnded ? 'ended' : 'open'
    },
    deltas: () => events.filter((e) => e.event === 'delta').length,
  }
}

/** Poll `check` every 20 ms until it is true (or fail after `ms`). */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 3000, what = 'the condition') {
  const until = performance.now() + ms
  while (!(await check())) {
    if (performance.now() > until) throw new Error(`${what} did not hold within ${ms} ms`)
    await Bun.sleep(20)
  }
}
