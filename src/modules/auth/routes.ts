/** @module /api/v1/auth and /api/v1/api-keys (API.md §3). */
import { Elysia, type Cookie } from 'elysia'
import { z } from 'zod'
import type { Config } from '../../config.ts'
import type { RateLimiter } from '../../lib/rate-limiter.ts'
import { page, problemSchema } from '../../lib/schemas.ts'
import { ACCESS_COOKIE, applyLimitHeaders, createClientInfo, rateLimited, REFRESH_COOKIE, type authPlugin } from '../../plugins/auth.ts'
import { unauthorized } from '../../lib/errors.ts'
import type { ApiKeys } from './api-keys.ts'
import * as m from './model.ts'
import { REFRESH_TTL_MS, type AuthService, type IssuedTokens } from './service.ts'
import type { UsersService } from '../users/service.ts'

const AUTH_PATH = '/api/v1/auth'
const problems = { 400: problemSchema, 401: problemSchema, 403: problemSchema, 409: problemSchema, 422: problemSchema, 429: problemSchema }

type Cookies = Record<string, Cookie<unknown>>

export function authRoutes(deps: { auth: AuthService; users: UsersService; limiter: RateLimiter; config: Config; authPlugin: ReturnType<typeof authPlugin> }) {
  const { auth, users, limiter, config } = deps
  const clientInfo = createClientInfo(config.trustProxy)

  const isHttps = (request: Request) => request.url.startsWith('https:') || (config.trustProxy && request.headers.get('x-forwarded-proto') === 'https')

  /** Browsers get the same tokens as httpOnly cookies; the refresh cookie only travels to the auth path. */
  function setCookies(cookie: Cookies, request: Request, tokens: IssuedTokens) {
    const secure = isHttps(request)
    cookie[ACCESS_COOKIE]!.set({ value: tokens.access_token, httpOnly: true, sameSite: 'lax', secure, path: '/', maxAge: tokens.expires_in })
    cookie[REFRESH_COOKIE]!.set({ value: tokens.refresh_token, httpOnly: true, sameSite: 'lax', secure, path: AUTH_PATH, maxAge: REFRESH_TTL_MS / 1000 })
  }
  function clearCookies(cookie: Cookies) {
    cookie[ACCESS_COOKIE]!.set({ value: '', httpOnly: true, sameSite: 'lax', path: '/', maxAge: 0 })
    cookie[REFRESH_COOKIE]!.set({ value: '', httpOnly: true, sameSite: 'lax', path: AUTH_PATH, maxAge: 0 })
  }

  /** A new account: 201, Location, and its tokens as cookies too. */
  function created<R extends { tokens: IssuedTokens }>(result: R, ctx: { request: Request; set: { status?: number | string; headers: Record<string, string | number> }; cookie: Cookies }): R {
    setCookies(ctx.cookie, ctx.request, result.tokens)
    ctx.set.status = 201
    ctx.set.headers.location = '/api/v1/users/me'
    return result
  }

  /** login, registration and code endpoints: a tighter limit per client IP, exact across instances */
  const limitAuth = async (request: Request, server: Parameters<ReturnType<typeof createClientInfo>>[1], headers: Record<string, string | number>) => {
    const r = await limiter.consume(`auth-ip:${clientInfo(request, server).ip}`, config.authRateLimit)
    applyLimitHeaders(headers, r)
    if (!r.allowed) throw rateLimited(r, 'Too many attempts from this address; try again later')
  }

  return new Elysia({ name: 'hearth.routes.auth', prefix: AUTH_PATH, detail: { tags: ['Auth'] } })
    .use(deps.authPlugin)
    .post(
      '/register',
      async ({ body, request, server, set, cookie }) => {
        await limitAuth(request, server, set.headers)
        return created(await auth.register(body, clientInfo(request, server)), { request, set, cookie })
      },
      { body: m.registerBody, response: { 201: m.authResult, ...problems }, detail: { summary: 'Create an account; the first user becomes admin' } },
    )
    .post(
      '/login',
      async ({ body, request, server, set, cookie }) => {
        await limitAuth(request, server, set.headers)
        const result = await auth.login({ login: (body.username ?? body.email)!, password: body.password }, clientInfo(request, server))
        setCookies(cookie, request, result.tokens)
        return result
      },
      { body: m.loginBody, response: { 200: m.authResult, ...problems }, detail: { summary: 'Log in with username or email' } },
    )
    .post(
      '/refresh',
      async ({ body, request, server, set, cookie }) => {
        await limitAuth(request, server, set.headers)
        const token = body?.refresh_token ?? (cookie[REFRESH_COOKIE]?.value as string | undefined)
        if (!token) throw unauthorized('A refresh token is required')
        const tokens = await auth.refresh(token, clientInfo(request, server))
        setCookies(cookie, request, tokens)
        return { tokens }
      },
      { body: m.refreshBody, response: { 200: z.object({ tokens: m.tokensSchema }), ...problems }, detail: { summary: 'Rotate the refresh token (body or cookie)' } },
    )
    .post(
      '/logout',
      async ({ principal, cookie, set }) => {
        await auth.logout(principal)
        clearCookies(cookie)
        set.status = 204
      },
      { auth: true, response: { 204: z.void(), 401: problemSchema }, detail: { summary: "Revoke the current session's tokens" } },
    )
    // the hottest read: the cached profile's JSON goes out as it is, without serialising it again
    .get('/me', async ({ principal }) => new Response((await users.profile(principal.userId)).userJson, { headers: { 'content-type': 'application/json' } }), {
      auth: true,
      response: { 200: m.userSchema, 401: problemSchema, 404: problemSchema },
      detail: { summary: 'The current user' },
    })
    .put(
      '/password',
      async ({ principal, body, set }) => {
        await auth.changePassword(principal, body.old_password, body.new_password)
        set.status = 204
      },
      { auth: true, body: m.passwordBody, response: { 204: z.void(), ...problems }, detail: { summary: 'Change the password; other sessions are revoked' } },
    )
    .get(
      '/sessions',
      async ({ principal }) => {
        const items = await auth.listSessions(principal)
        return { items, total: items.length, limit: items.length, offset: 0, has_more: false }
      },
      { auth: true, response: { 200: page(m.sessionSchema), 401: problemSchema }, detail: { summary: 'Active sessions' } },
    )
    .delete(
      '/sessions/:id',
      async ({ principal, params, set }) => {
        await auth.revokeSession(principal, params.id)
        set.status = 204
      },
      { auth: true, params: m.idParams, response: { 204: z.void(), 401: problemSchema, 404: problemSchema }, detail: { summary: 'Revoke a session' } },
    )
    .post(
      '/send-code',
      async ({ body, request, server, set }) => {
        await limitAuth(request, server, set.headers)
        return auth.sendCode(body.email, body.code_type, languageOf(request))
      },
      { body: m.sendCodeBody, response: { 200: m.sendCodeResult, ...problems }, detail: { summary: 'Email a 6-digit code' } },
    )
    .post(
      '/verify-code',
      async ({ body, request, server, set }) => {
        await limitAuth(request, server, set.headers)
        await auth.verifyCode(body.email, body.code_type, body.code)
        return { is_valid: true as const }
      },
      { body: m.verifyCodeBody, response: { 200: z.object({ is_valid: z.literal(true) }), ...problems }, detail: { summary: 'Check a code without using it up' } },
    )
    .post(
      '/verify-register',
      async ({ body, request, server, set, cookie }) => {
        await limitAuth(request, server, set.headers)
        return created(await auth.verifyRegister(body, clientInfo(request, server)), { request, set, cookie })
      },
      { body: m.verifyRegisterBody, response: { 201: m.authResult, ...problems }, detail: { summary: 'Create an account with an emailed code' } },
    )
    .post(
      '/password/send-code',
      async ({ body, request, server, set }) => {
        await limitAuth(request, server, set.headers)
        return auth.sendCode(body.email, 'password_reset', languageOf(request))
      },
      { body: m.passwordSendCodeBody, response: { 200: m.sendCodeResult, ...problems }, detail: { summary: 'Email a password reset code (same answer whether or not the address is registered)' } },
    )
    .post(
      '/password/reset',
      async ({ body, request, server, set }) => {
        await limitAuth(request, server, set.headers)
        await auth.resetPassword(body.email, body.code, body.new_password)
        set.status = 204
      },
      { body: m.passwordResetBody, response: { 204: z.void(), ...problems }, detail: { summary: 'Set a new password with an emailed code; all sessions are revoked' } },
    )
}

