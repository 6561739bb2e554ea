/**
 * First start (docs/api.md §4 "The first admin"): while no admin exists, the registration that makes
 * the admin needs the setup token from the start log / the data dir; `/` says what the server is
 * and how to create the admin. The test app presents the token by itself elsewhere; not here.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { deriveSetupToken, SETUP_TOKEN_FILE } from '../src/modules/setup/service.ts'
import { createAdmin, unique } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, TEST_SECRET, type TestApp, type TestResponse } from './helpers/app.ts'
import { DIALECTS, eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type ScenarioContext } from './helpers/scenarios.ts'

const account = (base: string, extra: Record<string, unknown> = {}) => {
  const username = unique(base)
  return { username, email: `${username}@example.com`, password: `pw-${username}-secret`, ...extra }
}
const roleOf = (r: TestResponse) => r.body.user.role as string

/** a fresh server that presents no setup token on its own */
async function freshApp(dialect: Parameters<typeof createTestApp>[0], env: Record<string, string> = {}) {
  const t = await createTestApp(dialect, env)
  t.presentSetupToken = false
  return t
}

eachDialect('the setup token', (dialect) => {
  let t: TestApp
  let token: string
  beforeAll(async () => {
    t = await freshApp(dialect)
    token = t.deps.services.setup.token
  })
  afterAll(() => t.close())
  const tokenFile = () => join(t.db.dataDir, SETUP_TOKEN_FILE)

  test('it is derived from the secret (every instance computes the same one) and written to the data dir, mode 0600', async () => {
    expect(token).toMatch(/^hst_[\w-]{24}$/)
    expect(token).toBe(await deriveSetupToken(TEST_SECRET))
    expect(token).not.toBe(await deriveSetupToken(`${TEST_SECRET}-other`))
    expect(readFileSync(tokenFile(), 'utf8').trim()).toBe(token)
    expect(statSync(tokenFile()).mode & 0o777).toBe(0o600)
  })

  test('`/` is a small HTML page: what the server is, the docs, how to create the admin', async () => {
    const res = await t.request('GET', '/')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'")
    for (const s of ['Hearth', 'href="/docs"', 'href="/openapi.json"', 'No admin yet', 'hearth admin create', 'setup_token', SETUP_TOKEN_FILE]) expect(res.text).toContain(s)
    // the page says where the token is, never what it is
    expect(res.text).not.toContain(token)
  })

  const ctx = () => ({ t, tokens: {} })
  scenarios<ScenarioContext>(ctx, [
    {
      name: 'without the token, while no admin exists: 403 saying where the token is',
      as: 'guest', method: 'POST', path: '/api/v1/auth/register', body: () => account('early'), status: 403, code: 'FORBIDDEN',
      contains: ['setup_token', 'setup-token', 'hearth admin create'],
      check: (r) => expect(r.text).not.toContain(token),
    },
    { name: 'with a wrong token: 403', as: 'guest', method: 'POST', path: '/api/v1/auth/register', body: () => account('wrong', { setup_token: 'hst_not-the-right-one' }), status: 403, code: 'FORBIDDEN', contains: ['not valid'] },
    { name: 'verify-register without the token: 403 too', as: 'guest', method: 'POST', path: '/api/v1/auth/verify-register', body: () => account('early2', { code: '123456' }), status: 403, code: 'FORBIDDEN', contains: ['setup_token'] },
    {
      name: 'with the token: 201, the first admin; the token file is removed',
      as: 'guest', method: 'POST', path: '/api/v1/auth/register', body: () => account('boss', { setup_token: token }), status: 201,
      notContains: () => [token],
      check: (r) => {
        expect(roleOf(r)).toBe('admin')
        expect(existsSync(tokenFile())).toBe(false)
      },
    },
    {
      name: 'the token is gone afterwards: presenting it again makes a plain user',
      as: 'guest', method: 'POST', path: '/api/v1/auth/register', body: () => account('late', { setup_token: token }), status: 201,
      check: (r) => expect(roleOf(r)).toBe('user'),
    },
    { name: 'and registration needs no token any more', as: 'guest', method: 'POST', path: '/api/v1/auth/register', body: () => account('plain'), status: 201, check: (r) => expect(roleOf(r)).toBe('user') },
  ])

  test('`/` then says the server has an admin', async () => {
    const res = await t.request('GET', '/')
    expect(res.text).toContain('has an admin')
    expect(res.text).not.toContain('No admin yet')
  })

  test('a restart with an admin writes no token file', async () => {
    expect(await t.deps.services.setup.prepare()).toBe(false)
    expect(existsSync(tokenFile())).toBe(false)
  })
})

