/**
 * Configs (docs/api.md §10): every user's personal grouped key/values beside the admins' global
 * ones; known secret keys are encrypted at rest and only ever shown as a hint (a global one to
 * non-admins not even that); names are folded to lower case; the server itself reads the plain
 * value — a user's own, else the global one.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { setupCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
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
  /** global, set by the admin */
  sitePlain: string
  globalSecret: string
  /** the user's personal ones */
  userSecret: string
  userPlain: string
}

const GLOBAL_GOOGLE = 'AIzaSyGlobal-admin-key-5550001111'
const USER_EXA = 'exa-user-personal-key-42424242'

eachDialect('configs: who may do what', (dialect) => {
  let ctx: Ctx
  beforeAll(async () => {
    const t = await createTestApp(dialect)
    const callers = await setupCallers(t)
    const as = async (token: string, body: Json) => {
      const res = await t.request('POST', '/api/v1/configs', { token, body })
      expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
      return res.body.id as string
    }
    const { admin, user } = callers.accounts
    ctx = {
      ...callers,
      sitePlain: await as(admin.access, { config_group: 'general', config_name: 'site_name', config_value: 'Hearth Test' }),
      globalSecret: await as(admin.access, { config_group: 'search', config_name: 'google_api_key', config_value: GLOBAL_GOOGLE }),
      userSecret: await as(user.access, { config_group: 'search', config_name: 'exa_api_key', config_value: USER_EXA }),
      userPlain: await as(user.access, { config_group: 'general', config_name: 'site_name', config_value: 'My Own Hearth' }),
    }
  })
  afterAll(() => ctx.t.close())

  const routes: [string, (c: Ctx) => string, unknown?][] = [
    ['GET', () => '/api/v1/config/info'],
    ['GET', () => '/api/v1/configs'],
    ['GET', () => '/api/v1/configs?config_group=general'],
    ['POST', () => '/api/v1/configs', { config_group: 'search', config_name: 'google_api_key', config_value: 'guest-tries-this' }],
    ['GET', (c) => `/api/v1/configs/${c.sitePlain}`],
    ['PUT', (c) => `/api/v1/configs/${c.sitePlain}`, { config_value: 'changed by a guest' }],
    ['DELETE', (c) => `/api/v1/configs/${c.sitePlain}`],
  ]
  /** what must never reach anyone but the admin: the global key, and any hint of it */
  const globalSecret = [GLOBAL_GOOGLE, 'AIz...1111', '1111']
  /** what must never reach anyone but the user */
  const userSecret = [USER_EXA, 'exa...4242', 'My Own Hearth']
  const ids = (r: TestResponse) => (r.body.items as Json[]).map((i) => i.id as string)
  const byId = (r: TestResponse, id: string) => (r.body.items as Json[]).find((i) => i.id === id)

  scenarios<Ctx>(() => ctx, [
    ...routes.map(([method, path, body]): Scenario<Ctx> => ({ name: 'needs credentials', as: 'guest', method, path, body, status: 401, code: 'UNAUTHORIZED', notContains: [...globalSecret, ...userSecret, 'Hearth Test'] })),
    ...(['user', 'other', 'admin'] as const).map((as): Scenario<Ctx> => ({ name: 'the known names are for everyone', as, method: 'GET', path: '/api/v1/config/info', status: 200, contains: ['google_api_key', 'google_base_url', 'requires_approval'] })),

    // global settings: readable by everyone, a global secret's value by admins only, changed by admins only
    ...(['user', 'other'] as const).flatMap((as): Scenario<Ctx>[] => [
      { name: 'a global setting is readable', as, method: 'GET', path: (c) => `/api/v1/configs/${c.sitePlain}`, status: 200, check: (r) => expect(r.body).toMatchObject({ config_value: 'Hearth Test', scope: 'global', has_value: true }) },
      { name: 'a global secret shows no value, not even a hint, but that it is set', as, method: 'GET', path: (c) => `/api/v1/configs/${c.globalSecret}`, status: 200, notContains: globalSecret,
        check: (r) => expect(r.body).toMatchObject({ config_group: 'search', config_name: 'google_api_key', config_value: null, is_secret: true, has_value: true, scope: 'global' }) },
      { name: 'the list hides the global secret too', as, method: 'GET', path: '/api/v1/configs?config_group=search', status: 200, notContains: globalSecret,
        check: (r, c) => expect(byId(r, c.globalSecret)).toMatchObject({ config_value: null, has_value: true }) },
      { name: 'a global setting cannot be changed', as, method: 'PUT', path: (c) => `/api/v1/configs/${c.sitePlain}`, body: { config_value: `changed by ${as}` }, status: 403, code: 'FORBIDDEN' },
      { name: 'a global secret cannot be changed', as, method: 'PUT', path: (c) => `/api/v1/configs/${c.globalSecret}`, body: { config_value: 'replaced' }, status: 403, code: 'FORBIDDEN', notContains: globalSecret },
      { name: 'a global setting cannot be deleted', as, method: 'DELETE', path: (c) => `/api/v1/configs/${c.globalSecret}`, status: 403, code: 'FORBIDDEN' },
      { name: 'a global setting cannot be created', as, method: 'POST', path: '/api/v1/configs', body: { config_group: 'search', config_name: 'google_cse_id', config_value: 'cx-by-user', scope: 'global' }, status: 403, code: 'FORBIDDEN' },
    ]),
    { name: 'the admin sees the hint of the global secret', as: 'admin', method: 'GET', path: (c) => `/api/v1/configs/${c.globalSecret}`, status: 200, notContains: [GLOBAL_GOOGLE],
      check: (r) => expect(r.body).toMatchObject({ config_value: 'AIz...1111', has_value: true, scope: 'global' }) },

    // a user's personal settings: invisible to everyone else, admins included
    ...(['other', 'admin'] as const).flatMap((as): Scenario<Ctx>[] => [
      { name: "another user's personal setting is invisible", as, method: 'GET', path: (c) => `/api/v1/configs/${c.userSecret}`, status: 404, code: 'NOT_FOUND', notContains: userSecret },
      { name: "another user's personal setting cannot be changed", as, method: 'PUT', path: (c) => `/api/v1/configs/${c.userPlain}`, body: { config_value: 'overwritten' }, status: 404, code: 'NOT_FOUND', notContains: userSecret },
      { name: "another user's personal setting cannot be deleted", as, method: 'DELETE', path: (c) => `/api/v1/configs/${c.userSecret}`, status: 404, code: 'NOT_FOUND' },
      { name: "the list has none of another user's settings", as, method: 'GET', path: '/api/v1/configs', status: 200, notContains: userSecret,
        check: (r, c) => {
          expect(ids(r)).toEqual(expect.arrayContaining([c.sitePlain, c.globalSecret]))
          expect(ids(r)).not.toContain(c.userSecret)
        } },
      { name: "…nor does ?scope=personal", as, method: 'GET', path: '/api/v1/configs?scope=personal', status: 200, notContains: userSecret, check: (r, c) => expect(ids(r)).not.toContain(c.userPlain) },
    ]),
    { name: 'a name another user holds personally is free for me', as: 'other', method: 'POST', path: '/api/v1/configs', body: { config_group: 'search', config_name: 'exa_api_key', config_value: 'exa-other-own-key-0000' }, status: 201,
      check: (r) => expect(r.body).toMatchObject({ scope: 'personal', config_value: 'exa...0000' }) },
    { name: 'my own name twice is a conflict', as: 'user', method: 'POST', path: '/api/v1/configs', body: { config_group: 'SEARCH', config_name: 'EXA_API_KEY', config_value: 'again' }, status: 409, code: 'CONFLICT' },
    { name: 'the owner sees their secret as a hint', as: 'user', method: 'GET', path: (c) => `/api/v1/configs/${c.userSecret}`, status: 200, notContains: [USER_EXA],
      check: (r) => expect(r.body).toMatchObject({ config_value: 'exa...4242', is_secret: true, has_value: true, scope: 'personal' }) },
    { name: "the owner's list: the global settings and their own, nobody else's", as: 'user', method: 'GET', path: '/api/v1/configs', status: 200, notContains: [...globalSecret, 'exa-other-own-key-0000', 'exa...0000'],
      check: (r, c) => expect(ids(r).sort()).toEqual([c.sitePlain, c.globalSecret, c.userSecret, c.userPlain].sort()) },
    { name: "?scope=global: the admins' only", as: 'user', method: 'GET', path: '/api/v1/configs?scope=global', status: 200, check: (r, c) => expect(ids(r).sort()).toEqual([c.sitePlain, c.globalSecret].sort()) },
    { name: '?scope=personal: mine only', as: 'user', method: 'GET', path: '/api/v1/configs?scope=personal', status: 200, check: (r, c) => expect(ids(r).sort()).toEqual([c.userSecret, c.userPlain].sort()) },
    { name: 'a global and a personal one of the same name, the global first', as: 'user', method: 'GET', path: '/api/v1/configs?config_group=general', status: 200,
      check: (r, c) => expect((r.body.items as Json[]).map((i) => [i.id, i.scope, i.config_value])).toEqual([[c.sitePlain, 'global', 'Hearth Test'], [c.userPlain, 'personal', 'My Own Hearth']]) },
    { name: 'an unknown scope', as: 'user', method: 'GET', path: '/api/v1/configs?scope=everyone', status: 422, code: 'VALIDATION_ERROR' },

    // nothing anyone else tried changed anything
    { name: 'the global value is unchanged', as: 'admin', method: 'GET', path: (c) => `/api/v1/configs/${c.sitePlain}`, status: 200, check: (r) => expect(r.body.config_value).toBe('Hearth Test') },
    { name: 'no global key was added by a user', as: 'admin', method: 'GET', path: '/api/v1/configs?config_group=search&scope=global', status: 200, check: (r, c) => expect(ids(r)).toEqual([c.globalSecret]) },
    { name: "the user's settings are unchanged", as: 'user', method: 'GET', path: (c) => `/api/v1/configs/${c.userPlain}`, status: 200,
      check: async (r, c) => {
        expect(r.body.config_value).toBe('My Own Hearth')
        expect(await c.t.deps.services.configs.valueFor(c.accounts.user.id, 'search', 'exa_api_key')).toBe(USER_EXA)
        expect(await c.t.deps.services.configs.value('search', 'google_api_key')).toBe(GLOBAL_GOOGLE)
      } },
    { name: 'unknown id', as: 'admin', method: 'GET', path: '/api/v1/configs/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: PUT', as: 'user', method: 'PUT', path: '/api/v1/configs/nope', body: { config_value: 'x' }, status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: DELETE', as: 'user', method: 'DELETE', path: '/api/v1/configs/nope', status: 404, code: 'NOT_FOUND' },
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
    expect(res.body).toEqual({ id: expect.any(String), config_group: 'search', config_name: 'google_api_key', config_value: 'AIz...6789', is_secret: true, has_value: true, scope: 'global', created_at: expect.any(String), updated_at: expect.any(String) })
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
    ['group with spaces', { config_group: 'my group', config_name: 'x', config_value: 'v' }, 'config_group'],
    ['name with spaces', { config_group: 'search', config_name: 'api key', config_value: 'v' }, 'config_name'],
    ['group with a slash', { config_group: 'a/b', config_name: 'x', config_value: 'v' }, 'config_group'],
    ['name with a non-ASCII letter', { config_group: 'search', config_name: 'clé', config_value: 'v' }, 'config_name'],
    ['empty group', { config_group: '', config_name: 'x', config_value: 'v' }, 'config_group'],
    ['over-long name', { config_group: 'g', config_name: 'n'.repeat(101), config_value: 'v' }, 'config_name'],
    ['unknown scope', { config_group: 'g', config_name: 'n', config_value: 'v', scope: 'shared' }, 'scope'],
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

  test('group and name are folded to lower case: GOOGLE_API_KEY is search.google_api_key, a known secret', async () => {
    const res = await post({ config_group: 'Search', config_name: 'GOOGLE_CSE_ID', config_value: 'cx-upper' })
    // search.google_cse_id was set above: the same setting, whatever the case
    expectProblem(res, 409, 'CONFLICT')
    expect(res.body.detail).toContain('search.google_cse_id')
    const made = await post({ config_group: 'Casing', config_name: 'Mixed.Name_1', config_value: 'v' })
    expect(made.body).toMatchObject({ config_group: 'casing', config_name: 'mixed.name_1' })
    const filtered = await t.request('GET', '/api/v1/configs?config_group=CASING', { token: admin })
    expect((filtered.body.items as Json[]).map((c) => c.id)).toEqual([made.body.id])
    expect(await t.deps.services.configs.value('CASING', 'MIXED.NAME_1')).toBe('v')

    // a known secret's name in upper case is that secret: encrypted, shown as a hint
    const user = ctx.accounts.user.access
    const key = await t.request('POST', '/api/v1/configs', { token: user, body: { config_group: 'SEARCH', config_name: 'GOOGLE_API_KEY', config_value: 'AIzaUser-upper-case-key-777', is_secret: false } })
    expect(key.status).toBe(201)
    expect(key.body).toMatchObject({ config_group: 'search', config_name: 'google_api_key', is_secret: true, config_value: 'AIz...-777', scope: 'personal' })
    expect((await configRow(t, key.body.id))?.configValue).toStartWith('v1.')
    expect(await t.deps.services.configs.valueFor(ctx.accounts.user.id, 'Search', 'Google_Api_Key')).toBe('AIzaUser-upper-case-key-777')
    await t.request('DELETE', `/api/v1/configs/${key.body.id}`, { token: user })
  })

  test('secret values never reach the log', () => {
    const log = t.logText()
    expect(log.length).toBeGreaterThan(0)
    for (const secret of [GOOGLE_KEY, EXA_KEY, 'exa-rotated-key-000-1111', 'tok-42-xyz']) expect(log).not.toContain(secret)
  })
})

eachDialect('configs: personal values', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  beforeAll(async () => {
    t = await createTestApp(dialect)
    ctx = await setupCallers(t)
  })
  afterAll(() => t.close())

  const post = (token: string, body: Json) => t.request('POST', '/api/v1/configs', { token, body })
  const configs = () => t.deps.services.configs

  test("an admin's setting is global unless it says personal; a user's is personal", async () => {
    const { admin, user } = ctx.accounts
    const global = await post(admin.access, { config_group: 'scoped', config_name: 'a', config_value: 'for everyone' })
    const own = await post(admin.access, { config_group: 'scoped', config_name: 'a', config_value: 'for the admin', scope: 'personal' })
    const mine = await post(user.access, { config_group: 'scoped', config_name: 'a', config_value: 'for the user', scope: 'personal' })
    const implicit = await post(user.access, { config_group: 'scoped', config_name: 'b', config_value: 'also mine' })
    expect([global, own, mine, implicit].map((r) => [r.status, r.body.scope])).toEqual([[201, 'global'], [201, 'personal'], [201, 'personal'], [201, 'personal']])
    const seen = await t.request('GET', '/api/v1/configs?config_group=scoped', { token: user.access })
    expect((seen.body.items as Json[]).map((c) => c.config_value)).toEqual(['for everyone', 'for the user', 'also mine'])
    expectProblem(await t.request('GET', `/api/v1/configs/${own.body.id}`, { token: user.access }), 404, 'NOT_FOUND')
  })

  test('valueFor: the personal value, else the global one; value: the global one only', async () => {
    const { admin, user, other } = ctx.accounts
    await post(admin.access, { config_group: 'tools', config_name: 'requires_approval', config_value: 'http_fetch' })
    const personal = await post(user.access, { config_group: 'tools', config_name: 'requires_approval', config_value: 'http_fetch,web_search' })
    expect(await configs().valueFor(user.id, 'tools', 'requires_approval')).toBe('http_fetch,web_search')
    expect(await configs().settingFor(user.id, 'tools', 'requires_approval')).toEqual({ value: 'http_fetch,web_search', scope: 'personal' })
    expect(await configs().valueFor(other.id, 'tools', 'requires_approval')).toBe('http_fetch')
    expect(await configs().settingFor(other.id, 'tools', 'requires_approval')).toEqual({ value: 'http_fetch', scope: 'global' })
    // the server's own reads never take a user's value
    expect(await configs().value('tools', 'requires_approval')).toBe('http_fetch')

    // a personal value set to null does not hide the global one; a change is read at once (the cache is dropped)
    await t.request('PUT', `/api/v1/configs/${personal.body.id}`, { token: user.access, body: { config_value: null } })
    expect(await configs().valueFor(user.id, 'tools', 'requires_approval')).toBe('http_fetch')
    await t.request('PUT', `/api/v1/configs/${personal.body.id}`, { token: user.access, body: { config_value: 'web_search' } })
    expect(await configs().valueFor(user.id, 'tools', 'requires_approval')).toBe('web_search')
    await t.request('DELETE', `/api/v1/configs/${personal.body.id}`, { token: user.access })
    expect(await configs().valueFor(user.id, 'tools', 'requires_approval')).toBe('http_fetch')
    expect(await configs().valueFor(user.id, 'tools', 'never-set')).toBeNull()
    expect(await configs().settingFor(user.id, 'tools', 'never-set')).toBeNull()
  })

  test("a user's chat setting does not change the instance's (chat reads the global value)", async () => {
    await post(ctx.accounts.user.access, { config_group: 'chat', config_name: 'default_system_prompt', config_value: 'Only for me' })
    expect(await configs().value('chat', 'default_system_prompt')).toBeNull()
  })

  test('a personal secret is encrypted, shown to its owner as a hint, read in plain by the server', async () => {
    const res = await post(ctx.accounts.other.access, { config_group: 'search', config_name: 'exa_api_key', config_value: 'exa-other-key-abcdef-9999' })
    expect(res.body).toMatchObject({ is_secret: true, config_value: 'exa...9999', scope: 'personal', has_value: true })
    const row = await configRow(t, res.body.id)
    expect(row?.userId).toBe(ctx.accounts.other.id)
    expect(row?.configValue).toStartWith('v1.')
    expect(await configs().valueFor(ctx.accounts.other.id, 'search', 'exa_api_key')).toBe('exa-other-key-abcdef-9999')
    expect(await configs().valueFor(ctx.accounts.user.id, 'search', 'exa_api_key')).toBeNull()
    expect(t.logText()).not.toContain('exa-other-key-abcdef-9999')
  })

  test('the service refuses what the routes refuse (for callers other than the routes)', async () => {
    const user = { userId: ctx.accounts.user.id, role: 'user' }
    await expect(configs().create(user, { group: 'g', name: 'n', value: 'v', scope: 'global' })).rejects.toMatchObject({ status: 403, code: 'FORBIDDEN' })
    const global = await configs().create({ userId: ctx.accounts.admin.id, role: 'admin' }, { group: 'svc', name: 'global', value: 'v' })
    await expect(configs().update(user, global.id, 'x')).rejects.toMatchObject({ status: 403, code: 'FORBIDDEN' })
    await expect(configs().remove(user, global.id)).rejects.toMatchObject({ status: 403, code: 'FORBIDDEN' })
    const own = await configs().create(user, { group: 'svc', name: 'own', value: 'v' })
    await expect(configs().get({ userId: ctx.accounts.other.id, role: 'user' }, own.id)).rejects.toMatchObject({ status: 404 })
    await expect(configs().remove({ userId: ctx.accounts.admin.id, role: 'admin' }, own.id)).rejects.toMatchObject({ status: 404 })
  })
})

eachDialect('configs: base URLs follow the private-address rule', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  beforeAll(async () => {
    t = await createTestApp(dialect, { HEARTH_ALLOW_PRIVATE_UPSTREAMS: 'false' })
    ctx = await setupCallers(t)
  })
  afterAll(() => t.close())

  test("a user's base URL at a private address is a 422 naming config_value; an admin's is accepted; other names are not URLs", async () => {
    const { admin, user } = ctx.accounts
    for (const name of ['google_base_url', 'EXA_BASE_URL']) {
      const res = await t.request('POST', '/api/v1/configs', { token: user.access, body: { config_group: 'search', config_name: name, config_value: 'http://127.0.0.1:9/x' } })
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect(res.body.errors).toEqual([{ path: 'config_value', message: expect.stringContaining('private addresses') }])
    }
    const notUrl = await t.request('POST', '/api/v1/configs', { token: user.access, body: { config_group: 'search', config_name: 'google_base_url', config_value: 'file:///etc/passwd' } })
    expectProblem(notUrl, 422, 'VALIDATION_ERROR')
    const ok = await t.request('POST', '/api/v1/configs', { token: user.access, body: { config_group: 'search', config_name: 'google_base_url', config_value: 'https://93.184.216.34/customsearch/v1' } })
    expect(ok.status).toBe(201)
    expectProblem(await t.request('PUT', `/api/v1/configs/${ok.body.id}`, { token: user.access, body: { config_value: 'http://[::1]/' } }), 422, 'VALIDATION_ERROR')
    expect(await t.deps.services.configs.valueFor(user.id, 'search', 'google_base_url')).toBe('https://93.184.216.34/customsearch/v1')
    // some other setting may hold any text
    expect((await t.request('POST', '/api/v1/configs', { token: user.access, body: { config_group: 'general', config_name: 'site_name', config_value: 'http://127.0.0.1/' } })).status).toBe(201)
    const global = await t.request('POST', '/api/v1/configs', { token: admin.access, body: { config_group: 'search', config_name: 'google_base_url', config_value: 'http://127.0.0.1:9/customsearch/v1' } })
    expect(global.body).toMatchObject({ scope: 'global', config_value: 'http://127.0.0.1:9/customsearch/v1' })
  })
})
