/**
 * @module Memories: short facts a user wants every conversation to know ("I write TypeScript",
 * "answer in French"). Each belongs to one user and is invisible (404) to everyone else; the chat
 * module adds them to the system prompt (`contextFor`).
 */
import { and, asc, count, eq } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { withLock } from '../../db/lock.ts'
import { pageOfTable, type Page, type PageRequest } from '../../db/query.ts'
import { invalidMemoryContent, memoryLimitReached, memoryNotFound } from './errors.ts'

export type MemoryRow = Database['t']['memories']['$inferSelect']

export const MAX_MEMORY_LENGTH = 2000
export const MAX_MEMORIES_PER_USER = 200

/** Trimmed, 1–2000 characters: the routes check this too, other callers (the chat module) rely on it here. */
function cleanContent(content: string): string {
  const text = content.trim()
  if (text.length === 0 || text.length > MAX_MEMORY_LENGTH) throw invalidMemoryContent(MAX_MEMORY_LENGTH)
  return text
}

export function createMemoriesService(deps: { database: Database }) {
  const { database } = deps
  const { db, t } = database

  const own = (userId: string, id: string) => and(eq(t.memories.id, id), eq(t.memories.userId, userId))
  const oldestFirst = [asc(t.memories.createdAt), asc(t.memories.id)]

  async function get(userId: string, id: string): Promise<MemoryRow> {
    const [row] = await db.select().from(t.memories).where(own(userId, id))
    if (!row) throw memoryNotFound()
    return row
  }

  return {
    /** the user's memories, oldest first */
    list: (userId: string, page: PageRequest): Promise<Page<MemoryRow>> => pageOfTable(db, t.memories, eq(t.memories.userId, userId), oldestFirst, page),

    get,

    /** 409 once the user has MAX_MEMORIES_PER_USER; counted and inserted under a per-user lock, so parallel requests cannot pass it. */
    async create(userId: string, content: string): Promise<MemoryRow> {
      const text = cleanContent(content)
      return withLock(database, `memories:${userId}`, async (q) => {
        const [n] = await q.select({ n: count() }).from(t.memories).where(eq(t.memories.userId, userId))
        if (Number(n?.n ?? 0) >= MAX_MEMORIES_PER_USER) throw memoryLimitReached(MAX_MEMORIES_PER_USER)
        const [row] = await q.insert(t.memories).values({ userId, content: text }).returning()
        return row!
      })
    },

    async update(userId: string, id: string, content: string): Promise<MemoryRow> {
      const text = cleanContent(content)
      const [row] = await db.update(t.memories).set({ content: text, updatedAt: new Date() }).where(own(userId, id)).returning()
      if (!row) throw memoryNotFound()
      return row
    },

    async remove(userId: string, id: string) {
      const [row] = await db.delete(t.memories).where(own(userId, id)).returning({ id: t.memories.id })
      if (!row) throw memoryNotFound()
    },

    /** The user's memories, oldest first, for the chat system prompt. */
    async contextFor(userId: string): Promise<string[]> {
      const rows = await db.select({ content: t.memories.content }).from(t.memories).where(eq(t.memories.userId, userId)).orderBy(...oldestFirst)
      return rows.map((r) => r.content)
    },
  }
}

export type MemoriesService = ReturnType<typeof createMemoriesService>
