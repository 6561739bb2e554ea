/**
 * @module Privacy settings and the history retention sweep (docs/api.md §5 "Privacy and history
 * retention"). The settings live on the user's row (the `memory_enabled` one in the preferences),
 * written through the users service so its profile cache follows. The sweep deletes, per user with
 * `history_retention_days` set, the conversations without activity, the finished tasks and the tool call logs older
 * than that, in short statements of `batchSize` rows; on Postgres one instance at a time runs it.
 */
import { and, asc, eq, gt, inArray, isNotNull, isNull, lt, notExists, or, type SQL } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { tryWithLock } from '../../db/lock.ts'
import type { Logger } from '../../lib/logger.ts'
import { preferencesOf, type UserRow, type UsersService } from '../users/service.ts'

export interface PrivacySettings {
  /** null: keep everything */
  historyRetentionDays: number | null
  memoryEnabled: boolean
  usageVisibleToGroupAdmins: boolean
}

export interface SweepResult {
  conversations: number
  tasks: number
  toolLogs: number
  /** another instance held the sweep's lock: this one did nothing */
  skipped: boolean
}

export interface SweepOptions {
  /** the first sweep, after start (default 1 minute) */
  firstDelayMs?: number
  /** between the end of one sweep and the next (default 1 hour) */
  intervalMs?: number
  /** rows per delete statement (default 500) */
  batchSize?: number
  /** tests: awaited while the sweep holds its lock, before it deletes anything */
  whileLocked?: () => Promise<void>
}

const settingsOf = (u: UserRow): PrivacySettings => ({ historyRetentionDays: u.historyRetentionDays, memoryEnabled: preferencesOf(u).memory_enabled, usageVisibleToGroupAdmins: u.usageVisibleToGroupAdmins })

const DAY_MS = 86_400_000
const LOCK_NAME = 'history-retention-sweep'
const FINISHED = ['completed', 'failed', 'cancelled'] as const
/** lets requests in between two batches (bun:sqlite runs each statement synchronously) */
const yieldToRequests = () => new Promise((resolve) => setTimeout(resolve, 0))

