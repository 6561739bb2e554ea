/**
 * Login links: admins (with a session, never an API key) issue, list and revoke them; opening one
 * signs its user in with cookies and a 302 — once for a single-use link, until revoked for a
 * reusable one — and a used, expired, revoked or unknown link, or a disabled user's, signs nobody
 * in. Tokens are stored hashed and never logged. On Postgres, two instances share the links, and
 * of two simultaneous opens of a single-use link on both, exactly one signs in. The CLI's link works
 * against a server on the same database.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { join } from 'node:path'
import { sha256 } from '../src/lib/crypto.ts'
import { originOf } from '../src/plugins/auth.ts'
import { register, setupCallers, type Account, type CallersContext } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { DIALECTS, eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Caller, type Scenario } from './helpers/scenarios.ts'

const BASE = '/api/v1/auth/login-links'
const URL_SHAPE = /^http:\/\/localhost\/api\/v1\/auth\/login-links\/open\?token=(hll_[A-Za-z0-9_-]{43})$/

type Json = Record<string, any>

async function issue(t: TestApp, adminAccess: string, body: Json): Promise<Json & { token: string }> {
  const res = await t.request('POST', BASE, { token: adminAccess, body })
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
  expect(res.headers.get('location')).toBe(`${BASE}/${res.body.id}`)
  const token = URL_SHAPE.exec(res.body.url)?.[1]
  expect(token).toBeDefined()
  return { ...res.body, token: token! }
}

const open = (t: TestApp, token: string, headers?: Record<string, string>) => t.request('GET', `${BASE}/open?token=${encodeURIComponent(token)}`, { headers })

/** the cookies a response sets, by name */
const cookiesOf = (res: TestResponse) => Object.fromEntries(res.headers.getSetCookie().map((c) => c.split(';')[0]!.split('=') as [string, string]))

/** a 302 to / that set both cookies; the access cookie works for /auth/me as `userId` */
async function expectSignedIn(t: TestApp, res: TestResponse, userId: string) {
  expect({ status: res.status, location: res.headers.get('location') }).toEqual({ status: 302, location: '/' })
  const cookies = cookiesOf(res)
  expect(cookies.hearth_refresh).toStartWith('hrt_')
  const me = await t.request('GET', '/api/v1/auth/me', { headers: { cookie: `hearth_access=${cookies.hearth_access}` } })
  expect({ status: me.status, id: me.body.id }).toEqual({ status: 200, id: userId })
}

/** refused as `status`, and no cookie set */
function expectRefused(res: TestResponse, status: number) {
  expectProblem(res, status)
  expect(res.headers.getSetCookie()).toEqual([])
}

const sessionsOf = async (t: TestApp, userId: string) => {
  const { db, t: tables } = t.deps.database
  return db.select().from(tables.sessions).where(eq(tables.sessions.userId, userId))
}

const linkRow = async (t: TestApp, id: string) => {
  const { db, t: tables } = t.deps.database
  const [row] = await db.select().from(tables.loginLinks).where(eq(tables.loginLinks.id, id))
  return row
}

// -------------------------------------------------------------------------------------------------

type Kind = Caller | 'adminKey'
interface Ctx extends CallersContext {
  tokens: Partial<Record<Kind, string>>
  link: string
  disabled: string
}

