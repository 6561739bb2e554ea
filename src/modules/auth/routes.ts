/** @module /api/v1/auth and /api/v1/api-keys (docs/api.md §4). */
import { Elysia, type Cookie } from 'elysia'
import { z } from 'zod'
import type { Config } from '../../config.ts'
import type { RateLimiter } from '../../lib/rate-limiter.ts'
import { idParams, page, problems, wholePage } from '../../lib/schemas.ts'
import { ACCESS_COOKIE, applyLimitHeaders, createClientInfo, createCrossSiteCheck, rateLimited, REFRESH_COOKIE, type authPlugin } from '../../plugins/auth.ts'
import { toUserDto, userSchema } from '../users/model.ts'
import type { Profile, UsersService } from '../users/service.ts'
import type { ApiKeysService } from './api-keys.ts'
import { refreshTokenRequired } from './errors.ts'
import * as m from './model.ts'
import { REFRESH_TTL_MS, type AuthService, type IssuedTokens, type SignedIn } from './service.ts'

const AUTH_PATH = '/api/v1/auth'

export type Cookies = Record<string, Cookie<unknown>>

/** Setting and clearing the token cookies: every route that signs someone in (login, single sign-on, login links) uses these. */
export function createAuthCookies(config: Pick<Config, 'trustProxy'>) {
  const isHttps = (request: Request) => request.url.startsWith('https:') || (config.trustProxy && request.headers.get('x-forwarded-proto') === 'https')
  return {
    isHttps,
    /** Browsers get the same tokens as httpOnly cookies; the refresh cookie only travels to the auth path. */
    setCookies(cookie: Cookies, request: Request, tokens: IssuedTokens) {
      const secure = isHttps(request)
      cookie[ACCESS_COOKIE]!.set({ value: tokens.accessToken, httpOnly: true, sameSite: 'lax', secure, path: '/', maxAge: tokens.expiresIn })
      cookie[REFRESH_COOKIE]!.set({ value: tokens.refreshToken, httpOnly: true, sameSite: 'lax', secure, path: AUTH_PATH, maxAge: REFRESH_TTL_MS / 1000 })
    },
    clearCookies(cookie: Cookies) {
      cookie[ACCESS_COOKIE]!.set({ value: '', httpOnly: true, sameSite: 'lax', path: '/', maxAge: 0 })
      cookie[REFRESH_COOKIE]!.set({ value: '', httpOnly: true, sameSite: 'lax', path: AUTH_PATH, maxAge: 0 })
    },
  }
}

/** Login, registration, code, login-link and single sign-on endpoints: a tighter limit per client IP (HEARTH_AUTH_RATE_LIMIT, one budget for all of them), exact across instances. */
export function createAuthLimit(limiter: RateLimiter, config: Pick<Config, 'trustProxy' | 'authRateLimit'>) {
  const clientInfo = createClientInfo(config.trustProxy)
  return async (request: Request, server: Parameters<ReturnType<typeof createClientInfo>>[1], headers: Record<string, string | number>) => {
    const r = await limiter.consume(`auth-ip:${clientInfo(request, server).ip}`, config.authRateLimit)
    applyLimitHeaders(headers, r)
    if (!r.allowed) throw rateLimited(r, 'Too many attempts from this address; try again later')
  }
}

