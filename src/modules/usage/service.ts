/**
 * @module Usage rows for every model call, and credits. With enforcement on (HEARTH_CREDITS=on) a
 * call first reserves its worst-case cost in one conditional UPDATE — refused with 402 when the
 * balance is not positive — and settles the real cost when it ends. Concurrent calls on any number
 * of instances can therefore overspend by at most the one call that was admitted last.
 */
import { and, count, eq, gt, gte, lt, sql, type SQL } from 'drizzle-orm'
import { writeBatch } from '../../db/batch.ts'
import type { Database } from '../../db/index.ts'
import { pageWithTotal, type Page, type PageRequest } from '../../db/query.ts'
import { newId } from '../../lib/ids.ts'
import type { Logger } from '../../lib/logger.ts'
import { quotaExceeded } from './errors.ts'

export type UsageSource = 'chat' | 'gateway' | 'task'

export interface UsageRecord {
  userId: string
  providerId: string | null
  model: string
  source: UsageSource
  inputTokens: number
  outputTokens: number
  cost: number
  latencyMs: number | null
  ttftMs: number | null
  status: 'ok' | 'error' | 'aborted'
}

/** A user's usage, summed over every call. */
export interface UsageStats {
  inputTokens: number
  outputTokens: number
  cost: number
}

/** Usage of one day (UTC, YYYY-MM-DD), user and model. */
export interface UsageGroup {
  day: string
  userId: string | null
  username: string | null
  model: string
  calls: number
  inputTokens: number
  outputTokens: number
  cost: number
  errors: number
}

/** Price per million tokens → the cost of one call. */
export const costOf = (inputTokens: number, outputTokens: number, price: { inputPrice: number; outputPrice: number }) =>
  (inputTokens * price.inputPrice + outputTokens * price.outputPrice) / 1_000_000

const BATCH_MS = 50
const BATCH_SIZE = 100

