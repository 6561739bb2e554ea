/**
 * @module Single sign-on (docs/api.md §4 "Single sign-on"): /api/v1/auth/oidc (the providers, the
 * flow, linking), /api/v1/auth/identities, and the admins' /api/v1/admin/oidc-providers.
 */
import { Elysia } from 'elysia'
import { z } from 'zod'
import type { Config } from '../../config.ts'
import { sha256 } from '../../lib/crypto.ts'
import type { RateLimiter } from '../../lib/rate-limiter.ts'
import { idParams, page, problems, wholePage } from '../../lib/schemas.ts'
import { createClientInfo, originOf, type authPlugin } from '../../plugins/auth.ts'
import { createAuthCookies, createAuthLimit, type Cookies } from '../auth/routes.ts'
import { callbackParamMissing, SignInFailure, stateCookieMissing } from './errors.ts'
import * as m from './model.ts'
import type { ProviderRegistry } from './registry.ts'
import { PENDING_TTL_MS, type OidcService } from './service.ts'

const OIDC_PATH = '/api/v1/auth/oidc'

/** The cookie binding a sign-in's state to the browser that started it (login CSRF): one per sign-in, so two tabs do not clash. */
const stateCookieName = (state: string) => `hearth_oidc_${sha256(state).slice(0, 16)}`

/** `returnTo` with `?error=<reason>` added (a path stays a path). */
export function withError(returnTo: string, reason: string): string {
  const url = new URL(returnTo, 'http://same.origin')
  url.searchParams.set('error', reason)
  return returnTo.startsWith('/') ? `${url.pathname}${url.search}${url.hash}` : url.href
}

export function oidcRoutes(deps: { oidc: OidcService; limiter: RateLimiter; config: Config; authPlugin: ReturnType<typeof authPlugin> }) {
  const { oidc, config } = deps
  const clientInfo = createClientInfo(config.trustProxy)
  const limitAuth = createAuthLimit(deps.limiter, config)
  const { isHttps, setCookies } = createAuthCookies(config)

  const baseUrlOf = (request: Request) => originOf(request, config)

  const setStateCookie = (cookie: Cookies, request: Request, state: string) =>
    cookie[stateCookieName(state)]!.set({ value: '1', httpOnly: true, sameSite: 'lax', secure: isHttps(request), path: OIDC_PATH, maxAge: PENDING_TTL_MS / 1000 })

  return new Elysia({ name: 'hearth.routes.oidc', prefix: '/api/v1/auth', detail: { tags: ['Single sign-on'] } })
    .use(deps.authPlugin)
    .get('/oidc', async () => wholePage(await oidc.listPublic()), {
      response: { 200: page(m.publicProviderSchema), ...problems(429) },
      detail: { summary: 'List single sign-on providers', description: 'The providers a sign-in page can offer, `{ id, name }`, all in one page: those of the environment first, then those admins added.' },
    })
    .get(
      '/oidc/:id/start',
      async ({ params, query, request, server, set, cookie }) => {
        await limitAuth(request, server, set.headers)
        const { url, state } = await oidc.start(params.id, { redirect: query.redirect, baseUrl: baseUrlOf(request) })
        setStateCookie(cookie, request, state)
        set.status = 302
        set.headers.location = url
      },
      {
        params: idParams,
        query: m.startQuery,
        response: { 302: m.redirectAnswer("To the provider's authorization endpoint (PKCE S256, `state`, `nonce`); a cookie binds the sign-in to this browser"), ...problems(404, 422, 429, 502) },
        detail: {
          summary: 'Start a single sign-on',
          description:
            "Navigate the browser here: it is sent to the provider, and back to the callback. `redirect` (default `/`) is where it ends up once signed in: a path on this site, or a URL on an origin in HEARTH_CORS_ORIGINS; anything else is `422` naming `redirect`. `404` for an unknown provider; `502` when the provider's discovery cannot be read. The sign-in must come back within 10 minutes.",
        },
      },
    )
    .get(
      '/oidc/:id/callback',
      async ({ params, query, request, server, set, cookie }) => {
        await limitAuth(request, server, set.headers)
        if (query.error === undefined && query.code === undefined) throw callbackParamMissing('code')
        const bound = cookie[stateCookieName(query.state)]!
        if (bound.value !== '1') throw stateCookieMissing()
        bound.set({ value: '', httpOnly: true, sameSite: 'lax', path: OIDC_PATH, maxAge: 0 })
        set.status = 302
        try {
          const result = await oidc.callback(params.id, { state: query.state, code: query.code, iss: query.iss, error: query.error }, clientInfo(request, server))
          if (result.kind === 'signed_in') setCookies(cookie, request, result.signedIn.tokens)
          set.headers.location = result.returnTo
        } catch (error) {
          if (!(error instanceof SignInFailure)) throw error
          set.headers.location = withError(error.returnTo, error.reason)
        }
      },
      {
        params: idParams,
        query: m.callbackQuery,
        response: {
          302: m.redirectAnswer('To the sign-in\'s `redirect`: signed in (the token cookies are set), or with `?error=<reason>` and nobody signed in (docs/api.md §4 "Single sign-on")'),
          ...problems(403, 422, 429),
        },
        detail: {
          summary: 'Single sign-on callback',
          description:
            "Where the provider sends the browser back (register this URL at the provider). It exchanges the code, checks the ID token, then signs in the linked account, links an account with the same *verified* email, or creates one when registration allows, and redirects to the sign-in's `redirect`. A failure after that point redirects there with `?error=`. `422` when `code` or `state` is missing or sent twice, or no sign-in waits for this state (expired, used); `403` when the sign-in was started in another browser.",
        },
      },
    )
    .post(
      '/oidc/:id/link',
      async ({ principal, params, body, request, cookie }) => {
        const { url, state } = await oidc.start(params.id, { redirect: body?.redirect, baseUrl: baseUrlOf(request), linkUserId: principal.userId })
        setStateCookie(cookie, request, state)
        return { url }
      },
      {
        auth: 'session',
        params: idParams,
        body: m.linkBody,
        response: { 200: m.linkResult, ...problems(401, 403, 404, 422, 429, 502) },
        detail: {
          summary: 'Link a single sign-on identity',
          description:
            "Starts a sign-in with the provider that links its account to yours instead of signing in: navigate the browser to `url`. The callback redirects to `redirect` (as for start), with `?error=identity_taken` when that account of the provider is already linked to another user.",
        },
      },
    )
    .get('/identities', async ({ principal }) => wholePage((await oidc.listIdentities(principal.userId)).map(m.toIdentityDto)), {
      auth: true,
      response: { 200: page(m.identitySchema), ...problems(401, 403, 429) },
      detail: { summary: 'List linked identities', description: "The single sign-on accounts linked to yours, oldest first, all in one page." },
    })
    .delete(
      '/identities/:id',
      async ({ principal, params, set }) => {
        await oidc.unlinkIdentity(principal.userId, params.id)
        set.status = 204
      },
      {
        auth: 'session',
        params: idParams,
        response: { 204: z.void(), ...problems(401, 403, 404, 409, 422, 429) },
        detail: { summary: 'Unlink an identity', description: "That provider account no longer signs you in. Another user's identity is `404`; the last identity of an account without a password is `409` (set a password first)." },
      },
    )
}