eachDialect('login links: who may do what', (dialect) => {
  let ctx: Ctx
  beforeAll(async () => {
    const t = await createTestApp(dialect)
    const callers = await setupCallers(t)
    const admin = callers.accounts.admin.access
    const key = await t.request('POST', '/api/v1/api-keys', { token: admin, body: { name: 'admin script' } })
    const link = await issue(t, admin, { user_id: callers.accounts.user.id })
    const disabled = await register(t, 'disabled')
    expect((await t.request('PATCH', `/api/v1/admin/users/${disabled.id}`, { token: admin, body: { is_active: false } })).status).toBe(200)
    ctx = { ...callers, tokens: { ...callers.tokens, adminKey: key.body.key }, link: link.id, disabled: disabled.id }
  })
  afterAll(() => ctx.t.close())

  const endpoints: [string, (c: Ctx) => string, ((c: Ctx) => unknown)?][] = [
    ['POST', () => BASE, (c) => ({ user_id: c.accounts.other.id })],
    ['GET', () => BASE],
    ['GET', (c) => `${BASE}?user_id=${c.accounts.user.id}`],
    ['DELETE', (c) => `${BASE}/${c.link}`],
  ]
  const noToken = ['hll_', 'token_hash']

  scenarios<Ctx, Kind>(() => ctx, [
    ...endpoints.map(([method, path, body]): Scenario<Ctx, Kind> => ({ name: 'needs credentials', as: 'guest', method, path, body, status: 401, code: 'UNAUTHORIZED' })),
    // a user may not mint links, not even for themselves, nor see or revoke the links made for them
    ...(['user', 'other'] as const).flatMap((as) => endpoints.map(([method, path, body]): Scenario<Ctx, Kind> => ({ name: 'admins only', as, method, path, body, status: 403, code: 'FORBIDDEN', notContains: noToken }))),
    ...endpoints.map(([method, path, body]): Scenario<Ctx, Kind> => ({ name: "an admin's API key cannot: a link is a credential", as: 'adminKey', method, path, body, status: 403, code: 'FORBIDDEN', contains: ['signed-in session'], notContains: noToken })),
    {
      name: 'issue: single use, 15 minutes by default; the URL from the request origin',
      as: 'admin',
      method: 'POST',
      path: BASE,
      body: (c: Ctx) => ({ user_id: c.accounts.other.id }),
      status: 201,
      check: (res, c) => {
        expect(res.body).toMatchObject({ user_id: c.accounts.other.id, created_by: c.accounts.admin.id, single_use: true, status: 'active', used_at: null, revoked_at: null, url: expect.stringMatching(URL_SHAPE) })
        const ttl = Date.parse(res.body.expires_at) - Date.parse(res.body.created_at)
        expect(ttl).toBeGreaterThan(899_000)
        expect(ttl).toBeLessThan(901_000)
      },
    },
    {
      name: 'issue: a reusable link that never expires',
      as: 'admin',
      method: 'POST',
      path: BASE,
      body: (c: Ctx) => ({ user_id: c.accounts.other.id, single_use: false, ttl_s: null }),
      status: 201,
      check: (res) => expect(res.body).toMatchObject({ single_use: false, expires_at: null, status: 'active' }),
    },
    { name: 'issue: an unknown user is 404', as: 'admin', method: 'POST', path: BASE, body: { user_id: 'no-such-user' }, status: 404, code: 'NOT_FOUND' },
    { name: 'issue: a disabled user is 422 naming user_id', as: 'admin', method: 'POST', path: BASE, body: (c: Ctx) => ({ user_id: c.disabled }), status: 422, code: 'VALIDATION_ERROR', check: (res) => expect(res.body.errors).toEqual([{ path: 'user_id', message: 'the user is disabled' }]) },
    { name: 'issue: a single-use link must expire', as: 'admin', method: 'POST', path: BASE, body: (c: Ctx) => ({ user_id: c.accounts.user.id, ttl_s: null }), status: 422, code: 'VALIDATION_ERROR', contains: ['"path":"ttl_s"'] },
    { name: 'issue: ttl_s under 60 s', as: 'admin', method: 'POST', path: BASE, body: (c: Ctx) => ({ user_id: c.accounts.user.id, ttl_s: 59 }), status: 422, contains: ['"path":"ttl_s"'] },
    { name: 'issue: ttl_s over 30 days', as: 'admin', method: 'POST', path: BASE, body: (c: Ctx) => ({ user_id: c.accounts.user.id, ttl_s: 30 * 86400 + 1, single_use: false }), status: 422, contains: ['"path":"ttl_s"'] },
    {
      name: "list one user's links: status fields, never a token",
      as: 'admin',
      method: 'GET',
      path: (c) => `${BASE}?user_id=${c.accounts.user.id}`,
      status: 200,
      notContains: noToken,
      check: (res, c) => {
        expect(res.body).toMatchObject({ total: 1, has_more: false })
        expect(res.body.items).toEqual([expect.objectContaining({ id: c.link, user_id: c.accounts.user.id, status: 'active', single_use: true })])
        expect(res.body.items[0].url).toBeUndefined()
      },
    },
    { name: 'list every link', as: 'admin', method: 'GET', path: BASE, status: 200, notContains: noToken, check: (res) => expect(res.body.total).toBeGreaterThanOrEqual(3) },
    { name: 'revoke: an unknown id is 404', as: 'admin', method: 'DELETE', path: `${BASE}/no-such-link`, status: 404, code: 'NOT_FOUND' },
    {
      name: 'revoke; again is 204 too; the list says revoked',
      as: 'admin',
      method: 'DELETE',
      path: (c) => `${BASE}/${c.link}`,
      status: 204,
      check: async (_, c) => {
        expect((await c.t.request('DELETE', `${BASE}/${c.link}`, { token: c.accounts.admin.access })).status).toBe(204)
        const list = await c.t.request('GET', `${BASE}?user_id=${c.accounts.user.id}`, { token: c.accounts.admin.access })
        expect(list.body.items[0]).toMatchObject({ id: c.link, status: 'revoked', revoked_at: expect.any(String) })
      },
    },
  ])
})

