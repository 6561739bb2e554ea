/**
 * @module The request boundary: request id (`X-Request-Id` in and out), the JSON-lines access log,
 * and what a request may carry — JSON bodies only (415 otherwise, except on routes that declare a
 * multipart body or stream their own, the uploads), at most 1 MiB, and no NUL character in any string, path or query (422: Postgres
 * cannot store one, and SQLite would). The log line has method, path (never the query string),
 * status, duration and request id: no bodies, no headers, no tokens.
 */
import { Elysia } from 'elysia'
import { AppError, payloadTooLarge, unsupportedMediaType, validationError, type FieldProblem } from '../lib/errors.ts'
import type { Logger } from '../lib/logger.ts'
import type { RouteIndex } from './route-index.ts'

export const JSON_BODY_LIMIT = 1024 * 1024
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** Request ids: unique, not secret — a random prefix per process and a counter, cheaper than a UUID per request. */
function createRequestIds() {
  const prefix = Bun.randomUUIDv7().slice(0, 23)
  let n = 0
  return () => `${prefix}-${(++n).toString(36)}`
}

export function requestContextPlugin(deps: { logger: Logger; routes: RouteIndex }) {
  const started = new WeakMap<Request, { at: number; id: string }>()
  const nextId = createRequestIds()
  const accessLog = deps.logger.enabled('info')
  const plugin = new Elysia({ name: 'hearth.request-context' })
    .onRequest(({ request, set }) => {
      const incoming = request.headers.get('x-request-id')
      const id = incoming && REQUEST_ID.test(incoming) ? incoming : nextId()
      set.headers['x-request-id'] = id
      // Every answer: not kept by caches (answers are per user, and login and refresh carry tokens;
      // a Response that sets its own Cache-Control, such as the docs script, keeps it), and never
      // sniffed into another type than the one it declares.
      set.headers['cache-control'] = 'no-store'
      set.headers['x-content-type-options'] = 'nosniff'
      if (accessLog) started.set(request, { at: performance.now(), id })
      if (request.url.includes('%00')) throw nulInUrl(request.url)
      const length = request.headers.get('content-length')
      if (length !== null && Number(length) > JSON_BODY_LIMIT && !isMultipart(request)) throw payloadTooLarge(JSON_BODY_LIMIT)
    })
    .onParse({ as: 'global' }, async ({ request, contentType, route }) => {
      // A route that streams its body (`parse: 'none'`) reads it itself. A hook of this plugin runs
      // before the route's own `parse`, so Elysia would still look for a parser named 'none': any
      // value but undefined tells it the body is parsed (the route never reads `body`).
      if (deps.routes.readsRawBody(request.method, route)) return null
      // Our own JSON parser: it enforces the limit on chunked bodies too, and maps bad JSON to 400.
      // (Elysia gives the media type without its parameters, as sent; media types ignore case.)
      const type = contentType ? contentType.toLowerCase() : ''
      if (type === 'application/json') {
        const text = await readLimited(request, JSON_BODY_LIMIT)
        if (text.trim() === '') return null
        let value: unknown
        try {
          value = JSON.parse(text)
        } catch {
          throw new AppError(400, 'VALIDATION_ERROR', 'The request body is not valid JSON')
        }
        // JSON can only hold a NUL as the escape \u0000, so most bodies are never walked.
        if (text.includes('\\u0000')) {
          const found: FieldProblem[] = []
          findNul(value, '', found)
          if (found.length) throw validationError('The request body contains a NUL character (U+0000), which no text may hold', found)
        }
        return value
      }
      if (request.body === null) return // no body (Bun.serve gives an empty one as none): nothing to parse
      if (type === 'multipart/form-data' && deps.routes.takesMultipart(request.method, route)) return // the route's own parser reads it
      // An empty body is no body, whatever its declared type (`curl -X POST -d ''`). Any other body
      // would let a plain HTML form (urlencoded, multipart, text/plain) post here from any site.
      const length = request.headers.get('content-length')
      if (length === null ? (await readLimited(request, JSON_BODY_LIMIT)) === '' : length === '0') return null
      throw unsupportedMediaType(contentType ?? '')
    })
    // A handler that returns a Response (the gateway, /auth/me, files) would have Elysia build a new
    // one to merge `set.headers` (request id, rate limits) into a copy of its headers; measured, that
    // is a visible part of such a request. The headers are moved onto the Response instead, which
    // Elysia then passes on as it is. Cookies, and a Response whose headers cannot change, are left
    // to Elysia. (The hook returns what it was given: on Elysia's error path what it returns
    // replaces the response even when undefined.)
    .mapResponse({ as: 'global' }, ({ response, set }) => {
      if (!(response instanceof Response) || set.cookie) return response as Response // (typed as Response | void)
      const headers = set.headers as Record<string, string | number>
      if ('set-cookie' in headers) return response
      try {
        for (const name in headers) if (!response.headers.has(name)) response.headers.set(name, String(headers[name]))
      } catch {
        return response
      }
      set.headers = {}
      return response
    })
  // The access log hook costs on every request: only there when its lines are written.
  if (!accessLog) return plugin
  return plugin.onAfterResponse({ as: 'global' }, ({ request, set }) => {
    const start = started.get(request)
    const url = request.url
    const q = url.indexOf('?', 8)
    deps.logger.info('request', {
      method: request.method,
      path: url.slice(url.indexOf('/', 8), q === -1 ? undefined : q),
      status: typeof set.status === 'number' ? set.status : 200,
      duration_ms: start === undefined ? undefined : Math.round((performance.now() - start.at) * 100) / 100,
      request_id: start?.id,
    })
  })
}

const NUL_PROBLEM = 'must not contain the NUL character (U+0000)'

/** The paths (dot-separated, as in validation problems) of the strings that hold a NUL; a key that holds one is named by its parent. */
function findNul(value: unknown, path: string, found: FieldProblem[]) {
  if (found.length >= 20) return
  if (typeof value === 'string') {
    if (value.includes('\0')) found.push({ path, message: NUL_PROBLEM })
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => findNul(v, path ? `${path}.${i}` : String(i), found))
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k.includes('\0')) found.push({ path, message: 'a field name must not contain the NUL character (U+0000)' })
      else findNul(v, path ? `${path}.${k}` : k, found)
    }
  }
}

/** A `%00` in the path or the query string: the query parameters that hold one are named. */
function nulInUrl(url: string) {
  const q = url.indexOf('?')
  if (q === -1 || url.indexOf('%00') < q) return validationError('The request path contains a NUL character (%00)', [{ path: '', message: NUL_PROBLEM }])
  let names: string[] = []
  try {
    names = [...new URLSearchParams(url.slice(q + 1))].filter(([k, v]) => k.includes('\0') || v.includes('\0')).map(([k]) => (k.includes('\0') ? '' : k))
  } catch {}
  return validationError('The query string contains a NUL character (%00)', (names.length ? names : ['']).map((path) => ({ path, message: NUL_PROBLEM })))
}

const isMultipart = (request: Request) => request.headers.get('content-type')?.startsWith('multipart/form-data') ?? false

async function readLimited(request: Request, limit: number): Promise<string> {
  // With a Content-Length (checked against the limit in onRequest) Bun reads the body natively;
  // only a chunked body is counted chunk by chunk.
  if (request.headers.has('content-length')) return request.text()
  if (!request.body) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength
    if (size > limit) throw payloadTooLarge(limit)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}
