/**
 * API keys carry scopes — `gateway` (/v1), `api` (the native API) — and never manage credentials:
 * creating or listing keys, changing the password, listing or revoking sessions and logging out
 * need a session (an access token). One row per kind of credential on each kind of route.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { login, setupCallers, type Account } from './helpers/accounts.ts'
import { createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { scenarios, type Scenario, type ScenarioContext } from './helpers/scenarios.ts'

type Credential = 'guest' | 'session' | 'gateway_key' | 'api_key' | 'both_key'
const KEYS = ['gateway_key', 'api_key', 'both_key'] as const

interface Ctx extends ScenarioContext<Credential> {
  user: Account
  admin: Account
  /** a second session of the user, for the revocation rows */
  secondSession: { id: string; access: string }
  /** one of the user's keys, for the deletion rows */
  keyId: string
}

async function createKey(t: TestApp, token: string, body: Record<string, unknown>) {
  const res = await t.request('POST', '/api/v1/api-keys', { token, body: { name: 'k', ...body } })
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
  return res.body as { id: string; key: string; scopes: string[] }
}

// from the text: the scenario's own checks leave matchers in `body` (Bun's toMatchObject writes them into the object it checks)
const sessionNeeded = (r: TestResponse) => expect(JSON.parse(r.text).detail).toContain('needs a signed-in session')
const needsScope = (scope: string) => (r: TestResponse) => {
  const body = JSON.parse(r.text)
  expect(body.error?.message ?? body.detail).toContain(`\`${scope}\` scope`)
}