eachDialect('login links: opening', (dialect) => {
  let t: TestApp
  let admin: Account
  beforeAll(async () => {
    t = await createTestApp(dialect)
    admin = await register(t, 'admin')
  })
  afterAll(() => t.close())

  test('opens once: signed in with cookies and a login_link session; a second open signs nobody in', async () => {
    const u = await register(t, 'opener')
    const link = await issue(t, admin.access, { user_id: u.id })
    const before = await sessionsOf(t, u.id)
    await expectSignedIn(t, await open(t, link.token, { 'user-agent': 'link-browser' }), u.id)
    const sessions = await sessionsOf(t, u.id)
    expect(sessions).toHaveLength(before.length + 1)
    expect(sessions.filter((s) => s.method === 'login_link').map((s) => s.userAgent)).toEqual(['link-browser'])
    expect((await linkRow(t, link.id))!.usedAt).toBeInstanceOf(Date)

    expectRefused(await open(t, link.token), 401)
    expect(await sessionsOf(t, u.id)).toHaveLength(before.length + 1)
    const list = await t.request('GET', `${BASE}?user_id=${u.id}`, { token: admin.access })
    expect(list.body.items[0]).toMatchObject({ status: 'used', used_at: expect.any(String) })
  })

  test('a reusable link opens again and again (recording the last use) until it is revoked', async () => {
    const u = await register(t, 'regular')
    const link = await issue(t, admin.access, { user_id: u.id, single_use: false, ttl_s: null })
    await expectSignedIn(t, await open(t, link.token), u.id)
    const firstUse = (await linkRow(t, link.id))!.usedAt!
    await expectSignedIn(t, await open(t, link.token), u.id)
    expect((await linkRow(t, link.id))!.usedAt!.getTime()).toBeGreaterThanOrEqual(firstUse.getTime())
    expect((await sessionsOf(t, u.id)).filter((s) => s.method === 'login_link')).toHaveLength(2)
    expect((await t.request('GET', `${BASE}?user_id=${u.id}`, { token: admin.access })).body.items[0].status).toBe('active')

    expect((await t.request('DELETE', `${BASE}/${link.id}`, { token: admin.access })).status).toBe(204)
    expectRefused(await open(t, link.token), 401)
  })

  test('an expired link signs nobody in', async () => {
    const u = await register(t, 'late')
    const link = await issue(t, admin.access, { user_id: u.id, ttl_s: 60 })
    const { db, t: tables } = t.deps.database
    await db.update(tables.loginLinks).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(tables.loginLinks.id, link.id))
    expectRefused(await open(t, link.token), 401)
    expect((await sessionsOf(t, u.id)).filter((s) => s.method === 'login_link')).toEqual([])
    expect((await t.request('GET', `${BASE}?user_id=${u.id}`, { token: admin.access })).body.items[0].status).toBe('expired')
  })

  test("a disabled user's link is 403 and signs nobody in; deleting the user deletes their links", async () => {
    const u = await register(t, 'benched')
    const link = await issue(t, admin.access, { user_id: u.id, single_use: false })
    expect((await t.request('PATCH', `/api/v1/admin/users/${u.id}`, { token: admin.access, body: { is_active: false } })).status).toBe(200)
    const res = await open(t, link.token)
    expectRefused(res, 403)
    expect(res.body.detail).toContain('disabled')
    expect((await sessionsOf(t, u.id)).filter((s) => s.method === 'login_link')).toEqual([])

    expect((await t.request('DELETE', `/api/v1/admin/users/${u.id}`, { token: admin.access })).status).toBe(204)
    expect(await linkRow(t, link.id)).toBeUndefined()
    expectRefused(await open(t, link.token), 401)
  })

  test('an unknown or malformed token is 401; no token is 422', async () => {
    expectRefused(await open(t, `hll_${'A'.repeat(43)}`), 401)
    expectRefused(await open(t, 'whatever'), 401)
    expectRefused(await t.request('GET', `${BASE}/open`), 422)
  })

  test('the token is stored as its SHA-256 only, and never written to the log', async () => {
    const u = await register(t, 'hashed')
    const link = await issue(t, admin.access, { user_id: u.id })
    const row = await linkRow(t, link.id)
    expect(row!.tokenHash).toBe(sha256(link.token))
    expect(JSON.stringify(row)).not.toContain(link.token)
    expect(JSON.stringify(row)).not.toContain(link.token.slice(4))
    await expectSignedIn(t, await open(t, link.token), u.id)
    expect(t.logText()).toContain('/api/v1/auth/login-links/open')
    expect(t.logText()).not.toContain(link.token.slice(4))
  })
})

