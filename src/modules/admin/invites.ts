/** @module Invite codes for `HEARTH_REGISTRATION=invite`: single use, optional expiry, shown once, stored hashed. */
import { desc, eq } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { pageOfTable, type Page, type PageRequest } from '../../db/query.ts'
import { randomToken, sha256 } from '../../lib/crypto.ts'
import { inviteNotFound } from './errors.ts'

export type InviteRow = Database['t']['invites']['$inferSelect']

export function createInvitesService(deps: { database: Database }) {
  const { db, t } = deps.database
  return {
    /** A new invite and its code: the only time the code is known. */
    async create(createdBy: string, input: { note?: string | null; expiresAt?: Date | null }): Promise<InviteRow & { code: string }> {
      const code = `inv_${randomToken(18)}`
      const [row] = await db
        .insert(t.invites)
        .values({ prefix: code.slice(0, 8), codeHash: sha256(code), note: input.note ?? null, createdBy, expiresAt: input.expiresAt ?? null })
        .returning()
      return { ...row!, code }
    },

    /** Newest first. */
    list: (page: PageRequest): Promise<Page<InviteRow>> => pageOfTable(db, t.invites, undefined, [desc(t.invites.createdAt)], page),

    async remove(id: string) {
      const rows = await db.delete(t.invites).where(eq(t.invites.id, id)).returning({ id: t.invites.id })
      if (!rows.length) throw inviteNotFound()
    },
  }
}

export type InvitesService = ReturnType<typeof createInvitesService>
