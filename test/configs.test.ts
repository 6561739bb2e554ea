/**
 * Configs (docs/api.md §10): admin-only grouped key/values; known secret keys are encrypted at rest and
 * only ever shown as a hint; the server itself reads the plain value.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { setupCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'

type Json = Record<string, any>

const GOOGLE_KEY = 'AIzaSyTest-google-key-0123456789'
const EXA_KEY = 'exa-secret-key-abcdef-987654'

async function configRow(t: TestApp, id: string) {
  const { db, t: tables } = t.deps.database
  const [row] = await db.select().from(tables.configs).where(eq(tables.configs.id, id))
  return row
}

interface Ctx extends CallersContext {
  configId: string
}

eachDialect('configs: admins only', (dialect) => {
  let ctx: Ctx
  beforeAll(async () => {
    const t = await createTestApp(dialect)
    const callers = await setupCallers(t)
    const res = await t.request('POST', '/api/v1/configs', { token: callers.accounts.admin.access, body: { config_group: 'general', config_name: 'site_name', config_value: 'Hearth Test' } })
    expect(res.status).toBe(201)
    ctx = { ...callers, configId: res.body.id }
  })
  afterAll(() => ctx.t.close())

  const routes: [string, (c: Ctx) => string, unknown?][] = [
    ['GET', () => '/api/v1/config/info'],
    ['GET', () => '/api/v1/configs'],
    ['GET', () => '/api/v1/configs?config_group=general'],
    ['POST', () => '/api/v1/configs', { config_group: 'search', config_name: 'google_api_key', config_value: 'user-tries-this' }],
    ['GET', (c) => `/api/v1/configs/${c.configId}`],
    ['PUT', (c) => `/api/v1/configs/${c.configId}`, { config_value: 'changed by a user' }],
    ['DELETE', (c) => `/api/v1/configs/${c.configId}`],
  ]
  scenarios<Ctx>(() => ctx, [
    ...routes.map(([method, path, body]): Scenario<Ctx> => ({ name: 'needs credentials', as: 'guest', method, path, body, status: 401, code: 'UNAUTHORIZED' })),
    ...routes.flatMap(([method, path, body]): Scenario<Ctx>[] =>
      (['user', 'other'] as const).map((as) => ({ name: 'admins only', as, method, path, body, status: 403, code: 'FORBIDDEN', notContains: ['Hearth Test'] })),
    ),
    // nothing the users tried changed anything
    { name: 'the value is unchanged', as: 'admin', method: 'GET', path: (c) => `/api/v1/configs/${c.configId}`, status: 200, check: (r) => expect(r.body.config_value).toBe('Hearth Test') },
    { name: 'no key was added by a user', as: 'admin', method: 'GET', path: '/api/v1/configs?config_group=search', status: 200, check: (r) => expect(r.body.total).toBe(0) },
    { name: 'unknown id', as: 'admin', method: 'GET', path: '/api/v1/configs/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: PUT', as: 'admin', method: 'PUT', path: '/api/v1/configs/nope', body: { config_value: 'x' }, status: 404, code: 'NOT_FOUND' },
  ])
})

eachDialect('configs', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let admin: string
  beforeAll(async () => {
    t = await createTestApp(dialect)
    ctx = await setupCallers(t)
    admin = ctx.accounts.admin.access
  })
  afterAll(() => t.close())

  const post = (body: Json) => t.request('POST', '/api/v1/configs', { token: admin, body })

  test('GET /config/info lists the known groups, names, descriptions and secret flags', async () => {
    const res = await t.request('GET', '/api/v1/config/info', { token: admin })
    expect(res.status).toBe(200)
    const groups = res.body as { config_group: string; names: { config_name: string; description: string; secret: boolean }[] }[]
    expect(Array.isArray(groups)).toBe(true)
    for (const g of groups) {
      expect(g.config_group).toMatch(/^[a-z0-9_.-]+$/)
      expect(g.names.length).toBeGreaterThan(0)
      for (const n of g.names) {
        expect(n.config_name).toMatch(/^[a-z0-9_.-]+$/)
        expect(typeof n.description).toBe('string')
        expect(n.description.length).toBeGreaterThan(0)
        expect(typeof n.secret).toBe('boolean')
      }
    }
    const search = groups.find((g) => g.config_group === 'search')
    expect(search?.names.find((n) => n.config_name === 'google_api_key')).toMatchObject({ secret: true })
    expect(search?.names.find((n) => n.config_name === 'exa_api_key')).toMatchObject({ secret: true })
    expect(search?.names.find((n) => n.config_name === 'google_cse_id')).toMatchObject({ secret: false })
  })

  test('a known secret key: 201 with only a hint, is_secret true, encrypted at rest; the server reads the plain value', async () => {
    // asking for is_secret false does not unprotect a known secret
    const res = await post({ config_group: 'search', config_name: 'google_api_key', config_value: GOOGLE_KEY, is_secret: false })
    expect(res.status).toBe(201)
    expect(res.headers.get('location')).toBe(`/api/v1/configs/${res.body.id}`)
    expect(res.body).toEqual({ id: expect.any(String), config_group: 'search', config_name: 'google_api_key', config_value: 'AIz...6789', is_secret: true, created_at: expect.any(String), updated_at: expect.any(String) })
    expect(res.body.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    expect(res.text).not.toContain(GOOGLE_KEY)
    const row = await configRow(t, res.body.id)
    expect(row?.isSecret).toBe(true)
    expect(row?.configValue).toStartWith('v1.')
    expect(row?.configValue).not.toContain(GOOGLE_KEY)
    expect(row?.configValue).not.toContain('0123456789')
    expect(await t.deps.services.configs.value('search', 'google_api_key')).toBe(GOOGLE_KEY)
    for (const text of [(await t.request('GET', '/api/v1/configs', { token: admin })).text, (await t.request('GET', `/api/v1/configs/${res.body.id}`, { token: admin })).text]) {
      expect(text).not.toContain(GOOGLE_KEY)
      expect(text).toContain('AIz...6789')
    }
  })

  test('a non-secret value is returned as is and stored as is', async () => {
    const res = await post({ config_group: 'search', config_name: 'google_cse_id', config_value: 'cx-0123:abc' })
    expect(res.status).toBe(201)
    expect(res.body).toMatchObject({ config_group: 'search', config_name: 'google_cse_id', config_value: 'cx-0123:abc', is_secret: false })
    expect((await configRow(t, res.body.id))?.configValue).toBe('cx-0123:abc')
    expect(await t.deps.services.configs.value('search', 'google_cse_id')).toBe('cx-0123:abc')
  })

  test('an unknown key may ask to be secret; a short secret shows almost nothing', async () => {
    const res = await post({ config_group: 'my-app', config_name: 'webhook.token', config_value: 'tok-42-xyz', is_secret: true })
    expect(res.status).toBe(201)
    expect(res.body.is_secret).toBe(true)
    expect(res.body.config_value).toBe('...yz')
    expect(res.text).not.toContain('tok-42-xyz')
    expect((await configRow(t, res.body.id))?.configValue).toStartWith('v1.')
    expect(await t.deps.services.configs.value('my-app', 'webhook.token')).toBe('tok-42-xyz')
    const plain = await post({ config_group: 'my-app', config_name: 'colour', config_value: 'blue' })
    expect(plain.body).toMatchObject({ is_secret: false, config_value: 'blue' })
  })

  test('the same group and name again → 409', async () => {
    const first = await post({ config_group: 'general', config_name: 'site_name', config_value: 'One' })
    expect(first.status).toBe(201)
    const again = await post({ config_group: 'general', config_name: 'site_name', config_value: 'Two' })
    expectProblem(again, 409, 'CONFLICT')
    expect((await t.request('GET', `/api/v1/configs/${first.body.id}`, { token: admin })).body.config_value).toBe('One')
  })

  test('PUT changes the value (a secret stays secret and encrypted); null clears it', async () => {
    const res = await post({ config_group: 'search', config_name: 'exa_api_key', config_value: EXA_KEY })
    expect(res.body).toMatchObject({ is_secret: true, config_value: 'exa...7654' })
    const put = await t.request('PUT', `/api/v1/configs/${res.body.id}`, { token: admin, body: { config_value: 'exa-rotated-key-000-1111' } })
    expect(put.status).toBe(200)
    expect(put.body).toMatchObject({ id: res.body.id, config_group: 'search', config_name: 'exa_api_key', config_value: 'exa...1111', is_secret: true, created_at: res.body.created_at })
    expect(new Date(put.body.updated_at).getTime()).toBeGreaterThanOrEqual(new Date(res.body.updated_at).getTime())
    expect(put.text).not.toContain('exa-rotated-key-000-1111')
    const row = await configRow(t, res.body.id)
    expect(row?.configValue).toStartWith('v1.')
    expect(row?.configValue).not.toContain('rotated')
    expect(await t.deps.services.configs.value('search', 'exa_api_key')).toBe('exa-rotated-key-000-1111')

    const cleared = await t.request('PUT', `/api/v1/configs/${res.body.id}`, { token: admin, body: { config_value: null } })
    expect(cleared.status).toBe(200)
    expect(cleared.body).toMatchObject({ config_value: null, is_secret: true })
    expect(await t.deps.services.configs.value('search', 'exa_api_key')).toBeNull()

    const plain = await post({ config_group: 'chat', config_name: 'title_model', config_value: 'fake' })
    const changed = await t.request('PUT', `/api/v1/configs/${plain.body.id}`, { token: admin, body: { config_value: 'fake-large' } })
    expect(changed.body).toMatchObject({ config_value: 'fake-large', is_secret: false })
    expect(await t.deps.services.configs.value('chat', 'title_model')).toBe('fake-large')
    expectProblem(await t.request('PUT', `/api/v1/configs/${plain.body.id}`, { token: admin, body: {} }), 422, 'VALIDATION_ERROR')
    expectProblem(await t.request('PUT', `/api/v1/configs/${plain.body.id}`, { token: admin, body: { config_value: 42 } }), 422, 'VALIDATION_ERROR')
  })

  test('GET ?config_group= filters', async () => {
    await post({ config_group: 'filter-a', config_name: 'one', config_value: '1' })
    await post({ config_group: 'filter-a', config_name: 'two', config_value: '2' })
    await post({ config_group: 'filter-b', config_name: 'one', config_value: '3' })
    const a = await t.request('GET', '/api/v1/configs?config_group=filter-a', { token: admin })
    expect(a.status).toBe(200)
    expect(a.body).toMatchObject({ total: 2, offset: 0, has_more: false })
    expect((a.body.items as Json[]).map((c) => `${c.config_group}.${c.config_name}=${c.config_value}`)).toEqual(['filter-a.one=1', 'filter-a.two=2'])
    const all = await t.request('GET', '/api/v1/configs', { token: admin })
    expect((all.body.items as Json[]).map((c) => c.config_group)).toEqual(expect.arrayContaining(['filter-a', 'filter-b', 'search']))
    expect((await t.request('GET', '/api/v1/configs?config_group=nothing-here', { token: admin })).body).toMatchObject({ items: [], total: 0 })
    expectProblem(await t.request('GET', '/api/v1/configs?config_group=Bad%20Group', { token: admin }), 422, 'VALIDATION_ERROR')
  })

  // docs/api.md §1: every list takes ?limit (1–100, default 50) and ?offset and says so in its page
  test('GET /api/v1/configs is a §1 list page: limit and offset are honoured, limit out of range is 422', async () => {
    for (const n of ['a', 'b', 'c']) await post({ config_group: 'paged', config_name: n, config_value: n })
    const all = await t.request('GET', '/api/v1/configs?config_group=paged', { token: admin })
    expect({ total: all.body.total, limit: all.body.limit, offset: all.body.offset, has_more: all.body.has_more }).toEqual({ total: 3, limit: 50, offset: 0, has_more: false })
    const first = await t.request('GET', '/api/v1/configs?config_group=paged&limit=2', { token: admin })
    expect(first.status).toBe(200)
    expect({ names: (first.body.items as Json[]).map((c) => c.config_name), total: first.body.total, limit: first.body.limit, has_more: first.body.has_more }).toEqual({ names: ['a', 'b'], total: 3, limit: 2, has_more: true })
    const rest = await t.request('GET', '/api/v1/configs?config_group=paged&limit=2&offset=2', { token: admin })
    expect({ names: (rest.body.items as Json[]).map((c) => c.config_name), offset: rest.body.offset, has_more: rest.body.has_more }).toEqual({ names: ['c'], offset: 2, has_more: false })
    expectProblem(await t.request('GET', '/api/v1/configs?limit=500', { token: admin }), 422, 'VALIDATION_ERROR')
    expect((await t.request('GET', '/api/v1/configs?config_group=empty-group', { token: admin })).body).toMatchObject({ items: [], total: 0, limit: 50, offset: 0 })
  })

  test('DELETE → 204, then 404; the server no longer reads the value', async () => {
    const res = await post({ config_group: 'doomed', config_name: 'value', config_value: 'bye' })
    const del = await t.request('DELETE', `/api/v1/configs/${res.body.id}`, { token: admin })
    expect(del.status).toBe(204)
    expect(del.text).toBe('')
    expectProblem(await t.request('GET', `/api/v1/configs/${res.body.id}`, { token: admin }), 404, 'NOT_FOUND')
    expectProblem(await t.request('DELETE', `/api/v1/configs/${res.body.id}`, { token: admin }), 404, 'NOT_FOUND')
    expectProblem(await t.request('PUT', `/api/v1/configs/${res.body.id}`, { token: admin, body: { config_value: 'x' } }), 404, 'NOT_FOUND')
    expect(await t.deps.services.configs.value('doomed', 'value')).toBeNull()
    // and the name is free again
    expect((await post({ config_group: 'doomed', config_name: 'value', config_value: 'again' })).status).toBe(201)
  })

  const invalid: [string, Json, string][] = [
    ['upper-case group', { config_group: 'Search', config_name: 'x', config_value: 'v' }, 'config_group'],
    ['group with spaces', { config_group: 'my group', config_name: 'x', config_value: 'v' }, 'config_group'],
    ['upper-case name', { config_group: 'search', config_name: 'Google_Api_Key', config_value: 'v' }, 'config_name'],
    ['name with spaces', { config_group: 'search', config_name: 'api key', config_value: 'v' }, 'config_name'],
    ['empty group', { config_group: '', config_name: 'x', config_value: 'v' }, 'config_group'],
    ['over-long name', { config_group: 'g', config_name: 'n'.repeat(101), config_value: 'v' }, 'config_name'],
    ['missing value', { config_group: 'g', config_name: 'n' }, 'config_value'],
    ['value not a string', { config_group: 'g', config_name: 'n', config_value: { nested: true } }, 'config_value'],
    ['over-long value', { config_group: 'g', config_name: 'n', config_value: 'v'.repeat(65_537) }, 'config_value'],
  ]
  for (const [name, body, path] of invalid) {
    test(`POST: ${name} → 422 naming ${path}`, async () => {
      const res = await post(body)
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect((res.body.errors as { path: string }[]).map((e) => e.path)).toContain(path)
    })
  }

  test('unknown fields are ignored and never echoed', async () => {
    const res = await post({ config_group: 'extra', config_name: 'field', config_value: 'v', surprise: 'boo-field' })
    expect(res.status).toBe(201)
    expect(res.text).not.toContain('boo-field')
  })

  test('a null value may be stored; the server reads null', async () => {
    const res = await post({ config_group: 'search', config_name: 'nullable-thing', config_value: null })
    expect(res.status).toBe(201)
    expect(res.body.config_value).toBeNull()
    expect(await t.deps.services.configs.value('search', 'nullable-thing')).toBeNull()
    expect(await t.deps.services.configs.value('search', 'never-set')).toBeNull()
  })

  test('secret values never reach the log', () => {
    const log = t.logText()
    expect(log.length).toBeGreaterThan(0)
    for (const secret of [GOOGLE_KEY, EXA_KEY, 'exa-rotated-key-000-1111', 'tok-42-xyz']) expect(log).not.toContain(secret)
  })
})