eachDialect('login links: opening is limited per address like logins', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect, { HEARTH_AUTH_RATE_LIMIT: '3/min' })
  })
  afterAll(() => t.close())

  test('past HEARTH_AUTH_RATE_LIMIT, guesses are 429', async () => {
    const guess = () => open(t, `hll_${crypto.randomUUID()}`)
    for (let i = 0; i < 3; i++) expectRefused(await guess(), 401)
    const res = await guess()
    expectRefused(res, 429)
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/)
  })
})

describe('login links: the URL', () => {
  const config = (publicUrl: string | undefined, trustProxy: boolean) => ({ publicUrl, trustProxy })
  const req = (url: string, headers: Record<string, string> = {}) => new Request(url, { headers })
  const forwarded = { 'x-forwarded-host': 'hearth.example.com', 'x-forwarded-proto': 'https' }

  test('HEARTH_PUBLIC_URL first; else the request origin; X-Forwarded-* only behind HEARTH_TRUST_PROXY', () => {
    expect(originOf(req('http://10.0.0.5:8787/x', forwarded), config('https://chat.example.org', true))).toBe('https://chat.example.org')
    expect(originOf(req('http://10.0.0.5:8787/x', forwarded), config(undefined, false))).toBe('http://10.0.0.5:8787')
    expect(originOf(req('http://10.0.0.5:8787/x', forwarded), config(undefined, true))).toBe('https://hearth.example.com')
    expect(originOf(req('http://10.0.0.5:8787/x', { 'x-forwarded-proto': 'javascript' }), config(undefined, true))).toBe('http://10.0.0.5:8787')
  })
})

// -------------------------------------------------------------------------------------------------

for (const dialect of DIALECTS.filter((d) => d === 'postgres')) {
  describe(`login links: two instances on one database [${dialect}]`, () => {
    let a: TestApp
    let b: TestApp
    let admin: Account
    beforeAll(async () => {
      a = await createTestApp(dialect)
      b = await createSecondInstance(a)
      admin = await register(a, 'admin')
    })
    afterAll(async () => {
      await b.close()
      await a.close()
    })

    test('issued on A, opened on B; then refused on A', async () => {
      const u = await register(a, 'roamer')
      const link = await issue(a, admin.access, { user_id: u.id })
      await expectSignedIn(b, await open(b, link.token), u.id)
      expectRefused(await open(a, link.token), 401)
    })

    test('one single-use link opened at once on A and B: exactly one signs in', async () => {
      for (let round = 0; round < 5; round++) {
        const u = await register(a, 'race')
        const link = await issue(a, admin.access, { user_id: u.id })
        const results = await Promise.all([open(a, link.token), open(b, link.token), open(a, link.token), open(b, link.token)])
        expect(results.map((r) => r.status).sort()).toEqual([302, 401, 401, 401])
        expect((await sessionsOf(a, u.id)).filter((s) => s.method === 'login_link')).toHaveLength(1)
      }
    }, 30_000)
  })
}

