/**
 * @module Accounts: registration, login, refresh-token rotation with reuse detection, sessions,
 * password change and reset (email codes are codes.ts), and resolving a request's credentials to a principal.
 * No HTTP types here: routes pass in what they read (ip, user agent, tokens).
 */
import { and, desc, eq, gt, isNull, ne, or, sql } from 'drizzle-orm'
import type { Config } from '../../config.ts'
import type { Database } from '../../db/index.ts'
import { randomToken, sha256 } from '../../lib/crypto.ts'
import { createLastUsed } from '../../lib/last-used.ts'
import type { Logger } from '../../lib/logger.ts'
import type { Mailer } from '../../lib/mailer.ts'
import type { RateLimiter } from '../../lib/rate-limiter.ts'
import { createUser, hashPassword, preferencesOf, type Role, type UserRow, type UsersService } from '../users/service.ts'
import type { SetupService } from '../setup/service.ts'
import { setupCompletedMeanwhile } from '../setup/errors.ts'
import { API_KEY_SCOPES, type ApiKeyScope, type ApiKeysService } from './api-keys.ts'
import {
  accountDisabled,
  badCode,
  invalidCredentials,
  inviteInvalid,
  inviteRequired,
  loginLocked,
  oldPasswordRequired,
  refreshTokenInvalid,
  refreshTokenReused,
  registrationClosed,
  registrationNeedsVerifiedEmail,
  sessionEnded,
  sessionNotFound,
  sessionRevoked,
  tokenExpired,
} from './errors.ts'
import { createEmailCodes, type CodeSent, type CodeType } from './codes.ts'
import type { RevocationsService } from './revocations.ts'
import type { AccessTokens } from './tokens.ts'

export const REFRESH_TTL_MS = 30 * 24 * 3600_000
/** how long after its rotation a refresh token still gives the same successor (parallel refreshes: two tabs); after that, presenting it is reuse */
export const REFRESH_GRACE_MS = 10_000
/** failed logins before a lock for the rest of the window: per (account, client), and per account for the clients that failed too (docs/api.md §4) */
const LOGIN_FAILURE_LIMIT = { limit: 5, windowMs: 15 * 60_000 }

/** Who is calling, and how: an access token (of a session) or an API key (with its scopes). */
export interface Principal {
  userId: string
  role: Role
  /** `session`: an access token, which may do all its role may; `api_key`: only what the key's scopes allow, never credential management */
  via: 'session' | 'api_key'
  sessionId: string | null
  apiKeyId: string | null
  /** where the credential is accepted; a session has every scope */
  scopes: readonly ApiKeyScope[]
}

/** How a session was signed in (sessions.method): registration and login are `password`. */
export type SessionMethod = 'password' | 'oidc' | 'login_link'

export interface ClientInfo {
  ip: string
  userAgent: string | null
}

/** A bearer access token and the refresh token that replaces it; `expiresIn` in seconds. */
export interface IssuedTokens {
  accessToken: string
  refreshToken: string
  expiresIn: number
}

export interface NewAccount {
  username: string
  email: string
  password: string
  displayName?: string | null
  /** needed when registration is by invite */
  inviteCode?: string
  /** needed by the first admin's registration, while no admin exists */
  setupToken?: string
}

/** A new account or a login: the user and their first tokens. */
export interface SignedIn {
  user: UserRow
  tokens: IssuedTokens
}

/** An active session as its user sees it. */
export interface Session {
  id: string
  userAgent: string | null
  ip: string | null
  createdAt: Date
  lastUsedAt: Date
  /** the session of the request that asked */
  current: boolean
}

