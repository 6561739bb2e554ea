/**
 * @module Auth is declared per route — `{ auth: true }`, `{ auth: 'admin' }`, `{ auth: 'session' }`
 * or `{ auth: 'gateway' }` — never checked by hand in a handler. The macro resolves the caller to a
 * `principal`, refuses API keys where their scopes do not reach, and applies the per-user rate
 * limit; anonymous requests are limited per client IP before routing.
 */
import { Elysia } from 'elysia'
import type { Config, RateLimit } from '../config.ts'
import { AppError, forbidden, unauthorized } from '../lib/errors.ts'
import type { LimitResult, RateLimiter } from '../lib/rate-limiter.ts'
import { apiKeyScopeMissing, sessionRequired } from '../modules/auth/errors.ts'
import type { AuthService, ClientInfo, Principal } from '../modules/auth/service.ts'

export const ACCESS_COOKIE = 'hearth_access'
export const REFRESH_COOKIE = 'hearth_refresh'

/** Paths no limit applies to: probes and docs; and the WebSocket handshake, which limits itself once it has read its credential (modules/ws). */
const UNLIMITED = /^\/(health|ready|openapi\.json|docs|ws\/chat)(\/|$)/

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

/** A token a request presents, and whether it came as the cookie (which a browser adds by itself, so another site can make it travel). */
export interface Credential {
  token: string
  fromCookie: boolean
}

/** The credential a request presents (`Authorization: Bearer …`, else the `hearth_access` cookie). `null`: an Authorization header that is not a bearer token. */
export function presentedCredential(request: Request): Credential | null | undefined {
  const header = request.headers.get('authorization')
  if (header) {
    if (header.length < 8 || header.slice(0, 7).toLowerCase() !== 'bearer ') return null
    const token = header.slice(7).trim()
    return token ? { token, fromCookie: false } : null
  }
  const cookie = request.headers.get('cookie')
  if (!cookie) return undefined
  const m = /(?:^|;\s*)hearth_access=([^;]+)/.exec(cookie)
  return m ? { token: decodeURIComponent(m[1]!), fromCookie: true } : undefined
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * Cross-site request forgery: what a request that a browser sent with our cookies must show, after
 * Go's `http.CrossOriginProtection` (net/http, Go 1.25). A state-changing request (POST, PUT, PATCH,
 * DELETE) is accepted when `Sec-Fetch-Site` is `same-origin` or `none` (the user's own navigation),
 * or its `Origin` is this server's own (its host — and, behind a trusted proxy, the forwarded host
 * and scheme) or one of HEARTH_CORS_ORIGINS; one with neither header is not from a browser (every
 * browser sends `Origin` on a cross-origin POST) and is accepted. `stateChangingGet` is for a GET
 * that changes state (the EventSource chat stream): a link from another site reaches it with the
 * Lax cookie, and an old browser sends neither header on a link, so it must show one of the above.
 * `'websocket'` is for a WebSocket handshake (a GET that opens a channel both ways): checked as a
 * state-changing request whatever its method — every browser sends `Origin` on one, so a
 * handshake with neither header is not from a browser (cross-site WebSocket hijacking).
 * Throws 403 when the request does not.
 */
export function createCrossSiteCheck(config: Pick<Config, 'corsOrigins' | 'trustProxy'>) {
  // `*` lets any site read answers without credentials; it vouches for no site sending cookies
  const trusted = new Set(config.corsOrigins.filter((o) => o !== '*'))
  const ownOrigin = (origin: string, request: Request) => {
    const sep = origin.indexOf('://')
    if (sep === -1) return false
    const url = request.url
    let host = url.slice(url.indexOf('//') + 2, url.indexOf('/', 8)).toLowerCase()
    if (config.trustProxy) {
      const forwardedHost = firstValue(request.headers.get('x-forwarded-host'))
      if (forwardedHost) host = forwardedHost.toLowerCase()
      const forwardedProto = firstValue(request.headers.get('x-forwarded-proto'))
      if (forwardedProto && forwardedProto.toLowerCase() !== origin.slice(0, sep)) return false
    }
    // Like Go, the scheme is not compared otherwise: a server behind a TLS proxy sees http.
    return origin.slice(sep + 3) === host
  }
  return (request: Request, stateChangingGet: boolean | 'websocket' = false) => {
    if (stateChangingGet === false && SAFE_METHODS.has(request.method)) return
    const site = request.headers.get('sec-fetch-site')
    if (site === 'same-origin' || site === 'none') return
    const origin = request.headers.get('origin')
    if (origin !== null) {
      if (trusted.has(origin)) return
      if (site === null && ownOrigin(origin, request)) return
    } else if (site === null && stateChangingGet !== true) return
    throw forbidden('Cross-site request refused: a request authenticated by a cookie must come from this site or an origin in HEARTH_CORS_ORIGINS (scripts and other servers: send an Authorization header)')
  }
}

const firstValue = (header: string | null) => header?.split(',')[0]?.trim() || undefined

/**
 * The server's origin as the browser reached it, for links and callbacks it hands out:
 * HEARTH_PUBLIC_URL, else the request's own (behind HEARTH_TRUST_PROXY, X-Forwarded-Proto and
 * -Host, as the cross-site check reads them).
 */
export function originOf(request: Request, config: Pick<Config, 'publicUrl' | 'trustProxy'>): string {
  if (config.publicUrl) return config.publicUrl
  const url = new URL(request.url)
  let scheme = url.protocol.slice(0, -1)
  let host = url.host
  if (config.trustProxy) {
    const proto = firstValue(request.headers.get('x-forwarded-proto'))?.toLowerCase()
    if (proto === 'http' || proto === 'https') scheme = proto
    host = firstValue(request.headers.get('x-forwarded-host')) ?? host
  }
  return `${scheme}://${host}`
}

