/**
 * @module Auth is declared per route — `{ auth: true }`, `{ auth: 'admin' }`, `{ auth: 'session' }`
 * or `{ auth: 'gateway' }` — never checked by hand in a handler. The macro resolves the caller to a
 * `principal`, refuses API keys where their scopes do not reach, and applies the per-user rate
 * limit; anonymous requests are limited per client IP before routing.
 */
import { Elysia } from 'elysia'
import type { Config } from '../config.ts'
import { AppError, forbidden, unauthorized } from '../lib/errors.ts'
import type { LimitResult, RateLimiter } from '../lib/rate-limiter.ts'
import { apiKeyScopeMissing, sessionRequired } from '../modules/auth/errors.ts'
import type { AuthService, ClientInfo, Principal } from '../modules/auth/service.ts'

export const ACCESS_COOKIE = 'hearth_access'
export const REFRESH_COOKIE = 'hearth_refresh'

/** Paths no limit applies to: probes and docs. */
const UNLIMITED = /^\/(health|ready|openapi\.json|docs)(\/|$)/

type Headers = Record<string, string | number>

export function applyLimitHeaders(headers: Headers, r: LimitResult) {
  headers['ratelimit-limit'] = r.limit
  headers['ratelimit-remaining'] = r.remaining
  headers['ratelimit-reset'] = r.resetSeconds
}

export function rateLimited(r: LimitResult, detail = 'Too many requests; slow down') {
  return new AppError(429, 'RATE_LIMITED', detail, undefined, {
    'retry-after': String(r.resetSeconds),
    'ratelimit-limit': String(r.limit),
    'ratelimit-remaining': '0',
    'ratelimit-reset': String(r.resetSeconds),
  })
}

/** The bearer token of a request: `Authorization: Bearer …`, else the `hearth_access` cookie. */
export function credentialOf(request: Request): string | undefined {
  const header = request.headers.get('authorization')
  if (header) {
    if (header.length < 8 || header.slice(0, 7).toLowerCase() !== 'bearer ') return undefined
    return header.slice(7).trim() || undefined
  }
  const cookie = request.headers.get('cookie')
  if (!cookie) return undefined
  const m = /(?:^|;\s*)hearth_access=([^;]+)/.exec(cookie)
  return m ? decodeURIComponent(m[1]!) : undefined
}

/** Cheaper than credentialOf: whether the request carries any credential at all. */
const hasCredential = (request: Request) => request.headers.has('authorization') || (request.headers.get('cookie')?.includes('hearth_access=') ?? false)

/**
 * Who may call a route: `true` — any signed-in user, with an access token or an API key that has
 * the `api` scope; `'admin'` — the same, for admins; `'session'` — an access token only (managing
 * credentials: API keys, password, sessions), never an API key; `'gateway'` — the /v1 gateway: an
 * access token, or an API key with the `gateway` scope.
 */
export type AuthLevel = true | 'admin' | 'session' | 'gateway'

type ServerLike = { requestIP(r: Request): { address: string } | null } | null | undefined

export function createClientInfo(trustProxy: boolean) {
  return (request: Request, server: ServerLike): ClientInfo => {
    let ip: string | undefined
    if (trustProxy) ip = request.headers.get('x-forwarded-for')?.split(',')[0]?.trim() || undefined
    ip ??= server?.requestIP(request)?.address ?? 'unknown'
    return { ip, userAgent: request.headers.get('user-agent') }
  }
}

export function authPlugin(deps: { auth: AuthService; limiter: RateLimiter; config: Config }) {
  const { auth, limiter, config } = deps
  const clientInfo = createClientInfo(config.trustProxy)
  const limitIp = (request: Request, server: ServerLike, headers: Headers) => {
    const r = limiter.check(`ip:${clientInfo(request, server).ip}`, config.rateLimit)
    applyLimitHeaders(headers, r)
    if (!r.allowed) throw rateLimited(r)
  }

  const principals = new WeakMap<Request, Principal>()
  /** 403 unless the principal may use a route of this level (the role is checked after) */
  const checkCredential = (level: AuthLevel, principal: Principal) => {
    if (level === 'session') {
      if (principal.via !== 'session') throw sessionRequired()
    } else {
      const scope = level === 'gateway' ? 'gateway' : 'api'
      if (!principal.scopes.includes(scope)) throw apiKeyScopeMissing(scope)
    }
  }
  return new Elysia({ name: 'hearth.auth' })
    .onRequest(({ request, server, set }) => {
      if (hasCredential(request)) return // limited per user once authenticated (or per IP when that fails)
      const url = request.url
      const path = url.slice(url.indexOf('/', 8))
      if (UNLIMITED.test(path)) return
      limitIp(request, server, set.headers as Headers)
    })
    .macro({
      auth(level: AuthLevel) {
        return {
          detail: { security: [{ bearer: [] }, { cookie: [] }] },
          // In `transform`, which runs before validation: a caller without valid credentials gets
          // 401, never a 422 that would describe the route's schema.
          async transform({ request, server, set }) {
            const token = credentialOf(request)
            if (!token) throw unauthorized()
            let principal: Principal
            try {
              principal = await auth.authenticate(token)
            } catch (error) {
              // failed credentials count against the client IP, so guessing tokens is limited too
              limitIp(request, server, set.headers as Headers)
              throw error
            }
            checkCredential(level, principal)
            if (level === 'admin' && principal.role !== 'admin') throw forbidden('This needs an admin')
            const r = limiter.check(`u:${principal.userId}`, config.rateLimit)
            applyLimitHeaders(set.headers as Headers, r)
            if (!r.allowed) throw rateLimited(r)
            principals.set(request, principal)
          },
          resolve: ({ request }) => ({ principal: principals.get(request)! }),
        }
      },
    })
}