export function oidcAdminRoutes(deps: { registry: ProviderRegistry; config: Config; authPlugin: ReturnType<typeof authPlugin> }) {
  const { registry } = deps
  const baseUrlOf = (request: Request) => originOf(request, deps.config)
  return new Elysia({ name: 'hearth.routes.oidc-admin', prefix: '/api/v1/admin/oidc-providers', detail: { tags: ['Single sign-on'] } })
    .use(deps.authPlugin)
    .get('/', async ({ request }) => wholePage((await registry.list()).map((p) => m.toProviderDto(p, baseUrlOf(request)))), {
      auth: 'admin',
      response: { 200: page(m.providerSchema), ...problems(401, 403, 429) },
      detail: { summary: 'List single sign-on providers (admin)', description: 'Every provider, all in one page: those of the environment (`source: "env"`, read-only here) first, then those added here. Client secrets are never shown (`has_client_secret`).' },
    })
    .post(
      '/',
      async ({ body, request, set }) => {
        const created = await registry.create(m.fromProviderCreateBody(body))
        set.status = 201
        set.headers.location = `/api/v1/admin/oidc-providers/${created.id}`
        return m.toProviderDto(created, baseUrlOf(request))
      },
      {
        auth: 'admin',
        body: m.providerCreateBody,
        response: { 201: m.providerSchema, ...problems(401, 403, 409, 422, 429) },
        detail: { summary: 'Add a single sign-on provider', description: '`id` (1–32 of a-z 0-9 -) is its name in URLs; `409` when a provider of the environment or another one has it. Register `callback_url` at the provider. The issuer is read at the first sign-in.' },
      },
    )
    .get('/:id', async ({ params, request }) => m.toProviderDto(await registry.get(params.id), baseUrlOf(request)), {
      auth: 'admin',
      params: idParams,
      response: { 200: m.providerSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a single sign-on provider', description: 'One provider, from the environment or added here; never its client secret.' },
    })
    .patch('/:id', async ({ params, body, request }) => m.toProviderDto(await registry.update(params.id, m.fromProviderPatchBody(body)), baseUrlOf(request)), {
      auth: 'admin',
      params: idParams,
      body: m.providerPatchBody,
      response: { 200: m.providerSchema, ...problems(401, 403, 404, 409, 422, 429) },
      detail: { summary: 'Change a single sign-on provider', description: 'Sets the fields sent; `client_secret: null` makes it a public client. Every instance uses the change at once. A provider of the environment is `409`.' },
    })
    .delete(
      '/:id',
      async ({ params, set }) => {
        await registry.remove(params.id)
        set.status = 204
      },
      {
        auth: 'admin',
        params: idParams,
        response: { 204: z.void(), ...problems(401, 403, 404, 409, 422, 429) },
        detail: { summary: 'Remove a single sign-on provider', description: 'Sign-ins through it stop at once, on every instance; the identities linked through it are kept (they work again if a provider with the same id is added). A provider of the environment is `409`.' },
      },
    )
}
