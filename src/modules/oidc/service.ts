/**
 * @module Single sign-on with OpenID Connect (docs/api.md §4 "Single sign-on"), on openid-client:
 * the authorization code flow with PKCE (S256), `state` and `nonce`, the ID token's signature
 * checked against the provider's JWKS as well as its issuer, audience, expiry and nonce. A sign-in
 * waiting for its callback is a row of oidc_logins (by the SHA-256 of its state), so the callback
 * may reach any instance; it is deleted as it is read, so a state (and with it a code) works once.
 * No HTTP types here: routes pass in the base URL and the client.
 */
import { and, asc, count, eq, lt, sql } from 'drizzle-orm'
import * as client from 'openid-client'
import type { Config } from '../../config.ts'
import type { Database } from '../../db/index.ts'
import { withLock } from '../../db/lock.ts'
import { randomDigits, randomToken, sha256 } from '../../lib/crypto.ts'
import { AppError } from '../../lib/errors.ts'
import type { Logger } from '../../lib/logger.ts'
import type { AuthService, ClientInfo, SignedIn } from '../auth/service.ts'
import type { SetupService } from '../setup/service.ts'
import { createUser, type UsersService } from '../users/service.ts'
import { badRedirect, identityNotFound, lastIdentity, SignInFailure, unknownState, type SignInFailureReason } from './errors.ts'
import type { OidcProvider, ProviderRegistry } from './registry.ts'

/** oauth4webapi's codes for an ID token that does not prove who signed in (its claims, times or key) */
const INVALID_TOKEN_CODES = new Set(['OAUTH_JWT_CLAIM_COMPARISON_FAILED', 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED', 'OAUTH_KEY_SELECTION_FAILED', 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED'])

/** how long a sign-in may wait for its callback */
export const PENDING_TTL_MS = 10 * 60_000

export interface Identity {
  id: string
  providerId: string
  providerName: string | null
  email: string | null
  createdAt: Date
  lastUsedAt: Date | null
}

/** What the callback did: signed someone in (cookies to set), or linked an identity to the signed-in user. */
export type CallbackResult = { returnTo: string } & ({ kind: 'signed_in'; signedIn: SignedIn } | { kind: 'linked' })

export interface CallbackParams {
  state: string
  code?: string
  iss?: string
  error?: string
}

/** Claims as providers send them: `email_verified` is sometimes the string "true" (Cognito). */
const isVerified = (v: unknown) => v === true || v === 'true'

/** A valid, free-looking username from `preferred_username` or the email's local part: 3–50 of A-Za-z0-9_- (docs/api.md §4). */
export function usernameBase(preferred: unknown, email: string | undefined): string {
  const raw = (typeof preferred === 'string' && preferred.trim()) || email?.split('@')[0] || ''
  let name = raw.split('@')[0]!.normalize('NFKD').replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^[_-]+|[_-]+$/g, '').slice(0, 40)
  if (name.length < 3) name = name ? `${name}_user` : 'user'
  return name
}

