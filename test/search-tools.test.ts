/**
 * The http_fetch and web_search built-in tools, called directly (`.call(args, { principal, signal })`)
 * against servers on loopback. For http_fetch, a resolver and a transport make two names "public"
 * (they resolve to global addresses, and connections to those land on the loopback fake), so that a
 * user's fetch can start on the public internet and be redirected inside. Then both through
 * POST /api/v1/tools/call, and tools.requires_approval read per user.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Principal } from '../src/modules/auth/service.ts'
import { createOutboundGuard } from '../src/lib/outbound.ts'
import { httpFetchTool } from '../src/modules/tools/builtins/http-fetch.ts'
import { webSearchTool } from '../src/modules/tools/builtins/web-search.ts'
import type { ToolResult } from '../src/modules/tools/types.ts'
import { setupCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { startFakeSearch, type FakeSearch } from './fakes/search.ts'

const principal = (userId: string, role: 'user' | 'admin'): Principal => ({ userId, role, via: 'session', sessionId: null, apiKeyId: null, scopes: ['gateway', 'api'] })
const USER = principal('user-1', 'user')
const ADMIN = principal('admin-1', 'admin')
const call = (tool: ReturnType<typeof httpFetchTool>, args: Record<string, unknown>, p: Principal = USER, signal = new AbortController().signal) => tool.call(args, { principal: p, signal })
const textOf = (r: ToolResult) => r.content.map((c) => (c.type === 'text' ? (c as { text: string }).text : '')).join('')

const PAGE = `<!doctype html><html><head><title>Hearth page</title><style>body { color: red }</style><script>var leaked = "script-text"</script></head>
<body><h1>Welcome to Hearth</h1><p>Read <a href="/docs/start">the guide</a> or <a href="next.html">the next page</a>, or <a href="https://elsewhere.example/x">https://elsewhere.example/x</a>.</p>
<img src="/logo.png" alt="logo"><script>document.write("more-script-text")</script><ul><li>first</li><li>second</li></ul></body></html>`

describe('http_fetch', () => {
  let server: ReturnType<typeof Bun.serve>
  let base: string
  const seen: string[] = []
  const PUBLIC_IP = '93.184.216.34'
  const hung = new Set<() => void>()
  const hang = (ms: number) => new Promise<void>((resolve) => {
    const done = () => (hung.delete(done), resolve())
    hung.add(done)
    setTimeout(done, ms)
  })

  beforeAll(() => {
    server = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      async fetch(req) {
        const url = new URL(req.url)
        seen.push(url.pathname)
        switch (url.pathname) {
          case '/page.html':
            return new Response(PAGE, { headers: { 'content-type': 'text/html; charset=utf-8' } })
          case '/latin1.html':
            return new Response(Buffer.from('<p>caf\xe9</p>', 'latin1'), { headers: { 'content-type': 'text/html; charset=ISO-8859-1' } })
          case '/data.json':
            return Response.json({ name: 'hearth', tags: ['a', 'b'] })
          case '/plain.txt':
            return new Response('just text\nsecond line', { headers: { 'content-type': 'text/plain' } })
          case '/untyped': {
            const res = new Response(new TextEncoder().encode('untyped but text'))
            res.headers.delete('content-type')
            return res
          }
          case '/octets':
            return new Response(new TextEncoder().encode('text sent as octets'), { headers: { 'content-type': 'application/octet-stream' } })
          case '/binary':
            return new Response(new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0x00, 0xff, 0xfe]), { headers: { 'content-type': 'application/octet-stream' } })
          case '/image.png':
            return new Response(new Uint8Array(5000).fill(0x89), { headers: { 'content-type': 'image/png' } })
          case '/missing':
            return new Response('<html><body><h1>Not here</h1><p>Try the home page.</p></body></html>', { status: 404, headers: { 'content-type': 'text/html' } })
          case '/big': {
            const chunk = new Uint8Array(64 * 1024).fill(0x61)
            let sent = 0
            return new Response(
              new ReadableStream({
                pull(c) {
                  if (sent >= 2 * 1024 * 1024) return c.close()
                  sent += chunk.byteLength
                  c.enqueue(chunk)
                },
              }),
              { headers: { 'content-type': 'text/plain' } },
            )
          }
          case '/slow-headers':
            await hang(3000)
            return new Response('late')
          case '/slow-body':
            return new Response(
              new ReadableStream({
                async start(c) {
                  c.enqueue(new TextEncoder().encode('first part '))
                  await hang(3000)
                  c.close()
                },
              }),
              { headers: { 'content-type': 'text/plain' } },
            )
          case '/redirect':
            return new Response(null, { status: Number(url.searchParams.get('status') ?? 302), headers: { location: url.searchParams.get('to')! } })
          case '/loop':
            return new Response(null, { status: 301, headers: { location: '/loop' } })
          case '/secret':
            return new Response('internal secret', { headers: { 'content-type': 'text/plain' } })
          default:
            return new Response('no', { status: 404 })
        }
      },
    })
    base = `http://127.0.0.1:${server.port}`
  })
  afterAll(async () => {
    for (const done of hung) done()
    await server.stop(true)
  })

  /** `public.test` resolves to a global address, `intranet.test` to a private one; a connection to the global one lands on the fake */
  const guard = (allowPrivate = false) =>
    createOutboundGuard({
      allowPrivate,
      resolve: async (host) => (host === 'public.test' ? [PUBLIC_IP] : host === 'intranet.test' ? ['10.0.0.5'] : (await Bun.dns.lookup(host)).map((a) => a.address)),
      transport: ((input: string | URL | Request, init?: RequestInit) => {
        const url = new URL(input instanceof Request ? input.url : input)
        if (url.hostname === PUBLIC_IP || url.hostname === 'public.test') url.host = `127.0.0.1:${server.port}`
        return fetch(url, init)
      }) as typeof fetch,
    })
  const tool = httpFetchTool({ outbound: guard() })
  const site = (path: string) => `http://public.test:${server.port}${path}`

  test('HTML is reduced to text: headings and lists kept, links as text with absolute URLs, no script, style or images', async () => {
    const r = await call(tool, { url: site('/page.html') })
    expect(r.isError).toBe(false)
    const text = textOf(r)
    expect(text).toStartWith(`URL: ${site('/page.html')}\nStatus: 200 OK\nContent-Type: text/html; charset=utf-8\n\n`)
    expect(text).toContain('Welcome to Hearth')
    expect(text).toContain(`the guide [${site('/docs/start')}]`)
    expect(text).toContain(`the next page [${site('/next.html')}]`)
    expect(text).toContain('https://elsewhere.example/x')
    expect(text).not.toContain('https://elsewhere.example/x [')
    expect(text).toMatch(/\* first\n \* second/)
    for (const gone of ['script-text', 'more-script-text', 'color: red', 'logo', '<p>', '<a ']) expect(text).not.toContain(gone)
    expect(r.structuredContent).toEqual({ url: site('/page.html'), status: 200, content_type: 'text/html; charset=utf-8', bytes: Buffer.byteLength(PAGE), truncated: false })
  })

  test("JSON and text pass as they are; the page's charset is honoured; untyped text is shown", async () => {
    expect(textOf(await call(tool, { url: site('/data.json') }))).toEndWith('\n\n{"name":"hearth","tags":["a","b"]}')
    expect(textOf(await call(tool, { url: site('/plain.txt') }))).toEndWith('\n\njust text\nsecond line')
    expect(textOf(await call(tool, { url: site('/latin1.html') }))).toEndWith('\n\ncafé')
    expect(textOf(await call(tool, { url: site('/untyped') }))).toEndWith('\n\nuntyped but text')
    expect(textOf(await call(tool, { url: site('/octets') }))).toEndWith('\n\ntext sent as octets')
  })

  test('other types are described by type and size, not dumped', async () => {
    const r = await call(tool, { url: site('/image.png') })
    expect(r.isError).toBe(false)
    expect(textOf(r)).toEndWith('\n\nThe response is image/png, 5,000 bytes: not text, so its content is not shown.')
    expect(textOf(r)).not.toContain('\u0089')
    expect(textOf(await call(tool, { url: site('/binary') }))).toEndWith('\n\nThe response is application/octet-stream, 7 bytes: not text, so its content is not shown.')
  })

  test('a 2 MB body is cut at 1 MiB, and the result says so', async () => {
    const r = await call(tool, { url: site('/big') })
    expect(r.isError).toBe(false)
    expect(r.structuredContent).toMatchObject({ bytes: 1024 * 1024, truncated: true })
    const text = textOf(r)
    expect(text.match(/a{1000,}/)![0].length).toBe(1024 * 1024)
    expect(text).toEndWith('\n\n[Truncated: only the first 1,048,576 bytes of the body were read.]')
  })

  test('a 404 page is a tool failure with a readable message, not a throw', async () => {
    const r = await call(tool, { url: site('/missing') })
    expect(r.isError).toBe(true)
    expect(textOf(r)).toContain('Status: 404 Not Found')
    expect(textOf(r)).toContain('Not here')
    expect(r.structuredContent).toMatchObject({ status: 404 })
  })

  test('redirects are followed (relative ones too) and the final URL is reported', async () => {
    const r = await call(tool, { url: site(`/redirect?to=${encodeURIComponent('/redirect?status=307&to=/data.json')}`) })
    expect(r.isError).toBe(false)
    expect(textOf(r)).toStartWith(`URL: ${site('/data.json')}\n`)
  })

  test('more than 5 redirects: a failure, after the first request and 5 hops', async () => {
    const before = seen.filter((p) => p === '/loop').length
    const r = await call(tool, { url: site('/loop') })
    expect(r.isError).toBe(true)
    expect(textOf(r)).toContain('more than 5 redirects')
    expect(seen.filter((p) => p === '/loop').length - before).toBe(6)
  })

  test("a redirect to a private address is refused for a user — every hop is checked — and followed for an admin", async () => {
    const targets = [`${base}/secret`, `http://localhost:${server.port}/secret`, `http://intranet.test:${server.port}/secret`, `http://[::1]:${server.port}/secret`]
    for (const target of targets) {
      const before = seen.filter((p) => p === '/secret').length
      const r = await call(tool, { url: site(`/redirect?to=${encodeURIComponent(target)}`) })
      expect({ target, isError: r.isError }).toEqual({ target, isError: true })
      expect(textOf(r)).toMatch(/^Not fetched: .*(is|resolves to) a loopback or private address, which only admins may use$/)
      expect(textOf(r)).not.toContain('internal secret')
      expect(seen.filter((p) => p === '/secret').length).toBe(before)
    }
    const admin = await call(tool, { url: site(`/redirect?to=${encodeURIComponent(`${base}/secret`)}`) }, ADMIN)
    expect(admin.isError).toBe(false)
    expect(textOf(admin)).toEndWith('\n\ninternal secret')
    // a user who may reach private addresses (HEARTH_ALLOW_PRIVATE_UPSTREAMS=true) is followed too
    expect(textOf(await call(httpFetchTool({ outbound: guard(true) }), { url: `${base}/secret` }))).toEndWith('internal secret')
  })

  test('a private address asked for directly is refused for a user, and nothing is sent', async () => {
    const before = seen.length
    const r = await call(tool, { url: `${base}/secret` })
    expect(r.isError).toBe(true)
    expect(textOf(r)).toContain('is a loopback or private address')
    expect(seen.length).toBe(before)
  })

  test('only http and https, also after a redirect, for everyone; a bad URL is a failure', async () => {
    for (const p of [USER, ADMIN]) {
      expect(textOf(await call(tool, { url: 'file:///etc/passwd' }, p))).toBe('Only http and https URLs are fetched, not file:')
      const r = await call(tool, { url: site(`/redirect?to=${encodeURIComponent('file:///etc/passwd')}`) }, p)
      expect(r.isError).toBe(true)
      expect(textOf(r)).toContain('only http and https URLs are fetched')
    }
    const bad = await call(tool, { url: 'not a url' })
    expect(bad).toEqual({ content: [{ type: 'text', text: 'Not a URL: give an absolute http or https URL' }], isError: true })
  })

  test('a name that does not resolve, and a closed port, are failures', async () => {
    expect(textOf(await call(tool, { url: 'http://no-such-host.invalid/' }))).toBe('Not fetched: no-such-host.invalid does not resolve')
    const closed = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('') })
    const port = closed.port
    await closed.stop(true)
    const r = await call(tool, { url: `http://127.0.0.1:${port}/` }, ADMIN)
    expect(r.isError).toBe(true)
    expect(textOf(r)).toStartWith(`Not fetched: http://127.0.0.1:${port}/ could not be reached`)
  })

  test('a slow server times out (the whole fetch, headers or body) as a failure', async () => {
    const quick = httpFetchTool({ outbound: guard(), timeoutMs: 200 })
    for (const path of ['/slow-headers', '/slow-body']) {
      const started = Date.now()
      const r = await call(quick, { url: site(path) })
      expect({ path, isError: r.isError, text: textOf(r) }).toEqual({ path, isError: true, text: `Not fetched: ${site(path)} took longer than 0.2 s` })
      expect(Date.now() - started).toBeLessThan(1500)
    }
  })

  test("the caller's run stopped: the call is abandoned with the abort's reason, not turned into a result", async () => {
    const stop = new AbortController()
    setTimeout(() => stop.abort(new Error('run stopped')), 50)
    await expect(call(tool, { url: site('/slow-headers') }, USER, stop.signal)).rejects.toThrow('run stopped')
  })

  test('the tool describes itself: name, description and input schema', () => {
    expect(tool.name).toBe('http_fetch')
    expect(tool.description).toContain('1,048,576 bytes')
    expect(tool.inputSchema).toMatchObject({ type: 'object', required: ['url'], properties: { url: { type: 'string' } } })
  })
})