export function createPrivacyService(deps: { database: Database; users: UsersService; logger: Logger; sweep?: SweepOptions }) {
  const { database, users, logger } = deps
  const { db, t } = database
  const { firstDelayMs = 60_000, intervalMs = 3_600_000, batchSize = 500, whileLocked } = deps.sweep ?? {}
  let timer: Timer | undefined
  let running: Promise<unknown> | undefined
  let stopped = false

  /** One batch (at most `batchSize` rows) of `table` matching `old`; the condition is in the DELETE itself, not only in the batch's SELECT. */
  async function deleteBatch(table: typeof t.conversations | typeof t.tasks | typeof t.toolLogs, old: SQL | undefined): Promise<number> {
    const gone = await db
      .delete(table)
      .where(and(old, inArray(table.id, db.select({ id: table.id }).from(table).where(old).limit(batchSize))))
      .returning({ id: table.id })
    return gone.length
  }

  /**
   * `userId`'s conversations whose last activity (`updated_at`) is before `cutoff` and that are
   * not generating (no `streaming` message). The DELETE re-checks this, so a message sent meanwhile
   * (it moves `updated_at` in the transaction that adds the streaming answer) keeps its
   * conversation. Messages and shares go by their ON DELETE CASCADE.
   */
  const oldConversations = (userId: string, cutoff: Date) => {
    const c = t.conversations
    return and(
      eq(c.userId, userId),
      lt(c.updatedAt, cutoff),
      notExists(db.select({ id: t.messages.id }).from(t.messages).where(and(eq(t.messages.conversationId, c.id), eq(t.messages.status, 'streaming')))),
    )
  }

  /**
   * `userId`'s finished tasks (completed, failed, cancelled) that finished before `cutoff` (by
   * `finished_at`; by `created_at` for one without). Pending and running ones stay. Steps, shares
   * and plans go by their ON DELETE CASCADE. (`created_at < cutoff` holds for every task finished
   * before it, as a task finishes after it is made; it also lets the (user_id, created_at) index
   * narrow the scan.)
   */
  const oldTasks = (userId: string, cutoff: Date) => {
    const k = t.tasks
    return and(eq(k.userId, userId), inArray(k.status, [...FINISHED]), lt(k.createdAt, cutoff), or(lt(k.finishedAt, cutoff), isNull(k.finishedAt)))
  }

  /** `userId`'s tool calls logged before `cutoff`: their arguments and results are the user's history too (any source). */
  const oldToolLogs = (userId: string, cutoff: Date) => and(eq(t.toolLogs.userId, userId), lt(t.toolLogs.createdAt, cutoff))

  /** Batches until one comes back short (or the service closes). */
  async function drain(deleteBatch: () => Promise<number>): Promise<number> {
    let total = 0
    for (;;) {
      const n = await deleteBatch()
      total += n
      if (n < batchSize || stopped) return total
      await yieldToRequests()
    }
  }

  async function sweepAll(now: Date) {
    const result = { users: 0, conversations: 0, tasks: 0, toolLogs: 0 }
    let after = ''
    for (;;) {
      const page = await db
        .select({ id: t.users.id, days: t.users.historyRetentionDays })
        .from(t.users)
        .where(and(isNotNull(t.users.historyRetentionDays), gt(t.users.id, after)))
        .orderBy(asc(t.users.id))
        .limit(batchSize)
      for (const u of page) {
        if (stopped) return result
        const cutoff = new Date(now.getTime() - u.days! * DAY_MS)
        result.users++
        result.conversations += await drain(() => deleteBatch(t.conversations, oldConversations(u.id, cutoff)))
        result.tasks += await drain(() => deleteBatch(t.tasks, oldTasks(u.id, cutoff)))
        result.toolLogs += await drain(() => deleteBatch(t.toolLogs, oldToolLogs(u.id, cutoff)))
      }
      if (page.length < batchSize) return result
      after = page.at(-1)!.id
    }
  }

  /**
   * Delete what every user's retention says is too old at `now`. On Postgres, when another
   * instance is sweeping, this one skips at once (`skipped: true`); on SQLite, a sweep already
   * under way in this process does.
   */
  async function sweep(now = new Date()): Promise<SweepResult> {
    const started = Date.now()
    const outcome = await tryWithLock(database, LOCK_NAME, async () => {
      await whileLocked?.()
      return sweepAll(now)
    })
    if (!outcome.acquired) {
      logger.debug('history retention sweep skipped: another one holds the lock')
      return { conversations: 0, tasks: 0, toolLogs: 0, skipped: true }
    }
    const { users: swept, conversations, tasks, toolLogs } = outcome.value
    logger.info('history retention sweep', { users: swept, conversations, tasks, tool_logs: toolLogs, duration_ms: Date.now() - started })
    return { conversations, tasks, toolLogs, skipped: false }
  }

  function schedule(ms: number) {
    timer = setTimeout(() => {
      running = sweep()
        .catch((error) => logger.warn('history retention sweep failed', { error }))
        .finally(() => {
          running = undefined
          if (!stopped) schedule(intervalMs)
        })
    }, ms)
    timer.unref?.()
  }

  return {
    get: async (userId: string) => settingsOf((await users.profile(userId)).user),

    /** Set the fields `patch` names; the others keep their value. */
    set: async (userId: string, patch: Partial<PrivacySettings>) => settingsOf(await users.setPrivacy(userId, patch)),

    sweep,

    /** Sweep `firstDelayMs` after this, then `intervalMs` after each sweep ends. */
    start() {
      schedule(firstDelayMs)
    },

    /** Stop the timer; a sweep under way stops after its current batch. */
    async close() {
      stopped = true
      clearTimeout(timer)
      await running
    },
  }
}

export type PrivacyService = ReturnType<typeof createPrivacyService>