/** What a send-code request did, the same whether or not the address has an account. */
export function createAuthService(deps: {
  database: Database
  config: Config
  logger: Logger
  mailer: Mailer
  tokens: AccessTokens
  revocations: RevocationsService
  limiter: RateLimiter
  apiKeys: ApiKeysService
  users: UsersService
  setup: SetupService
  /** HMAC key for email codes (codes have only 10^6 values, so a plain hash would be reversible) */
  codeKey: Uint8Array
  /** HMAC key deriving a refresh token's successor from it */
  successorKey: Uint8Array
  /** default {@link REFRESH_GRACE_MS}; tests shorten it */
  refreshGraceMs?: number
}) {
  const { database, config, logger, tokens, revocations, limiter, apiKeys, users } = deps
  const { db, t } = database
  const codes = createEmailCodes({ database, mailer: deps.mailer, logger, codeKey: deps.codeKey })

  const byLogin = db
    .select()
    .from(t.users)
    // at most one row: usernames cannot contain '@', emails must
    .where(sql`lower(${t.users.username}) = lower(${sql.placeholder('login')}) OR ${t.users.email} = lower(${sql.placeholder('login')})`)
    .prepare('users_by_login')

  /** a real Argon2id hash to verify against when the user does not exist, so both take the same time */
  let dummyHash: Promise<string> | undefined
  const verifyPassword = async (password: string, hash: string | undefined) => {
    if (hash) return Bun.password.verify(password, hash)
    dummyHash ??= hashPassword(randomToken(16))
    await Bun.password.verify(password, await dummyHash)
    return false
  }

  const refreshGraceMs = deps.refreshGraceMs ?? REFRESH_GRACE_MS
  /**
   * The refresh token that replaces `token`: derived, not random, so that a second presentation
   * within the grace window — on any instance — gets the same one without the database keeping a
   * copy of it. Only the server knows the key, so knowing a token does not tell its successor.
   */
  const successorOf = (token: string) => `hrt_${new Bun.CryptoHasher('sha256', deps.successorKey).update(`refresh-successor\n${token}`).digest('base64url')}`

  const sessionLastUsed = createLastUsed('session', (id, at) => db.update(t.sessions).set({ lastUsedAt: at }).where(eq(t.sessions.id, id)), logger)

  async function startSession(user: UserRow, client: ClientInfo, method: SessionMethod = 'password'): Promise<{ sessionId: string; tokens: IssuedTokens }> {
    const now = Date.now()
    const [session] = await db
      .insert(t.sessions)
      .values({ userId: user.id, userAgent: client.userAgent?.slice(0, 512) ?? null, ip: client.ip, method, expiresAt: new Date(now + REFRESH_TTL_MS) })
      .returning({ id: t.sessions.id })
    return { sessionId: session!.id, tokens: await issue(user, session!.id) }
  }

  /** A new access token, and `refresh` (a new random one by default) stored unless it is already. */
  async function issue(user: Pick<UserRow, 'id' | 'role'>, sessionId: string, refresh = `hrt_${randomToken(32)}`): Promise<IssuedTokens> {
    await db
      .insert(t.refreshTokens)
      .values({ sessionId, tokenHash: sha256(refresh), expiresAt: new Date(Date.now() + REFRESH_TTL_MS) })
      .onConflictDoNothing({ target: t.refreshTokens.tokenHash })
    return { accessToken: await tokens.sign({ sub: user.id, sid: sessionId, role: user.role }), refreshToken: refresh, expiresIn: tokens.ttlSeconds }
  }

  async function revokeSessions(where: ReturnType<typeof and>) {
    const revoked = await db.update(t.sessions).set({ revokedAt: new Date() }).where(and(where, isNull(t.sessions.revokedAt))).returning({ id: t.sessions.id })
    if (revoked.length) await revocations.publish(...revoked.map((r) => ({ kind: 'session' as const, id: r.id })))
    return revoked.length
  }

  /**
   * Register-mode gate and invite check, before any work is done. While no admin exists only the
   * setup token admits a registration (whatever the mode): true then, the first admin's.
   */
  async function checkRegistration(input: NewAccount, viaVerifiedEmail: boolean): Promise<boolean> {
    if (await deps.setup.admit(input.setupToken)) return true
    const { inviteCode } = input
    const mode = config.registration
    if (mode === 'closed') throw registrationClosed()
    if (mode === 'verify' && !viaVerifiedEmail) throw registrationNeedsVerifiedEmail()
    if (mode === 'invite') {
      if (!inviteCode) throw inviteRequired()
      const [invite] = await db
        .select({ id: t.invites.id })
        .from(t.invites)
        .where(and(eq(t.invites.codeHash, sha256(inviteCode)), isNull(t.invites.usedAt), or(isNull(t.invites.expiresAt), gt(t.invites.expiresAt, new Date()))))
      if (!invite) throw inviteInvalid()
    }
    return false
  }

  /** The setup token's registration must have made the first admin; if another one did meanwhile, it is undone. */
  async function settleSetup(firstAdmin: boolean, user: UserRow) {
    if (!firstAdmin) return
    if (user.role !== 'admin') {
      await db.delete(t.users).where(eq(t.users.id, user.id))
      throw setupCompletedMeanwhile()
    }
    await deps.setup.completed()
  }

  /** Use up the invite (atomically); if another registration took it first, undo this user. */
  async function consumeInvite(inviteCode: string | undefined, user: UserRow, firstAdmin: boolean) {
    if (firstAdmin || config.registration !== 'invite' || !inviteCode) return
    const used = await db
      .update(t.invites)
      .set({ usedAt: new Date(), usedBy: user.id })
      .where(and(eq(t.invites.codeHash, sha256(inviteCode)), isNull(t.invites.usedAt)))
      .returning({ id: t.invites.id })
    if (!used.length) {
      await db.delete(t.users).where(eq(t.users.id, user.id))
      throw inviteInvalid()
    }
  }

  return {
    async register(input: NewAccount, client: ClientInfo): Promise<SignedIn> {
      const firstAdmin = await checkRegistration(input, false)
      const user = await createUser(database, { username: input.username, email: input.email, password: input.password, displayName: input.displayName })
      await settleSetup(firstAdmin, user)
      await consumeInvite(input.inviteCode, user, firstAdmin)
      const { tokens: issued } = await startSession(user, client)
      logger.info('user registered', { user_id: user.id, role: user.role })
      return { user, tokens: issued }
    },

    async verifyRegister(input: NewAccount & { code: string }, client: ClientInfo): Promise<SignedIn> {
      const firstAdmin = await checkRegistration(input, true)
      const codeId = await codes.check(input.email, 'register', input.code)
      // the code is used up only once the user exists: a taken username leaves it usable for a retry
      const user = await createUser(database, { username: input.username, email: input.email, password: input.password, displayName: input.displayName, emailVerified: true })
      if (!(await codes.use(codeId))) {
        await db.delete(t.users).where(eq(t.users.id, user.id))
        throw badCode()
      }
      await settleSetup(firstAdmin, user)
      await consumeInvite(input.inviteCode, user, firstAdmin)
      const { tokens: issued } = await startSession(user, client)
      return { user, tokens: issued }
    },

    /**
     * Login by username or email. Failures are counted per account — its username and its email are
     * one account; a name that matches no account is counted on its own, so both answer alike — and
     * per (account, client IP). A client is locked out of an account after 5 failures of its own, or
     * after 1 while the account as a whole has had 5: so guessing is bounded, while a client that has
     * not failed (the owner, elsewhere) still gets in with the right password.
     */
    async login(input: { login: string; password: string }, client: ClientInfo): Promise<SignedIn> {
      const [user] = await byLogin.execute({ login: input.login })
      const accountKey = user ? `login-fail:user:${user.id}` : `login-fail:name:${input.login.toLowerCase()}`
      const clientKey = `${accountKey}|ip:${client.ip}`
      // This attempt is counted before the password is checked (and given back if it is right), so
      // parallel guesses cannot all slip under the limit.
      const byClient = await limiter.consume(clientKey, LOGIN_FAILURE_LIMIT)
      const failedBefore = LOGIN_FAILURE_LIMIT.limit - byClient.remaining - 1
      if (!byClient.allowed) throw loginLocked(byClient.resetSeconds)
      if (failedBefore > 0) {
        const byAccount = await limiter.peek(accountKey, LOGIN_FAILURE_LIMIT)
        if (!byAccount.allowed) throw loginLocked(byAccount.resetSeconds)
      }
      const ok = await verifyPassword(input.password, user?.passwordHash)
      if (!ok || !user) {
        await limiter.consume(accountKey, LOGIN_FAILURE_LIMIT)
        throw invalidCredentials()
      }
      await limiter.consume(clientKey, LOGIN_FAILURE_LIMIT, -1)
      if (!user.isActive) throw accountDisabled()
      const { tokens: issued } = await startSession(user, client)
      return { user, tokens: issued }
    },

    /**
     * Sign `userId` in without a password: single sign-on and login links, which have proved who
     * it is. A disabled account is 403, like a login with the right password.
     */
    async signInAs(userId: string, client: ClientInfo, method: Exclude<SessionMethod, 'password'>): Promise<SignedIn> {
      const user = await users.get(userId)
      if (!user.isActive) throw accountDisabled()
      const { tokens: issued } = await startSession(user, client, method)
      return { user, tokens: issued }
    },

    /**
     * Rotate a refresh token. Presented again within the grace window of its rotation (a parallel
     * refresh: another tab), it gives the same successor, with a new access token; after the window
     * it is reuse, and the whole session dies.
     */
    async refresh(refreshToken: string, client: ClientInfo): Promise<IssuedTokens> {
      const [row] = await db
        .select({ token: t.refreshTokens, session: t.sessions, user: { id: t.users.id, role: t.users.role, isActive: t.users.isActive } })
        .from(t.refreshTokens)
        .innerJoin(t.sessions, eq(t.sessions.id, t.refreshTokens.sessionId))
        .innerJoin(t.users, eq(t.users.id, t.sessions.userId))
        .where(eq(t.refreshTokens.tokenHash, sha256(refreshToken)))
      if (!row) throw refreshTokenInvalid()
      const { token, session, user } = row
      const now = new Date()
      if (session.revokedAt || session.expiresAt <= now || token.expiresAt <= now || !user.isActive) throw sessionEnded()
      let usedAt = token.usedAt
      if (!usedAt) {
        const rotated = await db.update(t.refreshTokens).set({ usedAt: now }).where(and(eq(t.refreshTokens.id, token.id), isNull(t.refreshTokens.usedAt))).returning({ id: t.refreshTokens.id })
        if (rotated.length) {
          await db.update(t.sessions).set({ lastUsedAt: now, expiresAt: new Date(now.getTime() + REFRESH_TTL_MS), ip: client.ip }).where(eq(t.sessions.id, session.id))
          return issue(user, session.id, successorOf(refreshToken))
        }
        // a parallel refresh rotated it between our read and our update
        const [again] = await db.select({ usedAt: t.refreshTokens.usedAt }).from(t.refreshTokens).where(eq(t.refreshTokens.id, token.id))
        usedAt = again?.usedAt ?? null
      }
      // within the grace window: the same successor (stored by whichever request gets there first)
      if (usedAt && now.getTime() - usedAt.getTime() <= refreshGraceMs) return issue(user, session.id, successorOf(refreshToken))
      await revokeSessions(eq(t.sessions.id, session.id))
      logger.warn('refresh token reuse: session revoked', { user_id: user.id, session_id: session.id, ip: client.ip })
      throw refreshTokenReused()
    },

    async logout(principal: Principal) {
      if (principal.sessionId) await revokeSessions(eq(t.sessions.id, principal.sessionId))
    },

    /**
     * Change the password; every other session is revoked. An account made by single sign-on
     * (has_password false) sets its first one without `oldPassword`; every other needs it.
     */
    async changePassword(principal: Principal, oldPassword: string | undefined, newPassword: string) {
      const user = await users.get(principal.userId)
      if (user.hasPassword) {
        if (oldPassword === undefined) throw oldPasswordRequired()
        if (!(await Bun.password.verify(oldPassword, user.passwordHash))) throw invalidCredentials()
      }
      await db.update(t.users).set({ passwordHash: await hashPassword(newPassword), hasPassword: true, updatedAt: new Date() }).where(eq(t.users.id, user.id))
      await revokeSessions(principal.sessionId ? and(eq(t.sessions.userId, user.id), ne(t.sessions.id, principal.sessionId)) : eq(t.sessions.userId, user.id))
    },

    /** Most recently used first. */
    async listSessions(principal: Principal): Promise<Session[]> {
      const rows = await db
        .select()
        .from(t.sessions)
        .where(and(eq(t.sessions.userId, principal.userId), isNull(t.sessions.revokedAt), gt(t.sessions.expiresAt, new Date())))
        .orderBy(desc(t.sessions.lastUsedAt))
      return rows.map((s) => ({
        id: s.id,
        userAgent: s.userAgent,
        ip: s.ip,
        createdAt: s.createdAt,
        lastUsedAt: sessionLastUsed.get(s.id) ?? s.lastUsedAt,
        current: s.id === principal.sessionId,
      }))
    },

    async revokeSession(principal: Principal, id: string) {
      const n = await revokeSessions(and(eq(t.sessions.id, id), eq(t.sessions.userId, principal.userId)))
      if (!n) throw sessionNotFound()
    },

    /** Revoke every session and API key of a user (when an admin disables them) and cut off their access tokens. */
    async revokeEverything(userId: string) {
      await revokeSessions(eq(t.sessions.userId, userId))
      await apiKeys.revokeAllOf(userId)
      await revocations.publish({ kind: 'user', id: userId, after: Date.now() })
    },

    /**
     * Send a 6-digit code. Cooldown and daily cap apply per email whether or not an account exists,
     * and a code row is written either way, so the answer tells nothing about who is registered.
     */
    async sendCode(emailRaw: string, type: CodeType, language?: 'zh' | 'en'): Promise<CodeSent> {
      const email = emailRaw.toLowerCase()
      const [existing] = await byLogin.execute({ login: email })
      // register: no mail to an address that already has an account; reset: only to one that has
      const deliver = type === 'register' ? !existing : !!existing && existing.isActive
      return codes.send(email, type, deliver ? (language ?? (existing ? preferencesOf(existing).language : 'en')) : undefined)
    },

    async verifyCode(email: string, type: CodeType, code: string) {
      await codes.check(email, type, code)
    },

    async resetPassword(emailRaw: string, code: string, newPassword: string) {
      const email = emailRaw.toLowerCase()
      const codeId = await codes.check(email, 'password_reset', code)
      if (!(await codes.use(codeId))) throw badCode()
      const [user] = await byLogin.execute({ login: email })
      if (!user || user.email !== email) throw badCode()
      await db.update(t.users).set({ passwordHash: await hashPassword(newPassword), updatedAt: new Date() }).where(eq(t.users.id, user.id))
      await revokeSessions(eq(t.sessions.userId, user.id))
    },

    /** Resolve a bearer token (access JWT or `hk_` API key) to a principal; throws 401s. */
    async authenticate(token: string): Promise<Principal> {
      if (token.startsWith('hk_')) return apiKeys.authenticate(token)
      const claims = await tokens.verify(token)
      const state = revocations.check(claims)
      if (state === 'session_revoked') throw sessionRevoked()
      if (state === 'cut_off') throw tokenExpired()
      sessionLastUsed.mark(claims.sid)
      return { userId: claims.sub, role: claims.role, via: 'session', sessionId: claims.sid, apiKeyId: null, scopes: API_KEY_SCOPES }
    },

    close: () => sessionLastUsed.close(),

    /** Refuse access tokens issued until now (after a role change): the client refreshes and gets the new role. */
    async cutOffAccessTokens(userId: string) {
      await revocations.publish({ kind: 'user', id: userId, after: Date.now() })
    },
  }
}

export type AuthService = ReturnType<typeof createAuthService>