eachDialect('web_search', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let fake: FakeSearch
  let user: Principal
  const config = (token: string, name: string, value: string) => t.request('POST', '/api/v1/configs', { token, body: { config_group: 'search', config_name: name, config_value: value } })
  beforeAll(async () => {
    fake = await startFakeSearch({ google: ['AIzaGlobal-tool-key-1234'], exa: ['exa-user-tool-key-5678'] })
    t = await createTestApp(dialect)
    ctx = await setupCallers(t)
    user = principal(ctx.accounts.user.id, 'user')
  })
  afterAll(async () => {
    await t.close()
    await fake.stop()
  })
  const tool = () => webSearchTool(t.deps.services.search)
  const search = (args: Record<string, unknown>, p = user) => tool().call(args, { principal: p, signal: new AbortController().signal })

  test('no engine configured: the 422 naming both keys is thrown', async () => {
    await expect(search({ query: 'anything' })).rejects.toMatchObject({ status: 422, code: 'VALIDATION_ERROR', errors: [{ path: 'search.google_api_key' }, { path: 'search.exa_api_key' }] })
    expect(fake.requests).toEqual([])
  })

  test("only Exa configured (the user's own key): Exa answers", async () => {
    const admin = ctx.accounts.admin.access
    expect((await config(admin, 'google_base_url', fake.googleUrl)).status).toBe(201)
    expect((await config(admin, 'exa_base_url', fake.exaUrl)).status).toBe(201)
    expect((await config(ctx.accounts.user.access, 'exa_api_key', 'exa-user-tool-key-5678')).status).toBe(201)
    const r = await search({ query: 'bun runtime', num: 2 })
    expect(fake.requests.at(-1)).toMatchObject({ path: '/exa/search', body: { query: 'bun runtime', numResults: 2 } })
    expect(r.isError).toBe(false)
    expect(textOf(r)).toBe(
      [
        'Results from Exa for "bun runtime":',
        '1. bun runtime (Exa 1)\n   https://example.org/bun-runtime/1\n   Highlight 1 of bun runtime',
        '2. bun runtime (Exa 2)\n   https://example.org/bun-runtime/2\n   Highlight 2 of bun runtime',
      ].join('\n'),
    )
    expect(r.structuredContent).toEqual({
      results: [
        { result_id: 'https://example.org/bun-runtime/1', title: 'bun runtime (Exa 1)', description: 'Highlight 1 of bun runtime', url: 'https://example.org/bun-runtime/1', image_url: 'https://example.org/cover.png' },
        { result_id: 'https://example.org/bun-runtime/2', title: 'bun runtime (Exa 2)', description: 'Highlight 2 of bun runtime', url: 'https://example.org/bun-runtime/2' },
      ],
    })
    // another user has no key of their own and there is no global one
    await expect(search({ query: 'x' }, principal(ctx.accounts.other.id, 'user'))).rejects.toMatchObject({ status: 422 })
  })

  test('Google configured too: Google first (5 results by default), unless the call names Exa', async () => {
    const admin = ctx.accounts.admin.access
    await config(admin, 'google_api_key', 'AIzaGlobal-tool-key-1234')
    await config(admin, 'google_cse_id', 'cx-tool')
    const r = await search({ query: 'sqlite wal' })
    expect(fake.requests.at(-1)).toMatchObject({ path: '/customsearch/v1', query: { key: 'AIzaGlobal-tool-key-1234', cx: 'cx-tool', q: 'sqlite wal', num: '5' } })
    expect(textOf(r).split('\n')[0]).toBe('Results from Google for "sqlite wal":')
    expect((r.structuredContent as { results: unknown[] }).results).toHaveLength(5)
    expect(textOf(r)).toContain('1. sqlite wal — result 1\n   https://example.com/sqlite-wal/1\n   Snippet 1 about sqlite wal')

    await search({ query: 'sqlite wal', provider: 'exa', num: 1 })
    expect(fake.requests.at(-1)).toMatchObject({ path: '/exa/search', headers: { 'x-api-key': 'exa-user-tool-key-5678' } })
    // the other user now has the global Google, and still no Exa
    const other = principal(ctx.accounts.other.id, 'user')
    expect((await search({ query: 'x', num: 1 }, other)).isError).toBe(false)
    await expect(search({ query: 'x', provider: 'exa' }, other)).rejects.toMatchObject({ status: 422, errors: [{ path: 'search.exa_api_key' }] })
  })

  test('an engine that fails: its 502 is thrown', async () => {
    await expect(search({ query: 'fail:500' })).rejects.toMatchObject({ status: 502, code: 'UPSTREAM_ERROR', detail: expect.stringMatching(/^Google answered 500: quota exceeded/) })
  })

  test('no results is said in words', async () => {
    const r = await search({ query: 'nothing' })
    expect(r).toEqual({ content: [{ type: 'text', text: 'No results from Google for "nothing".' }], structuredContent: { results: [] }, isError: false })
    expect(textOf(await search({ query: 'nothing', provider: 'exa' }))).toBe('No results from Exa for "nothing".')
  })
})

