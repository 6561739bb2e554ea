/**
 * Single sign-on, the providers' side (fake provider: test/fakes/oidc.ts): a provider that is slow
 * or answers HTML, the admins' providers, linked identities and linking, and two instances on one
 * Postgres. (The flow itself: oidc.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { and, eq } from 'drizzle-orm'
import { createAdmin, register, setupCallers, type Account, type CallersContext } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp } from './helpers/app.ts'
import { DIALECTS, eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'
import { startFakeOidc, type FakeOidc } from './fakes/oidc.ts'
import { cookiesOf, countSessions, envFor, errorOf, sessionsOf, signIn, stateCookie, subject, userByEmail } from './helpers/oidc.ts'

eachDialect('single sign-on: a slow or broken provider', (dialect) => {
  let fake: FakeOidc
  let t: TestApp
  beforeAll(async () => {
    fake = await startFakeOidc()
    t = await createTestApp(dialect, envFor(fake), { oidc: { timeoutMs: 300 } })
    await createAdmin(t)
  })
  afterAll(async () => {
    await t.close()
    await fake.stop()
  })

  test('discovery answering HTML: start is 502 UPSTREAM_ERROR, no pending sign-in', async () => {
    fake.knobs.html = 'discovery'
    try {
      const res = await t.request('GET', '/api/v1/auth/oidc/fake/start')
      expectProblem(res, 502, 'UPSTREAM_ERROR')
      expect(await t.deps.database.db.select().from(t.deps.database.t.oidcLogins)).toEqual([])
    } finally {
      fake.knobs.html = undefined
    }
  })

  test('discovery too slow: start is 502 UPSTREAM_ERROR', async () => {
    fake.knobs.slow = 'discovery'
    try {
      expectProblem(await t.request('GET', '/api/v1/auth/oidc/fake/start'), 502, 'UPSTREAM_ERROR')
    } finally {
      fake.knobs.slow = undefined
      fake.release()
    }
  })

  test('a token endpoint too slow: the callback redirects with upstream_error, nobody signed in', async () => {
    const start = await t.request('GET', '/api/v1/auth/oidc/fake/start')
    expect(start.status).toBe(302)
    fake.knobs.slow = 'token'
    try {
      const [name, value] = stateCookie(start)!
      fake.nextLogin({ sub: subject(), email: 'slow@corp.example', email_verified: true })
      const back = await fake.authorize(start.headers.get('location')!)
      const res = await t.request('GET', new URL(back.location).pathname + new URL(back.location).search, { headers: { cookie: `${name}=${value}` } })
      expect(errorOf(res)).toBe('upstream_error')
      expect(await countSessions(t)).toBe(0)
      expect(t.logText()).toContain('did not answer within 300 ms')
    } finally {
      fake.knobs.slow = undefined
      fake.release()
    }
  })
})

// -------------------------------------------------------------------------------------------------

interface AdminCtx extends CallersContext {
  fake: FakeOidc
}

eachDialect('single sign-on: the admins\' providers', (dialect) => {
  let ctx: AdminCtx
  beforeAll(async () => {
    const fake = await startFakeOidc()
    const t = await createTestApp(dialect, envFor(fake))
    ctx = { ...(await setupCallers(t)), fake }
  })
  afterAll(async () => {
    await ctx.t.close()
    await ctx.fake.stop()
  })

  const body = (id: string) => ({ id, name: 'Corp SSO', issuer: 'https://sso.corp.example', client_id: 'hearth', client_secret: 'TOP-SECRET-client-secret' })
  const paths: [string, string, unknown?][] = [
    ['GET', '/api/v1/admin/oidc-providers'],
    ['POST', '/api/v1/admin/oidc-providers', body('guarded')],
    ['GET', '/api/v1/admin/oidc-providers/fake'],
    ['PATCH', '/api/v1/admin/oidc-providers/fake', { name: 'x' }],
    ['DELETE', '/api/v1/admin/oidc-providers/fake'],
  ]
  scenarios<AdminCtx>(() => ctx, [
    ...paths.map(([method, path, b]): Scenario<AdminCtx> => ({ name: 'needs credentials', as: 'guest', method, path, body: b, status: 401, code: 'UNAUTHORIZED' })),
    ...(['user', 'other'] as const).flatMap((as) => paths.map(([method, path, b]): Scenario<AdminCtx> => ({ name: 'needs an admin', as, method, path, body: b, status: 403, code: 'FORBIDDEN' }))),
    { name: 'the environment provider is listed, read-only', as: 'admin', method: 'GET', path: '/api/v1/admin/oidc-providers', status: 200, notContains: ['fake-client-secret'], check: (r) => expect(r.body.items[0]).toMatchObject({ id: 'fake', source: 'env', has_client_secret: true, callback_url: 'http://localhost/api/v1/auth/oidc/fake/callback', created_at: null }) },
    { name: 'an environment provider cannot be changed', as: 'admin', method: 'PATCH', path: '/api/v1/admin/oidc-providers/fake', body: { name: 'x' }, status: 409, code: 'CONFLICT' },
    { name: 'an environment provider cannot be deleted', as: 'admin', method: 'DELETE', path: '/api/v1/admin/oidc-providers/fake', status: 409, code: 'CONFLICT' },
    { name: "an environment provider's id is taken", as: 'admin', method: 'POST', path: '/api/v1/admin/oidc-providers', body: body('fake'), status: 409, code: 'CONFLICT' },
    { name: 'an id that is not a slug', as: 'admin', method: 'POST', path: '/api/v1/admin/oidc-providers', body: body('Not_A_Slug'), status: 422, code: 'VALIDATION_ERROR', contains: ['"id"'] },
    { name: 'scopes without openid', as: 'admin', method: 'POST', path: '/api/v1/admin/oidc-providers', body: { ...body('noscope'), scopes: 'email profile' }, status: 422, code: 'VALIDATION_ERROR', contains: ['scopes'] },
    { name: 'an issuer that is not http(s)', as: 'admin', method: 'POST', path: '/api/v1/admin/oidc-providers', body: { ...body('ftp'), issuer: 'ftp://x.example' }, status: 422, code: 'VALIDATION_ERROR', contains: ['issuer'] },
    { name: 'an unknown one', as: 'admin', method: 'GET', path: '/api/v1/admin/oidc-providers/nope', status: 404, code: 'NOT_FOUND' },
  ])

  test('create, read, change and delete: the secret is write-only and stored encrypted', async () => {
    const { t, tokens } = ctx
    const created = await t.request('POST', '/api/v1/admin/oidc-providers', { token: tokens.admin, body: body('corp') })
    expect(created.status).toBe(201)
    expect(created.headers.get('location')).toBe('/api/v1/admin/oidc-providers/corp')
    expect(created.body).toMatchObject({ id: 'corp', name: 'Corp SSO', has_client_secret: true, source: 'admin', scopes: 'openid email profile' })
    expect(created.text).not.toContain('TOP-SECRET')
    const { db, t: s } = t.deps.database
    const [row] = await db.select().from(s.oidcProviders).where(eq(s.oidcProviders.id, 'corp'))
    expect(row!.clientSecret).toStartWith('v1.')
    expect(row!.clientSecret).not.toContain('TOP-SECRET')
    expectProblem(await t.request('POST', '/api/v1/admin/oidc-providers', { token: tokens.admin, body: body('corp') }), 409, 'CONFLICT')

    const patched = await t.request('PATCH', '/api/v1/admin/oidc-providers/corp', { token: tokens.admin, body: { name: 'Corp', client_secret: null } })
    expect(patched.body).toMatchObject({ name: 'Corp', has_client_secret: false })
    const list = await t.request('GET', '/api/v1/admin/oidc-providers', { token: tokens.admin })
    expect(list.body.items.map((p: { id: string }) => p.id)).toEqual(['fake', 'corp'])
    expect((await t.request('GET', '/api/v1/auth/oidc')).body.items).toEqual([{ id: 'fake', name: 'Fake IdP' }, { id: 'corp', name: 'Corp' }])

    expect((await t.request('DELETE', '/api/v1/admin/oidc-providers/corp', { token: tokens.admin })).status).toBe(204)
    expectProblem(await t.request('GET', '/api/v1/admin/oidc-providers/corp', { token: tokens.admin }), 404, 'NOT_FOUND')
  })

  test('an admin provider signs in; a change takes effect at once; a deleted one is refused', async () => {
    const { t, tokens, fake } = ctx
    await t.request('POST', '/api/v1/admin/oidc-providers', { token: tokens.admin, body: { id: 'mine', name: 'Mine', issuer: fake.issuer, client_id: fake.clientId, client_secret: 'wrong-secret' } })
    const sub = subject()
    const wrong = await signIn(t, fake, { sub, email: `${sub}@corp.example`, email_verified: true }, { provider: 'mine' })
    expect(errorOf(wrong.callback)).toBe('invalid_token') // invalid_client from the provider
    await t.request('PATCH', '/api/v1/admin/oidc-providers/mine', { token: tokens.admin, body: { client_secret: fake.clientSecret } })
    const right = await signIn(t, fake, { sub, email: `${sub}@corp.example`, email_verified: true }, { provider: 'mine' })
    expect(right.callback.headers.get('location')).toBe('/')
    await t.request('DELETE', '/api/v1/admin/oidc-providers/mine', { token: tokens.admin })
    expectProblem(await t.request('GET', '/api/v1/auth/oidc/mine/start'), 404, 'NOT_FOUND')
  })
})

// -------------------------------------------------------------------------------------------------

interface IdentityCtx extends CallersContext {
  fake: FakeOidc
  /** the user's identity */
  mine: string
}

