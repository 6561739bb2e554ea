/**
 * Providers and models (docs/api.md §7): who may see and change what,
 * API keys and headers that never leave the server, validation, and the real wire protocols
 * against the fake upstream (test/fakes/llm.ts).
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { isIPv6 } from 'node:net'
import { hostname, networkInterfaces } from 'node:os'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'
import { register, setupCallers, unique, useCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'

let fake: FakeLlm
beforeAll(async () => {
  fake = await startFakeLlm()
})
afterAll(() => fake.stop())

const DEAD = 'http://127.0.0.1:9/v1'
const GLOBAL_KEY = 'sk-global-secret-0001112223'
const USER_KEY = 'sk-user-secret-0004445556'

type Json = Record<string, any>

async function created(res: TestResponse, prefix: string): Promise<Json> {
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
  expect(res.headers.get('location')).toBe(`${prefix}/${res.body.id}`)
  return res.body
}

/** A provider, without the model sync at creation (its own tests ask for it): most of these providers point nowhere. */
const createProvider = async (t: TestApp, token: string, body: Json) => created(await t.request('POST', '/api/v1/providers', { token, body: { sync_models: false, ...body } }), '/api/v1/providers')
const createModel = async (t: TestApp, token: string, body: Json) => created(await t.request('POST', '/api/v1/models', { token, body }), '/api/v1/models')
const ids = (r: TestResponse) => (r.body.items as Json[]).map((i) => i.id as string)

async function providerRow(t: TestApp, id: string) {
  const { db, t: tables } = t.deps.database
  const [row] = await db.select().from(tables.providers).where(eq(tables.providers.id, id))
  return row
}

// -------------------------------------------------------------------------------------------------

interface Ctx extends CallersContext {
  globalProvider: string
  globalModel: string
  userProvider: string
  userModel: string
}