eachDialect('web_search and http_fetch through POST /api/v1/tools/call', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let fake: FakeSearch
  let page: ReturnType<typeof Bun.serve>
  beforeAll(async () => {
    fake = await startFakeSearch({ google: ['AIzaGlobal-call-key-0000'] })
    page = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('<h1>Inside</h1>', { headers: { 'content-type': 'text/html' } }) })
    t = await createTestApp(dialect, { HEARTH_ALLOW_PRIVATE_UPSTREAMS: 'false' })
    ctx = await setupCallers(t)
  })
  afterAll(async () => {
    await t.close()
    await fake.stop()
    await page.stop(true)
  })
  const toolCall = (token: string, tool: string, args: Record<string, unknown>) => t.request('POST', '/api/v1/tools/call', { token, body: { tool, arguments: args } })

  test('web_search: not configured is a 422 naming the keys; configured, the results', async () => {
    const none = await toolCall(ctx.accounts.user.access, 'web_search', { query: 'hearth' })
    expect({ status: none.status, code: none.body.code, paths: none.body.errors?.map((e: { path: string }) => e.path) }).toEqual({ status: 422, code: 'VALIDATION_ERROR', paths: ['search.google_api_key', 'search.exa_api_key'] })
    const admin = ctx.accounts.admin.access
    for (const [name, value] of [['google_base_url', fake.googleUrl], ['google_api_key', 'AIzaGlobal-call-key-0000'], ['google_cse_id', 'cx-call']])
      expect((await t.request('POST', '/api/v1/configs', { token: admin, body: { config_group: 'search', config_name: name, config_value: value } })).status).toBe(201)
    const res = await toolCall(ctx.accounts.user.access, 'web_search', { query: 'hearth', num: 2 })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ is_error: false, result: { structured_content: { results: [{ title: 'hearth — result 1' }, { title: 'hearth — result 2' }] } } })
    expect(res.text).not.toContain('AIzaGlobal-call-key-0000')
    expect((await toolCall(ctx.accounts.user.access, 'web_search', { query: 'hearth', num: 11 })).status).toBe(422)
  })

  test("http_fetch: a user's private address is a tool failure (is_error), an admin's is fetched", async () => {
    const url = `http://127.0.0.1:${page.port}/`
    const user = await toolCall(ctx.accounts.user.access, 'http_fetch', { url })
    expect(user.status).toBe(200)
    expect(user.body).toMatchObject({ is_error: true, result: { content: [{ type: 'text', text: expect.stringContaining('is a loopback or private address') }] } })
    const admin = await toolCall(ctx.accounts.admin.access, 'http_fetch', { url })
    expect(admin.body).toMatchObject({ is_error: false, result: { content: [{ type: 'text', text: expect.stringContaining('Inside') }] } })
  })

  test("tools.requires_approval: a user's own value replaces the global one", async () => {
    const approval = async (token: string) => Object.fromEntries(((await t.request('GET', '/api/v1/tools', { token })).body.items as { name: string; requires_approval: boolean }[]).map((i) => [i.name, i.requires_approval]))
    const set = (token: string, value: string) => t.request('POST', '/api/v1/configs', { token, body: { config_group: 'tools', config_name: 'requires_approval', config_value: value } })
    expect((await set(ctx.accounts.admin.access, 'http_fetch')).status).toBe(201)
    expect((await set(ctx.accounts.user.access, 'web_search, current_time')).status).toBe(201)
    expect(await approval(ctx.accounts.user.access)).toMatchObject({ web_search: true, current_time: true, http_fetch: false })
    expect(await approval(ctx.accounts.other.access)).toMatchObject({ web_search: false, current_time: false, http_fetch: true })
  })
})