export function createUsageService(deps: { database: Database; logger: Logger; enforced: boolean }) {
  const { database, logger, enforced } = deps
  const { db, t } = database
  let queue: { rec: UsageRecord; at: Date; held: number; done: () => void }[] = []
  let timer: Timer | undefined
  let writing: Promise<void> = Promise.resolve()

  const p = sql.placeholder
  const insertUsage = db
    .insert(t.usage)
    .values({
      id: p('id'),
      userId: p('userId'),
      providerId: p('providerId'),
      model: p('model'),
      source: p('source'),
      inputTokens: p('inputTokens'),
      outputTokens: p('outputTokens'),
      cost: p('cost'),
      latencyMs: p('latencyMs'),
      ttftMs: p('ttftMs'),
      status: p('status'),
      createdAt: p('createdAt'),
    })
    .prepare('usage_insert')
  // the real cost counts as used; with enforcement the hold minus the real cost goes back to the balance
  const settleUser = db
    .update(t.users)
    .set({ creditUsed: sql`${t.users.creditUsed} + ${p('used')}`, ...(enforced ? { creditBalance: sql`${t.users.creditBalance} + ${p('refund')}` } : {}) })
    .where(eq(t.users.id, p('userId')))
    .prepare('usage_settle_user')

  /** Write the queued records: flushes run one after another, never two at once. */
  function flush(): Promise<void> {
    clearTimeout(timer)
    timer = undefined
    const batch = queue
    queue = []
    if (!batch.length) return writing
    writing = writing.then(async () => {
      try {
        const perUser = new Map<string, { userId: string; used: number; refund: number }>()
        for (const { rec, held } of batch) {
          const u = perUser.get(rec.userId) ?? { userId: rec.userId, used: 0, refund: 0 }
          u.used += rec.cost
          u.refund += held - rec.cost
          perUser.set(rec.userId, u)
        }
        const writes = [...batch.map((b) => [insertUsage, { ...b.rec, id: newId(), createdAt: b.at }] as const), ...[...perUser.values()].map((u) => [settleUser, u] as const)]
        // one bad record (its user deleted meanwhile) fails alone
        const errors = await writeBatch(database, writes)
        errors.forEach((error, i) => error && logger.error('could not record usage', { error, user_id: (writes[i]![1] as { userId: string }).userId }))
      } catch (error) {
        logger.error('could not record usage', { error, records: batch.length })
      } finally {
        for (const b of batch) b.done()
      }
    })
    return writing
  }

  /** the day of a timestamp column as YYYY-MM-DD (UTC), in each dialect's SQL */
  const dayOf = (column: SQL | typeof t.usage.createdAt) =>
    database.dialect === 'postgres' ? sql<string>`to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')` : sql<string>`strftime('%Y-%m-%d', ${column} / 1000, 'unixepoch')`

  return {
    enforced,

    /** Hold `amount` of the user's credits for a call, or refuse with 402. Returns what was held. */
    async reserve(userId: string, amount: number): Promise<number> {
      if (!enforced) return 0
      const held = await db
        .update(t.users)
        .set({ creditBalance: sql`${t.users.creditBalance} - ${amount}` })
        .where(and(eq(t.users.id, userId), gt(t.users.creditBalance, 0)))
        .returning({ id: t.users.id })
      if (!held.length) throw quotaExceeded()
      return amount
    },

    /** Give back a hold for a call that never happened. */
    async release(userId: string, held: number) {
      if (!enforced || !held) return
      await db.update(t.users).set({ creditBalance: sql`${t.users.creditBalance} + ${held}` }).where(eq(t.users.id, userId))
    },

    /**
     * Record a finished call and settle its credits (give back the hold, take the real cost).
     * Records are written in batches every 50 ms or 100 records (prepared statements, one transaction
     * on SQLite, see db/batch.ts) so a busy gateway does not pay a commit per call; the promise
     * resolves once this record is written.
     */
    settle(rec: UsageRecord, held: number): Promise<void> {
      const { promise, resolve } = Promise.withResolvers<void>()
      queue.push({ rec, at: new Date(), held, done: resolve })
      if (queue.length >= BATCH_SIZE) void flush()
      else timer ??= setTimeout(() => void flush(), BATCH_MS)
      return promise
    },

    /** Write what is queued (shutdown). */
    flush: () => flush(),

    async statsOf(userId: string): Promise<UsageStats> {
      const [row] = await db
        .select({ input: sql<number>`coalesce(sum(${t.usage.inputTokens}), 0)`, output: sql<number>`coalesce(sum(${t.usage.outputTokens}), 0)`, cost: sql<number>`coalesce(sum(${t.usage.cost}), 0)` })
        .from(t.usage)
        .where(eq(t.usage.userId, userId))
      return { inputTokens: Number(row?.input ?? 0), outputTokens: Number(row?.output ?? 0), cost: Number(row?.cost ?? 0) }
    },

    /** Usage by day, user and model (admin). */
    aggregate(filter: { from?: Date; to?: Date; userId?: string; model?: string }, page: PageRequest): Promise<Page<UsageGroup>> {
      const conditions: SQL[] = []
      if (filter.from) conditions.push(gte(t.usage.createdAt, filter.from))
      if (filter.to) conditions.push(lt(t.usage.createdAt, filter.to))
      if (filter.userId) conditions.push(eq(t.usage.userId, filter.userId))
      if (filter.model) conditions.push(eq(t.usage.model, filter.model))
      const day = dayOf(t.usage.createdAt)
      const where = conditions.length ? and(...conditions) : undefined
      const groups = db.select({ day, userId: t.usage.userId, model: t.usage.model }).from(t.usage).where(where).groupBy(day, t.usage.userId, t.usage.model).as('groups')
      const rows = db
        .select({
          day,
          userId: t.usage.userId,
          username: t.users.username,
          model: t.usage.model,
          calls: sql<number>`count(*)`,
          inputTokens: sql<number>`sum(${t.usage.inputTokens})`,
          outputTokens: sql<number>`sum(${t.usage.outputTokens})`,
          cost: sql<number>`sum(${t.usage.cost})`,
          errors: sql<number>`sum(CASE WHEN ${t.usage.status} = 'ok' THEN 0 ELSE 1 END)`,
        })
        .from(t.usage)
        .leftJoin(t.users, eq(t.users.id, t.usage.userId))
        .where(where)
        .groupBy(day, t.usage.userId, t.users.username, t.usage.model)
        .orderBy(day, t.usage.model, t.usage.userId)
        .limit(page.limit)
        .offset(page.offset)
      // sums come back as strings on Postgres
      const numeric = rows.then((rs) => rs.map((r) => ({ ...r, calls: Number(r.calls), inputTokens: Number(r.inputTokens), outputTokens: Number(r.outputTokens), cost: Number(r.cost), errors: Number(r.errors) })))
      return pageWithTotal(numeric, db.select({ n: count() }).from(groups))
    },
  }
}

export type UsageService = ReturnType<typeof createUsageService>