eachDialect('providers and models: who may do what', (dialect) => {
  let ctx: Ctx
  beforeAll(async () => {
    const t = await createTestApp(dialect)
    const callers = await setupCallers(t)
    const { admin, user } = callers.accounts
    const g = await createProvider(t, admin.access, { name: unique('Global'), type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: GLOBAL_KEY, scope: 'global' })
    const gm = await createModel(t, admin.access, { provider_id: g.id, model_id: 'fake:tokens=2', name: unique('global-model') })
    const u = await createProvider(t, user.access, { name: unique('Personal'), type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: USER_KEY })
    const um = await createModel(t, user.access, { provider_id: u.id, model_id: 'fake:tokens=1', name: unique('user-model') })
    ctx = { ...callers, globalProvider: g.id, globalModel: gm.id, userProvider: u.id, userModel: um.id }
  })
  afterAll(() => ctx.t.close())

  const never = () => [GLOBAL_KEY, USER_KEY, 'api_key_enc', 'apiKeyEnc', '"api_key"']
  const endpoints: [string, (c: Ctx) => string][] = [
    ['GET', () => '/api/v1/providers'],
    ['POST', () => '/api/v1/providers'],
    ['GET', (c) => `/api/v1/providers/${c.globalProvider}`],
    ['PATCH', (c) => `/api/v1/providers/${c.globalProvider}`],
    ['DELETE', (c) => `/api/v1/providers/${c.globalProvider}`],
    ['POST', (c) => `/api/v1/providers/${c.globalProvider}/test`],
    ['POST', (c) => `/api/v1/providers/${c.globalProvider}/sync-models`],
    ['GET', () => '/api/v1/models'],
    ['POST', () => '/api/v1/models'],
    ['GET', (c) => `/api/v1/models/${c.globalModel}`],
    ['PATCH', (c) => `/api/v1/models/${c.globalModel}`],
    ['DELETE', (c) => `/api/v1/models/${c.globalModel}`],
    ['POST', (c) => `/api/v1/models/${c.globalModel}/test`],
  ]
  const hasIds = (want: (c: Ctx) => string[], absent: (c: Ctx) => string[] = () => []) => (r: TestResponse, c: Ctx) => {
    for (const id of want(c)) expect(ids(r)).toContain(id)
    for (const id of absent(c)) expect(ids(r)).not.toContain(id)
  }
  // another user's personal provider and its models: 404 for everyone else, the admin included
  const hidden: (Scenario<Ctx> & { as: 'other' | 'admin' })[] = (['other', 'admin'] as const).flatMap((as) => [
    { name: "another user's provider is invisible", as, method: 'GET', path: (c: Ctx) => `/api/v1/providers/${c.userProvider}`, status: 404, code: 'NOT_FOUND' },
    { name: "another user's provider cannot be changed", as, method: 'PATCH', path: (c: Ctx) => `/api/v1/providers/${c.userProvider}`, body: { name: 'mine now' }, status: 404, code: 'NOT_FOUND' },
    { name: "another user's provider cannot be deleted", as, method: 'DELETE', path: (c: Ctx) => `/api/v1/providers/${c.userProvider}`, status: 404, code: 'NOT_FOUND' },
    { name: "another user's provider cannot be tested", as, method: 'POST', path: (c: Ctx) => `/api/v1/providers/${c.userProvider}/test`, status: 404, code: 'NOT_FOUND' },
    { name: "another user's provider cannot be synced", as, method: 'POST', path: (c: Ctx) => `/api/v1/providers/${c.userProvider}/sync-models`, status: 404, code: 'NOT_FOUND' },
    { name: "no models can be added to another user's provider", as, method: 'POST', path: '/api/v1/models', body: (c: Ctx) => ({ provider_id: c.userProvider, model_id: 'intruder' }), status: 404, code: 'NOT_FOUND' },
    { name: "another user's model is invisible", as, method: 'GET', path: (c: Ctx) => `/api/v1/models/${c.userModel}`, status: 404, code: 'NOT_FOUND' },
    { name: "another user's model cannot be changed", as, method: 'PATCH', path: (c: Ctx) => `/api/v1/models/${c.userModel}`, body: { input_price: 0 }, status: 404, code: 'NOT_FOUND' },
    { name: "another user's model cannot be deleted", as, method: 'DELETE', path: (c: Ctx) => `/api/v1/models/${c.userModel}`, status: 404, code: 'NOT_FOUND' },
    { name: "another user's model cannot be tested", as, method: 'POST', path: (c: Ctx) => `/api/v1/models/${c.userModel}/test`, status: 404, code: 'NOT_FOUND' },
    { name: "the list has global providers, not another user's", as, method: 'GET', path: '/api/v1/providers', status: 200, check: hasIds((c) => [c.globalProvider], (c) => [c.userProvider]) },
    { name: "the catalogue has global models, not another user's", as, method: 'GET', path: '/api/v1/models', status: 200, check: hasIds((c) => [c.globalModel], (c) => [c.userModel]) },
    { name: "filtering on another user's provider finds nothing", as, method: 'GET', path: (c: Ctx) => `/api/v1/models?provider_id=${c.userProvider}`, status: 200, check: (r: TestResponse) => expect(r.body).toMatchObject({ items: [], total: 0 }) },
  ])

  scenarios<Ctx>(() => ctx, [
    ...endpoints.map(([method, path]): Scenario<Ctx> => ({ name: 'needs credentials', as: 'guest', method, path, body: method === 'GET' || method === 'DELETE' ? undefined : {}, status: 401, code: 'UNAUTHORIZED' })),

    // a user: personal providers only; global ones are read-only
    { name: 'a user creates a personal provider (the default scope)', as: 'user', method: 'POST', path: '/api/v1/providers', body: { name: unique('Mine'), type: 'openai', api_key: 'sk-mine-0000000000zzzz' }, status: 201, notContains: ['sk-mine-0000000000zzzz'],
      check: (r) => expect(r.body).toMatchObject({ scope: 'personal', type: 'openai', api_key_hint: 'sk-...zzzz', is_default: false, timeout_ms: 120000, base_url: null }) },
    { name: 'a user cannot create a global provider', as: 'user', method: 'POST', path: '/api/v1/providers', body: { name: unique('Sneaky'), type: 'openai', scope: 'global' }, status: 403, code: 'FORBIDDEN' },
    { name: 'a user sees global and own providers', as: 'user', method: 'GET', path: '/api/v1/providers', status: 200, notContains: never, check: hasIds((c) => [c.globalProvider, c.userProvider]) },
    { name: 'scope filter: global only', as: 'user', method: 'GET', path: '/api/v1/providers?scope=global', status: 200, check: hasIds((c) => [c.globalProvider], (c) => [c.userProvider]) },
    { name: 'scope filter: personal only', as: 'user', method: 'GET', path: '/api/v1/providers?scope=personal', status: 200, check: hasIds((c) => [c.userProvider], (c) => [c.globalProvider]) },
    { name: 'bad scope filter', as: 'user', method: 'GET', path: '/api/v1/providers?scope=everything', status: 422, code: 'VALIDATION_ERROR' },
    { name: 'a user reads a global provider', as: 'user', method: 'GET', path: (c) => `/api/v1/providers/${c.globalProvider}`, status: 200, notContains: never, check: (r) => expect(r.body).toMatchObject({ scope: 'global', api_key_hint: 'sk-...2223' }) },
    { name: 'a user cannot change a global provider', as: 'user', method: 'PATCH', path: (c) => `/api/v1/providers/${c.globalProvider}`, body: { name: 'hijacked' }, status: 403, code: 'FORBIDDEN' },
    { name: 'a user cannot delete a global provider', as: 'user', method: 'DELETE', path: (c) => `/api/v1/providers/${c.globalProvider}`, status: 403, code: 'FORBIDDEN' },
    { name: 'a user cannot sync a global provider', as: 'user', method: 'POST', path: (c) => `/api/v1/providers/${c.globalProvider}/sync-models`, status: 403, code: 'FORBIDDEN' },
    { name: 'a user may test a global provider', as: 'user', method: 'POST', path: (c) => `/api/v1/providers/${c.globalProvider}/test`, status: 200, notContains: never, check: (r) => expect(r.body).toMatchObject({ ok: true, models_found: 3 }) },
    { name: 'a user changes their own provider', as: 'user', method: 'PATCH', path: (c) => `/api/v1/providers/${c.userProvider}`, body: { timeout_ms: 30000 }, status: 200, notContains: never, check: (r) => expect(r.body.timeout_ms).toBe(30000) },
    { name: 'a user sees global and own models', as: 'user', method: 'GET', path: '/api/v1/models', status: 200, check: hasIds((c) => [c.globalModel, c.userModel]) },
    { name: 'a user reads a global model', as: 'user', method: 'GET', path: (c) => `/api/v1/models/${c.globalModel}`, status: 200, check: (r, c) => expect(r.body).toMatchObject({ id: c.globalModel, provider_id: c.globalProvider, model_id: 'fake:tokens=2' }) },
    { name: 'a user cannot add models to a global provider', as: 'user', method: 'POST', path: '/api/v1/models', body: (c: Ctx) => ({ provider_id: c.globalProvider, model_id: 'extra' }), status: 403, code: 'FORBIDDEN' },
    { name: 'a user cannot change a global model', as: 'user', method: 'PATCH', path: (c) => `/api/v1/models/${c.globalModel}`, body: { input_price: 0 }, status: 403, code: 'FORBIDDEN' },
    { name: 'a user cannot delete a global model', as: 'user', method: 'DELETE', path: (c) => `/api/v1/models/${c.globalModel}`, status: 403, code: 'FORBIDDEN' },
    { name: 'a user may test a global model', as: 'user', method: 'POST', path: (c) => `/api/v1/models/${c.globalModel}/test`, status: 200, check: (r) => expect(r.body).toMatchObject({ ok: true }) },
    { name: 'unknown provider', as: 'user', method: 'GET', path: '/api/v1/providers/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'unknown model', as: 'user', method: 'GET', path: '/api/v1/models/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'models of an unknown provider', as: 'user', method: 'POST', path: '/api/v1/models', body: { provider_id: 'nope', model_id: 'x' }, status: 404, code: 'NOT_FOUND' },

    // another user and the admin: a user's personal provider does not exist for them
    ...hidden,
    { name: 'the other user sees global providers too', as: 'other', method: 'GET', path: (c) => `/api/v1/providers/${c.globalProvider}`, status: 200 },

    // a global provider's base_url (where the instance sends its calls) is for admins: null for everyone else, the field kept
    ...(['user', 'other'] as const).map((as): Scenario<Ctx> => ({
      name: "a global provider's base_url is null for a non-admin", as, method: 'GET', path: (c) => `/api/v1/providers/${c.globalProvider}`, status: 200, notContains: () => [fake.url],
      check: (r) => expect(r.body).toMatchObject({ scope: 'global', base_url: null, api_key_hint: 'sk-...2223' }),
    })),
    { name: "the list shows a user their own provider's base_url, not the global one's", as: 'user', method: 'GET', path: '/api/v1/providers', status: 200,
      check: (r, c) => {
        const byId = Object.fromEntries((r.body.items as { id: string; base_url: string | null }[]).map((p) => [p.id, p.base_url]))
        expect([byId[c.globalProvider], byId[c.userProvider]]).toEqual([null, `${fake.url}/v1`])
      } },
    { name: "the other user's list shows no global base_url", as: 'other', method: 'GET', path: '/api/v1/providers?scope=global', status: 200, notContains: () => [fake.url],
      check: (r) => expect((r.body.items as { base_url: string | null }[]).every((p) => p.base_url === null)).toBe(true) },
    { name: "the admin sees a global provider's base_url", as: 'admin', method: 'GET', path: (c) => `/api/v1/providers/${c.globalProvider}`, status: 200, check: (r) => expect(r.body.base_url).toBe(`${fake.url}/v1`) },
    { name: "the admin's list has global base_urls", as: 'admin', method: 'GET', path: '/api/v1/providers?scope=global', status: 200,
      check: (r, c) => expect((r.body.items as { id: string; base_url: string | null }[]).find((p) => p.id === c.globalProvider)!.base_url).toBe(`${fake.url}/v1`) },

    // the admin: global providers
    { name: 'the admin creates a global provider', as: 'admin', method: 'POST', path: '/api/v1/providers', body: { name: unique('AdminGlobal'), type: 'anthropic', scope: 'global' }, status: 201, check: (r) => expect(r.body).toMatchObject({ scope: 'global', type: 'anthropic', api_key_hint: null }) },
    { name: "the admin's providers default to global (for everyone)", as: 'admin', method: 'POST', path: '/api/v1/providers', body: { name: unique('AdminDefault'), type: 'google' }, status: 201, check: (r) => expect(r.body.scope).toBe('global') },
    { name: 'the admin keeps a provider of their own with scope: personal', as: 'admin', method: 'POST', path: '/api/v1/providers', body: { name: unique('AdminOwn'), type: 'google', scope: 'personal' }, status: 201, check: (r) => expect(r.body.scope).toBe('personal') },
    { name: 'the admin changes a global provider', as: 'admin', method: 'PATCH', path: (c) => `/api/v1/providers/${c.globalProvider}`, body: { timeout_ms: 60000 }, status: 200, notContains: never, check: (r) => expect(r.body).toMatchObject({ timeout_ms: 60000, api_key_hint: 'sk-...2223' }) },
    { name: 'the admin changes a global model', as: 'admin', method: 'PATCH', path: (c) => `/api/v1/models/${c.globalModel}`, body: { input_price: 2.5 }, status: 200, check: (r) => expect(r.body.input_price).toBe(2.5) },

    // nothing above changed or removed the user's things
    { name: "the user's provider survived every attempt", as: 'user', method: 'GET', path: (c) => `/api/v1/providers/${c.userProvider}`, status: 200, check: (r) => expect(r.body.name).not.toBe('mine now') },
    { name: "the user's model survived every attempt", as: 'user', method: 'GET', path: (c) => `/api/v1/models/${c.userModel}`, status: 200, check: (r) => expect(r.body.input_price).toBe(0) },
    { name: 'the global provider survived the user', as: 'user', method: 'GET', path: (c) => `/api/v1/providers/${c.globalProvider}`, status: 200, check: (r) => expect(r.body.name).not.toBe('hijacked') },
  ])
})

// -------------------------------------------------------------------------------------------------

