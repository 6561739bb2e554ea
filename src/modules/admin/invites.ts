/** @module Invite codes for `HEARTH_REGISTRATION=invite`: single use, optional expiry, shown once, stored hashed. */
import { and, count, desc, eq } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { randomToken, sha256 } from '../../lib/crypto.ts'
import { notFound } from '../../lib/errors.ts'

export function createInvites(database: Database) {
  const { db, t } = database
  const toDto = (i: Database['t']['invites']['$inferSelect']) => ({
    id: i.id,
    prefix: i.prefix,
    note: i.note,
    created_at: i.createdAt.toISOString(),
    expires_at: i.expiresAt?.toISOString() ?? null,
    used_at: i.usedAt?.toISOString() ?? null,
    used_by: i.usedBy,
  })
  return {
    async create(createdBy: string, input: { note?: string | null; expiresAt?: Date | null }) {
      const code = `inv_${randomToken(18)}`
      const [row] = await db
        .insert(t.invites)
        .values({ prefix: code.slice(0, 8), codeHash: sha256(code), note: input.note ?? null, createdBy, expiresAt: input.expiresAt ?? null })
        .returning()
      return { ...toDto(row!), code }
    },
    async list(limit: number, offset: number) {
      const [rows, [total]] = await Promise.all([
        db.select().from(t.invites).orderBy(desc(t.invites.createdAt)).limit(limit).offset(offset),
        db.select({ n: count() }).from(t.invites),
      ])
      return { items: rows.map(toDto), total: Number(total?.n ?? 0) }
    },
    async remove(id: string) {
      const rows = await db.delete(t.invites).where(and(eq(t.invites.id, id))).returning({ id: t.invites.id })
      if (!rows.length) throw notFound('Invite')
    },
  }
}

export type Invites = ReturnType<typeof createInvites>
