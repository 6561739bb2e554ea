/**
 * @module Runs across instances: every event of a run started here goes out on the bus's `runs`
 * channel (batched every 25 ms), so any instance can replay and follow it; a stop request travels
 * the same way to the instance running the run, and so do "discard" (stop it and forget it
 * everywhere) and "stop every run of this user". Batches of any size get through: the bus sends a
 * large one by reference.
 */
import { defineChannel, type Bus } from '../db/bus.ts'
import type { Logger } from '../lib/logger.ts'
import type { RunEvent, RunRegistry } from './index.ts'

const BATCH_MS = 25

type RunMessage =
  | { k: string; e: [id: number, event: string, data: unknown][] }
  /** stop `k`; `discard`: and forget it (its conversation is gone) */
  | { k: string; stop: true; discard?: true }
  /** stop every run of this user (disabled or deleted) */
  | { owner: string; stop: true }
const runsChannel = defineChannel<RunMessage>('runs')

export function startRunRelay(deps: { runs: RunRegistry; bus: Bus; logger: Logger }) {
  const { runs, bus, logger } = deps
  const pending = new Map<string, RunEvent[]>()
  let timer: Timer | undefined

  const send = (m: RunMessage) => bus.publish(runsChannel, m).catch((error) => logger.warn('run relay: could not publish', { error, run: 'k' in m ? m.k : undefined }))

  function flush() {
    clearTimeout(timer)
    timer = undefined
    const batch = [...pending]
    pending.clear()
    return Promise.all(batch.map(([k, events]) => send({ k, e: events.map((e) => [e.id, e.event, e.data]) })))
  }

  const unsubscribe = bus.subscribe(runsChannel, (m, from) => {
    if (from.here) return // our own runs
    if ('owner' in m) runs.stopOwnedByLocal(m.owner)
    else if ('stop' in m) m.discard ? runs.discardLocal(m.k) : runs.stopLocal(m.k)
    else for (const [id, event, data] of m.e) runs.ingest(m.k, { id, event, data })
  })

  runs.useRelay({
    publish(key, e) {
      let list = pending.get(key)
      if (!list) pending.set(key, (list = []))
      list.push(e)
      timer ??= setTimeout(() => void flush(), BATCH_MS)
    },
    requestStop: (key, discard) => send(discard ? { k: key, stop: true, discard: true } : { k: key, stop: true }),
    requestStopOwnedBy: (userId) => send({ owner: userId, stop: true }),
  })

  return {
    async close() {
      await flush()
      unsubscribe()
    },
  }
}