eachDialect('provider API keys and headers are write-only', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)))

  const KEY = 'sk-test-1234567890abcd'
  const HEADER_VALUE = 'hdr-secret-value-9876'

  test('the key and headers appear in no response, no log line and not in clear in the database', async () => {
    const token = ctx.accounts.user.access
    const res = await t.request('POST', '/api/v1/providers', { token, body: { name: unique('Secret'), type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: KEY, headers: { 'X-Custom-Auth': HEADER_VALUE } } })
    const p = await created(res, '/api/v1/providers')
    expect(p).toEqual({ id: expect.any(String), name: expect.any(String), type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key_hint: 'sk-...abcd', scope: 'personal', is_default: false, timeout_ms: 120000, created_at: expect.any(String), model_sync: { ok: true, added: 3, total: 3 } })
    expect(p.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    const texts = [res.text]
    texts.push((await t.request('GET', '/api/v1/providers', { token })).text)
    texts.push((await t.request('GET', `/api/v1/providers/${p.id}`, { token })).text)
    const patched = await t.request('PATCH', `/api/v1/providers/${p.id}`, { token, body: { name: unique('Renamed') } })
    expect(patched.body.api_key_hint).toBe('sk-...abcd')
    texts.push(patched.text)
    // using the key: the upstream gets it (and the extra header), the caller never sees it
    const before = fake.requests.length
    const tested = await t.request('POST', `/api/v1/providers/${p.id}/test`, { token })
    expect(tested.body.ok).toBe(true)
    const sent = fake.requests.slice(before).find((r) => r.headers.authorization === `Bearer ${KEY}`)
    expect(sent?.headers['x-custom-auth']).toBe(HEADER_VALUE)
    texts.push(tested.text)
    texts.push((await t.request('POST', `/api/v1/providers/${p.id}/sync-models`, { token })).text)
    texts.push((await t.request('GET', `/api/v1/models?provider_id=${p.id}`, { token })).text)
    // The document names the write-only fields in request bodies, never in an answer's schema.
    const doc = await t.request('GET', '/openapi.json')
    expect(doc.text).not.toContain(KEY)
    expect(doc.text).not.toContain(HEADER_VALUE)
    expect(Object.keys(doc.body.paths['/api/v1/providers'].post.requestBody.content['application/json'].schema.properties)).toEqual(expect.arrayContaining(['api_key', 'headers']))
    const answerFields = new Set<string>()
    const collect = (v: unknown): void => {
      if (Array.isArray(v)) return v.forEach(collect)
      if (!v || typeof v !== 'object') return
      for (const [k, x] of Object.entries(v)) {
        if (k === 'properties' && x && typeof x === 'object') for (const name of Object.keys(x)) answerFields.add(name)
        collect(x)
      }
    }
    collect(doc.body.components.schemas)
    // (GET /mcp/user is an mcpServers document in the Cursor format, whose `headers` hold masked values only: test/mcp.test.ts)
    for (const [path, ops] of Object.entries(doc.body.paths) as [string, Record<string, { responses: unknown }>][]) if (path !== '/api/v1/mcp/user') for (const op of Object.values(ops)) collect(op.responses)
    for (const secret of ['api_key', 'headers', 'api_key_enc', 'headers_enc']) expect(answerFields.has(secret)).toBe(false)
    for (const text of texts) {
      expect(text).not.toContain(KEY)
      expect(text).not.toContain('1234567890')
      expect(text).not.toContain(HEADER_VALUE)
      expect(text).not.toContain('"api_key"')
      expect(text).not.toContain('"headers"')
      expect(text).not.toContain('api_key_enc')
    }
    const row = await providerRow(t, p.id)
    expect(row?.apiKeyEnc).toStartWith('v1.')
    expect(row?.apiKeyEnc).not.toContain(KEY)
    expect(row?.apiKeyEnc).not.toContain('1234567890')
    expect(row?.headersEnc).toStartWith('v1.')
    expect(row?.headersEnc).not.toContain(HEADER_VALUE)
    expect(row?.headersEnc).not.toContain('X-Custom-Auth')
    expect(JSON.stringify(row)).not.toContain(KEY)
    const log = t.logText()
    expect(log.length).toBeGreaterThan(0)
    expect(log).not.toContain(KEY)
    expect(log).not.toContain(HEADER_VALUE)
  })

  test('the same key sealed twice gives two different ciphertexts (fresh IV)', async () => {
    const token = ctx.accounts.user.access
    const a = await createProvider(t, token, { name: unique('A'), type: 'openai', api_key: KEY })
    const b = await createProvider(t, token, { name: unique('B'), type: 'openai', api_key: KEY })
    expect((await providerRow(t, a.id))?.apiKeyEnc).not.toBe((await providerRow(t, b.id))?.apiKeyEnc)
  })

  test('PATCH api_key: a new key changes the hint, null removes key and hint; headers: null removes them', async () => {
    const token = ctx.accounts.user.access
    const p = await createProvider(t, token, { name: unique('Rotate'), type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: KEY, headers: { 'X-A': 'b-value-123' } })
    const rotated = await t.request('PATCH', `/api/v1/providers/${p.id}`, { token, body: { api_key: 'sk-rotated-key-00009999' } })
    expect(rotated.status).toBe(200)
    expect(rotated.body.api_key_hint).toBe('sk-...9999')
    expect(rotated.text).not.toContain('sk-rotated-key-00009999')
    // the connection cache follows the change: the upstream now gets the new key
    const before = fake.requests.length
    expect((await t.request('POST', `/api/v1/providers/${p.id}/test`, { token })).body.ok).toBe(true)
    expect(fake.requests.slice(before).map((r) => r.headers.authorization)).toContain('Bearer sk-rotated-key-00009999')

    const cleared = await t.request('PATCH', `/api/v1/providers/${p.id}`, { token, body: { api_key: null, headers: null } })
    expect(cleared.status).toBe(200)
    expect(cleared.body.api_key_hint).toBeNull()
    expect((await t.request('GET', `/api/v1/providers/${p.id}`, { token })).body.api_key_hint).toBeNull()
    const row = await providerRow(t, p.id)
    expect(row?.apiKeyEnc).toBeNull()
    expect(row?.apiKeyHint).toBeNull()
    expect(row?.headersEnc).toBeNull()
    // without a key the fake refuses: ok false, not an error
    const tested = await t.request('POST', `/api/v1/providers/${p.id}/test`, { token })
    expect(tested.status).toBe(200)
    expect(tested.body).toMatchObject({ ok: false, models_found: 0 })
    expect(tested.body.error).toContain('401')
  })

  test('a PATCH without api_key keeps the key', async () => {
    const token = ctx.accounts.user.access
    const p = await createProvider(t, token, { name: unique('Keep'), type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: KEY })
    const sealed = (await providerRow(t, p.id))?.apiKeyEnc
    const res = await t.request('PATCH', `/api/v1/providers/${p.id}`, { token, body: { timeout_ms: 5000 } })
    expect(res.body).toMatchObject({ api_key_hint: 'sk-...abcd', timeout_ms: 5000 })
    expect((await providerRow(t, p.id))?.apiKeyEnc).toBe(sealed!)
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('provider validation', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)))

  const ok = { name: 'Valid', type: 'openai_compatible', base_url: 'https://llm.example.com/v1' }
  const bad: [string, Json, string][] = [
    ['unknown type', { ...ok, type: 'bogus' }, 'type'],
    ['missing type', { name: 'x' }, 'type'],
    ['missing name', { type: 'openai' }, 'name'],
    ['blank name', { ...ok, name: '   ' }, 'name'],
    ['ftp base_url', { ...ok, base_url: 'ftp://x' }, 'base_url'],
    ['javascript: base_url', { ...ok, base_url: 'javascript:alert(1)' }, 'base_url'],
    ['file: base_url', { ...ok, base_url: 'file:///etc/passwd' }, 'base_url'],
    ['not a URL', { ...ok, base_url: 'not a url' }, 'base_url'],
    ['timeout_ms too small', { ...ok, timeout_ms: 999 }, 'timeout_ms'],
    ['timeout_ms too large', { ...ok, timeout_ms: 600_001 }, 'timeout_ms'],
    ['timeout_ms not an integer', { ...ok, timeout_ms: 1500.5 }, 'timeout_ms'],
    ['bad scope', { ...ok, scope: 'team' }, 'scope'],
    ['empty api_key', { ...ok, api_key: '' }, 'api_key'],
    ['bad header name', { ...ok, headers: { 'Bad Header': 'x' } }, 'headers'],
    ['openai_compatible without base_url', { name: 'x', type: 'openai_compatible' }, 'base_url'],
    ['openai_compatible with a null base_url', { name: 'x', type: 'openai_compatible', base_url: null }, 'base_url'],
  ]
  for (const [name, body, path] of bad) {
    test(`POST: ${name} → 422 naming ${path}`, async () => {
      const res = await t.request('POST', '/api/v1/providers', { token: ctx.accounts.user.access, body })
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect((res.body.errors as { path: string }[]).map((e) => e.path.split('.')[0])).toContain(path)
    })
  }

  test('PATCH: bad values → 422; an openai_compatible provider cannot lose its base_url; type and scope cannot be changed', async () => {
    const token = ctx.accounts.user.access
    const p = await createProvider(t, token, { ...ok, name: unique('Fixed') })
    for (const body of [{ base_url: 'ftp://x' }, { timeout_ms: 10 }, { name: '' }, { base_url: null }]) {
      const res = await t.request('PATCH', `/api/v1/providers/${p.id}`, { token, body })
      expectProblem(res, 422, 'VALIDATION_ERROR')
    }
    const ignored = await t.request('PATCH', `/api/v1/providers/${p.id}`, { token, body: { type: 'anthropic', scope: 'global' } })
    expect(ignored.status).toBe(200)
    expect(ignored.body).toMatchObject({ type: 'openai_compatible', scope: 'personal', base_url: ok.base_url })
  })

  test('unknown fields are ignored and never echoed (owner_id cannot be smuggled in)', async () => {
    const res = await t.request('POST', '/api/v1/providers', { token: ctx.accounts.user.access, body: { ...ok, name: unique('Extra'), surprise: 'boo-field', owner_id: ctx.accounts.other.id, api_key_enc: 'v1.forged' } })
    const p = await created(res, '/api/v1/providers')
    expect(res.text).not.toContain('boo-field')
    expect(res.text).not.toContain('surprise')
    expect(p.scope).toBe('personal')
    const row = await providerRow(t, p.id)
    expect(row?.ownerId).toBe(ctx.accounts.user.id)
    expect(row?.apiKeyEnc).toBeNull()
    expect((await t.request('GET', `/api/v1/providers/${p.id}`, { token: ctx.accounts.other.access })).status).toBe(404)
  })

  test('model validation: bad prices and sizes → 422; a missing model_id → 422', async () => {
    const token = ctx.accounts.user.access
    const p = await createProvider(t, token, { ...ok, name: unique('Models') })
    const bodies: [Json, string][] = [
      [{ provider_id: p.id }, 'model_id'],
      [{ provider_id: p.id, model_id: '' }, 'model_id'],
      [{ provider_id: p.id, model_id: 'm', input_price: -1 }, 'input_price'],
      [{ provider_id: p.id, model_id: 'm', output_price: 'free' }, 'output_price'],
      [{ provider_id: p.id, model_id: 'm', context_window: 0 }, 'context_window'],
      [{ provider_id: p.id, model_id: 'm', supports_tools: 'yes' }, 'supports_tools'],
      [{ model_id: 'm' }, 'provider_id'],
    ]
    for (const [body, path] of bodies) {
      const res = await t.request('POST', '/api/v1/models', { token, body })
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect((res.body.errors as { path: string }[]).map((e) => e.path)).toContain(path)
    }
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('providers against the fake upstream', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)))

  const kinds: { type: string; base: () => string; path: string; header: (key: string) => [string, string] }[] = [
    { type: 'openai_compatible', base: () => `${fake.url}/v1`, path: '/v1/models', header: (k) => ['authorization', `Bearer ${k}`] },
    { type: 'openai', base: () => `${fake.url}/v1`, path: '/v1/models', header: (k) => ['authorization', `Bearer ${k}`] },
    { type: 'anthropic', base: () => `${fake.url}/v1`, path: '/v1/models', header: (k) => ['x-api-key', k] },
    { type: 'google', base: () => `${fake.url}/v1beta`, path: '/v1beta/models', header: (k) => ['x-goog-api-key', k] },
  ]

  for (const kind of kinds) {
    test(`test (${kind.type}): ok, 3 models, the key in the protocol's own header`, async () => {
      const key = `sk-${kind.type}-${unique('k')}`
      const p = await createProvider(t, ctx.accounts.user.access, { name: unique(kind.type), type: kind.type, base_url: kind.base(), api_key: key })
      const before = fake.requests.length
      const res = await t.request('POST', `/api/v1/providers/${p.id}/test`, { token: ctx.accounts.user.access })
      expect(res.status).toBe(200)
      expect(res.body).toEqual({ ok: true, models_found: 3, latency_ms: expect.any(Number) })
      expect(res.body.latency_ms).toBeGreaterThanOrEqual(0)
      expect(res.text).not.toContain(key)
      const [name, value] = kind.header(key)
      const sent = fake.requests.slice(before).filter((r) => r.headers[name] === value)
      expect(sent).toHaveLength(1)
      expect(sent[0]!.method).toBe('GET')
      expect(sent[0]!.path.split('?')[0]).toBe(kind.path)
      if (kind.type === 'anthropic') expect(sent[0]!.headers['anthropic-version']).toBeTruthy()
      // the key goes only in that header
      const others = ['authorization', 'x-api-key', 'x-goog-api-key'].filter((h) => h !== name)
      for (const h of others) expect(sent[0]!.headers[h] ?? '').not.toContain(key)
      expect(sent[0]!.path).not.toContain(key)
    })

    test(`a model of a ${kind.type} provider answers its one-token test through the streaming path`, async () => {
      const token = ctx.accounts.user.access
      const p = await createProvider(t, token, { name: unique(kind.type), type: kind.type, base_url: kind.base(), api_key: `sk-${unique('m')}` })
      const good = await createModel(t, token, { provider_id: p.id, model_id: 'fake:tokens=2' })
      const res = await t.request('POST', `/api/v1/models/${good.id}/test`, { token })
      expect(res.status).toBe(200)
      expect(res.body).toEqual({ ok: true, latency_ms: expect.any(Number) })
      const failing = await createModel(t, token, { provider_id: p.id, model_id: 'fake:fail=500' })
      const failed = await t.request('POST', `/api/v1/models/${failing.id}/test`, { token })
      expect(failed.status).toBe(200)
      // (no asymmetric matchers in toMatchObject here: Bun's toMatchObject writes them into the received object)
      expect(failed.body).toEqual({ ok: false, latency_ms: expect.any(Number), error: expect.stringContaining('500') })
    })
  }

  test('test against a dead port: 200 ok false with an error, not a 5xx', async () => {
    const key = 'sk-dead-port-key-77776666'
    const p = await createProvider(t, ctx.accounts.user.access, { name: unique('Dead'), type: 'openai_compatible', base_url: DEAD, api_key: key, timeout_ms: 5000 })
    const res = await t.request('POST', `/api/v1/providers/${p.id}/test`, { token: ctx.accounts.user.access })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ ok: false, models_found: 0, latency_ms: expect.any(Number), error: expect.stringMatching(/\S/) })
    expect(res.text).not.toContain(key)
  })

  test('test against an upstream answering with an error status: ok false naming the status', async () => {
    // the fake has no such route: a 404 with an OpenAI error body
    const p = await createProvider(t, ctx.accounts.user.access, { name: unique('NoRoute'), type: 'openai_compatible', base_url: `${fake.url}/nowhere`, api_key: 'sk-x-0000000000' })
    const res = await t.request('POST', `/api/v1/providers/${p.id}/test`, { token: ctx.accounts.user.access })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ ok: false, models_found: 0 })
    expect(res.body.error).toContain('404')
  })

  test('a model test against a dead port: ok false with an error', async () => {
    const token = ctx.accounts.user.access
    const p = await createProvider(t, token, { name: unique('DeadModel'), type: 'openai_compatible', base_url: DEAD, api_key: 'sk-dead-0000000000', timeout_ms: 5000 })
    const m = await createModel(t, token, { provider_id: p.id, model_id: 'fake' })
    const res = await t.request('POST', `/api/v1/models/${m.id}/test`, { token })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ ok: false, latency_ms: expect.any(Number), error: expect.stringMatching(/\S/) })
  })

  test('sync-models adds the 3 upstream models once; a second sync adds none and keeps changed ones', async () => {
    const token = ctx.accounts.user.access
    const p = await createProvider(t, token, { name: unique('Sync'), type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'sk-sync-key-0000111122' })
    const first = await t.request('POST', `/api/v1/providers/${p.id}/sync-models`, { token })
    expect(first.status).toBe(200)
    expect(first.body).toEqual({ added: 3, total: 3 })
    const list = await t.request('GET', `/api/v1/models?provider_id=${p.id}`, { token })
    expect(list.body.total).toBe(3)
    expect((list.body.items as Json[]).map((m) => m.model_id).sort()).toEqual(['fake', 'fake-large', 'fake-small'])
    for (const m of list.body.items as Json[]) expect(m).toMatchObject({ provider_id: p.id, provider_name: p.name, name: m.model_id, is_available: true })
    const large = (list.body.items as Json[]).find((m) => m.model_id === 'fake-large')!
    const priced = await t.request('PATCH', `/api/v1/models/${large.id}`, { token, body: { input_price: 3, output_price: 15, name: 'Large (custom)' } })
    expect(priced.status).toBe(200)
    const second = await t.request('POST', `/api/v1/providers/${p.id}/sync-models`, { token })
    expect(second.body).toEqual({ added: 0, total: 3 })
    const kept = await t.request('GET', `/api/v1/models/${large.id}`, { token })
    expect(kept.body).toMatchObject({ id: large.id, input_price: 3, output_price: 15, name: 'Large (custom)', model_id: 'fake-large' })
    // a model removed by hand comes back with the next sync; a hand-added one stays
    await createModel(t, token, { provider_id: p.id, model_id: 'hand-made' })
    const small = (list.body.items as Json[]).find((m) => m.model_id === 'fake-small')!
    expect((await t.request('DELETE', `/api/v1/models/${small.id}`, { token })).status).toBe(204)
    const third = await t.request('POST', `/api/v1/providers/${p.id}/sync-models`, { token })
    expect(third.body).toEqual({ added: 1, total: 4 })
  })

  test('sync-models from a Gemini upstream: names without models/, token limits filled', async () => {
    const token = ctx.accounts.user.access
    const p = await createProvider(t, token, { name: unique('Gem'), type: 'google', base_url: `${fake.url}/v1beta`, api_key: 'AIza-fake-key-0000111122' })
    expect((await t.request('POST', `/api/v1/providers/${p.id}/sync-models`, { token })).body).toEqual({ added: 3, total: 3 })
    const list = await t.request('GET', `/api/v1/models?provider_id=${p.id}`, { token })
    const fakeModel = (list.body.items as Json[]).find((m) => m.model_id === 'fake')
    expect(fakeModel).toMatchObject({ name: 'fake', context_window: 1_048_576, max_output_tokens: 65_536 })
  })

  test('sync-models against a dead upstream: 502 UPSTREAM_ERROR problem', async () => {
    const key = 'sk-dead-sync-key-55554444'
    const p = await createProvider(t, ctx.accounts.user.access, { name: unique('DeadSync'), type: 'openai_compatible', base_url: DEAD, api_key: key, timeout_ms: 5000 })
    const res = await t.request('POST', `/api/v1/providers/${p.id}/sync-models`, { token: ctx.accounts.user.access })
    expectProblem(res, 502, 'UPSTREAM_ERROR')
    expect(res.body).toMatchObject({ status: 502, title: expect.any(String), type: expect.any(String), detail: expect.any(String) })
    expect(res.text).not.toContain(key)
    expect((await t.request('GET', `/api/v1/models?provider_id=${p.id}`, { token: ctx.accounts.user.access })).body.total).toBe(0)
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('a new provider: scope and models', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)))
  const upstreamCalls = (before: number) => fake.requests.slice(before).map((r) => `${r.method} ${r.path}`)

  test("the admin's provider is global and its models are synced at once: another user chats with it, nothing else set up", async () => {
    const { admin, user } = ctx.accounts
    const before = fake.requests.length
    const p = await createProvider(t, admin.access, { name: unique('ForAll'), type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'sk-forall-0000111122', sync_models: true })
    expect(p).toMatchObject({ scope: 'global', model_sync: { ok: true, added: 3, total: 3 } })
    expect(upstreamCalls(before)).toEqual(['GET /v1/models'])
    const models = await t.request('GET', `/api/v1/models?provider_id=${p.id}`, { token: user.access })
    expect((models.body.items as Json[]).map((m) => m.model_id).sort()).toEqual(['fake', 'fake-large', 'fake-small'])
    // the user names no model: the catalogue's default (the first available) answers
    const conversation = await t.request('POST', '/api/v1/conversations', { token: user.access, body: {} })
    const answer = await t.request('POST', `/api/v1/conversations/${conversation.body.id}/messages`, { token: user.access, body: { content: 'Hello?' } })
    expect({ status: answer.status, body: answer.body }).toMatchObject({ status: 201, body: { assistant_message: { status: 'complete' } } })
    expect(answer.body.assistant_message.content).toContain('tok0')
  })

  test('sync_models: false: no model_sync, nothing asked upstream, no models', async () => {
    const before = fake.requests.length
    const p = await createProvider(t, ctx.accounts.user.access, { name: unique('NoSync'), type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'sk-nosync-0000111122', sync_models: false })
    expect(p).not.toHaveProperty('model_sync')
    expect(p.scope).toBe('personal')
    expect(upstreamCalls(before)).toEqual([])
    expect((await t.request('GET', `/api/v1/models?provider_id=${p.id}`, { token: ctx.accounts.user.access })).body.total).toBe(0)
  })

  test('an upstream that cannot list its models: the provider is created all the same; model_sync says why and how to retry', async () => {
    const key = 'sk-dead-create-key-33332222'
    const p = await createProvider(t, ctx.accounts.user.access, { name: unique('DeadAtBirth'), type: 'openai_compatible', base_url: DEAD, api_key: key, timeout_ms: 5000, sync_models: true })
    expect(p.model_sync).toEqual({ ok: false, added: 0, total: 0, error: expect.stringContaining(`/api/v1/providers/${p.id}/sync-models`) })
    expect(JSON.stringify(p)).not.toContain(key)
    expect((await t.request('GET', `/api/v1/providers/${p.id}`, { token: ctx.accounts.user.access })).status).toBe(200)
  })

  test('PATCH takes no sync_models (ignored like any unknown field)', async () => {
    const p = await createProvider(t, ctx.accounts.user.access, { name: unique('Patch'), type: 'openai_compatible', base_url: `${fake.url}/v1` })
    const before = fake.requests.length
    const res = await t.request('PATCH', `/api/v1/providers/${p.id}`, { token: ctx.accounts.user.access, body: { sync_models: true, timeout_ms: 3000 } })
    expect(res.status).toBe(200)
    expect(res.body).not.toHaveProperty('model_sync')
    expect(upstreamCalls(before)).toEqual([])
  })
})

