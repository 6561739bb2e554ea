/**
 * @module Runs: generations that belong to no connection. A run keeps its ordered event log (ids
 * 1, 2, 3 …); any number of subscribers attach from any event id, replay what they missed and then
 * follow live. A client that goes away only ends its subscription; `stop` ends the run. Finished
 * runs stay replayable for a while, then only what was written to the database remains.
 */
import type { SseEvent } from '../lib/sse.ts'

export interface RunEvent {
  id: number
  event: string
  data: unknown
}

export class Run {
  readonly events: RunEvent[] = []
  readonly controller = new AbortController()
  done = false
  finishedAt = 0
  private wake: (() => void)[] = []

  constructor(
    readonly key: string,
    readonly ownerId: string,
  ) {}

  get signal() {
    return this.controller.signal
  }

  emit(event: string, data: unknown) {
    if (this.done) return
    this.events.push({ id: this.events.length + 1, event, data })
    this.notify()
  }

  finish() {
    if (this.done) return
    this.done = true
    this.finishedAt = Date.now()
    this.notify()
  }

  private notify() {
    const waiting = this.wake
    this.wake = []
    for (const resolve of waiting) resolve()
  }

  /** Events after `afterId`, then live ones until the run ends or `signal` aborts. */
  async *subscribe(afterId: number, signal: AbortSignal): AsyncGenerator<SseEvent> {
    let next = Math.max(0, afterId)
    let waiting: (() => void) | undefined
    const onAbort = () => waiting?.()
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      for (;;) {
        while (next < this.events.length) yield this.events[next++]!
        if (this.done || signal.aborted) return
        await new Promise<void>((resolve) => {
          waiting = resolve
          this.wake.push(resolve)
        })
      }
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }

  /** Resolves when the run has ended. */
  async ended(): Promise<void> {
    while (!this.done) await new Promise<void>((resolve) => this.wake.push(resolve))
  }
}

export function createRunRegistry(opts: { retentionMs?: number } = {}) {
  const retentionMs = opts.retentionMs ?? 10 * 60_000
  const runs = new Map<string, Run>()
  const sweep = setInterval(() => {
    const cutoff = Date.now() - retentionMs
    for (const [key, run] of runs) if (run.done && run.finishedAt < cutoff) runs.delete(key)
  }, Math.min(retentionMs, 60_000))
  sweep.unref?.()

  return {
    /** A run for `key`, or undefined when one is still going. `produce` runs it; the run finishes when it settles. */
    start(key: string, ownerId: string, produce: (run: Run) => Promise<void>): Run | undefined {
      const existing = runs.get(key)
      if (existing && !existing.done) return undefined
      const run = new Run(key, ownerId)
      runs.set(key, run)
      void produce(run).finally(() => run.finish())
      return run
    },

    /** The live or recently finished run of `key`. */
    get: (key: string) => runs.get(key),

    /** Ask the run of `key` to stop; true when one was going. */
    stop(key: string): boolean {
      const run = runs.get(key)
      if (!run || run.done) return false
      run.controller.abort()
      return true
    },

    get active() {
      let n = 0
      for (const run of runs.values()) if (!run.done) n++
      return n
    },

    /**
     * Server shutdown: let running generations finish for up to `graceMs`, then stop the rest
     * (their producers write what they have, as `stopped`).
     */
    async stopAll(graceMs = 0) {
      clearInterval(sweep)
      const live = [...runs.values()].filter((r) => !r.done)
      if (graceMs > 0) await Promise.race([Promise.all(live.map((r) => r.ended())), Bun.sleep(graceMs)])
      for (const run of live) run.controller.abort()
      await Promise.all(live.map((r) => r.ended()))
    },
  }
}

export type RunRegistry = ReturnType<typeof createRunRegistry>
