/**
 * @module Login links (docs/api.md §4): a URL an admin (or `hearth admin login-link`) hands out that
 * signs one user in. The token (`hll_…`) is shown once and stored as SHA-256; opening a single-use
 * link uses it up in one conditional UPDATE, so two opens — on any instances — cannot both sign in.
 */
import { and, desc, eq, gt, isNull, or, sql } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { pageOfTable, type Page, type PageRequest } from '../../db/query.ts'
import { randomToken, sha256 } from '../../lib/crypto.ts'
import { userNotFound } from '../users/errors.ts'
import { loginLinkInvalid, loginLinkNotFound, loginLinkUserDisabled } from './errors.ts'

export type LoginLinkRow = Database['t']['loginLinks']['$inferSelect']
export type LoginLinkStatus = 'active' | 'used' | 'expired' | 'revoked'

/** lifetimes in seconds: the default, and the bounds of what may be asked for */
export const LOGIN_LINK_TTL = { default: 900, min: 60, max: 30 * 24 * 3600 }

export const LOGIN_LINK_OPEN_PATH = '/api/v1/auth/login-links/open'

/** The URL to hand out: `base` is the server's origin as browsers reach it. */
export const loginLinkUrl = (base: string, token: string) => `${base}${LOGIN_LINK_OPEN_PATH}?token=${token}`

/** Whether a link would still sign someone in, and if not, why. */
export function statusOf(link: LoginLinkRow, now = new Date()): LoginLinkStatus {
  if (link.revokedAt) return 'revoked'
  if (link.singleUse && link.usedAt) return 'used'
  if (link.expiresAt && link.expiresAt <= now) return 'expired'
  return 'active'
}

export interface NewLoginLink {
  userId: string
  /** seconds from now; null: until revoked (only for a link that is not single use) */
  ttlSeconds: number | null
  singleUse: boolean
  /** the admin who asks; null: the command line */
  createdBy: string | null
}

export function createLoginLinksService(deps: { database: Database }) {
  const { db, t } = deps.database
  return {
    /** A new link and its token: the only time the token is known. Unknown user 404, disabled 422. */
    async issue(input: NewLoginLink): Promise<LoginLinkRow & { token: string }> {
      if (input.ttlSeconds === null && input.singleUse) throw new Error('a single-use login link must expire') // the routes and the CLI never ask for one
      const [user] = await db.select({ isActive: t.users.isActive }).from(t.users).where(eq(t.users.id, input.userId))
      if (!user) throw userNotFound()
      if (!user.isActive) throw loginLinkUserDisabled()
      const token = `hll_${randomToken(32)}`
      const expiresAt = input.ttlSeconds === null ? null : new Date(Date.now() + input.ttlSeconds * 1000)
      const [row] = await db.insert(t.loginLinks).values({ userId: input.userId, tokenHash: sha256(token), createdBy: input.createdBy, singleUse: input.singleUse, expiresAt }).returning()
      return { ...row!, token }
    },

    /** The id of the user `ref` names (an id, a username in any case, or an email), if there is one. */
    async findUser(ref: string): Promise<string | undefined> {
      const [user] = await db
        .select({ id: t.users.id })
        .from(t.users)
        .where(or(eq(t.users.id, ref), sql`lower(${t.users.username}) = lower(${ref})`, eq(t.users.email, ref.toLowerCase())))
      return user?.id
    },

    /** Newest first; every link, whatever its status. */
    list: (filter: { userId?: string }, page: PageRequest): Promise<Page<LoginLinkRow>> =>
      pageOfTable(db, t.loginLinks, filter.userId ? eq(t.loginLinks.userId, filter.userId) : undefined, [desc(t.loginLinks.createdAt), desc(t.loginLinks.id)], page),

    /** The link stops working; revoking it again changes nothing. */
    async revoke(id: string) {
      const revoked = await db.update(t.loginLinks).set({ revokedAt: new Date() }).where(and(eq(t.loginLinks.id, id), isNull(t.loginLinks.revokedAt))).returning({ id: t.loginLinks.id })
      if (revoked.length) return
      const [exists] = await db.select({ id: t.loginLinks.id }).from(t.loginLinks).where(eq(t.loginLinks.id, id))
      if (!exists) throw loginLinkNotFound()
    },

    /**
     * Use the link `token` stands for, and give the id of the user it signs in; 401 when it is
     * unknown, used, expired or revoked. One conditional UPDATE: of two simultaneous opens of a
     * single-use link only one matches. A reusable link records its last use.
     */
    async open(token: string): Promise<string> {
      const now = new Date()
      const [row] = await db
        .update(t.loginLinks)
        .set({ usedAt: now })
        .where(
          and(
            eq(t.loginLinks.tokenHash, sha256(token)),
            isNull(t.loginLinks.revokedAt),
            or(isNull(t.loginLinks.expiresAt), gt(t.loginLinks.expiresAt, now)),
            or(eq(t.loginLinks.singleUse, false), isNull(t.loginLinks.usedAt)),
          ),
        )
        .returning({ userId: t.loginLinks.userId })
      if (!row) throw loginLinkInvalid()
      return row.userId
    },
  }
}

export type LoginLinksService = ReturnType<typeof createLoginLinksService>