export function apiKeyRoutes(deps: { apiKeys: ApiKeys; authPlugin: ReturnType<typeof authPlugin> }) {
  const { apiKeys } = deps
  return new Elysia({ name: 'hearth.routes.api-keys', prefix: '/api/v1/api-keys', detail: { tags: ['API keys'] } })
    .use(deps.authPlugin)
    .get(
      '/',
      async ({ principal }) => {
        const items = await apiKeys.list(principal.userId)
        return { items, total: items.length, limit: items.length, offset: 0, has_more: false }
      },
      { auth: true, response: { 200: page(m.apiKeySchema), 401: problemSchema }, detail: { summary: 'Your API keys (never the key itself)' } },
    )
    .post(
      '/',
      async ({ principal, body, set }) => {
        const created = await apiKeys.create(principal.userId, { name: body.name, expiresAt: body.expires_at ? new Date(body.expires_at) : null })
        set.status = 201
        set.headers.location = `/api/v1/api-keys/${created.id}`
        return created
      },
      { auth: true, body: m.apiKeyCreateBody, response: { 201: m.apiKeyCreated, 401: problemSchema, 422: problemSchema }, detail: { summary: 'Create an API key: the only time `key` is shown' } },
    )
    .delete(
      '/:id',
      async ({ principal, params, set }) => {
        await apiKeys.remove(principal.userId, params.id)
        set.status = 204
      },
      { auth: true, params: m.idParams, response: { 204: z.void(), 401: problemSchema, 404: problemSchema }, detail: { summary: 'Revoke an API key' } },
    )
}

/** zh when the client prefers Chinese, else en. */
function languageOf(request: Request): 'zh' | 'en' | undefined {
  const accept = request.headers.get('accept-language')
  if (!accept) return undefined
  return /^\s*zh/i.test(accept) ? 'zh' : 'en'
}