eachDialect('API key scopes and credential management, by credential', (dialect) => {
  let ctx: Ctx
  beforeAll(async () => {
    const t = await createTestApp(dialect)
    const { accounts } = await setupCallers(t)
    const { user, admin } = accounts
    const second = await login(t, user)
    const sessions = await t.request('GET', '/api/v1/auth/sessions', { token: user.access })
    const secondId = sessions.body.items.find((s: { current: boolean }) => !s.current).id
    const gateway = await createKey(t, user.access, { scopes: ['gateway'] })
    const api = await createKey(t, user.access, { scopes: ['api'] })
    const both = await createKey(t, user.access, { scopes: ['gateway', 'api'] })
    ctx = {
      t,
      user,
      admin,
      secondSession: { id: secondId, access: second.access },
      keyId: both.id,
      tokens: { session: user.access, gateway_key: gateway.key, api_key: api.key, both_key: both.key },
    }
  })
  afterAll(() => ctx.t.close())

  const row = (as: Credential, method: string, path: Scenario<Ctx, Credential>['path'], status: number, extra: Partial<Scenario<Ctx, Credential>> = {}): Scenario<Ctx, Credential> => ({
    name: extra.name ?? (status < 300 ? 'allowed' : 'refused'),
    as,
    method,
    path,
    status,
    ...extra,
  })
  /** a credential-management route: a session may, no API key may, whatever its scopes */
  const credentialRoute = (method: string, path: Scenario<Ctx, Credential>['path'], body?: unknown, after?: Scenario<Ctx, Credential>['check']) =>
    KEYS.map((as) => row(as, method, path, 403, { name: 'an API key cannot manage credentials', body, code: 'FORBIDDEN', check: async (r, c) => (sessionNeeded(r), await after?.(r, c)) }))

  scenarios<Ctx, Credential>(() => ctx, [
    // the /v1 gateway: sessions and keys with `gateway`
    row('guest', 'GET', '/v1/models', 401, { code: 'unauthorized' }),
    row('session', 'GET', '/v1/models', 200),
    row('gateway_key', 'GET', '/v1/models', 200),
    row('api_key', 'GET', '/v1/models', 403, { name: 'a key without `gateway`: 403 in OpenAI’s shape', code: 'forbidden', check: (r) => (expect(JSON.parse(r.text).error.type).toBe('permission_error'), needsScope('gateway')(r)) }),
    row('api_key', 'POST', '/v1/chat/completions', 403, { body: { model: 'm', messages: [{ role: 'user', content: 'hi' }] }, code: 'forbidden', check: needsScope('gateway') }),
    row('both_key', 'GET', '/v1/models', 200),

    // the native API: sessions and keys with `api`
    row('guest', 'GET', '/api/v1/memories', 401, { code: 'UNAUTHORIZED' }),
    row('session', 'GET', '/api/v1/memories', 200),
    row('gateway_key', 'GET', '/api/v1/memories', 403, { name: 'a key without `api`: 403', code: 'FORBIDDEN', check: needsScope('api') }),
    row('gateway_key', 'GET', '/api/v1/auth/me', 403, { code: 'FORBIDDEN', check: needsScope('api') }),
    row('api_key', 'GET', '/api/v1/memories', 200),
    row('api_key', 'POST', '/api/v1/memories', 201, { body: { content: 'written with a key' } }),
    row('api_key', 'GET', '/api/v1/auth/me', 200, { check: (r, c) => expect(r.body.id).toBe(c.user.id) }),
    row('both_key', 'GET', '/api/v1/memories', 200),

    // credential management: sessions only
    row('guest', 'POST', '/api/v1/api-keys', 401, { body: { name: 'more' }, code: 'UNAUTHORIZED' }),
    ...credentialRoute('POST', '/api/v1/api-keys', { name: 'more' }),
    row('session', 'POST', '/api/v1/api-keys', 201, { body: { name: 'more' } }),
    ...credentialRoute('GET', '/api/v1/api-keys'),
    row('session', 'GET', '/api/v1/api-keys', 200, { check: (r) => expect(r.body.total).toBe(4) }),
    ...credentialRoute('DELETE', (c) => `/api/v1/api-keys/${c.keyId}`, undefined, async (_, c) => expect((await c.t.request('GET', '/api/v1/memories', { token: c.tokens.both_key })).status).toBe(200)),
    row('guest', 'GET', '/api/v1/auth/sessions', 401, { code: 'UNAUTHORIZED' }),
    ...credentialRoute('GET', '/api/v1/auth/sessions'),
    row('session', 'GET', '/api/v1/auth/sessions', 200, { check: (r) => expect(r.body.total).toBe(2) }),
    row('guest', 'DELETE', (c) => `/api/v1/auth/sessions/${c.secondSession.id}`, 401, { code: 'UNAUTHORIZED' }),
    ...credentialRoute('DELETE', (c) => `/api/v1/auth/sessions/${c.secondSession.id}`, undefined, async (_, c) => expect((await c.t.request('GET', '/api/v1/auth/me', { token: c.secondSession.access })).status).toBe(200)),
    row('session', 'DELETE', (c) => `/api/v1/auth/sessions/${c.secondSession.id}`, 204, {
      check: async (_, c) => expect((await c.t.request('GET', '/api/v1/auth/me', { token: c.secondSession.access })).status).toBe(401),
    }),
    ...credentialRoute('POST', '/api/v1/auth/logout', undefined, async (_, c) => expect((await c.t.request('GET', '/api/v1/auth/me', { token: c.user.access })).status).toBe(200)),
    row('guest', 'PUT', '/api/v1/auth/password', 401, { body: { old_password: 'x', new_password: 'new-password-1' }, code: 'UNAUTHORIZED' }),
    ...credentialRoute('PUT', '/api/v1/auth/password', { old_password: 'x', new_password: 'new-password-1' }),
    ...KEYS.map((as) =>
      row(as, 'PUT', '/api/v1/auth/password', 403, {
        name: 'not even with the right old password',
        body: (c: Ctx) => ({ old_password: c.user.password, new_password: 'stolen-password-1' }),
        code: 'FORBIDDEN',
        check: async (_, c) => expect((await c.t.request('POST', '/api/v1/auth/login', { body: { username: c.user.username, password: c.user.password } })).status).toBe(200),
      }),
    ),
    row('session', 'PUT', '/api/v1/auth/password', 204, { body: (c: Ctx) => ({ old_password: c.user.password, new_password: 'changed-password-1' }) }),
    // keys outlive a password change (docs/api.md §4), and keep their scopes
    row('gateway_key', 'GET', '/v1/models', 200, { name: 'still works after the password change' }),
    row('gateway_key', 'GET', '/api/v1/memories', 403, { name: 'and still only where its scopes reach', code: 'FORBIDDEN' }),
  ])

  test("an admin's key needs `api` for the admin routes too, and a session for credentials", async () => {
    const { t, admin } = ctx
    const gateway = await createKey(t, admin.access, { scopes: ['gateway'] })
    const api = await createKey(t, admin.access, { scopes: ['api'] })
    expect((await t.request('GET', '/api/v1/admin/users', { token: gateway.key })).status).toBe(403)
    expect((await t.request('GET', '/api/v1/admin/users', { token: api.key })).status).toBe(200)
    expect((await t.request('POST', '/api/v1/api-keys', { token: api.key, body: { name: 'x' } })).status).toBe(403)
  })
})

