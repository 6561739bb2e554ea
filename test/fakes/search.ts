/**
 * Fake web search engines speaking the real wires on one loopback Bun.serve: Google Programmable
 * Search (the Custom Search JSON API: `GET /customsearch/v1?key&cx&q&num&searchType`) and Exa
 * (`POST /exa/search`, `x-api-key`, a camelCase JSON body). Only the keys given at start are
 * accepted; others get each API's own error body. Every request is recorded.
 *
 * The query text chooses a failure, so production code needs no test hooks:
 *   `fail:STATUS`  the API's error body with that status (its message long and full of control characters)
 *   `redirect`     302 to another address
 *   `hang:MS`      wait that long before answering
 *   `garbage`      200 with a body that is not JSON
 *   `nothing`      no results (Google then sends no `items` at all, as it does)
 */

export type SearchRequest = { method: string; path: string; query: Record<string, string>; headers: Record<string, string>; body: any }
export type FakeSearch = {
  url: string
  /** what search.google_base_url points at */
  googleUrl: string
  /** what search.exa_base_url points at */
  exaUrl: string
  requests: SearchRequest[]
  stop(): Promise<void>
}

const slug = (q: string) => encodeURIComponent(q.toLowerCase().replace(/\s+/g, '-'))
const UGLY = `quota\u0000 exceeded\u001b[31m\u202e ${'for this project '.repeat(40)}`

const googleError = (status: number, message: string) =>
  Response.json({ error: { code: status, message, errors: [{ message, domain: 'global', reason: status === 400 ? 'badRequest' : 'forbidden' }], status: status === 400 ? 'INVALID_ARGUMENT' : 'PERMISSION_DENIED' } }, { status })

function google(q: URLSearchParams, keys: string[]): Response {
  const key = q.get('key')
  if (!key) return googleError(403, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.")
  if (!keys.includes(key)) return googleError(400, 'API key not valid. Please pass a valid API key.')
  const num = Number(q.get('num') ?? 10)
  const searchType = q.get('searchType')
  if (!q.get('cx') || !q.get('q') || !Number.isInteger(num) || num < 1 || num > 10 || (searchType !== null && searchType !== 'image')) return googleError(400, 'Request contains an invalid argument.')
  const text = q.get('q')!
  const items = Array.from({ length: num }, (_, n) => {
    const i = n + 1
    const page = `https://example.com/${slug(text)}/${i}`
    if (searchType === 'image')
      return { kind: 'customsearch#result', title: `${text} picture ${i}`, link: `https://images.example.com/${slug(text)}/${i}.jpg`, displayLink: 'images.example.com', snippet: `Picture ${i} of ${text}`, mime: 'image/jpeg', image: { contextLink: page, height: 600, width: 800, byteSize: 51_200, thumbnailLink: `https://thumbs.example.com/${i}.jpg` } }
    return { kind: 'customsearch#result', title: `${text} — result ${i}`, link: page, displayLink: 'example.com', snippet: `Snippet ${i} about ${text}`, ...(i % 2 ? { pagemap: { cse_image: [{ src: `https://example.com/img/${i}.png` }] } } : {}) }
  })
  return Response.json({ kind: 'customsearch#search', queries: { request: [{ searchTerms: text, count: num }] }, searchInformation: { totalResults: '1000' }, items })
}

function exa(body: any, key: string | null, keys: string[]): Response {
  if (!key || !keys.includes(key)) return Response.json({ requestId: 'req-denied', error: 'Invalid API key', tag: 'INVALID_API_KEY' }, { status: 401 })
  if (typeof body?.query !== 'string' || !body.query) return Response.json({ requestId: 'req-bad', error: 'query is required' }, { status: 400 })
  const n = body.numResults ?? 10
  if (!Number.isInteger(n) || n < 1 || n > 100) return Response.json({ requestId: 'req-bad', error: 'numResults must be between 1 and 100' }, { status: 400 })
  const domain = Array.isArray(body.includeDomains) && body.includeDomains.length ? body.includeDomains[0] : 'example.org'
  const results = Array.from({ length: n }, (_, k) => {
    const i = k + 1
    const url = `https://${domain}/${slug(body.query)}/${i}`
    return {
      id: url,
      title: i === 3 ? null : `${body.query} (Exa ${i})`,
      url,
      publishedDate: `2025-01-0${(i % 9) + 1}T00:00:00.000Z`,
      author: i === 2 ? null : `Author ${i}`,
      score: 0.9 - i / 100,
      ...(i === 1 ? { image: `https://${domain}/cover.png` } : {}),
      ...(body.contents?.highlights ? { highlights: [`Highlight ${i} of ${body.query}`], highlightScores: [0.5] } : {}),
    }
  })
  return Response.json({ requestId: `req-${Date.now()}`, resolvedSearchType: body.type === 'keyword' ? 'keyword' : 'neural', results, costDollars: { total: 0.005 } })
}

export async function startFakeSearch(keys: { google?: string[]; exa?: string[] } = {}): Promise<FakeSearch> {
  const requests: SearchRequest[] = []
  const hanging = new Set<() => void>()
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req) {
      const url = new URL(req.url)
      const text = await req.text()
      let body: any = text
      try {
        body = text ? JSON.parse(text) : undefined
      } catch {}
      requests.push({ method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers.toJSON(), body })
      const isGoogle = req.method === 'GET' && url.pathname === '/customsearch/v1'
      const isExa = req.method === 'POST' && url.pathname === '/exa/search'
      if (!isGoogle && !isExa) return new Response('Not Found', { status: 404 })
      const query: string = (isGoogle ? url.searchParams.get('q') : body?.query) ?? ''
      const hang = /^hang:(\d+)$/.exec(query)
      if (hang) await new Promise<void>((resolve) => {
        const done = () => (hanging.delete(done), resolve())
        hanging.add(done)
        setTimeout(done, Number(hang[1]))
      })
      const fail = /^fail:(\d{3})$/.exec(query)
      if (fail) return isGoogle ? googleError(Number(fail[1]), UGLY) : Response.json({ requestId: 'req-fail', error: UGLY }, { status: Number(fail[1]) })
      if (query === 'redirect') return new Response(null, { status: 302, headers: { location: 'http://127.0.0.1:9/elsewhere' } })
      if (query === 'nothing' && isGoogle) return Response.json({ kind: 'customsearch#search', searchInformation: { totalResults: '0' } })
      if (query === 'nothing') return Response.json({ requestId: 'req-none', resolvedSearchType: 'neural', results: [] })
      if (query === 'garbage') return new Response('<html>not json</html>', { headers: { 'content-type': 'text/html' } })
      return isGoogle ? google(url.searchParams, keys.google ?? []) : exa(body, req.headers.get('x-api-key'), keys.exa ?? [])
    },
  })
  const base = `http://127.0.0.1:${server.port}`
  return {
    url: base,
    googleUrl: `${base}/customsearch/v1`,
    exaUrl: `${base}/exa`,
    requests,
    async stop() {
      for (const done of hanging) done()
      await server.stop(true)
    },
  }
}