eachDialect('single sign-on: linked identities', (dialect) => {
  let ctx: IdentityCtx
  beforeAll(async () => {
    const fake = await startFakeOidc()
    const t = await createTestApp(dialect, envFor(fake))
    const callers = await setupCallers(t)
    const { db, t: s } = t.deps.database
    const [row] = await db.insert(s.userIdentities).values({ userId: callers.accounts.user.id, providerId: 'fake', subject: subject(), email: 'SECRET-user-identity@example.com' }).returning()
    ctx = { ...callers, fake, mine: row!.id }
  })
  afterAll(async () => {
    await ctx.t.close()
    await ctx.fake.stop()
  })

  scenarios<IdentityCtx>(() => ctx, [
    { name: 'needs credentials', as: 'guest', method: 'GET', path: '/api/v1/auth/identities', status: 401, code: 'UNAUTHORIZED' },
    { name: 'needs credentials', as: 'guest', method: 'DELETE', path: (c) => `/api/v1/auth/identities/${c.mine}`, status: 401, code: 'UNAUTHORIZED' },
    { name: 'needs credentials', as: 'guest', method: 'POST', path: '/api/v1/auth/oidc/fake/link', body: {}, status: 401, code: 'UNAUTHORIZED' },
    { name: 'own identities', as: 'user', method: 'GET', path: '/api/v1/auth/identities', status: 200, check: (r) => expect(r.body.items).toEqual([{ id: ctx.mine, provider_id: 'fake', provider_name: 'Fake IdP', email: 'SECRET-user-identity@example.com', created_at: expect.any(String), last_used_at: null }]) },
    { name: "another user's are not listed", as: 'other', method: 'GET', path: '/api/v1/auth/identities', status: 200, notContains: ['SECRET-user-identity'], check: (r) => expect(r.body.items).toEqual([]) },
    { name: "an admin sees only their own", as: 'admin', method: 'GET', path: '/api/v1/auth/identities', status: 200, notContains: ['SECRET-user-identity'] },
    { name: "another user's is 404", as: 'other', method: 'DELETE', path: (c) => `/api/v1/auth/identities/${c.mine}`, status: 404, code: 'NOT_FOUND' },
    { name: "another user's is 404, for an admin too", as: 'admin', method: 'DELETE', path: (c) => `/api/v1/auth/identities/${c.mine}`, status: 404, code: 'NOT_FOUND' },
    { name: 'an unknown provider', as: 'user', method: 'POST', path: '/api/v1/auth/oidc/nope/link', body: {}, status: 404, code: 'NOT_FOUND' },
    { name: 'a redirect elsewhere', as: 'user', method: 'POST', path: '/api/v1/auth/oidc/fake/link', body: { redirect: '//evil.com' }, status: 422, code: 'VALIDATION_ERROR' },
  ])

  test('an API key may list identities but not unlink or link', async () => {
    const { t, accounts } = ctx
    const key = (await t.request('POST', '/api/v1/api-keys', { token: accounts.user.access, body: { name: 'k' } })).body.key
    expect((await t.request('GET', '/api/v1/auth/identities', { token: key })).status).toBe(200)
    expectProblem(await t.request('DELETE', `/api/v1/auth/identities/${ctx.mine}`, { token: key }), 403, 'FORBIDDEN')
    expectProblem(await t.request('POST', '/api/v1/auth/oidc/fake/link', { token: key, body: {} }), 403, 'FORBIDDEN')
  })

  test('link while signed in: the callback links instead of signing in; an identity of another user is refused', async () => {
    const { t, fake, accounts } = ctx
    const link = await t.request('POST', '/api/v1/auth/oidc/fake/link', { token: accounts.other.access, body: { redirect: '/settings' } })
    expect(link.status).toBe(200)
    const [name, value] = stateCookie(link)!
    const sub = subject()
    fake.nextLogin({ sub, email: 'whatever@elsewhere.example', email_verified: false })
    const back = await fake.authorize(link.body.url)
    const before = await countSessions(t)
    const res = await t.request('GET', new URL(back.location).pathname + new URL(back.location).search, { headers: { cookie: `${name}=${value}` } })
    expect(res.headers.get('location')).toBe('/settings')
    expect(cookiesOf(res).hearth_access).toBeUndefined()
    expect(await countSessions(t)).toBe(before)
    const { db, t: s } = t.deps.database
    expect((await db.select().from(s.userIdentities).where(eq(s.userIdentities.subject, sub)))[0]!.userId).toBe(accounts.other.id)

    // the same provider account, linked from the admin's: refused
    const link2 = await t.request('POST', '/api/v1/auth/oidc/fake/link', { token: accounts.admin.access, body: {} })
    const [name2, value2] = stateCookie(link2)!
    fake.nextLogin({ sub, email: 'whatever@elsewhere.example' })
    const back2 = await fake.authorize(link2.body.url)
    const res2 = await t.request('GET', new URL(back2.location).pathname + new URL(back2.location).search, { headers: { cookie: `${name2}=${value2}` } })
    expect(res2.headers.get('location')).toBe('/?error=identity_taken')
    expect((await db.select().from(s.userIdentities).where(and(eq(s.userIdentities.subject, sub), eq(s.userIdentities.userId, accounts.admin.id)))).length).toBe(0)

    // signing in with it now signs in the other user
    const flow = await signIn(t, fake, { sub, email: 'whatever@elsewhere.example' })
    expect(flow.callback.headers.get('location')).toBe('/')
    expect((await sessionsOf(t, accounts.other.id)).some((x) => x.method === 'oidc')).toBe(true)
  })

  test('an account without a password keeps its last identity until it sets a password', async () => {
    const { t, fake } = ctx
    const sub = subject()
    const flow = await signIn(t, fake, { sub, email: `${sub}@corp.example`, email_verified: true })
    const access = cookiesOf(flow.callback).hearth_access!
    const list = await t.request('GET', '/api/v1/auth/identities', { token: access })
    const [only] = list.body.items
    expect(only.last_used_at).not.toBeNull()
    expectProblem(await t.request('DELETE', `/api/v1/auth/identities/${only.id}`, { token: access }), 409, 'CONFLICT')
    // no old password to give: the first one is set without it
    expect((await t.request('PUT', '/api/v1/auth/password', { token: access, body: { new_password: 'a-brand-new-password' } })).status).toBe(204)
    const user = (await userByEmail(t, `${sub}@corp.example`))!
    expect(user.hasPassword).toBe(true)
    // from now on the old password is needed
    expectProblem(await t.request('PUT', '/api/v1/auth/password', { token: access, body: { new_password: 'another-new-password' } }), 422, 'VALIDATION_ERROR')
    expect((await t.request('DELETE', `/api/v1/auth/identities/${only.id}`, { token: access })).status).toBe(204)
    expect((await t.request('GET', '/api/v1/auth/identities', { token: access })).body.items).toEqual([])
    expect((await t.request('POST', '/api/v1/auth/login', { body: { username: user.username, password: 'a-brand-new-password' } })).status).toBe(200)
  })
})