eachDialect('API key scopes: creation', (dialect) => {
  let t: TestApp
  let user: Account
  beforeAll(async () => {
    t = await createTestApp(dialect)
    user = (await setupCallers(t)).accounts.user
  })
  afterAll(() => t.close())

  test('listed in the key objects; both by default; stored once each, in a fixed order', async () => {
    expect((await createKey(t, user.access, {})).scopes).toEqual(['gateway', 'api'])
    expect((await createKey(t, user.access, { scopes: ['api', 'gateway', 'api'] })).scopes).toEqual(['gateway', 'api'])
    const gateway = await createKey(t, user.access, { scopes: ['gateway'] })
    expect(gateway.scopes).toEqual(['gateway'])
    const list = await t.request('GET', '/api/v1/api-keys', { token: user.access })
    expect(list.body.items.find((k: { id: string }) => k.id === gateway.id).scopes).toEqual(['gateway'])
  })

  test.each([
    ['an unknown scope', ['gateway', 'admin']],
    ['an empty list', []],
    ['not a list', 'gateway'],
  ])('%s: 422 naming scopes', async (_, scopes) => {
    const res = await t.request('POST', '/api/v1/api-keys', { token: user.access, body: { name: 'x', scopes } })
    expect([res.status, res.body.code]).toEqual([422, 'VALIDATION_ERROR'])
    expect(res.body.errors.map((e: { path: string }) => e.path.split('.')[0])).toContain('scopes')
  })

  test('a key made before scopes existed (the migration default) works on both', async () => {
    const { db, t: tables } = t.deps.database
    const key = 'hk_made_before_scopes_0000000000000000000000'
    // no `scopes` given: the column's default, which the migration gave the keys already there
    await db.insert(tables.apiKeys).values({ userId: user.id, name: 'old', prefix: key.slice(0, 11), keyHash: new Bun.CryptoHasher('sha256').update(key).digest('hex') })
    expect((await t.request('GET', '/v1/models', { token: key })).status).toBe(200)
    expect((await t.request('GET', '/api/v1/memories', { token: key })).status).toBe(200)
    expect((await t.request('POST', '/api/v1/api-keys', { token: key, body: { name: 'x' } })).status).toBe(403)
  })
})

describe('/openapi.json: credentials', () => {
  test('every route that needs credentials documents 403 (a key whose scopes do not reach it)', async () => {
    const t = await createTestApp('sqlite')
    const doc = (await t.request('GET', '/openapi.json')).body as { paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>> }
    const missing = Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).filter(([, op]) => op.security?.length && !op.responses['403']).map(([m]) => `${m} ${path}`))
    expect(missing).toEqual([])
    await t.close()
  })
})