eachDialect('models CRUD', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let provider: Json
  beforeAll(async () => {
    t = await createTestApp(dialect)
    ctx = await setupCallers(t)
    provider = await createProvider(t, ctx.accounts.user.access, { name: unique('Catalogue'), type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'sk-catalogue-00001111' })
  })
  afterAll(() => t.close())

  test('POST → 201 with Location and the Model shape; defaults filled', async () => {
    const token = ctx.accounts.user.access
    const res = await t.request('POST', '/api/v1/models', {
      token,
      body: { provider_id: provider.id, model_id: 'fake:tokens=2', name: 'My fake', input_price: 1.5, output_price: 3, context_window: 8192, supports_tools: true, unknown_field: 'ignored-value' },
    })
    const m = await created(res, '/api/v1/models')
    expect(m).toEqual({
      id: expect.any(String), provider_id: provider.id, provider_name: provider.name, name: 'My fake', model_id: 'fake:tokens=2', context_window: 8192, max_output_tokens: null,
      supports_stream: true, supports_tools: true, supports_vision: false, input_price: 1.5, output_price: 3, is_default: false, is_available: true,
    })
    expect(res.text).not.toContain('ignored-value')
    // name defaults to the upstream name
    const plain = await createModel(t, token, { provider_id: provider.id, model_id: 'plain-model' })
    expect(plain).toMatchObject({ name: 'plain-model', input_price: 0, output_price: 0, context_window: null })
    expect((await t.request('GET', `/api/v1/models/${m.id}`, { token })).body).toEqual(m)
  })

  test('the same model_id twice on one provider → 409; on another provider it is fine', async () => {
    const token = ctx.accounts.user.access
    await createModel(t, token, { provider_id: provider.id, model_id: 'dupe-model' })
    const again = await t.request('POST', '/api/v1/models', { token, body: { provider_id: provider.id, model_id: 'dupe-model', name: 'another name' } })
    expectProblem(again, 409, 'CONFLICT')
    const second = await createProvider(t, token, { name: unique('Second'), type: 'openai', api_key: 'sk-second-000011112222' })
    await createModel(t, token, { provider_id: second.id, model_id: 'dupe-model' })
    // renaming onto an existing model_id is a conflict too
    const other = await createModel(t, token, { provider_id: provider.id, model_id: 'rename-me' })
    expectProblem(await t.request('PATCH', `/api/v1/models/${other.id}`, { token, body: { model_id: 'dupe-model' } }), 409, 'CONFLICT')
  })

  test('PATCH changes only what it names', async () => {
    const token = ctx.accounts.user.access
    const m = await createModel(t, token, { provider_id: provider.id, model_id: 'patch-me', input_price: 1, output_price: 2, supports_vision: true })
    const res = await t.request('PATCH', `/api/v1/models/${m.id}`, { token, body: { name: 'Patched', output_price: 4.25, is_available: false, max_output_tokens: 4096 } })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ ...m, name: 'Patched', output_price: 4.25, is_available: false, max_output_tokens: 4096 })
    const cleared = await t.request('PATCH', `/api/v1/models/${m.id}`, { token, body: { max_output_tokens: null } })
    expect(cleared.body.max_output_tokens).toBeNull()
    expectProblem(await t.request('PATCH', `/api/v1/models/${m.id}`, { token, body: { input_price: -5 } }), 422, 'VALIDATION_ERROR')
  })

  test('is_default on a model clears the other defaults of the same provider', async () => {
    const token = ctx.accounts.user.access
    const a = await createModel(t, token, { provider_id: provider.id, model_id: 'default-a', is_default: true })
    const b = await createModel(t, token, { provider_id: provider.id, model_id: 'default-b', is_default: true })
    expect((await t.request('GET', `/api/v1/models/${a.id}`, { token })).body.is_default).toBe(false)
    expect((await t.request('GET', `/api/v1/models/${b.id}`, { token })).body.is_default).toBe(true)
    await t.request('PATCH', `/api/v1/models/${a.id}`, { token, body: { is_default: true } })
    expect((await t.request('GET', `/api/v1/models/${b.id}`, { token })).body.is_default).toBe(false)
    expect((await t.request('GET', `/api/v1/models/${a.id}`, { token })).body.is_default).toBe(true)
  })

  test('GET filters: provider_id and q (case-insensitive, on name or model_id, LIKE wildcards taken literally)', async () => {
    const token = ctx.accounts.user.access
    const p = await createProvider(t, token, { name: unique('Filter'), type: 'openai', api_key: 'sk-filter-00001111' })
    const alpha = await createModel(t, token, { provider_id: p.id, model_id: 'zeta-alpha-1', name: 'Alpha One' })
    const beta = await createModel(t, token, { provider_id: p.id, model_id: 'zeta-beta-2', name: 'Beta 100%' })
    const byProvider = await t.request('GET', `/api/v1/models?provider_id=${p.id}`, { token })
    expect(ids(byProvider).sort()).toEqual([alpha.id, beta.id].sort())
    expect(byProvider.body).toMatchObject({ total: 2, offset: 0, has_more: false })
    expect(ids(await t.request('GET', '/api/v1/models?q=ALPHA', { token }))).toEqual([alpha.id])
    expect(ids(await t.request('GET', '/api/v1/models?q=zeta-beta', { token }))).toEqual([beta.id])
    expect(ids(await t.request('GET', `/api/v1/models?q=zeta&provider_id=${provider.id}`, { token }))).toEqual([])
    expect(ids(await t.request('GET', '/api/v1/models?q=%25', { token }))).toEqual([beta.id])
    expect(ids(await t.request('GET', '/api/v1/models?q=_', { token }))).toEqual([])
    expect((await t.request('GET', '/api/v1/models?q=nothing-matches-this', { token })).body).toMatchObject({ items: [], total: 0 })
    // providers have the same q filter
    expect(ids(await t.request('GET', `/api/v1/providers?q=${encodeURIComponent(p.name.toUpperCase())}`, { token }))).toEqual([p.id])
  })

  // API.md §1: every list takes ?limit (1–100, default 50) and ?offset and says so in its page
  test('GET /api/v1/models is a §1 list page: limit and offset are honoured, limit out of range is 422', async () => {
    const token = ctx.accounts.user.access
    const p = await createProvider(t, token, { name: unique('Paged'), type: 'openai', api_key: 'sk-paged-00001111' })
    for (const m of ['page-a', 'page-b', 'page-c']) await createModel(t, token, { provider_id: p.id, model_id: m })
    const all = await t.request('GET', `/api/v1/models?provider_id=${p.id}`, { token })
    expect({ total: all.body.total, limit: all.body.limit, offset: all.body.offset, has_more: all.body.has_more }).toEqual({ total: 3, limit: 50, offset: 0, has_more: false })
    const first = await t.request('GET', `/api/v1/models?provider_id=${p.id}&limit=2`, { token })
    expect(first.status).toBe(200)
    expect({ n: first.body.items.length, total: first.body.total, limit: first.body.limit, offset: first.body.offset, has_more: first.body.has_more }).toEqual({ n: 2, total: 3, limit: 2, offset: 0, has_more: true })
    const rest = await t.request('GET', `/api/v1/models?provider_id=${p.id}&limit=2&offset=2`, { token })
    expect({ n: rest.body.items.length, total: rest.body.total, offset: rest.body.offset, has_more: rest.body.has_more }).toEqual({ n: 1, total: 3, offset: 2, has_more: false })
    expect([...ids(first), ...ids(rest)].sort()).toEqual(ids(all).sort())
    expectProblem(await t.request('GET', '/api/v1/models?limit=500', { token }), 422, 'VALIDATION_ERROR')
    expectProblem(await t.request('GET', '/api/v1/models?limit=0', { token }), 422, 'VALIDATION_ERROR')
    const empty = await t.request('GET', '/api/v1/models?provider_id=nothing-here', { token })
    expect(empty.body).toMatchObject({ items: [], total: 0, limit: 50, offset: 0, has_more: false })
  })

  test('GET /api/v1/providers is a §1 list page too', async () => {
    const token = ctx.accounts.other.access
    for (const n of ['PageA', 'PageB', 'PageC']) await createProvider(t, token, { name: unique(n), type: 'openai' })
    const first = await t.request('GET', '/api/v1/providers?scope=personal&limit=2', { token })
    expect(first.status).toBe(200)
    expect({ n: first.body.items.length, total: first.body.total, limit: first.body.limit, has_more: first.body.has_more }).toEqual({ n: 2, total: 3, limit: 2, has_more: true })
    const rest = await t.request('GET', '/api/v1/providers?scope=personal&limit=2&offset=2', { token })
    expect({ n: rest.body.items.length, offset: rest.body.offset, has_more: rest.body.has_more }).toEqual({ n: 1, offset: 2, has_more: false })
    expectProblem(await t.request('GET', '/api/v1/providers?limit=101', { token }), 422, 'VALIDATION_ERROR')
  })

  test('DELETE → 204, then 404; deleting a provider removes its models', async () => {
    const token = ctx.accounts.user.access
    const m = await createModel(t, token, { provider_id: provider.id, model_id: 'short-lived' })
    const del = await t.request('DELETE', `/api/v1/models/${m.id}`, { token })
    expect(del.status).toBe(204)
    expect(del.text).toBe('')
    expectProblem(await t.request('GET', `/api/v1/models/${m.id}`, { token }), 404, 'NOT_FOUND')
    expectProblem(await t.request('DELETE', `/api/v1/models/${m.id}`, { token }), 404, 'NOT_FOUND')

    const p = await createProvider(t, token, { name: unique('Doomed'), type: 'openai', api_key: 'sk-doomed-00001111' })
    const pm = await createModel(t, token, { provider_id: p.id, model_id: 'doomed-model' })
    expect((await t.request('DELETE', `/api/v1/providers/${p.id}`, { token })).status).toBe(204)
    expectProblem(await t.request('GET', `/api/v1/providers/${p.id}`, { token }), 404, 'NOT_FOUND')
    expectProblem(await t.request('GET', `/api/v1/models/${pm.id}`, { token }), 404, 'NOT_FOUND')
    expect(ids(await t.request('GET', '/api/v1/models', { token }))).not.toContain(pm.id)
  })

  test('POST /models/{id}/test: ok for fake:tokens=2, ok false with an error for fake:fail=500', async () => {
    const token = ctx.accounts.user.access
    // 'fake:tokens=2' was added by the first test
    const found = await t.request('GET', `/api/v1/models?provider_id=${provider.id}&q=${encodeURIComponent('fake:tokens=2')}`, { token })
    const good = (found.body.items as Json[])[0] ?? (await createModel(t, token, { provider_id: provider.id, model_id: 'fake:tokens=2' }))
    const before = fake.requests.length
    const ok = await t.request('POST', `/api/v1/models/${good.id}/test`, { token })
    expect(ok.status).toBe(200)
    expect(ok.body).toEqual({ ok: true, latency_ms: expect.any(Number) })
    expect(ok.body.latency_ms).toBeGreaterThanOrEqual(0)
    const call = fake.requests.slice(before).find((r) => r.path === '/v1/chat/completions')
    expect(call?.body).toMatchObject({ model: 'fake:tokens=2', stream: true })
    expect(call?.headers.authorization).toBe('Bearer sk-catalogue-00001111')

    const bad = await createModel(t, token, { provider_id: provider.id, model_id: 'fake:fail=500' })
    const failed = await t.request('POST', `/api/v1/models/${bad.id}/test`, { token })
    expect(failed.status).toBe(200)
    expect(failed.body).toEqual({ ok: false, latency_ms: expect.any(Number), error: expect.stringContaining('500') })
    expect(failed.text).not.toContain('sk-catalogue-00001111')
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('default providers', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)))

  const isDefault = async (token: string, id: string) => {
    const res = await t.request('GET', `/api/v1/providers/${id}`, { token })
    expect(res.status).toBe(200)
    return res.body.is_default as boolean
  }

  test('a second default clears the first of the same owner and scope only', async () => {
    const { user, other, admin } = ctx.accounts
    const g1 = await createProvider(t, admin.access, { name: unique('G1'), type: 'openai', scope: 'global', is_default: true })
    const otherDefault = await createProvider(t, other.access, { name: unique('O1'), type: 'openai', is_default: true })
    const adminOwn = await createProvider(t, admin.access, { name: unique('A1'), type: 'openai', scope: 'personal', is_default: true })
    const p1 = await createProvider(t, user.access, { name: unique('P1'), type: 'openai', is_default: true })
    expect(p1.is_default).toBe(true)
    const p2 = await createProvider(t, user.access, { name: unique('P2'), type: 'openai', is_default: true })
    expect(p2.is_default).toBe(true)
    expect(await isDefault(user.access, p1.id)).toBe(false)
    expect(await isDefault(user.access, p2.id)).toBe(true)
    // other owners and the global scope are untouched
    expect(await isDefault(other.access, otherDefault.id)).toBe(true)
    expect(await isDefault(admin.access, adminOwn.id)).toBe(true)
    expect(await isDefault(user.access, g1.id)).toBe(true)

    // PATCH is_default moves it back
    const back = await t.request('PATCH', `/api/v1/providers/${p1.id}`, { token: user.access, body: { is_default: true } })
    expect(back.body.is_default).toBe(true)
    expect(await isDefault(user.access, p2.id)).toBe(false)
    // PATCH is_default false leaves no default, and clears nothing else
    await t.request('PATCH', `/api/v1/providers/${p1.id}`, { token: user.access, body: { is_default: false } })
    expect(await isDefault(user.access, p1.id)).toBe(false)
    expect(await isDefault(user.access, p2.id)).toBe(false)

    // among global providers: one default
    const g2 = await createProvider(t, admin.access, { name: unique('G2'), type: 'anthropic', scope: 'global', is_default: true })
    expect(await isDefault(user.access, g1.id)).toBe(false)
    expect(await isDefault(user.access, g2.id)).toBe(true)
    expect(await isDefault(admin.access, adminOwn.id)).toBe(true)
    expect(await isDefault(other.access, otherDefault.id)).toBe(true)
  })
})