eachDialect('the setup token and the registration modes', (dialect) => {
  for (const mode of ['closed', 'invite', 'verify'] as const) {
    test(`${mode}: the first admin registers with the token alone; the mode holds for everyone after`, async () => {
      const t = await freshApp(dialect, { HEARTH_REGISTRATION: mode })
      try {
        expectProblem(await t.request('POST', '/api/v1/auth/register', { body: account('early') }), 403, 'FORBIDDEN')
        const first = await t.request('POST', '/api/v1/auth/register', { body: account('boss', { setup_token: t.deps.services.setup.token }) })
        expect({ status: first.status, role: first.body.user?.role }).toEqual({ status: 201, role: 'admin' })
        const next = await t.request('POST', '/api/v1/auth/register', { body: account('next', { setup_token: t.deps.services.setup.token }) })
        expectProblem(next, 403, 'FORBIDDEN')
        expect(next.text).not.toContain('setup')
      } finally {
        await t.close()
      }
    })
  }

  test('`hearth admin create` needs no token; after it the token is dead', async () => {
    const t = await freshApp(dialect)
    try {
      await createAdmin(t)
      const res = await t.request('POST', '/api/v1/auth/register', { body: account('after', { setup_token: t.deps.services.setup.token }) })
      expect({ status: res.status, role: res.body.user?.role }).toEqual({ status: 201, role: 'user' })
      expect(existsSync(join(t.db.dataDir, SETUP_TOKEN_FILE))).toBe(false)
    } finally {
      await t.close()
    }
  })

  test('two registrations with the token at once: one admin; the other 409 and not created, or (when the first had finished before it began) a user of the open mode', async () => {
    const t = await freshApp(dialect)
    try {
      const token = t.deps.services.setup.token
      const bodies = [account('twin'), account('twin')].map((b) => ({ ...b, setup_token: token }))
      const results = await Promise.all(bodies.map((body) => t.request('POST', '/api/v1/auth/register', { body })))
      const outcomes = results.map((r) => (r.status === 201 ? roleOf(r) : String(r.status))).sort()
      // once an admin exists the token is dead and the mode (open here) applies: a plain user then
      expect([['409', 'admin'], ['admin', 'user']]).toContainEqual(outcomes)
      const { db, t: tables } = t.deps.database
      const users = await db.select().from(tables.users)
      expect(users.filter((u) => u.role === 'admin')).toHaveLength(1)
      expect(users).toHaveLength(outcomes.includes('409') ? 1 : 2)
    } finally {
      await t.close()
    }
  })
})

if (DIALECTS.includes('postgres')) {
  eachDialect('the setup token across instances', (dialect) => {
    if (dialect !== 'postgres') return
    test('every instance knows the same token; setup done on one is done on all', async () => {
      const a = await freshApp(dialect)
      const b = await createSecondInstance(a)
      b.presentSetupToken = false
      try {
        expect(b.deps.services.setup.token).toBe(a.deps.services.setup.token)
        expectProblem(await a.request('POST', '/api/v1/auth/register', { body: account('early') }), 403, 'FORBIDDEN')
        const first = await b.request('POST', '/api/v1/auth/register', { body: account('boss', { setup_token: a.deps.services.setup.token }) })
        expect(roleOf(first)).toBe('admin')
        expect(await a.deps.services.setup.pending()).toBe(false)
        const next = await a.request('POST', '/api/v1/auth/register', { body: account('next') })
        expect({ status: next.status, role: next.body.user?.role }).toEqual({ status: 201, role: 'user' })
      } finally {
        await b.close()
        await a.close()
      }
    })
  })
}