export function createOidcService(deps: { database: Database; config: Config; logger: Logger; registry: ProviderRegistry; auth: AuthService; users: UsersService; setup: SetupService }) {
  const { database, config, logger, registry, auth } = deps
  const { db, t } = database
  const allowedOrigins = new Set(config.corsOrigins.filter((o) => o !== '*'))

  /**
   * Where the browser may be sent once signed in: a path on this site (one leading `/`, not `//` or
   * `/\`, which browsers read as another host) or a URL on an origin of HEARTH_CORS_ORIGINS. No
   * control characters or backslashes anywhere: browsers drop tabs and newlines and read `\` as `/`.
   */
  function checkRedirect(redirect: string | undefined): string {
    if (redirect === undefined || redirect === '') return '/'
    if (redirect.length > 2000 || /[\u0000-\u001f\u007f\\]/.test(redirect)) throw badRedirect()
    if (redirect.startsWith('/')) {
      if (redirect.startsWith('//')) throw badRedirect()
      return redirect
    }
    let url: URL
    try {
      url = new URL(redirect)
    } catch {
      throw badRedirect()
    }
    if ((url.protocol !== 'https:' && url.protocol !== 'http:') || !allowedOrigins.has(url.origin)) throw badRedirect()
    return url.href
  }

  /** The sign-in's callback URL: HEARTH_PUBLIC_URL, else the request's origin (`baseUrl`). */
  const callbackUrl = (baseUrl: string, providerId: string) => `${config.publicUrl ?? baseUrl}/api/v1/auth/oidc/${providerId}/callback`

  async function touchIdentity(id: string, email: string | undefined) {
    await db.update(t.userIdentities).set({ lastUsedAt: new Date(), ...(email ? { email } : {}) }).where(eq(t.userIdentities.id, id))
  }

  /** Insert the identity; undefined when (provider, subject) is already linked (by a parallel callback, say). */
  async function insertIdentity(userId: string, providerId: string, subject: string, email: string | undefined) {
    const [row] = await db
      .insert(t.userIdentities)
      .values({ userId, providerId, subject, email: email ?? null, lastUsedAt: new Date() })
      .onConflictDoNothing()
      .returning({ id: t.userIdentities.id })
    return row?.id
  }

  const identityOf = async (providerId: string, subject: string) => (await db.select().from(t.userIdentities).where(and(eq(t.userIdentities.providerId, providerId), eq(t.userIdentities.subject, subject))))[0]

  /** A new account for a first sign-in: the registration mode decides (docs/api.md §4), and never the first admin. */
  async function createAccount(fail: (r: SignInFailureReason, d: string) => never, claims: client.IDToken, email: string, verified: boolean) {
    if (await deps.setup.pending()) fail('setup_required', 'No admin exists yet: the first admin registers with the setup token, not by single sign-on')
    const mode = config.registration
    if (mode === 'closed' || mode === 'invite') fail('registration_closed', `Registration is ${mode}: single sign-on does not create accounts`)
    if (mode === 'verify' && !verified) fail('registration_closed', 'Registration needs a verified email, and the provider does not say this one is verified')
    const base = usernameBase(claims.preferred_username, email)
    const displayName = typeof claims.name === 'string' && claims.name.trim() ? claims.name.trim().slice(0, 100) : null
    for (let attempt = 0; ; attempt++) {
      const username = attempt === 0 ? base : `${base}-${randomDigits(4)}`
      const [taken] = await db.select({ id: t.users.id }).from(t.users).where(sql`lower(${t.users.username}) = lower(${username})`)
      if (taken && attempt < 8) continue
      try {
        // a random password nobody knows (the column is NOT NULL); has_password false lets the user set one without it
        const user = await createUser(database, { username, email, password: randomToken(32), displayName, role: 'user', emailVerified: verified })
        await db.update(t.users).set({ hasPassword: false }).where(eq(t.users.id, user.id))
        return user.id
      } catch (error) {
        if (error instanceof AppError && error.status === 409 && attempt < 8) {
          if (error.detail.includes('email')) fail('email_not_verified', 'An account with this email exists')
          continue
        }
        throw error
      }
    }
  }

  return {
    checkRedirect,

    /** Providers for the sign-in page: `{ id, name }`, the environment's first. */
    listPublic: async () => (await registry.list()).map((p) => ({ id: p.id, name: p.name })),

    /**
     * A sign-in (or, with `linkUserId`, a link) to send the browser on: the provider's authorization
     * URL and the `state` the browser's cookie binds to it. 404 for an unknown provider, 422 for a
     * redirect that is not allowed, 502 when the provider's discovery fails.
     */
    async start(providerId: string, input: { redirect?: string; baseUrl: string; linkUserId?: string }): Promise<{ url: string; state: string }> {
      const returnTo = checkRedirect(input.redirect)
      const { provider, config: oidc } = await registry.resolve(providerId)
      const state = client.randomState()
      const nonce = client.randomNonce()
      const codeVerifier = client.randomPKCECodeVerifier()
      const redirectUri = callbackUrl(input.baseUrl, provider.id)
      const now = Date.now()
      // sign-ins never come back for: swept here, where rows are made
      await db.delete(t.oidcLogins).where(lt(t.oidcLogins.expiresAt, new Date(now)))
      await db.insert(t.oidcLogins).values({ stateHash: sha256(state), providerId: provider.id, codeVerifier, nonce, redirectUri, returnTo, linkUserId: input.linkUserId ?? null, expiresAt: new Date(now + PENDING_TTL_MS) })
      const url = client.buildAuthorizationUrl(oidc, {
        redirect_uri: redirectUri,
        scope: provider.scopes,
        response_type: 'code',
        code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      })
      return { url: url.href, state }
    },

    /**
     * The provider sent the browser back. The pending sign-in is taken (deleted) first: a state that
     * matches none is a 422 problem; from then on every failure is a SignInFailure (the route
     * redirects with `?error=`), and nobody is signed in.
     */
    async callback(providerId: string, params: CallbackParams, client_: ClientInfo): Promise<CallbackResult> {
      const [pending] = await db.delete(t.oidcLogins).where(eq(t.oidcLogins.stateHash, sha256(params.state))).returning()
      if (!pending) throw unknownState()
      const { returnTo } = pending
      const fail = (reason: SignInFailureReason, detail: string): never => {
        throw new SignInFailure(reason, returnTo, detail)
      }
      if (pending.expiresAt.getTime() <= Date.now()) fail('expired', 'The sign-in took longer than 10 minutes; start again')
      if (pending.providerId !== providerId) fail('provider_unknown', 'This sign-in was started with another provider')
      if (params.error) fail('provider_error', 'The provider did not sign you in')

      let resolved
      try {
        resolved = await registry.resolve(providerId)
      } catch (error) {
        if (error instanceof AppError && error.status === 404) fail('provider_unknown', 'This provider no longer exists')
        fail('upstream_error', 'The provider could not be reached')
      }
      const { provider, config: oidc } = resolved!

      const current = new URL(pending.redirectUri)
      current.searchParams.set('code', params.code!)
      current.searchParams.set('state', params.state)
      if (params.iss !== undefined) current.searchParams.set('iss', params.iss)
      let claims: client.IDToken
      let accessToken: string
      try {
        const tokens = await client.authorizationCodeGrant(oidc, current, { pkceCodeVerifier: pending.codeVerifier, expectedState: params.state, expectedNonce: pending.nonce, idTokenExpected: true })
        claims = tokens.claims()!
        accessToken = tokens.access_token
      } catch (error) {
        throw classify(error, provider, returnTo)
      }

      let email = typeof claims.email === 'string' ? claims.email.toLowerCase() : undefined
      let verified = email !== undefined && isVerified(claims.email_verified)
      // no email in the ID token: ask the userinfo endpoint (it must be about the same subject)
      if (email === undefined && oidc.serverMetadata().userinfo_endpoint) {
        try {
          const info = await client.fetchUserInfo(oidc, accessToken, claims.sub)
          if (typeof info.email === 'string') {
            email = info.email.toLowerCase()
            verified = isVerified(info.email_verified)
          }
        } catch (error) {
          throw classify(error, provider, returnTo)
        }
      }

      const known = await identityOf(provider.id, claims.sub)
      if (pending.linkUserId) {
        if (known && known.userId !== pending.linkUserId) fail('identity_taken', 'This account of the provider is linked to another user')
        if (known) await touchIdentity(known.id, email)
        else if (!(await insertIdentity(pending.linkUserId, provider.id, claims.sub, email))) fail('identity_taken', 'This account of the provider is linked to another user')
        logger.info('single sign-on: identity linked', { user_id: pending.linkUserId, provider_id: provider.id })
        return { kind: 'linked', returnTo }
      }

      let userId: string
      if (known) {
        userId = known.userId
        await touchIdentity(known.id, email)
      } else {
        if (!email) fail('email_missing', 'The provider gave no email address, which an account needs')
        const [existing] = await db.select({ id: t.users.id, emailVerified: t.users.emailVerified, hasPassword: t.users.hasPassword }).from(t.users).where(eq(t.users.email, email!))
        if (existing) {
          // linking by email only on the provider's word that the address is theirs: else anyone could claim an account
          if (!verified) fail('email_not_verified', 'An account with this email exists, and the provider does not say the email is verified: sign in with your password and link the provider from your account')
          // nor to an account whose own address was never proved: whoever registered it (maybe not the
          // address's owner: pre-hijacking) would keep its password and share the account
          if (!existing.emailVerified && existing.hasPassword) fail('account_unverified', 'An account with this email exists whose address was never verified: sign in with its password and link the provider from the account')
          userId = existing.id
        } else {
          userId = await createAccount(fail, claims, email!, verified)
        }
        if (!(await insertIdentity(userId, provider.id, claims.sub, email))) {
          // a parallel callback linked this subject meanwhile: sign in its owner (and drop the account made here, if any)
          const winner = (await identityOf(provider.id, claims.sub))!
          if (!existing && winner.userId !== userId) await db.delete(t.users).where(eq(t.users.id, userId))
          userId = winner.userId
        }
      }
      try {
        const signedIn = await auth.signInAs(userId, client_, 'oidc')
        logger.info('single sign-on: signed in', { user_id: userId, provider_id: provider.id })
        return { kind: 'signed_in', signedIn, returnTo }
      } catch (error) {
        if (error instanceof AppError && error.status === 403) fail('account_disabled', 'This account is disabled')
        throw error
      }
    },

    async listIdentities(userId: string): Promise<Identity[]> {
      const rows = await db.select().from(t.userIdentities).where(eq(t.userIdentities.userId, userId)).orderBy(asc(t.userIdentities.createdAt), asc(t.userIdentities.id))
      const names = new Map((await registry.list()).map((p) => [p.id, p.name]))
      return rows.map((r) => ({ id: r.id, providerId: r.providerId, providerName: names.get(r.providerId) ?? null, email: r.email, createdAt: r.createdAt, lastUsedAt: r.lastUsedAt }))
    },

    /** Unlink; refused (409) for the last identity of an account without a password, which it would lock out. */
    async unlinkIdentity(userId: string, id: string) {
      await withLock(database, `identities:${userId}`, async (q) => {
        const [row] = await q.select({ id: t.userIdentities.id }).from(t.userIdentities).where(and(eq(t.userIdentities.id, id), eq(t.userIdentities.userId, userId)))
        if (!row) throw identityNotFound()
        const [user] = await q.select({ hasPassword: t.users.hasPassword }).from(t.users).where(eq(t.users.id, userId))
        if (!user?.hasPassword) {
          const [n] = await q.select({ n: count() }).from(t.userIdentities).where(eq(t.userIdentities.userId, userId))
          if (Number(n?.n ?? 0) <= 1) throw lastIdentity()
        }
        await q.delete(t.userIdentities).where(eq(t.userIdentities.id, id))
      })
    },
  }

  /** A failed code exchange: the provider's answer did not prove who signed in (invalid_token), or it could not be had (upstream_error). Logged without tokens. */
  function classify(error: unknown, provider: OidcProvider, returnTo: string): SignInFailure {
    const code = (error as { code?: string }).code ?? ''
    const cause = (error as { cause?: unknown }).cause
    const invalid =
      error instanceof client.ResponseBodyError ||
      INVALID_TOKEN_CODES.has(code) ||
      // a bad signature is an "invalid response" whose cause says so
      (code === 'OAUTH_INVALID_RESPONSE' && cause instanceof Error && /signature/i.test(cause.message))
    logger.warn('single sign-on: the code exchange failed', { provider_id: provider.id, code, error: error instanceof Error ? error.message : String(error), cause: cause instanceof Error ? cause.message : undefined })
    return invalid
      ? new SignInFailure('invalid_token', returnTo, "The provider's answer did not prove who signed in (signature, issuer, audience, expiry or nonce)")
      : new SignInFailure('upstream_error', returnTo, 'The provider could not be reached or answered something unexpected')
  }
}

export type OidcService = ReturnType<typeof createOidcService>
