/**
 * @module Runs across instances on Postgres: every event of a run is sent on `NOTIFY hearth_runs`
 * (batched every 25 ms, in payloads under Postgres' 8000-byte limit), so any instance can replay and
 * follow it; a stop request travels the same way to the instance running it.
 */
import type postgres from 'postgres'
import type { Logger } from '../lib/logger.ts'
import type { RunEvent, RunRegistry } from './index.ts'

const CHANNEL = 'hearth_runs'
const BATCH_MS = 25
const MAX_PAYLOAD = 7500

type Message = { k: string; e: [number, string, unknown][] } | { k: string; stop: true }

export async function startRunRelay(registry: RunRegistry, sql: postgres.Sql, logger: Logger) {
  const pending = new Map<string, RunEvent[]>()
  let timer: Timer | undefined

  const send = (m: Message) => sql.notify(CHANNEL, JSON.stringify(m)).catch((error) => logger.warn('run relay: notify failed', { error }))

  async function flush() {
    timer = undefined
    const batch = [...pending]
    pending.clear()
    for (const [k, events] of batch) {
      let chunk: [number, string, unknown][] = []
      let size = 0
      for (const e of events) {
        const item: [number, string, unknown] = [e.id, e.event, e.data]
        const bytes = Buffer.byteLength(JSON.stringify(item))
        if (bytes > MAX_PAYLOAD - 200) {
          logger.warn('run relay: event too large to relay', { run: k, event: e.event, bytes })
          continue
        }
        if (size + bytes > MAX_PAYLOAD - 200 && chunk.length) {
          await send({ k, e: chunk })
          chunk = []
          size = 0
        }
        chunk.push(item)
        size += bytes
      }
      if (chunk.length) await send({ k, e: chunk })
    }
  }

  const sub = await sql.listen(CHANNEL, (payload) => {
    try {
      const m = JSON.parse(payload) as Message
      if ('stop' in m) registry.stopLocal(m.k)
      else for (const [id, event, data] of m.e) registry.ingest(m.k, { id, event, data })
    } catch (error) {
      logger.warn('run relay: bad message', { error })
    }
  })

  registry.useRelay({
    publish(key, e) {
      let list = pending.get(key)
      if (!list) pending.set(key, (list = []))
      list.push(e)
      timer ??= setTimeout(() => void flush(), BATCH_MS)
    },
    requestStop: (key) => send({ k: key, stop: true }).then(() => {}),
  })

  return {
    async close() {
      clearTimeout(timer)
      await flush()
      await sub.unlisten().catch(() => {})
    },
  }
}
