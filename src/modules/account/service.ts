/**
 * @module Deleting an account: the steps an admin's deletion and your own share, and the proof of
 * identity your own needs (the password, or a fresh single sign-on for an account without one).
 */
import { and, eq, gt } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import type { Limit, RateLimiter } from '../../lib/rate-limiter.ts'
import type { RunRegistry } from '../../runs/index.ts'
import type { AuthService, Principal } from '../auth/service.ts'
import type { FilesService } from '../files/service.ts'
import type { UsersService } from '../users/service.ts'
import { deletionLocked, freshSignInRequired, passwordRequired, wrongPassword } from './errors.ts'

/** how recent a single sign-on must be to stand in for the password */
export const FRESH_SIGN_IN_MS = 10 * 60_000
/** wrong passwords before deleting is locked for the rest of the window, per account (like a login's) */
const WRONG_PASSWORD_LIMIT: Limit = { limit: 5, windowMs: 15 * 60_000 }

export function createAccountService(deps: { database: Database; users: UsersService; files: FilesService; auth: AuthService; runs: RunRegistry; limiter: RateLimiter }) {
  const { database, users, files, auth, runs, limiter } = deps
  const { db, t } = database

  /** The user and everything they own are deleted, their stored bytes too; their tokens and runs stop. 404 unknown, 409 the last active admin. */
  async function remove(userId: string) {
    // the rows go with the user; their bytes are deleted once the user is
    const keys = await files.keysOf(userId)
    await users.remove(userId)
    await files.deleteBytes(keys)
    // sessions and keys went with the row; access tokens already issued, open streams and running answers stop now
    await auth.cutOffAccessTokens(userId)
    await runs.stopOwnedBy(userId)
  }

  /** 401 wrong password (each counts; 429 after 5 in 15 minutes), 422 none sent. */
  async function checkPassword(userId: string, hash: string, password: string | undefined) {
    if (!password) throw passwordRequired()
    const key = `account-delete-fail:${userId}`
    // counted before the check and given back when right, so parallel guesses cannot slip under the limit
    const attempt = await limiter.consume(key, WRONG_PASSWORD_LIMIT)
    if (!attempt.allowed) throw deletionLocked(attempt.resetSeconds)
    if (!(await Bun.password.verify(password, hash))) throw wrongPassword()
    await limiter.consume(key, WRONG_PASSWORD_LIMIT, -1)
  }

  /** 403 unless the caller's session is a single sign-on of the last FRESH_SIGN_IN_MS. */
  async function checkFreshSignOn(sessionId: string | null) {
    if (!sessionId) throw freshSignInRequired()
    const [fresh] = await db
      .select({ id: t.sessions.id })
      .from(t.sessions)
      .where(and(eq(t.sessions.id, sessionId), eq(t.sessions.method, 'oidc'), gt(t.sessions.createdAt, new Date(Date.now() - FRESH_SIGN_IN_MS))))
    if (!fresh) throw freshSignInRequired()
  }

  return {
    remove,

    /** The caller deletes their own account, after proving it is them. */
    async removeOwn(principal: Principal, password: string | undefined) {
      const user = await users.get(principal.userId)
      if (user.hasPassword) await checkPassword(user.id, user.passwordHash, password)
      else await checkFreshSignOn(principal.sessionId)
      await remove(user.id)
    },
  }
}

export type AccountService = ReturnType<typeof createAccountService>
