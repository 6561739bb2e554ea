/**
 * Web search proxies (docs/api.md §10 "Web search and http_fetch"): Google Programmable Search and
 * Exa through fakes that speak their wires on loopback, with the caller's personal keys, else the
 * global ones; 422 naming a missing config, 502 for an upstream that fails; a personal base URL is
 * reached with its owner's rights and never sent a global key.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createLogger } from '../src/lib/logger.ts'
import { createSearchService } from '../src/modules/search/service.ts'
import { setupCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'
import { startFakeSearch, type FakeSearch } from './fakes/search.ts'

type Json = Record<string, any>

const GLOBAL_GOOGLE = 'AIzaGlobal-google-key-000111'
const USER_GOOGLE = 'AIzaUser-google-key-222333'
const GLOBAL_CX = 'cx-global:0001'
const USER_CX = 'cx-user:0002'
const GLOBAL_EXA = 'exa-global-key-444555'
const USER_EXA = 'exa-user-key-666777'
const KEYS = [GLOBAL_GOOGLE, USER_GOOGLE, GLOBAL_EXA, USER_EXA]

const setConfig = async (t: TestApp, token: string, name: string, value: string, scope?: 'personal' | 'global') => {
  const res = await t.request('POST', '/api/v1/configs', { token, body: { config_group: 'search', config_name: name, config_value: value, ...(scope ? { scope } : {}) } })
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
  return res.body.id as string
}

const googleOf = (fake: FakeSearch) => fake.requests.filter((r) => r.path === '/customsearch/v1')
const exaOf = (fake: FakeSearch) => fake.requests.filter((r) => r.path === '/exa/search')
const last = <T>(list: T[]) => list[list.length - 1]!

interface Ctx extends CallersContext {
  fake: FakeSearch
}

eachDialect('web search proxies: who searches with which keys', (dialect) => {
  let ctx: Ctx
  beforeAll(async () => {
    const fake = await startFakeSearch({ google: [GLOBAL_GOOGLE, USER_GOOGLE], exa: [GLOBAL_EXA, USER_EXA] })
    const t = await createTestApp(dialect)
    const callers = await setupCallers(t)
    const { admin, user } = callers.accounts
    for (const [name, value] of [['google_base_url', fake.googleUrl], ['exa_base_url', fake.exaUrl], ['google_api_key', GLOBAL_GOOGLE], ['google_cse_id', GLOBAL_CX], ['exa_api_key', GLOBAL_EXA]]) await setConfig(t, admin.access, name!, value!)
    await setConfig(t, user.access, 'GOOGLE_API_KEY', USER_GOOGLE)
    await setConfig(t, user.access, 'google_cse_id', USER_CX)
    await setConfig(t, user.access, 'exa_api_key', USER_EXA)
    ctx = { ...callers, fake }
  })
  afterAll(async () => {
    await ctx.t.close()
    await ctx.fake.stop()
  })

  const google = (as: 'user' | 'other' | 'admin', key: string, cx: string): Scenario<Ctx> => ({
    name: `Google is asked with ${key === USER_GOOGLE ? 'the personal' : 'the global'} key`,
    as,
    method: 'GET',
    path: `/api/v1/proxy/google?query=${as}%20hearth&num=3`,
    status: 200,
    notContains: KEYS,
    check: (r, c) => {
      expect(last(googleOf(c.fake)).query).toEqual({ key, cx, q: `${as} hearth`, num: '3' })
      expect(r.body).toHaveLength(3)
    },
  })
  const exa = (as: 'user' | 'other' | 'admin', key: string): Scenario<Ctx> => ({
    name: `Exa is asked with ${key === USER_EXA ? 'the personal' : 'the global'} key`,
    as,
    method: 'POST',
    path: '/api/v1/proxy/exa',
    body: { query: `${as} exa`, num_results: 2 },
    status: 200,
    notContains: KEYS,
    check: (r, c) => {
      expect(last(exaOf(c.fake)).headers['x-api-key']).toBe(key)
      expect(r.body.results).toHaveLength(2)
    },
  })
  scenarios<Ctx>(() => ctx, [
    { name: 'needs credentials', as: 'guest', method: 'GET', path: '/api/v1/proxy/google?query=x', status: 401, code: 'UNAUTHORIZED' },
    { name: 'needs credentials', as: 'guest', method: 'POST', path: '/api/v1/proxy/exa', body: { query: 'x' }, status: 401, code: 'UNAUTHORIZED' },
    google('user', USER_GOOGLE, USER_CX),
    google('other', GLOBAL_GOOGLE, GLOBAL_CX),
    google('admin', GLOBAL_GOOGLE, GLOBAL_CX),
    exa('user', USER_EXA),
    exa('other', GLOBAL_EXA),
    exa('admin', GLOBAL_EXA),
    { name: 'nothing reached the fakes from a guest', as: 'admin', method: 'GET', path: '/api/v1/configs?config_group=search', status: 200,
      check: (_r, c) => expect(c.fake.requests.map((q) => (q.query.q ?? q.body?.query) as string).filter((q) => q === 'x')).toEqual([]) },
  ])
})

eachDialect('web search proxies', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let fake: FakeSearch
  let user: string
  let admin: string
  beforeAll(async () => {
    fake = await startFakeSearch({ google: [GLOBAL_GOOGLE, USER_GOOGLE], exa: [GLOBAL_EXA, USER_EXA] })
    t = await createTestApp(dialect)
    ctx = await setupCallers(t)
    user = ctx.accounts.user.access
    admin = ctx.accounts.admin.access
  })
  afterAll(async () => {
    await t.close()
    await fake.stop()
  })

  const google = (query: string, token = user) => t.request('GET', `/api/v1/proxy/google?${query}`, { token })
  const exa = (body: unknown, token = user) => t.request('POST', '/api/v1/proxy/exa', { token, body })
  const named = (res: TestResponse) => (res.body.errors as { path: string }[]).map((e) => e.path)

  test('no key configured → 422 naming the config, and nothing is sent', async () => {
    const before = fake.requests.length
    let res = await google('query=anything')
    expectProblem(res, 422, 'VALIDATION_ERROR')
    expect(named(res)).toEqual(['search.google_api_key'])
    expect(res.body.detail).toContain('search.google_api_key')
    res = await exa({ query: 'anything' })
    expectProblem(res, 422, 'VALIDATION_ERROR')
    expect(named(res)).toEqual(['search.exa_api_key'])
    // a key without an engine id is not enough for Google
    const key = await setConfig(t, admin, 'google_api_key', GLOBAL_GOOGLE)
    res = await google('query=anything')
    expect(named(res)).toEqual(['search.google_cse_id'])
    await t.request('DELETE', `/api/v1/configs/${key}`, { token: admin })
    expect(fake.requests.length).toBe(before)
  })

  describe('configured globally', () => {
    beforeAll(async () => {
      for (const [name, value] of [['google_base_url', fake.googleUrl], ['exa_base_url', fake.exaUrl], ['google_api_key', GLOBAL_GOOGLE], ['google_cse_id', GLOBAL_CX], ['exa_api_key', GLOBAL_EXA]]) await setConfig(t, admin, name!, value!)
    })

    test("Google: the real wire (key, cx, q, num), its results as { result_id, title, description, url, image_url? }", async () => {
      const res = await google('query=hearth%20server&num=2')
      expect(res.status).toBe(200)
      expect(last(googleOf(fake))).toMatchObject({ method: 'GET', query: { key: GLOBAL_GOOGLE, cx: GLOBAL_CX, q: 'hearth server', num: '2' } })
      expect(res.body).toEqual([
        { result_id: expect.stringMatching(/^[\w-]{16}$/), title: 'hearth server — result 1', description: 'Snippet 1 about hearth server', url: 'https://example.com/hearth-server/1', image_url: 'https://example.com/img/1.png' },
        { result_id: expect.stringMatching(/^[\w-]{16}$/), title: 'hearth server — result 2', description: 'Snippet 2 about hearth server', url: 'https://example.com/hearth-server/2' },
      ])
      // stable per URL
      expect((await google('query=hearth%20server&num=1')).body[0].result_id).toBe(res.body[0].result_id)
      expect(res.text).not.toContain(GLOBAL_GOOGLE)
      // without num, Google's default
      expect((await google('query=ten')).body).toHaveLength(10)
      expect(last(googleOf(fake)).query.num).toBeUndefined()
    })

    test('Google image search: searchType=image; image_url is the image, url the page it is on', async () => {
      const res = await google('query=red%20fox&search_type=image&num=1')
      expect(last(googleOf(fake)).query).toMatchObject({ searchType: 'image', q: 'red fox', num: '1' })
      expect(res.body).toEqual([{ result_id: expect.any(String), title: 'red fox picture 1', description: 'Picture 1 of red fox', url: 'https://example.com/red-fox/1', image_url: 'https://images.example.com/red-fox/1.jpg' }])
      await google('query=red%20fox&search_type=web&num=1')
      expect(last(googleOf(fake)).query.searchType).toBeUndefined()
    })

    test("Exa: the real wire (POST /search, x-api-key, camelCase), its results with Exa's fields", async () => {
      const res = await exa({ query: 'vector databases', num_results: 3, type: 'keyword', include_domains: ['arxiv.org'], exclude_domains: ['spam.example'] })
      expect(res.status).toBe(200)
      const sent = last(exaOf(fake))
      expect(sent.method).toBe('POST')
      expect(sent.headers['x-api-key']).toBe(GLOBAL_EXA)
      expect(sent.headers['content-type']).toStartWith('application/json')
      expect(sent.body).toEqual({ query: 'vector databases', numResults: 3, type: 'keyword', includeDomains: ['arxiv.org'], excludeDomains: ['spam.example'], contents: { highlights: true } })
      expect(res.body).toEqual({
        request_id: expect.stringMatching(/^req-/),
        results: [
          { result_id: 'https://arxiv.org/vector-databases/1', title: 'vector databases (Exa 1)', description: 'Highlight 1 of vector databases', url: 'https://arxiv.org/vector-databases/1', image_url: 'https://arxiv.org/cover.png', published_date: '2025-01-02T00:00:00.000Z', author: 'Author 1', score: 0.89 },
          { result_id: 'https://arxiv.org/vector-databases/2', title: 'vector databases (Exa 2)', description: 'Highlight 2 of vector databases', url: 'https://arxiv.org/vector-databases/2', published_date: '2025-01-03T00:00:00.000Z', author: null, score: 0.88 },
          // Exa sends no title for some pages: the URL stands in
          { result_id: 'https://arxiv.org/vector-databases/3', title: 'https://arxiv.org/vector-databases/3', description: 'Highlight 3 of vector databases', url: 'https://arxiv.org/vector-databases/3', published_date: '2025-01-04T00:00:00.000Z', author: 'Author 3', score: 0.87 },
        ],
      })
      // only what was asked for is sent
      await exa({ query: 'plain' })
      expect(last(exaOf(fake)).body).toEqual({ query: 'plain', contents: { highlights: true } })
    })

    const badQueries: [string, string, string][] = [
      ['no query', 'num=3', 'query'],
      ['an empty query', 'query=%20%20', 'query'],
      ['num over 10', 'query=x&num=11', 'num'],
      ['num 0', 'query=x&num=0', 'num'],
      ['num not a number', 'query=x&num=ten', 'num'],
      ['an unknown search_type', 'query=x&search_type=video', 'search_type'],
    ]
    test.each(badQueries)('Google: %s → 422 naming %s', async (_name, query, field) => {
      const res = await google(query)
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect(named(res)).toContain(field)
    })

    const badBodies: [string, Json, string][] = [
      ['no query', { num_results: 3 }, 'query'],
      ['num_results 0', { query: 'x', num_results: 0 }, 'num_results'],
      ['num_results over 100', { query: 'x', num_results: 101 }, 'num_results'],
      ['a type with spaces', { query: 'x', type: 'drop table' }, 'type'],
      ['include_domains not a list', { query: 'x', include_domains: 'arxiv.org' }, 'include_domains'],
    ]
    test.each(badBodies)('Exa: %s → 422 naming %s', async (_name, body, field) => {
      const res = await exa(body)
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect(named(res)).toContain(field)
    })

    test('the upstream failing → 502 UPSTREAM_ERROR with its message cleaned (no control characters, at most 300 characters)', async () => {
      for (const res of [await google('query=fail:500'), await exa({ query: 'fail:503' })]) {
        expectProblem(res, 502, 'UPSTREAM_ERROR')
        expect(res.body.detail).toMatch(/^(Google answered 500|Exa answered 503): quota exceeded/)
        expect(res.body.detail).not.toMatch(/[\u0000-\u001f\u202e]/)
        // the engine's own text, after the status, is cut to 300 characters
        expect(res.body.detail.slice(res.body.detail.indexOf(': ') + 2).length).toBeLessThanOrEqual(300)
      }
      const redirect = await google('query=redirect')
      expectProblem(redirect, 502, 'UPSTREAM_ERROR')
      expect(redirect.body.detail).toContain('redirect, which is not followed: set search.google_base_url')
      const garbage = await exa({ query: 'garbage' })
      expectProblem(garbage, 502, 'UPSTREAM_ERROR')
      expect(garbage.body.detail).toBe('Exa answered 200 with something that is not JSON')
    })

    test('a key the engine refuses → 502 with its message, never the key', async () => {
      const wrongGoogle = await setConfig(t, ctx.accounts.other.access, 'google_api_key', 'AIzaWrong-key-never-shown-999')
      const wrongExa = await setConfig(t, ctx.accounts.other.access, 'exa_api_key', 'exa-wrong-key-never-shown-888')
      const g = await google('query=x', ctx.accounts.other.access)
      expectProblem(g, 502, 'UPSTREAM_ERROR')
      expect(g.body.detail).toBe('Google answered 400: API key not valid. Please pass a valid API key.')
      const e = await exa({ query: 'x' }, ctx.accounts.other.access)
      expect(e.body.detail).toBe('Exa answered 401: Invalid API key')
      for (const text of [g.text, e.text, t.logText()]) {
        expect(text).not.toContain('AIzaWrong-key-never-shown-999')
        expect(text).not.toContain('exa-wrong-key-never-shown-888')
      }
      for (const id of [wrongGoogle, wrongExa]) await t.request('DELETE', `/api/v1/configs/${id}`, { token: ctx.accounts.other.access })
    })

    test('an engine that cannot be reached → 502; one that does not answer in time → 502 saying so', async () => {
      const closed = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('') })
      const port = closed.port
      await closed.stop(true)
      const base = await setConfig(t, ctx.accounts.other.access, 'google_base_url', `http://127.0.0.1:${port}/customsearch/v1`)
      const key = await setConfig(t, ctx.accounts.other.access, 'google_api_key', USER_GOOGLE)
      const res = await google('query=x', ctx.accounts.other.access)
      expectProblem(res, 502, 'UPSTREAM_ERROR')
      expect(res.body.detail).toStartWith('Google could not be reached')
      expect(res.text).not.toContain(USER_GOOGLE)
      for (const id of [base, key]) await t.request('DELETE', `/api/v1/configs/${id}`, { token: ctx.accounts.other.access })

      const search = createSearchService({ configs: t.deps.services.configs, outbound: t.deps.services.outbound, logger: createLogger('silent'), timeoutMs: 150 })
      const started = Date.now()
      await expect(search.google({ userId: ctx.accounts.user.id, role: 'user' }, { query: 'hang:3000' })).rejects.toMatchObject({ status: 502, code: 'UPSTREAM_ERROR', detail: 'Google did not answer within 0.15 s' })
      await expect(search.exa({ userId: ctx.accounts.user.id, role: 'user' }, { query: 'hang:3000' })).rejects.toMatchObject({ status: 502, detail: 'Exa did not answer within 0.15 s' })
      expect(Date.now() - started).toBeLessThan(2000)
    })

    test("a personal base URL is sent the caller's own key only: never a global one", async () => {
      const own = await startFakeSearch({ google: [USER_GOOGLE], exa: [USER_EXA] })
      try {
        const other = ctx.accounts.other.access
        const ids = [await setConfig(t, other, 'google_base_url', own.googleUrl), await setConfig(t, other, 'exa_base_url', own.exaUrl)]
        // keys: only the global ones so far
        const g = await google('query=leak', other)
        expectProblem(g, 422, 'VALIDATION_ERROR')
        expect(named(g)).toEqual(['search.google_api_key'])
        expect(g.body.detail).toContain('must be a personal one to go to your own search.google_base_url')
        const e = await exa({ query: 'leak' }, other)
        expect(named(e)).toEqual(['search.exa_api_key'])
        expect(own.requests).toEqual([])
        // with a key of their own it works; the engine id may be the global one (it is no secret)
        ids.push(await setConfig(t, other, 'google_api_key', USER_GOOGLE), await setConfig(t, other, 'exa_api_key', USER_EXA))
        expect((await google('query=mine&num=1', other)).status).toBe(200)
        expect(last(googleOf(own)).query).toEqual({ key: USER_GOOGLE, cx: GLOBAL_CX, q: 'mine', num: '1' })
        expect((await exa({ query: 'mine' }, other)).status).toBe(200)
        expect(last(exaOf(own)).headers['x-api-key']).toBe(USER_EXA)
        for (const id of ids) await t.request('DELETE', `/api/v1/configs/${id}`, { token: other })
      } finally {
        await own.stop()
      }
    })

    test('no key ever reaches the log', () => {
      const log = t.logText()
      for (const key of KEYS) expect(log).not.toContain(key)
    })
  })
})

eachDialect('web search proxies: private addresses', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let fake: FakeSearch
  beforeAll(async () => {
    fake = await startFakeSearch({ google: [GLOBAL_GOOGLE, USER_GOOGLE] })
    t = await createTestApp(dialect, { HEARTH_ALLOW_PRIVATE_UPSTREAMS: 'false' })
    ctx = await setupCallers(t)
    for (const [name, value] of [['google_base_url', fake.googleUrl], ['google_api_key', GLOBAL_GOOGLE], ['google_cse_id', GLOBAL_CX]]) await setConfig(t, ctx.accounts.admin.access, name!, value!)
  })
  afterAll(async () => {
    await t.close()
    await fake.stop()
  })

  test("the global base URL is the admins' choice: a user's search reaches it on loopback", async () => {
    const res = await t.request('GET', '/api/v1/proxy/google?query=allowed&num=1', { token: ctx.accounts.user.access })
    expect(res.status).toBe(200)
    expect(last(googleOf(fake)).query.q).toBe('allowed')
  })

  test("a user's own base URL at a private address is refused at every request (502), and nothing is sent", async () => {
    // stored while it was allowed (or while its name resolved elsewhere): the request is checked again
    const { db, t: tables } = t.deps.database
    const other = ctx.accounts.other
    await db.insert(tables.configs).values({ userId: other.id, configGroup: 'search', configName: 'google_base_url', configValue: fake.googleUrl })
    await setConfig(t, other.access, 'google_api_key', USER_GOOGLE)
    const before = fake.requests.length
    const res = await t.request('GET', '/api/v1/proxy/google?query=refused', { token: other.access })
    expectProblem(res, 502, 'UPSTREAM_ERROR')
    expect(res.body.detail).toContain('private address')
    expect(res.text).not.toContain(USER_GOOGLE)
    expect(fake.requests.length).toBe(before)
  })
})