eachDialect('private upstream addresses', (dialect) => {
  test('users may not aim personal providers at loopback or private addresses; admins may', async () => {
    const t = await createTestApp(dialect, { HEARTH_ALLOW_PRIVATE_UPSTREAMS: 'false' })
    const admin = await register(t, 'ssrfadmin')
    const user = await register(t, 'ssrfuser')
    // these addresses answer nothing here (172.32.0.1 would swallow the model sync for its 10 s): only the address check is tested
    const create = (token: string, base_url: string) => t.request('POST', '/api/v1/providers', { token, body: { name: 'p', type: 'openai_compatible', base_url, api_key: 'k', sync_models: false } })
    for (const url of ['http://127.0.0.1:11434/v1', 'http://localhost:8000/v1', 'http://169.254.169.254/latest', 'http://10.1.2.3/v1', 'http://192.168.1.5/v1', 'http://172.20.0.1/v1', 'http://[::1]:8080/v1', 'http://[fd00::1]/v1', 'http://[::ffff:127.0.0.1]/v1', 'http://0.0.0.0/v1']) {
      const res = await create(user.access, url)
      expect({ url, status: res.status }).toEqual({ url, status: 422 })
      expect(res.body.errors[0].path).toBe('base_url')
    }
    expect((await create(user.access, 'https://api.example.com/v1')).status).toBe(201)
    expect((await create(user.access, 'http://172.32.0.1/v1')).status).toBe(201)
    const mine = await create(user.access, 'https://api.example.com/v1')
    expect((await t.request('PATCH', `/api/v1/providers/${mine.body.id}`, { token: user.access, body: { base_url: 'http://127.0.0.1:9/v1' } })).status).toBe(422)
    expect((await create(admin.access, 'http://127.0.0.1:11434/v1')).status).toBe(201)
    // a host name is judged by what it resolves to: this machine's own name resolves to one of its addresses
    const named = `http://${await privateName()}:9/v1`
    expect((await create(user.access, named)).status).toBe(422)
    expect((await t.request('PATCH', `/api/v1/providers/${mine.body.id}`, { token: user.access, body: { base_url: named } })).status).toBe(422)
    expect((await create(admin.access, named)).status).toBe(201)
    await t.close()
  })

  test("a user's provider whose name resolves to a private address later is refused before every call, and nothing is sent", async () => {
    const t = await createTestApp(dialect, { HEARTH_ALLOW_PRIVATE_UPSTREAMS: 'false' })
    await register(t, 'ssrfadmin2')
    const user = await register(t, 'ssrfuser2')
    // as if the name had resolved to a public address when it was set, and was pointed at this machine since
    const { db, t: tables } = t.deps.database
    const [row] = await db.insert(tables.providers).values({ name: 'moved', type: 'openai_compatible', baseUrl: `http://${await privateName()}:${new URL(fake.url).port}/v1`, scope: 'personal', ownerId: user.id }).returning()
    await createModel(t, user.access, { provider_id: row!.id, model_id: 'fake', name: 'moved-model' })
    const key = (await t.request('POST', '/api/v1/api-keys', { token: user.access, body: { name: 'k' } })).body.key as string
    const before = fake.requests.length

    const tested = await t.request('POST', `/api/v1/providers/${row!.id}/test`, { token: user.access })
    expect(tested.body).toMatchObject({ ok: false, error: expect.stringContaining('private address') })
    const sync = await t.request('POST', `/api/v1/providers/${row!.id}/sync-models`, { token: user.access })
    expect({ status: sync.status, code: sync.body.code }).toEqual({ status: 502, code: 'UPSTREAM_ERROR' })
    for (const stream of [false, true]) {
      const res = await t.request('POST', '/v1/chat/completions', { token: key, body: { model: 'moved-model', messages: [{ role: 'user', content: 'hi' }], stream } })
      expect({ status: res.status, code: res.body.error?.code }).toEqual({ status: 502, code: 'upstream_error' })
      expect(res.body.error.message).toContain('private address')
    }
    expect(fake.requests.length).toBe(before)
    await t.close()
  })
})