/** Cheaper than presentedCredential: whether the request carries any credential at all. */
const hasCredential = (request: Request) => request.headers.has('authorization') || (request.headers.get('cookie')?.includes('hearth_access=') ?? false)

/**
 * Who may call a route: `true` — any signed-in user, with an access token or an API key that has
 * the `api` scope; `'admin'` — the same, for admins; `'session'` — an access token only (managing
 * credentials: API keys, password, sessions), never an API key; `'gateway'` — the /v1 gateway: an
 * access token, or an API key with the `gateway` scope; `'same-site'` — like `true`, on a GET that
 * changes state, which takes the cookie only from same-site requests (see createCrossSiteCheck);
 * `'signed'` — like `true`, unless the query carries a signed link's `signature`: then no credential
 * is asked for, `principal` is undefined, and the handler checks the signature (file links for `<img src>`).
 */
export type AuthLevel = true | 'admin' | 'session' | 'gateway' | 'same-site' | 'signed'

type ServerLike = { requestIP(r: Request): { address: string } | null } | null | undefined

export function createClientInfo(trustProxy: boolean) {
  return (request: Request, server: ServerLike): ClientInfo => {
    let ip: string | undefined
    if (trustProxy) ip = request.headers.get('x-forwarded-for')?.split(',')[0]?.trim() || undefined
    ip ??= server?.requestIP(request)?.address ?? 'unknown'
    return { ip, userAgent: request.headers.get('user-agent') }
  }
}

/**
 * The steps from a presented credential to a principal, shared by the routes' `auth` macro and the
 * WebSocket handshake (modules/ws): the cross-site check for a cookie, the token's verification
 * (a failure counts against the client IP), the level's scope and role, and the per-user limit.
 */
export interface AuthGateDeps {
  auth: AuthService
  limiter: RateLimiter
  config: Config
  /** the user's own request limit (a group's rate_limit, docs/api.md §21), from memory; default HEARTH_RATE_LIMIT */
  userLimit?: (userId: string) => RateLimit | Promise<RateLimit>
}

export function createAuthGate(deps: AuthGateDeps) {
  const { auth, limiter, config } = deps
  const clientInfo = createClientInfo(config.trustProxy)
  const refuseCrossSite = createCrossSiteCheck(config)
  const limitIp = (request: Request, server: ServerLike, headers: Headers) => {
    const r = limiter.check(`ip:${clientInfo(request, server).ip}`, config.rateLimit)
    applyLimitHeaders(headers, r)
    if (!r.allowed) throw rateLimited(r)
  }
  /** 403 unless the principal may use a route of this level (the role is checked after) */
  const checkCredential = (level: AuthLevel, principal: Principal) => {
    if (level === 'session') {
      if (principal.via !== 'session') throw sessionRequired()
    } else {
      const scope = level === 'gateway' ? 'gateway' : 'api'
      if (!principal.scopes.includes(scope)) throw apiKeyScopeMissing(scope)
    }
  }
  return {
    /** count a request against its client IP's limit (429 past it) */
    limitIp,
    /** The principal `credential` stands for, allowed at `level`; throws 401/403/429. `websocket`: the request is a WebSocket handshake. */
    async admit(request: Request, server: ServerLike, headers: Headers, level: AuthLevel, credential: Credential, websocket = false): Promise<Principal> {
      if (credential.fromCookie) refuseCrossSite(request, websocket ? 'websocket' : level === 'same-site')
      let principal: Principal
      try {
        principal = await auth.authenticate(credential.token)
      } catch (error) {
        // failed credentials count against the client IP, so guessing tokens is limited too
        limitIp(request, server, headers)
        throw error
      }
      checkCredential(level, principal)
      if (level === 'admin' && principal.role !== 'admin') throw forbidden('This needs an admin')
      // the user's limit is in memory once known: no await (a microtask per request) unless it is being loaded
      const limit = deps.userLimit?.(principal.userId) ?? config.rateLimit
      const r = limiter.check(`u:${principal.userId}`, limit instanceof Promise ? await limit : limit)
      applyLimitHeaders(headers, r)
      if (!r.allowed) throw rateLimited(r)
      return principal
    },
  }
}

export function authPlugin(deps: AuthGateDeps) {
  const gate = createAuthGate(deps)
  const principals = new WeakMap<Request, Principal>()
  return new Elysia({ name: 'hearth.auth' })
    .onRequest(({ request, server, set }) => {
      if (hasCredential(request)) return // limited per user once authenticated (or per IP when that fails)
      const url = request.url
      const path = url.slice(url.indexOf('/', 8))
      if (UNLIMITED.test(path)) return
      gate.limitIp(request, server, set.headers as Headers)
    })
    .macro({
      auth(level: AuthLevel) {
        return {
          detail: { security: [{ bearer: [] }, { cookie: [] }] },
          // In `transform`, which runs before validation: a caller without valid credentials gets
          // 401, never a 422 that would describe the route's schema.
          async transform({ request, server, set }) {
            if (level === 'signed' && new URL(request.url).searchParams.has('signature')) return
            const credential = presentedCredential(request)
            if (!credential) throw unauthorized()
            principals.set(request, await gate.admit(request, server, set.headers as Headers, level, credential))
          },
          resolve: ({ request }) => ({ principal: principals.get(request)! }),
        }
      },
    })
}
