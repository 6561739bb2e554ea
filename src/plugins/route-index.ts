/**
 * @module What the routes declare that request-wide hooks need to know: which methods a path
 * answers to (so a wrong method gets 405 with `Allow` instead of 404), and which routes take a
 * multipart body or read their body themselves (every other route takes JSON only).
 */

interface IndexedRoute {
  method: string
  path: string
  hooks?: { parse?: unknown }
}

export interface RouteIndex {
  load(routes: IndexedRoute[]): void
  methodsFor(path: string): string[]
  /** whether the route (`METHOD` and the path as registered, e.g. `/api/v1/files/:id`) declares `parse: 'formdata'` */
  takesMultipart(method: string, route: string): boolean
  /** whether the route declares `parse: 'none'`: it reads `request.body` itself, as a stream (the uploads), so no parser may touch it */
  readsRawBody(method: string, route: string): boolean
}

const MULTIPART_PARSERS = new Set(['formdata', 'multipart/form-data'])

const declaresMultipart = (parse: unknown) =>
  (Array.isArray(parse) ? parse : [parse]).some((p) => MULTIPART_PARSERS.has(typeof p === 'string' ? p : (p as { fn?: unknown } | undefined)?.fn as string))

const declaresRaw = (parse: unknown) => (Array.isArray(parse) ? parse : [parse]).some((p) => (typeof p === 'string' ? p : (p as { fn?: unknown } | undefined)?.fn) === 'none')

export function createRouteIndex(): RouteIndex {
  let patterns: { regex: RegExp; method: string }[] = []
  let multipart = new Set<string>()
  let raw = new Set<string>()
  return {
    load(routes) {
      patterns = routes
        // ALL and the CORS preflight catch-all (OPTIONS /*) say nothing about a path's own methods.
        .filter((r) => r.method !== 'ALL' && r.method !== 'OPTIONS')
        .map((r) => ({
          method: r.method,
          regex: new RegExp('^' + r.path.split('/').map((seg) => (seg.startsWith(':') ? '[^/]+' : seg === '*' ? '.*' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/') + '/?$'),
        }))
      multipart = new Set(routes.filter((r) => declaresMultipart(r.hooks?.parse)).map((r) => `${r.method} ${r.path}`))
      raw = new Set(routes.filter((r) => declaresRaw(r.hooks?.parse)).map((r) => `${r.method} ${r.path}`))
    },
    methodsFor(path) {
      const methods = new Set<string>()
      for (const p of patterns) if (p.regex.test(path)) methods.add(p.method)
      if (methods.has('GET')) methods.add('HEAD')
      return [...methods]
    },
    takesMultipart: (method, route) => multipart.size > 0 && multipart.has(`${method} ${route}`),
    readsRawBody: (method, route) => raw.size > 0 && raw.has(`${method} ${route}`),
  }
}