// -------------------------------------------------------------------------------------------------

for (const dialect of DIALECTS.filter((d) => d === 'postgres')) {
  describe(`single sign-on on two instances [${dialect}]`, () => {
    let fake: FakeOidc
    let a: TestApp
    let b: TestApp
    let admin: Account
    beforeAll(async () => {
      fake = await startFakeOidc()
      a = await createTestApp(dialect, envFor(fake))
      b = await createSecondInstance(a, envFor(fake))
      admin = await register(a, 'admin')
    })
    afterAll(async () => {
      await b.close()
      await a.close()
      await fake.stop()
    })

    test('a sign-in started on A completes on B', async () => {
      const sub = subject()
      const flow = await signIn(a, fake, { sub, email: `${sub}@corp.example`, email_verified: true }, { callbackOn: b, redirect: '/b' })
      expect(flow.callback.headers.get('location')).toBe('/b')
      expect(cookiesOf(flow.callback).hearth_access).toBeTruthy()
      expect(await userByEmail(b, `${sub}@corp.example`)).toMatchObject({ hasPassword: false })
    })

    test('a provider deleted on A is refused by B at once', async () => {
      const created = await a.request('POST', '/api/v1/admin/oidc-providers', { token: admin.access, body: { id: 'shared', name: 'Shared', issuer: fake.issuer, client_id: fake.clientId, client_secret: fake.clientSecret } })
      expect(created.status).toBe(201)
      // both instances have discovered it
      expect((await a.request('GET', '/api/v1/auth/oidc/shared/start')).status).toBe(302)
      expect((await b.request('GET', '/api/v1/auth/oidc/shared/start')).status).toBe(302)
      // a sign-in started on B before the delete
      const pending = await b.request('GET', '/api/v1/auth/oidc/shared/start?redirect=/p')
      expect((await a.request('DELETE', '/api/v1/admin/oidc-providers/shared', { token: admin.access })).status).toBe(204)
      expectProblem(await b.request('GET', '/api/v1/auth/oidc/shared/start'), 404, 'NOT_FOUND')
      const [name, value] = stateCookie(pending)!
      fake.nextLogin({ sub: subject(), email: 'gone@corp.example', email_verified: true })
      const back = await fake.authorize(pending.headers.get('location')!)
      const res = await b.request('GET', new URL(back.location).pathname + new URL(back.location).search, { headers: { cookie: `${name}=${value}` } })
      expect(res.headers.get('location')).toBe('/p?error=provider_unknown')
    })
  })
}
