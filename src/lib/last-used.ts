/**
 * @module "Last used at" stamps kept in memory and written to the database in one pass a minute,
 * so a request made with a session or an API key costs a Map write, not a database write.
 */
import type { Logger } from './logger.ts'

export function createLastUsed(what: string, write: (id: string, at: Date) => Promise<unknown>, logger: Logger, everyMs = 60_000) {
  const pending = new Map<string, number>()
  const flush = async () => {
    if (!pending.size) return
    const batch = [...pending]
    pending.clear()
    for (const [id, at] of batch) await write(id, new Date(at))
  }
  const timer = setInterval(() => void flush().catch((error) => logger.warn(`${what} last-used write failed`, { error })), everyMs)
  timer.unref?.()
  return {
    mark(id: string, at = Date.now()) {
      pending.set(id, at)
    },
    /** a stamp not yet written, if any */
    get(id: string): Date | undefined {
      const at = pending.get(id)
      return at === undefined ? undefined : new Date(at)
    },
    async close() {
      clearInterval(timer)
      await flush()
    },
  }
}