eachDialect('private upstream addresses: every form, every call', (dialect) => {
  const port = () => new URL(fake.url).port
  // this machine's own addresses, as URL hosts
  const own = Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .map((i) => (isIPv6(i.address) ? `[${i.address}]` : i.address))

  test('a base_url in any non-global form is refused for users (422), as are this machine\'s own interface addresses', async () => {
    const t = await createTestApp(dialect, { HEARTH_ALLOW_PRIVATE_UPSTREAMS: 'false' })
    const admin = await register(t, 'formsadmin')
    const user = await register(t, 'formsuser')
    const create = (token: string, base_url: string) => t.request('POST', '/api/v1/providers', { token, body: { name: 'p', type: 'openai_compatible', base_url, api_key: 'k', sync_models: false } })
    const forms = [
      'http://[::127.0.0.1]/v1',
      'http://[::ffff:0:127.0.0.1]/v1',
      'http://[64:ff9b::127.0.0.1]/v1',
      'http://198.18.0.1/v1',
      'http://224.0.0.1/v1',
      'http://255.255.255.255/v1',
      'http://0x7f.1/v1',
      'http://LOCALHOST.:8000/v1',
      'http://foo.localhost./v1',
      `http://${hostname().toUpperCase()}./v1`,
      ...own.map((host) => `http://${host}:8000/v1`),
    ]
    for (const url of forms) {
      const res = await create(user.access, url)
      expect({ url, status: res.status, path: res.body.errors?.[0]?.path }).toEqual({ url, status: 422, path: 'base_url' })
    }
    for (const url of forms) expect({ url, status: (await create(admin.access, url)).status }).toEqual({ url, status: 201 })
    await t.close()
  })

  test("a user's provider stored at a loopback form (`localhost.`, IPv4-mapped, this machine's name with a trailing dot) is refused at every kind of call; nothing is sent", async () => {
    const t = await createTestApp(dialect, { HEARTH_ALLOW_PRIVATE_UPSTREAMS: 'false' })
    await register(t, 'callsadmin')
    const user = await register(t, 'callsuser')
    const key = (await t.request('POST', '/api/v1/api-keys', { token: user.access, body: { name: 'k' } })).body.key as string
    const { db, t: tables } = t.deps.database
    const before = fake.requests.length
    const hosts = ['localhost.', '[::ffff:127.0.0.1]', `${hostname()}.`]
    for (const [i, type] of (['openai_compatible', 'anthropic', 'google'] as const).entries()) {
      const base = `http://${hosts[i]}:${port()}${type === 'google' ? '/v1beta' : '/v1'}`
      // as if it had been accepted before the guard knew these forms
      const [row] = await db.insert(tables.providers).values({ name: `stored-${type}`, type, baseUrl: base, scope: 'personal', ownerId: user.id }).returning()
      const model = await createModel(t, user.access, { provider_id: row!.id, model_id: 'fake', name: `stored-${type}` })
      const tested = await t.request('POST', `/api/v1/providers/${row!.id}/test`, { token: user.access })
      expect({ type, body: tested.body }).toMatchObject({ type, body: { ok: false, error: expect.stringContaining('private address') } })
      const sync = await t.request('POST', `/api/v1/providers/${row!.id}/sync-models`, { token: user.access })
      expect({ type, status: sync.status, code: sync.body.code }).toEqual({ type, status: 502, code: 'UPSTREAM_ERROR' })
      const modelTest = await t.request('POST', `/api/v1/models/${model.id}/test`, { token: user.access })
      expect({ type, body: modelTest.body }).toMatchObject({ type, body: { ok: false, error: expect.stringContaining('private address') } })
      for (const stream of [false, true]) {
        const res = await t.request('POST', '/v1/chat/completions', { token: key, body: { model: `stored-${type}`, messages: [{ role: 'user', content: 'hi' }], stream } })
        expect({ type, stream, status: res.status, code: res.body.error?.code }).toEqual({ type, stream, status: 502, code: 'upstream_error' })
        expect(res.body.error.message).toContain('private address')
      }
      const conversation = (await t.request('POST', '/api/v1/conversations', { token: user.access, body: {} })).body.id
      const chat = await t.request('POST', `/api/v1/conversations/${conversation}/messages`, { token: user.access, body: { content: 'hi', model_id: `stored-${type}` } })
      expect({ type, status: chat.status, code: chat.body.code }).toEqual({ type, status: 502, code: 'UPSTREAM_ERROR' })
      expect(chat.body.detail).toContain('private address')
    }
    expect(fake.requests.length).toBe(before)
    await t.close()
  })

  test("an admin's providers on loopback work, for the admin and, when global, for every user", async () => {
    const t = await createTestApp(dialect, { HEARTH_ALLOW_PRIVATE_UPSTREAMS: 'false' })
    const admin = await register(t, 'loopadmin')
    const user = await register(t, 'loopuser')
    const own = await createProvider(t, admin.access, { name: 'admin-own', type: 'openai_compatible', base_url: `http://localhost.:${port()}/v1`, api_key: 'k' })
    expect((await t.request('POST', `/api/v1/providers/${own.id}/test`, { token: admin.access })).body).toMatchObject({ ok: true, models_found: 3 })
    for (const type of ['openai_compatible', 'google'] as const) {
      const g = await createProvider(t, admin.access, { name: `global-${type}`, type, base_url: `${fake.url}${type === 'google' ? '/v1beta' : '/v1'}`, api_key: 'k', scope: 'global' })
      await createModel(t, admin.access, { provider_id: g.id, model_id: 'fake:tokens=2', name: `global-${type}` })
      const key = (await t.request('POST', '/api/v1/api-keys', { token: user.access, body: { name: `k-${type}` } })).body.key as string
      const res = await t.request('POST', '/v1/chat/completions', { token: key, body: { model: `global-${type}`, messages: [{ role: 'user', content: 'hi' }] } })
      expect({ type, status: res.status, content: res.body.choices?.[0]?.message?.content }).toEqual({ type, status: 200, content: 'tok0 tok1 ' })
    }
    await t.close()
  })
})

