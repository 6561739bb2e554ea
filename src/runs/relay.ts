/**
 * @module Runs across instances: every event of a run started here goes out on the bus's `runs`
 * channel (batched every 25 ms), so any instance can replay and follow it; a stop request travels
 * the same way to the instance running the run. Batches of any size get through: the bus sends a
 * large one by reference.
 */
import { defineChannel, type Bus } from '../db/bus.ts'
import type { Logger } from '../lib/logger.ts'
import type { RunEvent, RunRegistry } from './index.ts'

const BATCH_MS = 25

type RunMessage = { k: string; e: [id: number, event: string, data: unknown][] } | { k: string; stop: true }
const runsChannel = defineChannel<RunMessage>('runs')

export function startRunRelay(deps: { runs: RunRegistry; bus: Bus; logger: Logger }) {
  const { runs, bus, logger } = deps
  const pending = new Map<string, RunEvent[]>()
  let timer: Timer | undefined

  const send = (m: RunMessage) => bus.publish(runsChannel, m).catch((error) => logger.warn('run relay: could not publish', { error, run: m.k }))

  function flush() {
    clearTimeout(timer)
    timer = undefined
    const batch = [...pending]
    pending.clear()
    return Promise.all(batch.map(([k, events]) => send({ k, e: events.map((e) => [e.id, e.event, e.data]) })))
  }

  const unsubscribe = bus.subscribe(runsChannel, (m, from) => {
    if (from.here) return // our own runs
    if ('stop' in m) runs.stopLocal(m.k)
    else for (const [id, event, data] of m.e) runs.ingest(m.k, { id, event, data })
  })

  runs.useRelay({
    publish(key, e) {
      let list = pending.get(key)
      if (!list) pending.set(key, (list = []))
      list.push(e)
      timer ??= setTimeout(() => void flush(), BATCH_MS)
    },
    requestStop: (key) => send({ k: key, stop: true }),
  })

  return {
    async close() {
      await flush()
      unsubscribe()
    },
  }
}
