/**
 * @module Shared conversations: a frozen snapshot of the active branch behind an unguessable token
 * (stored hashed), readable without auth until its owner withdraws it; sharing again replaces it.
 */
import { eq } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { randomToken, sha256 } from '../../lib/crypto.ts'
import { shareNotFound } from './errors.ts'
import type { ConversationRow, MessageRow } from './model.ts'

export function createShares(deps: { database: Database }) {
  const { db, t } = deps.database

  return {
    /** Snapshot the branch; returns the token (shown only now). */
    async create(conversation: ConversationRow, branch: MessageRow[]) {
      const token = randomToken(24)
      const snapshot = { title: conversation.title, messages: branch.filter((m) => m.role !== 'system').map((m) => ({ role: m.role, content: m.content, created_at: m.createdAt.toISOString() })) }
      await db.delete(t.shares).where(eq(t.shares.conversationId, conversation.id))
      await db.insert(t.shares).values({ conversationId: conversation.id, tokenHash: sha256(token), snapshot })
      return token
    },

    async remove(conversationId: string) {
      const gone = await db.delete(t.shares).where(eq(t.shares.conversationId, conversationId)).returning({ id: t.shares.id })
      if (!gone.length) throw shareNotFound()
    },

    /** The snapshot behind a token (its messages as they were stored), and when it was taken. */
    async byToken(token: string) {
      const [row] = await db.select().from(t.shares).where(eq(t.shares.tokenHash, sha256(token)))
      if (!row) throw shareNotFound()
      return { title: row.snapshot.title, messages: row.snapshot.messages, createdAt: row.createdAt }
    },
  }
}
