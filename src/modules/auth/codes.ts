/**
 * @module Email codes (docs/api.md §4): 6 digits, 10 minutes, single use, 5 wrong attempts burn the
 * code, a 60 s cooldown and 10 sends per address a day. Stored as an HMAC (10^6 values: a plain hash
 * would be reversible), sent in the background.
 */
import { and, desc, eq, gt, isNull, lt, sql } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { withLock } from '../../db/lock.ts'
import { randomDigits, randomToken } from '../../lib/crypto.ts'
import type { Logger } from '../../lib/logger.ts'
import type { Mailer } from '../../lib/mailer.ts'
import { badCode, codeCooldown, codeDailyCapReached } from './errors.ts'
import { codeMail } from './mail.ts'

export type CodeType = 'register' | 'password_reset'

export interface CodeSent {
  email: string
  codeType: CodeType
  cooldownSeconds: number
  remainingDailySends: number
  expireMinutes: number
}

const CODE_TTL_MS = 10 * 60_000
const CODE_COOLDOWN_MS = 60_000
const CODE_DAILY_CAP = 10
const CODE_MAX_ATTEMPTS = 5

export function createEmailCodes(deps: { database: Database; mailer: Mailer; logger: Logger; codeKey: Uint8Array }) {
  const { database, mailer, logger } = deps
  const { db, t } = database
  const codeHash = (email: string, type: CodeType, code: string) => new Bun.CryptoHasher('sha256', deps.codeKey).update(`${email}\n${type}\n${code}`).digest('hex')

  return {
    /**
     * Issue a code for `email` (lower-case) and mail it in `language` — or, with no language, write
     * a row that no code matches and mail nothing: cooldown and daily cap count alike either way, so
     * the answer tells nothing about who is registered.
     */
    async send(email: string, type: CodeType, language: 'zh' | 'en' | undefined): Promise<CodeSent> {
      const code = randomDigits(6)
      // check-then-insert under a per-address lock: concurrent requests cannot slip past the cooldown
      const sentBefore = await withLock(database, `email-code:${email}`, async (q) => {
        const now = Date.now()
        const { emailCodes: c } = t
        const recent = await q.select({ createdAt: c.createdAt }).from(c).where(and(eq(c.email, email), gt(c.createdAt, new Date(now - 24 * 3600_000)))).orderBy(desc(c.createdAt))
        const last = recent[0]?.createdAt.getTime()
        if (last !== undefined && now - last < CODE_COOLDOWN_MS) {
          throw codeCooldown(Math.ceil((CODE_COOLDOWN_MS - (now - last)) / 1000))
        }
        if (recent.length >= CODE_DAILY_CAP) {
          const wait = Math.ceil((recent[CODE_DAILY_CAP - 1]!.createdAt.getTime() + 24 * 3600_000 - now) / 1000)
          throw codeDailyCapReached(Math.max(1, wait))
        }
        await q.update(c).set({ consumedAt: new Date(now) }).where(and(eq(c.email, email), eq(c.codeType, type), isNull(c.consumedAt)))
        await q.insert(c).values({ email, codeType: type, codeHash: codeHash(email, type, language ? code : randomToken(16)), createdAt: new Date(now), expiresAt: new Date(now + CODE_TTL_MS) })
        return recent.length
      })
      if (language) {
        // Sent in the background: the answer must not take longer when an account exists.
        void mailer.send({ ...codeMail(language, type, code, CODE_TTL_MS / 60_000), to: email, logFields: { code_type: type, code } }).catch((error) => logger.error('could not send mail', { error, code_type: type }))
      }
      return { email, codeType: type, cooldownSeconds: CODE_COOLDOWN_MS / 1000, remainingDailySends: CODE_DAILY_CAP - sentBefore - 1, expireMinutes: CODE_TTL_MS / 60_000 }
    },

    /**
     * Check a code and return its row id. Every check first takes one of the code's 5 attempts in a
     * conditional update, so concurrent guesses cannot get more than 5 comparisons; a right code
     * gives its attempt back.
     */
    async check(emailRaw: string, type: CodeType, code: string): Promise<string> {
      const email = emailRaw.toLowerCase()
      const { emailCodes: c } = t
      const [row] = await db
        .select({ id: c.id, codeHash: c.codeHash })
        .from(c)
        .where(and(eq(c.email, email), eq(c.codeType, type), isNull(c.consumedAt), gt(c.expiresAt, new Date())))
        .orderBy(desc(c.createdAt))
        .limit(1)
      if (!row) throw badCode()
      const taken = await db
        .update(c)
        .set({ attempts: sql`${c.attempts} + 1` })
        .where(and(eq(c.id, row.id), lt(c.attempts, CODE_MAX_ATTEMPTS), isNull(c.consumedAt)))
        .returning({ id: c.id })
      if (!taken.length || row.codeHash !== codeHash(email, type, code)) throw badCode()
      await db.update(c).set({ attempts: sql`${c.attempts} - 1` }).where(eq(c.id, row.id))
      return row.id
    },

    /** Use up a checked code; false when another request used it first. */
    async use(id: string): Promise<boolean> {
      const used = await db.update(t.emailCodes).set({ consumedAt: new Date() }).where(and(eq(t.emailCodes.id, id), isNull(t.emailCodes.consumedAt))).returning({ id: t.emailCodes.id })
      return used.length > 0
    },
  }
}
