/** @module /api/v1/auth/login-links (docs/api.md §4 "Login links"): admins issue, list and revoke sign-in links; anyone holding one opens it. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import type { Config } from '../../config.ts'
import type { RateLimiter } from '../../lib/rate-limiter.ts'
import { idParams, page, pageOf, problems } from '../../lib/schemas.ts'
import { createClientInfo, originOf, type authPlugin } from '../../plugins/auth.ts'
import { sessionRequired } from '../auth/errors.ts'
import { createAuthCookies, createAuthLimit } from '../auth/routes.ts'
import type { AuthService, Principal } from '../auth/service.ts'
import * as m from './model.ts'
import { loginLinkUrl, type LoginLinksService } from './service.ts'

/** A sign-in link is a credential: minting, listing and revoking them needs an admin's session, never an API key (as API keys, §4). */
const requireSession = (principal: Principal) => {
  if (principal.via !== 'session') throw sessionRequired()
}

export function loginLinkRoutes(deps: { loginLinks: LoginLinksService; auth: AuthService; limiter: RateLimiter; config: Config; authPlugin: ReturnType<typeof authPlugin> }) {
  const { loginLinks, auth, config } = deps
  const clientInfo = createClientInfo(config.trustProxy)
  const limitAuth = createAuthLimit(deps.limiter, config)
  const { setCookies } = createAuthCookies(config)

  return new Elysia({ name: 'hearth.routes.login-links', prefix: '/api/v1/auth/login-links', detail: { tags: ['Auth'] } })
    .use(deps.authPlugin)
    .post(
      '/',
      async ({ principal, body, request, set }) => {
        requireSession(principal)
        const link = await loginLinks.issue({ ...m.fromLoginLinkCreateBody(body), createdBy: principal.userId })
        set.status = 201
        set.headers.location = `/api/v1/auth/login-links/${link.id}`
        return { ...m.toLoginLinkDto(link), url: loginLinkUrl(originOf(request, config), link.token) }
      },
      {
        auth: 'admin',
        body: m.loginLinkCreateBody,
        response: { 201: m.loginLinkCreated, ...problems(401, 403, 404, 422, 429) },
        detail: {
          summary: 'Issue a login link',
          description:
            'A link that signs `user_id` in when opened: single use and valid 15 minutes by default (`ttl_s` 60 s to 30 days); `single_use: false` makes one that works until it expires or is revoked, `ttl_s: null` one that never expires. The answer is the only time `url` is shown: the token is stored hashed. Needs an admin\'s session (`403` with an API key). An unknown user is `404`, a disabled one `422`.',
        },
      },
    )
    .get(
      '/',
      async ({ principal, query }) => {
        requireSession(principal)
        const { rows, total } = await loginLinks.list({ userId: query.user_id }, query)
        return pageOf(rows.map(m.toLoginLinkDto), total, query)
      },
      { auth: 'admin', query: m.loginLinkListQuery, response: { 200: page(m.loginLinkSchema), ...problems(401, 403, 422, 429) }, detail: { summary: 'List login links', description: "Every login link (or one user's, with `user_id`), newest first, with its `status`; never the link itself. Needs an admin's session." } },
    )
    .get(
      '/open',
      async ({ query, request, server, set, cookie }) => {
        await limitAuth(request, server, set.headers)
        const userId = await loginLinks.open(query.token)
        const { tokens } = await auth.signInAs(userId, clientInfo(request, server), 'login_link')
        setCookies(cookie, request, tokens)
        set.status = 302
        set.headers.location = '/'
        // the next page must not pass this URL on as its Referer
        set.headers['referrer-policy'] = 'no-referrer'
      },
      {
        query: m.openQuery,
        response: { 302: z.void(), ...problems(401, 403, 404, 422, 429) },
        detail: {
          summary: 'Open a login link',
          description:
            'Signs the link\'s user in: a new session, its tokens set as cookies, and `302` to `/`. A single-use link is used up, even when two open it at once on different instances (one signs in). An unknown, used, expired or revoked link is `401`, and a disabled user\'s `403`; nobody is signed in. Counts against the per-address limit of login attempts (`429`).',
          responses: { 302: { description: 'Signed in: the cookies are set, `Location: /`' } },
        },
      },
    )
    .delete(
      '/:id',
      async ({ principal, params, set }) => {
        requireSession(principal)
        await loginLinks.revoke(params.id)
        set.status = 204
      },
      { auth: 'admin', params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Revoke a login link', description: 'The link stops working at once, on every instance; sessions it already signed in are kept. Revoking a revoked link is `204` again.' } },
    )
}

