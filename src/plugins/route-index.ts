/** @module Which methods a path answers to, so a wrong method gets 405 with `Allow` instead of 404. */

export interface RouteIndex {
  load(routes: { method: string; path: string }[]): void
  methodsFor(path: string): string[]
}

export function createRouteIndex(): RouteIndex {
  let patterns: { regex: RegExp; method: string }[] = []
  return {
    load(routes) {
      patterns = routes
        // ALL and the CORS preflight catch-all (OPTIONS /*) say nothing about a path's own methods.
        .filter((r) => r.method !== 'ALL' && r.method !== 'OPTIONS')
        .map((r) => ({
          method: r.method,
          regex: new RegExp('^' + r.path.split('/').map((seg) => (seg.startsWith(':') ? '[^/]+' : seg === '*' ? '.*' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/') + '/?$'),
        }))
    },
    methodsFor(path) {
      const methods = new Set<string>()
      for (const p of patterns) if (p.regex.test(path)) methods.add(p.method)
      if (methods.has('GET')) methods.add('HEAD')
      return [...methods]
    },
  }
}