export function authRoutes(deps: { auth: AuthService; users: UsersService; limiter: RateLimiter; config: Config; authPlugin: ReturnType<typeof authPlugin> }) {
  const { auth, users, limiter, config } = deps
  const clientInfo = createClientInfo(config.trustProxy)
  const refuseCrossSite = createCrossSiteCheck(config)

  const { setCookies, clearCookies } = createAuthCookies(config)

  /** A new account: 201, Location, and its tokens as cookies too. */
  function created(result: SignedIn, ctx: { request: Request; set: { status?: number | string; headers: Record<string, string | number> }; cookie: Cookies }) {
    setCookies(ctx.cookie, ctx.request, result.tokens)
    ctx.set.status = 201
    ctx.set.headers.location = '/api/v1/users/me'
    return m.toAuthResultDto(result)
  }

  /** GET /me is the hottest read: each cached profile's JSON is made once, and kept as long as the entry is (a change replaces the entry). */
  const meJson = new WeakMap<Profile, string>()
  const jsonOf = (profile: Profile) => {
    let json = meJson.get(profile)
    if (json === undefined) {
      json = JSON.stringify(toUserDto(profile.user))
      meJson.set(profile, json)
    }
    return json
  }

  const limitAuth = createAuthLimit(limiter, config)

  return new Elysia({ name: 'hearth.routes.auth', prefix: AUTH_PATH, detail: { tags: ['Auth'] } })
    .use(deps.authPlugin)
    .post(
      '/register',
      async ({ body, request, server, set, cookie }) => {
        await limitAuth(request, server, set.headers)
        return created(await auth.register(m.fromRegisterBody(body), clientInfo(request, server)), { request, set, cookie })
      },
      { body: m.registerBody, response: { 201: m.authResult, ...problems(403, 409, 422, 429) }, detail: {
          summary: 'Register',
          description:
            'Creates an account and signs it in: `201 { user, tokens }` with `Location: /api/v1/users/me`, the tokens also set as cookies. The first user ever becomes `admin`. `409` names the username or email already taken; `403` when registration is `closed`, is `verify` (use verify-register) or is `invite` without a valid `invite_code`.',
        },
      },
    )
    .post(
      '/login',
      async ({ body, request, server, set, cookie }) => {
        await limitAuth(request, server, set.headers)
        const result = await auth.login({ login: (body.username ?? body.email)!, password: body.password }, clientInfo(request, server))
        setCookies(cookie, request, result.tokens)
        return m.toAuthResultDto(result)
      },
      { body: m.loginBody, response: { 200: m.authResult, ...problems(401, 403, 422, 429) }, detail: {
          summary: 'Log in',
          description:
            'Either field takes the username or the email, in any case. `401 INVALID_CREDENTIALS` is the same for an unknown user and a wrong password; `403` for a disabled account (only with the right password); `429` while the login name is locked after 5 failures in 15 minutes. The tokens are also set as cookies.',
        },
      },
    )
    .post(
      '/refresh',
      async ({ body, request, server, set, cookie }) => {
        await limitAuth(request, server, set.headers)
        const token = body?.refresh_token ?? (cookie[REFRESH_COOKIE]?.value as string | undefined)
        if (!token) throw refreshTokenRequired()
        if (!body?.refresh_token) refuseCrossSite(request) // the cookie came by itself: as for the access cookie
        const tokens = await auth.refresh(token, clientInfo(request, server))
        setCookies(cookie, request, tokens)
        return { tokens: m.toTokensDto(tokens) }
      },
      { body: m.refreshBody, response: { 200: m.refreshResult, ...problems(401, 422, 429) }, detail: {
          summary: 'Refresh the tokens',
          description:
            'Takes the refresh token from the body or, when the body has none, from the `hearth_refresh` cookie, and returns a new pair: the old refresh token is dead. Presenting a used refresh token again is reuse: `401`, and the whole session is revoked.',
        },
      },
    )
    .post(
      '/logout',
      async ({ principal, cookie, set }) => {
        await auth.logout(principal)
        clearCookies(cookie)
        set.status = 204
      },
      { auth: 'session', response: { 204: z.void(), ...problems(401, 403, 429) }, detail: { summary: 'Log out', description: "Revokes the current session's refresh and access tokens and clears the cookies." } },
    )
    .get('/me', async ({ principal }) => new Response(jsonOf(await users.profile(principal.userId)), { headers: { 'content-type': 'application/json' } }), {
      auth: true,
      response: { 200: userSchema, ...problems(401, 403, 404, 429) },
      detail: { summary: 'The current user', description: 'The user object of the caller (access token, API key or cookie).' },
    })
    .put(
      '/password',
      async ({ principal, body, set }) => {
        await auth.changePassword(principal, body.old_password, body.new_password)
        set.status = 204
      },
      { auth: 'session', body: m.passwordBody, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Change the password', description: 'Every other session is revoked; API keys are kept. `401 INVALID_CREDENTIALS` for a wrong `old_password`; `422` without one. An account made by single sign-on, which has no password yet, sets its first one without `old_password`.' } },
    )
    .get(
      '/sessions',
      async ({ principal }) => wholePage((await auth.listSessions(principal)).map(m.toSessionDto)),
      { auth: 'session', response: { 200: page(m.sessionSchema), ...problems(401, 403, 429) }, detail: { summary: 'List sessions', description: 'The active sessions of the caller, most recently used first, all in one page; `current` marks the one making the request. `last_used_at` has a resolution of about a minute.' } },
    )
    .delete(
      '/sessions/:id',
      async ({ principal, params, set }) => {
        await auth.revokeSession(principal, params.id)
        set.status = 204
      },
      { auth: 'session', params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Revoke a session', description: "That session's refresh and access tokens stop working at once. Another user's session is `404`." } },
    )
    .post(
      '/send-code',
      async ({ body, request, server, set }) => {
        await limitAuth(request, server, set.headers)
        return m.toCodeSentDto(await auth.sendCode(body.email, body.code_type, languageOf(request)))
      },
      { body: m.sendCodeBody, response: { 200: m.sendCodeResult, ...problems(422, 429) }, detail: {
          summary: 'Send an email code',
          description:
            'Mails a 6-digit code, valid 10 minutes, for registering or resetting a password. The answer is the same whether or not the address has an account. One code per address per 60 s and 10 per 24 h: beyond that `429` with `Retry-After`.',
        },
      },
    )
    .post(
      '/verify-code',
      async ({ body, request, server, set }) => {
        await limitAuth(request, server, set.headers)
        await auth.verifyCode(body.email, body.code_type, body.code)
        return { is_valid: true as const }
      },
      { body: m.verifyCodeBody, response: { 200: m.verifyCodeResult, ...problems(422, 429) }, detail: { summary: 'Check an email code', description: 'Answers `{ is_valid: true }` for a right code and leaves it usable; `422` when it is wrong, expired, used or burned (5 wrong attempts burn a code).' } },
    )
    .post(
      '/verify-register',
      async ({ body, request, server, set, cookie }) => {
        await limitAuth(request, server, set.headers)
        return created(await auth.verifyRegister(m.fromRegisterBody(body), clientInfo(request, server)), { request, set, cookie })
      },
      { body: m.verifyRegisterBody, response: { 201: m.authResult, ...problems(403, 409, 422, 429) }, detail: { summary: 'Register with an email code', description: 'Like register, with the code mailed by send-code (`code_type: register`), which it uses up; the account has `email_verified: true`. The registration mode applies as for register.' } },
    )
    .post(
      '/password/send-code',
      async ({ body, request, server, set }) => {
        await limitAuth(request, server, set.headers)
        return m.toCodeSentDto(await auth.sendCode(body.email, 'password_reset', languageOf(request)))
      },
      { body: m.passwordSendCodeBody, response: { 200: m.sendCodeResult, ...problems(422, 429) }, detail: { summary: 'Send a password reset code', description: 'Mails a reset code when the address has an active account; the answer, cooldown and daily cap are the same either way, so it tells nothing about the address.' } },
    )
    .post(
      '/password/reset',
      async ({ body, request, server, set }) => {
        await limitAuth(request, server, set.headers)
        await auth.resetPassword(body.email, body.code, body.new_password)
        set.status = 204
      },
      { body: m.passwordResetBody, response: { 204: z.void(), ...problems(422, 429) }, detail: { summary: 'Reset the password', description: 'Sets a new password with the code from password/send-code, which it uses up. Every session of the user is revoked; API keys are kept.' } },
    )
}

export function apiKeyRoutes(deps: { apiKeys: ApiKeysService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { apiKeys } = deps
  return new Elysia({ name: 'hearth.routes.api-keys', prefix: '/api/v1/api-keys', detail: { tags: ['API keys'] } })
    .use(deps.authPlugin)
    .get(
      '/',
      async ({ principal }) => wholePage((await apiKeys.list(principal.userId)).map(m.toApiKeyDto)),
      { auth: 'session', response: { 200: page(m.apiKeySchema), ...problems(401, 403, 429) }, detail: { summary: 'List API keys', description: "The caller's API keys, newest first, all in one page: name, prefix (the first 11 characters, to tell keys apart) and times; never the key itself." } },
    )
    .post(
      '/',
      async ({ principal, body, set }) => {
        const created = await apiKeys.create(principal.userId, m.fromApiKeyCreateBody(body))
        set.status = 201
        set.headers.location = `/api/v1/api-keys/${created.id}`
        return m.toApiKeyCreatedDto(created)
      },
      { auth: 'session', body: m.apiKeyCreateBody, response: { 201: m.apiKeyCreated, ...problems(401, 403, 422, 429) }, detail: {
          summary: 'Create an API key',
          description: 'The answer is the only time `key` (`hk_…`) is shown: it is stored hashed. A key acts as its owner, with the owner\'s current role, within its `scopes` (`gateway`: the `/v1` gateway; `api`: the native API; default both), and never manages credentials (API keys, password, sessions): that needs a signed-in session.',
        },
      },
    )
    .delete(
      '/:id',
      async ({ principal, params, set }) => {
        await apiKeys.remove(principal.userId, params.id)
        set.status = 204
      },
      { auth: 'session', params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Delete an API key', description: 'The key stops working at once, on every instance.' } },
    )
}

/** zh when the client prefers Chinese, else en. */
function languageOf(request: Request): 'zh' | 'en' | undefined {
  const accept = request.headers.get('accept-language')
  if (!accept) return undefined
  return /^\s*zh/i.test(accept) ? 'zh' : 'en'
}
