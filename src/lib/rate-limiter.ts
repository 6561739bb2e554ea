/**
 * @module Fixed-window rate limits whose counters live in the database, so every instance on one
 * Postgres shares them.
 *
 * - `check` (hot path, every request): synchronous. It counts in memory and adds what the other
 *   instances counted as of the last flush; increments are flushed to the database once a second
 *   in one statement per key, and the shared totals come back. Across instances a limit can be
 *   overshot by at most one second's traffic.
 * - `consume` (login, registration, codes): one upsert per call, exact across instances.
 */
import { and, eq, lt, sql } from 'drizzle-orm'
import type { Database } from '../db/index.ts'
import type { Logger } from './logger.ts'

export interface Limit {
  limit: number
  windowMs: number
}

export interface LimitResult {
  allowed: boolean
  limit: number
  remaining: number
  /** seconds until the window resets */
  resetSeconds: number
}

interface Slot {
  key: string
  /** the window's start, seconds since the epoch */
  window: number
  /** counted here and not yet flushed */
  pending: number
  /** the database total as of the last flush (including our flushed counts) */
  shared: number
  limit: number
  /** the window's end, seconds since the epoch */
  ends: number
}

const FLUSH_MS = 1_000

export function createRateLimiter(deps: { database: Database; logger: Logger }) {
  const { database, logger } = deps
  const { db, t } = database
  const slots = new Map<string, Slot>()
  let timer: Timer | undefined
  let flushing: Promise<void> | undefined

  const upsert = (key: string, window: number, count: number) =>
    db
      .insert(t.rateLimits)
      .values({ key, windowStart: window, count })
      .onConflictDoUpdate({ target: [t.rateLimits.key, t.rateLimits.windowStart], set: { count: sql`${t.rateLimits.count} + excluded.count` } })
      .returning({ count: t.rateLimits.count })

  /** the current window of `limit`: its start in seconds, and the key it is counted under */
  const windowOf = (key: string, limit: Limit) => ({
    window: Math.floor(Date.now() / limit.windowMs) * (limit.windowMs / 1000),
    id: `${key}|${limit.windowMs / 1000}s`,
  })

  const result = (count: number, limit: Limit, window: number): LimitResult => ({
    allowed: count <= limit.limit,
    limit: limit.limit,
    remaining: Math.max(0, limit.limit - count),
    resetSeconds: Math.max(1, Math.ceil(window + limit.windowMs / 1000 - Date.now() / 1000)),
  })

  async function flush() {
    const now = Date.now()
    // Write what we counted; re-read the total of keys past half their limit, which others may be filling too.
    const current = Math.floor(now / 1000)
    const batch = [...slots.values()].filter((s) => s.pending > 0 || (s.shared * 2 >= s.limit && s.ends > current))
    for (const slot of batch) {
      const n = slot.pending
      slot.pending = 0
      try {
        const [row] = await upsert(slot.key, slot.window, n)
        slot.shared = row?.count ?? slot.shared + n
      } catch (error) {
        slot.pending += n
        logger.warn('rate-limit flush failed', { error })
        break
      }
    }
    // forget windows that ended long ago
    for (const [id, slot] of slots) if (slot.pending === 0 && slot.ends < current) slots.delete(id)
  }

  return {
    check(key: string, limit: Limit): LimitResult {
      const { window, id } = windowOf(key, limit)
      let slot = slots.get(id)
      if (!slot || slot.window !== window) {
        if (slot?.pending) void upsert(slot.key, slot.window, slot.pending).catch(() => {})
        slot = { key: id, window, pending: 0, shared: 0, limit: limit.limit, ends: window + limit.windowMs / 1000 }
        slots.set(id, slot)
      }
      slot.pending++
      return result(slot.shared + slot.pending, limit, window)
    },

    async consume(key: string, limit: Limit, cost = 1): Promise<LimitResult> {
      const { window, id } = windowOf(key, limit)
      const [row] = await upsert(id, window, cost)
      return result(row?.count ?? cost, limit, window)
    },

    /** How much of `limit` is used, without counting (for lockouts). */
    async peek(key: string, limit: Limit): Promise<LimitResult> {
      const { window, id } = windowOf(key, limit)
      const rows = await db
        .select({ count: t.rateLimits.count })
        .from(t.rateLimits)
        .where(and(eq(t.rateLimits.key, id), eq(t.rateLimits.windowStart, window)))
      const count = rows[0]?.count ?? 0
      return { ...result(count, limit, window), allowed: count < limit.limit }
    },

    start() {
      let ticks = 0
      timer = setInterval(() => {
        flushing ??= flush().finally(() => (flushing = undefined))
        if (++ticks % 3600 === 0) void this.sweep().catch((error) => logger.warn('rate-limit sweep failed', { error }))
      }, FLUSH_MS)
      timer.unref?.()
    },

    /** Flush what is pending. */
    async close() {
      clearInterval(timer)
      await flushing
      await flush()
    },

    /** Delete counters of windows that started over a day ago (no limit here is longer). */
    async sweep() {
      await db.delete(t.rateLimits).where(lt(t.rateLimits.windowStart, Math.floor(Date.now() / 1000) - 86_400))
    },
  }
}

export type RateLimiter = ReturnType<typeof createRateLimiter>