// -------------------------------------------------------------------------------------------------

eachDialect('hearth admin login-link', (dialect) => {
  let t: TestApp
  let admin: Account
  let env: Record<string, string>
  beforeAll(async () => {
    t = await createTestApp(dialect)
    admin = await register(t, 'admin')
    env = { PATH: process.env.PATH ?? '', HEARTH_LOG: 'warn', HEARTH_DATA_DIR: t.db.dataDir, ...(t.db.url ? { DATABASE_URL: t.db.url } : {}) }
  })
  afterAll(() => t.close())

  const ENTRY = join(import.meta.dir, '../src/index.ts')
  const cli = (args: string[], extra: Record<string, string> = {}) => {
    const proc = Bun.spawnSync([process.execPath, ENTRY, 'admin', 'login-link', ...args], { env: { ...env, ...extra }, stdin: 'ignore' })
    return { code: proc.exitCode, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() }
  }
  const linkOf = (stdout: string) => /^(http\S+\/api\/v1\/auth\/login-links\/open\?token=(hll_[A-Za-z0-9_-]{43}))\n/.exec(stdout)

  test('prints a single-use link (by username, any case) that signs in on a server on the same database', async () => {
    const u = await register(t, 'cli')
    const r = cli(['--user', u.username.toUpperCase(), '--ttl', '2h'], { PORT: '9999' })
    expect(r).toMatchObject({ code: 0, stderr: '' })
    const m = linkOf(r.stdout)
    expect(m?.[1]).toStartWith('http://localhost:9999/')
    const expires = Date.parse(/expires (\S+Z)/.exec(r.stdout)![1]!)
    expect(Math.abs(expires - (Date.now() + 2 * 3600_000))).toBeLessThan(60_000)
    const [row] = await t.deps.database.db.select().from(t.deps.database.t.loginLinks).where(eq(t.deps.database.t.loginLinks.tokenHash, sha256(m![2]!)))
    expect(row).toMatchObject({ userId: u.id, createdBy: null, singleUse: true })
    await expectSignedIn(t, await open(t, m![2]!), u.id)
    expectRefused(await open(t, m![2]!), 401)
  }, 20_000)

  test('--permanent by email, with HEARTH_PUBLIC_URL: reusable, never expiring', async () => {
    const u = await register(t, 'cliperm')
    const r = cli(['--permanent', '--user', u.email], { HEARTH_PUBLIC_URL: 'https://hearth.example.com' })
    expect(r.code).toBe(0)
    const m = linkOf(r.stdout)
    expect(m?.[1]).toStartWith('https://hearth.example.com/api/v1/auth/login-links/open?token=')
    expect(r.stdout).toContain('never expires')
    await expectSignedIn(t, await open(t, m![2]!), u.id)
    await expectSignedIn(t, await open(t, m![2]!), u.id)
  }, 20_000)

  test('an unknown user exits 1 with one line; bad flags exit 2', () => {
    const unknown = cli(['--user', 'nobody-here'])
    expect([unknown.code, unknown.stdout, unknown.stderr.trim().split('\n').length]).toEqual([1, '', 1])
    expect(unknown.stderr).toContain('nobody-here')
    for (const args of [[], ['--user', admin.username, '--ttl', '10'], ['--user', admin.username, '--ttl', '31d'], ['--user', admin.username, '--ttl', 'soon'], ['--user', admin.username, '--frob', 'x']]) {
      const r = cli(args)
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 2, stdout: '' })
    }
  }, 30_000)
})