/** This machine's own host name, which resolves (through /etc/hosts) to one of its loopback or private addresses. */
async function privateName(): Promise<string> {
  const name = hostname()
  const addresses = (await Bun.dns.lookup(name)).map((a) => a.address)
  // the tests above rely on this; a machine whose name resolves to a public address cannot run them
  expect(addresses.some((a) => /^(127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|::1$|f[cd])/.test(a))).toBe(true)
  return name
}

eachDialect('upstream redirects', (dialect) => {
  test('a provider that redirects is an upstream error naming the redirect; the redirect is not followed', async () => {
    const t = await createTestApp(dialect)
    const admin = await register(t, 'rdadmin')
    // answers every request with a 307 to the same path on the real fake
    const redirector = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: (req) => new Response(null, { status: 307, headers: { location: fake.url + new URL(req.url).pathname } }) })
    const base = `http://127.0.0.1:${redirector.port}/v1`
    const key = (await t.request('POST', '/api/v1/api-keys', { token: admin.access, body: { name: 'k' } })).body.key as string
    const before = fake.requests.length
    for (const type of ['openai_compatible', 'anthropic'] as const) {
      const provider = await createProvider(t, admin.access, { name: `rd-${type}`, type, base_url: base, api_key: 'k', scope: 'global' })
      await createModel(t, admin.access, { provider_id: provider.id, model_id: 'fake', name: `rd-${type}` })
      const tested = await t.request('POST', `/api/v1/providers/${provider.id}/test`, { token: admin.access })
      expect(tested.body).toMatchObject({ ok: false, error: expect.stringContaining('307, a redirect, which is not followed') })
      for (const stream of [false, true]) {
        const res = await t.request('POST', '/v1/chat/completions', { token: key, body: { model: `rd-${type}`, messages: [{ role: 'user', content: 'hi' }], stream } })
        expect({ type, stream, status: res.status, code: res.body.error?.code }).toEqual({ type, stream, status: 502, code: 'upstream_error' })
        expect(res.body.error.message).toContain('a redirect, which is not followed')
      }
      const conversation = (await t.request('POST', '/api/v1/conversations', { token: admin.access, body: {} })).body.id
      const chat = await t.request('POST', `/api/v1/conversations/${conversation}/messages`, { token: admin.access, body: { content: 'hi', model_id: `rd-${type}` } })
      expect({ type, status: chat.status, code: chat.body.code }).toEqual({ type, status: 502, code: 'UPSTREAM_ERROR' })
      expect(chat.body.detail).toContain('a redirect, which is not followed')
    }
    expect(fake.requests.length).toBe(before)
    await redirector.stop(true)
    await t.close()
  })
})
