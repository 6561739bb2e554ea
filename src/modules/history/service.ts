/**
 * @module The caller's history: their conversations and (optionally) tasks in one list, most
 * recently updated first, each in a group by its age in days relative to the server's UTC date.
 */
import { count, desc, eq, sql } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import type { Page, PageRequest } from '../../db/query.ts'

export type HistoryGroup = 'today' | 'yesterday' | 'previous_7_days' | 'previous_30_days' | 'older'

export interface HistoryItem {
  id: string
  kind: 'conversation' | 'task'
  title: string | null
  agentId: string | null
  /** a task's status; null for a conversation */
  status: string | null
  createdAt: Date
  updatedAt: Date
}

const DAY_MS = 86_400_000

/** Which group `at` falls in, by whole UTC days before `now`'s UTC date. */
export function groupOf(at: Date, now = new Date()): HistoryGroup {
  const day = (d: Date) => Math.floor(d.getTime() / DAY_MS)
  const days = day(now) - day(at)
  if (days <= 0) return 'today'
  if (days === 1) return 'yesterday'
  if (days <= 7) return 'previous_7_days'
  if (days <= 30) return 'previous_30_days'
  return 'older'
}

const toDate = (v: unknown) => (v instanceof Date ? v : new Date(typeof v === 'number' ? (v < 1e12 ? v * 1000 : v) : String(v)))

export function createHistoryService(deps: { database: Database }) {
  const { db, t } = deps.database

  return {
    async list(userId: string, f: PageRequest & { includeTasks: boolean }): Promise<Page<HistoryItem>> {
      const c = t.conversations
      const k = t.tasks
      const conversations = db
        .select({ id: c.id, kind: sql<string>`'conversation'`.as('kind'), title: c.title, agentId: c.agentId, status: sql<string | null>`NULL`.as('status'), createdAt: c.createdAt, updatedAt: c.updatedAt })
        .from(c)
        .where(eq(c.userId, userId))
      const tasks = db
        .select({ id: k.id, kind: sql<string>`'task'`.as('kind'), title: k.title, agentId: k.agentId, status: sql<string | null>`${k.status}`.as('status'), createdAt: k.createdAt, updatedAt: k.updatedAt })
        .from(k)
        .where(eq(k.userId, userId))
      const all = f.includeTasks ? conversations.unionAll(tasks) : conversations
      const rows = await all.orderBy(desc(sql`updated_at`), desc(sql`id`)).limit(f.limit).offset(f.offset)
      const [nc] = await db.select({ n: count() }).from(c).where(eq(c.userId, userId))
      const [nt] = f.includeTasks ? await db.select({ n: count() }).from(k).where(eq(k.userId, userId)) : [{ n: 0 }]
      return {
        rows: rows.map((r) => ({ ...r, kind: r.kind as HistoryItem['kind'], createdAt: toDate(r.createdAt), updatedAt: toDate(r.updatedAt) })),
        total: Number(nc?.n ?? 0) + Number(nt?.n ?? 0),
      }
    },
  }
}

export type HistoryService = ReturnType<typeof createHistoryService>
