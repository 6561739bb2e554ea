/**
 * @module Runs: generations that belong to no connection. A run keeps its ordered event log (ids
 * 1, 2, 3 …); any number of subscribers attach from any event id, replay what they missed and then
 * follow live. A client that goes away only ends its subscription; `stop` ends the run. Finished
 * runs stay replayable for a while, then only what was written to the database remains.
 */
import type { EventFeed } from '../lib/sse.ts'

export interface RunEvent {
  id: number
  event: string
  data: unknown
  wire?: string
}

export class Run {
  readonly events: RunEvent[] = []
  readonly controller = new AbortController()
  done = false
  finishedAt = 0
  /** what it belongs to was deleted: it is no longer found (it may still be finishing) */
  discarded = false
  /** who started it (runs started here): lets a re-attach skip the database ownership check */
  ownerId?: string
  /** runs started here: settles when their producer is done, bookkeeping after `done` included */
  completed: Promise<void> = Promise.resolve()
  /** set on runs started here: every event is also handed to it (the cross-instance relay) */
  onEvent?: (e: RunEvent) => void
  private wake = new Set<() => void>()

  constructor(
    readonly key: string,
    /** false for a copy of a run that another instance is running */
    readonly local: boolean,
  ) {}

  get signal() {
    return this.controller.signal
  }

  /** Append an event; `done` is the last one and ends the run for its subscribers. */
  emit(event: string, data: unknown) {
    if (this.done) return
    const e = { id: this.events.length + 1, event, data }
    this.events.push(e)
    this.onEvent?.(e)
    if (event === 'done') this.finish()
    else this.notify()
  }

  /** Add an event relayed from the instance running this run (in order; repeats are ignored). */
  ingest(e: RunEvent) {
    if (this.done || e.id !== this.events.length + 1) return
    this.events.push(e)
    if (e.event === 'done') this.finish()
    else this.notify()
  }

  finish() {
    if (this.done) return
    this.done = true
    this.finishedAt = Date.now()
    this.notify()
  }

  private notify() {
    if (!this.wake.size) return
    const waiting = this.wake
    this.wake = new Set()
    for (const resolve of waiting) resolve()
  }

  /** A feed of the events after `afterId`, then the live ones until the run ends. */
  feed(afterId: number): EventFeed {
    let next = Math.max(0, afterId)
    return {
      read: () => (next < this.events.length ? this.events[next++]! : this.done ? null : undefined),
      wait: (wake) => {
        this.wake.add(wake)
        return () => void this.wake.delete(wake)
      },
    }
  }

  /** Resolves when the run has ended. */
  async ended(): Promise<void> {
    while (!this.done) await new Promise<void>((resolve) => this.wake.add(resolve))
  }
}

/** How runs reach other instances: events out, stop requests out (see runs/relay.ts). */
export interface RunRelay {
  publish(key: string, e: RunEvent): void
  /** `discard`: also forget it there */
  requestStop(key: string, discard?: boolean): Promise<void>
  requestStopOwnedBy(userId: string): Promise<void>
}

export function createRunRegistry(opts: { retentionMs?: number } = {}) {
  const retentionMs = opts.retentionMs ?? 10 * 60_000
  const runs = new Map<string, Run>()
  let relay: RunRelay | undefined
  const sweep = setInterval(() => {
    const cutoff = Date.now() - retentionMs
    for (const [key, run] of runs) if (run.done && run.finishedAt < cutoff) runs.delete(key)
  }, Math.min(retentionMs, 60_000))
  sweep.unref?.()

  function discardLocal(key: string) {
    const run = runs.get(key)
    if (!run) return
    run.discarded = true
    // a copy ends as its run does, with the `done` the running instance sends once stopped
    if (run.local && !run.done) run.controller.abort()
  }

  function stopOwnedByLocal(userId: string) {
    for (const run of runs.values()) if (run.local && !run.done && run.ownerId === userId) run.controller.abort()
  }

  return {
    /** A run for `key`, or undefined when one is still going here. `produce` runs it; the run finishes when it settles. */
    start(key: string, produce: (run: Run) => Promise<void>): Run | undefined {
      const existing = runs.get(key)
      if (existing && !existing.done && existing.local) return undefined
      const run = new Run(key, true)
      if (relay) {
        const r = relay
        run.onEvent = (e) => r.publish(key, e)
      }
      runs.set(key, run)
      run.completed = produce(run).finally(() => run.finish())
      return run
    },

    /** The live or recently finished run of `key`, started here or relayed from another instance. */
    get(key: string): Run | undefined {
      const run = runs.get(key)
      return run?.discarded ? undefined : run
    },

    /** Ask the run of `key` to stop, here or (through the relay) on the instance running it. True when one was going. */
    async stop(key: string): Promise<boolean> {
      const run = runs.get(key)
      if (!run || run.done) return false
      if (run.local) run.controller.abort()
      else await relay?.requestStop(key)
      return true
    },

    /** Ask every instance to stop `key` (for a run this one has not seen). */
    async stopElsewhere(key: string) {
      await relay?.requestStop(key)
    },

    /** Relay side: another instance asks to stop `key` (ignored unless it runs here). */
    stopLocal(key: string) {
      const run = runs.get(key)
      if (run?.local && !run.done) run.controller.abort()
    },

    /**
     * What `key` belongs to is gone (a deleted conversation): stop its run wherever it runs, and
     * forget it on every instance, so that re-attaching finds nothing.
     */
    async discard(key: string) {
      discardLocal(key)
      await relay?.requestStop(key, true)
    },

    /** Relay side: forget `key` here, stopping it if it runs here. */
    discardLocal,

    /** Stop every run `userId` started, on every instance (a disabled or deleted user). */
    async stopOwnedBy(userId: string) {
      stopOwnedByLocal(userId)
      await relay?.requestStopOwnedBy(userId)
    },

    /** Relay side: stop the runs of `userId` that run here. */
    stopOwnedByLocal,

    /** Relay side: an event of a run another instance is running. */
    ingest(key: string, e: RunEvent) {
      let run = runs.get(key)
      if (run?.local && !run.done) return // our own event, echoed back
      if (!run || (run.done && e.id === 1)) {
        if (e.id !== 1) return // joined mid-run: this instance cannot replay it whole
        run = new Run(key, false)
        runs.set(key, run)
      }
      run.ingest(e)
    },

    useRelay(r: RunRelay) {
      relay = r
    },

    /**
     * Server shutdown: let running generations finish for up to `graceMs`, then stop the rest
     * (their producers write what they have, as `stopped`).
     */
    async stopAll(graceMs = 0) {
      clearInterval(sweep)
      const live = [...runs.values()].filter((r) => !r.done && r.local)
      if (graceMs > 0) await Promise.race([Promise.all(live.map((r) => r.ended())), Bun.sleep(graceMs)])
      for (const run of live) run.controller.abort()
      await Promise.all(live.map((r) => r.ended()))
    },
  }
}

export type RunRegistry = ReturnType<typeof createRunRegistry>
