/**
 * Cross-site request forgery (docs/api.md §1 "Browsers and other sites"): a request that comes
 * with the `hearth_access` cookie and changes state must come from this site or from an origin in
 * HEARTH_CORS_ORIGINS; the GET chat stream, which starts an answer, takes the cookie only from
 * requests that show they are same-site. JSON routes take only `application/json` bodies (415
 * otherwise), so no HTML form can post to them. Bearer requests are not affected.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { register, setupCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, requestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

const EVIL = 'http://evil.example'
/** the origin of the in-process test requests (`http://localhost/...`) */
const SAME = 'http://localhost'
/** the frontend in HEARTH_CORS_ORIGINS */
const APP = 'https://app.example'

interface Ctx extends CallersContext {
  memory: string
  conversation: string
}

/** nothing was stored from a refused request: no memory, conversation or message holds its marker */
async function nothingStored(t: TestApp, marker: string) {
  const { db, t: tables } = t.deps.database
  expect(await db.select().from(tables.memories).where(eq(tables.memories.content, marker))).toEqual([])
  expect(await db.select().from(tables.conversations).where(eq(tables.conversations.title, marker))).toEqual([])
  expect(await db.select().from(tables.messages).where(eq(tables.messages.content, marker))).toEqual([])
}

eachDialect('cross-site requests', (dialect) => {
  let ctx: Ctx
  let fake: FakeLlm
  beforeAll(async () => {
    fake = await startFakeLlm()
    const t = await createTestApp(dialect, { HEARTH_CORS_ORIGINS: APP })
    const callers = await setupCallers(t)
    const admin = callers.accounts.admin.access
    const p = await t.request('POST', '/api/v1/providers', { token: admin, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
    expect((await t.request('POST', '/api/v1/models', { token: admin, body: { provider_id: p.body.id, name: 'quick', model_id: 'fake:tokens=2', is_default: true } })).status).toBe(201)
    const user = callers.accounts.user.access
    const memory = (await t.request('POST', '/api/v1/memories', { token: user, body: { content: 'kept' } })).body.id
    const conversation = (await t.request('POST', '/api/v1/conversations', { token: user, body: { title: 'kept' } })).body.id
    ctx = { ...callers, memory, conversation }
  })
  afterAll(async () => {
    await ctx.t.close()
    await fake.stop()
  })

  let n = 0
  /** a body (and its marker) for each state-changing endpoint */
  const writes: [string, string | ((c: Ctx) => string), (marker: string) => unknown, number][] = [
    ['POST', '/api/v1/memories', (m) => ({ content: m }), 201],
    ['POST', '/api/v1/api-keys', (m) => ({ name: m }), 201],
    ['POST', '/api/v1/conversations', (m) => ({ title: m }), 201],
    ['PATCH', (c) => `/api/v1/memories/${c.memory}`, (m) => ({ content: m }), 200],
  ]
  const refused = (name: string, headers: Record<string, string>): Scenario<Ctx>[] =>
    writes.map(([method, path, body]) => {
      const marker = `CSRF-REFUSED-${n++}`
      return { name, as: 'user', via: 'cookie', method, path, body: body(marker), headers, status: 403, code: 'FORBIDDEN', contains: ['Cross-site request refused'], check: (_res, c) => nothingStored(c.t, marker) }
    })
  const accepted = (name: string, headers: Record<string, string>, via: 'cookie' | 'bearer' = 'cookie'): Scenario<Ctx>[] =>
    writes.map(([method, path, body, status]) => ({ name, as: 'user', via, method, path, body: body(`accepted-${n++}`), headers, status }))

  describe('state-changing requests with the cookie', () => {
    scenarios<Ctx>(() => ctx, [
      ...refused('a foreign Origin is refused', { origin: EVIL }),
      ...refused('Sec-Fetch-Site: cross-site is refused', { 'sec-fetch-site': 'cross-site' }),
      ...refused('Sec-Fetch-Site: same-site (a sibling subdomain) is refused', { 'sec-fetch-site': 'same-site' }),
      ...refused('Origin: null (a sandboxed frame) is refused', { origin: 'null' }),
      ...refused('the same host on another port is another origin', { origin: 'http://localhost:8080' }),
      ...refused('a foreign Origin beside a same-site Sec-Fetch-Site is refused', { origin: EVIL, 'sec-fetch-site': 'same-site' }),
      ...accepted('the same Origin is accepted', { origin: SAME }),
      ...accepted('Sec-Fetch-Site: same-origin is accepted', { 'sec-fetch-site': 'same-origin' }),
      ...accepted('an Origin from HEARTH_CORS_ORIGINS is accepted', { origin: APP, 'sec-fetch-site': 'cross-site' }),
      ...accepted('neither Origin nor Sec-Fetch-Site (not a browser) is accepted', {}),
      ...accepted('a bearer token is not affected by a foreign Origin', { origin: EVIL, 'sec-fetch-site': 'cross-site' }, 'bearer'),
      { name: 'DELETE with a foreign Origin is refused; the memory stays', as: 'user', via: 'cookie', method: 'DELETE', path: (c) => `/api/v1/memories/${c.memory}`, headers: { origin: EVIL }, status: 403, code: 'FORBIDDEN',
        check: async (_res, c) => expect((await c.t.request('GET', `/api/v1/memories/${c.memory}`, { token: c.tokens.user })).status).toBe(200) },
      { name: 'logout from another site is refused; the session stays', as: 'user', via: 'cookie', method: 'POST', path: '/api/v1/auth/logout', headers: { 'sec-fetch-site': 'cross-site' }, status: 403, code: 'FORBIDDEN',
        check: async (_res, c) => expect((await c.t.request('GET', '/api/v1/auth/me', { token: c.tokens.user })).status).toBe(200) },
      { name: 'an admin route with a foreign Origin is refused', as: 'admin', via: 'cookie', method: 'POST', path: '/api/v1/admin/invites', body: {}, headers: { origin: EVIL }, status: 403, code: 'FORBIDDEN' },
      { name: 'reading with the cookie from another site is not refused (CORS keeps the answer from it)', as: 'user', via: 'cookie', method: 'GET', path: '/api/v1/memories', headers: { origin: EVIL, 'sec-fetch-site': 'cross-site' }, status: 200 },
      { name: 'a guest with a foreign Origin: 401 as before', as: 'guest', via: 'cookie', method: 'POST', path: '/api/v1/memories', body: { content: 'x' }, headers: { origin: EVIL }, status: 401, code: 'UNAUTHORIZED' },
      { name: 'the gateway refuses a cross-site cookie in OpenAI shape', as: 'user', via: 'cookie', method: 'POST', path: '/v1/chat/completions', body: { model: 'quick', messages: [{ role: 'user', content: 'hi' }] }, headers: { origin: EVIL }, status: 403, code: 'forbidden' },
    ])
  })

  describe('bodies that are not JSON: 415, whatever the credential', () => {
    const multipart = '--b\r\nContent-Disposition: form-data; name="content"\r\n\r\nx\r\n--b--\r\n'
    const form = (name: string, raw: string, contentType: string | undefined, via: 'cookie' | 'bearer' = 'bearer', headers: Record<string, string> = {}): Scenario<Ctx> =>
      ({ name, as: 'user', via, method: 'POST', path: '/api/v1/memories', raw, headers: { ...(contentType ? { 'content-type': contentType } : {}), ...headers }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', contains: ['application/json'] })
    scenarios<Ctx>(() => ctx, [
      form('form-encoded', 'content=x', 'application/x-www-form-urlencoded'),
      form('form-encoded from the same origin with the cookie', 'content=x', 'application/x-www-form-urlencoded', 'cookie', { origin: SAME }),
      form('text/plain holding JSON (what a form with enctype=text/plain sends)', '{"content":"x"}', 'text/plain'),
      form('multipart', multipart, 'multipart/form-data; boundary=b'),
      form('JSON without a Content-Type', '{"content":"x"}', undefined),
      form('a JSON-like type that is not application/json', '{"content":"x"}', 'application/vnd.hearth+json'),
      { name: 'application/json with a charset is JSON', as: 'user', method: 'POST', path: '/api/v1/memories', raw: '{"content":"charset"}', headers: { 'content-type': 'application/json; charset=utf-8' }, status: 201 },
      { name: 'the media type is case-insensitive', as: 'user', method: 'POST', path: '/api/v1/memories', raw: '{"content":"case"}', headers: { 'content-type': 'Application/JSON' }, status: 201 },
      { name: 'an empty body is no body, whatever its type (curl -X POST -d "")', as: 'user', method: 'POST', path: (c) => `/api/v1/conversations/${c.conversation}/favorite`, raw: '', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 200 },
      { name: 'a form body to a route without a body schema', as: 'user', method: 'POST', path: (c) => `/api/v1/conversations/${c.conversation}/favorite`, raw: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
      { name: 'a form login (login CSRF) is refused', as: 'guest', method: 'POST', path: '/api/v1/auth/login', raw: 'username=a&password=b', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
      { name: 'the gateway answers 415 in OpenAI shape', as: 'user', method: 'POST', path: '/v1/chat/completions', raw: 'model=quick', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, code: 'unsupported_media_type' },
    ])
  })

  describe('the GET chat stream (EventSource) starts an answer: the cookie only from the same site', () => {
    const stream = (name: string, headers: Record<string, string>, status: number, via: 'cookie' | 'bearer' = 'cookie'): Scenario<Ctx> => {
      const marker = `${status === 403 ? 'CSRF-REFUSED' : 'stream'}-${n++}`
      return {
        name, as: 'user', via, method: 'GET', path: `/api/v1/chat/stream?query=${marker}`, headers: { accept: 'text/event-stream', ...headers }, status,
        ...(status === 403 ? { code: 'FORBIDDEN', check: (_res, c) => nothingStored(c.t, marker) } : { contains: ['event: done'], check: (res) => expect(res.headers.get('content-type')).toStartWith('text/event-stream') }),
      }
    }
    scenarios<Ctx>(() => ctx, [
      stream('a top-level navigation from another site (Sec-Fetch-Site: cross-site) is refused', { 'sec-fetch-site': 'cross-site' }, 403),
      stream('a sibling subdomain (Sec-Fetch-Site: same-site) without an allowed Origin is refused', { 'sec-fetch-site': 'same-site' }, 403),
      stream('a foreign Origin is refused', { origin: EVIL }, 403),
      stream('neither header (an old browser following a link) is refused', {}, 403),
      stream('a same-origin EventSource (Sec-Fetch-Site: same-origin) is answered', { 'sec-fetch-site': 'same-origin' }, 200),
      stream('an EventSource from the allowed frontend (its Origin) is answered', { origin: APP, 'sec-fetch-site': 'same-site' }, 200),
      stream('the same Origin is answered', { origin: SAME }, 200),
      stream('a URL the user typed (Sec-Fetch-Site: none) is answered', { 'sec-fetch-site': 'none' }, 200),
      stream('a bearer token is not affected', { 'sec-fetch-site': 'cross-site', origin: EVIL }, 200, 'bearer'),
    ])
  })

  test('the refresh cookie: refused from another site, accepted from the same origin', async () => {
    const t = ctx.t
    const a = await register(t, 'refresher')
    const refresh = (headers: Record<string, string>) => t.request('POST', '/api/v1/auth/refresh', { headers: { cookie: `hearth_refresh=${a.refresh}`, ...headers } })
    expectProblem(await refresh({ origin: EVIL }), 403, 'FORBIDDEN')
    expectProblem(await refresh({ 'sec-fetch-site': 'cross-site' }), 403, 'FORBIDDEN')
    expect((await refresh({ 'sec-fetch-site': 'same-origin' })).status).toBe(200)
    // a refresh token in the body is not a cookie: no origin rule
    const again = await t.request('POST', '/api/v1/auth/login', { body: { username: a.username, password: a.password } })
    expect((await t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: again.body.tokens.refresh_token }, headers: { origin: EVIL } })).status).toBe(200)
  })

  test('over real HTTP, the same origin is the Host the request came to', async () => {
    const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: ctx.t.app.fetch })
    try {
      const post = (origin: string) =>
        fetch(`http://127.0.0.1:${server.port}/api/v1/memories`, { method: 'POST', headers: { cookie: `hearth_access=${ctx.tokens.user}`, origin, 'content-type': 'application/json' }, body: JSON.stringify({ content: 'over http' }) })
      expect((await post(`http://127.0.0.1:${server.port}`)).status).toBe(201)
      expect((await post(`http://127.0.0.1:${server.port! + 1}`)).status).toBe(403)
      expect((await post(`http://localhost:${server.port}`)).status).toBe(403)
    } finally {
      server.stop(true)
    }
  })
})

eachDialect('cross-site requests behind a proxy', (dialect) => {
  const cases: [string, Record<string, string>, Record<string, string>, number][] = [
    ['trusted proxy: the forwarded host and scheme are the origin', { HEARTH_TRUST_PROXY: 'true' }, { 'x-forwarded-host': 'hearth.example', 'x-forwarded-proto': 'https', origin: 'https://hearth.example' }, 201],
    ['trusted proxy: the forwarded scheme must match too', { HEARTH_TRUST_PROXY: 'true' }, { 'x-forwarded-host': 'hearth.example', 'x-forwarded-proto': 'https', origin: 'http://hearth.example' }, 403],
    ['trusted proxy: the first of several forwarded hosts', { HEARTH_TRUST_PROXY: 'true' }, { 'x-forwarded-host': 'hearth.example, inner.local', origin: 'http://hearth.example' }, 201],
    ['untrusted proxy: X-Forwarded-Host is ignored', {}, { 'x-forwarded-host': 'hearth.example', origin: 'http://hearth.example' }, 403],
    ['untrusted proxy: the request host still counts', {}, { 'x-forwarded-host': 'hearth.example', origin: SAME }, 201],
  ]
  for (const [name, env, headers, status] of cases)
    test(name, async () => {
      const t = await createTestApp(dialect, env)
      try {
        const { access } = await register(t)
        const res = await requestApp(t.app, 'POST', '/api/v1/memories', { body: { content: name }, headers: { cookie: `hearth_access=${access}`, ...headers } })
        expect({ status: res.status, code: res.body.code }).toEqual({ status, code: status === 403 ? 'FORBIDDEN' : undefined })
      } finally {
        await t.close()
      }
    })
})
