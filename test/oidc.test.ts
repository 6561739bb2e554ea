/**
 * Single sign-on against a fake OpenID provider on loopback (test/fakes/oidc.ts): the flow from
 * start to callback, what the ID token must prove (signature, audience, expiry), the state's
 * single use and browser binding, linking and registration rules, the redirect rule, a provider
 * that is slow, huge or answers HTML, the admins' providers, linked identities, and two instances
 * on one Postgres.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { and, eq } from 'drizzle-orm'
import { createAdmin, register, setupCallers, type Account, type CallersContext } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { DIALECTS, eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'
import { startFakeOidc, type FakeClaims, type FakeOidc } from './fakes/oidc.ts'

const envFor = (fake: FakeOidc, extra: Record<string, string> = {}) => ({
  HEARTH_OIDC_FAKE_ISSUER: fake.issuer,
  HEARTH_OIDC_FAKE_CLIENT_ID: fake.clientId,
  HEARTH_OIDC_FAKE_CLIENT_SECRET: fake.clientSecret,
  HEARTH_OIDC_FAKE_NAME: 'Fake IdP',
  ...extra,
})

/** the `name=value` of each Set-Cookie of an answer */
const cookiesOf = (res: TestResponse) => Object.fromEntries(res.headers.getSetCookie().map((c) => c.split(';')[0]!.split('=') as [string, string]))
const stateCookie = (res: TestResponse) => Object.entries(cookiesOf(res)).find(([k]) => k.startsWith('hearth_oidc_'))

let n = 0
const subject = () => `sub-${Date.now().toString(36)}-${n++}`

interface Flow {
  start: TestResponse
  callback: TestResponse
  code: string | null
  state: string | null
  cookie: string
}

/** A whole sign-in as a browser does it: start, the provider, the callback with the state cookie. */
async function signIn(t: TestApp, fake: FakeOidc, claims: FakeClaims, opts: { redirect?: string; provider?: string; callbackOn?: TestApp; token?: string } = {}): Promise<Flow> {
  const provider = opts.provider ?? 'fake'
  const start = await t.request('GET', `/api/v1/auth/oidc/${provider}/start${opts.redirect !== undefined ? `?redirect=${encodeURIComponent(opts.redirect)}` : ''}`)
  expect({ status: start.status, body: start.body }).toMatchObject({ status: 302 })
  const [name, value] = stateCookie(start)!
  fake.nextLogin(claims)
  const back = await fake.authorize(start.headers.get('location')!)
  const cookie = `${name}=${value}`
  const callback = await (opts.callbackOn ?? t).request('GET', new URL(back.location).pathname + new URL(back.location).search, { headers: { cookie } })
  return { start, callback, code: back.code, state: back.state, cookie }
}

const sessionsOf = async (t: TestApp, userId: string) => {
  const { db, t: s } = t.deps.database
  return db.select().from(s.sessions).where(eq(s.sessions.userId, userId))
}
const userByEmail = async (t: TestApp, email: string) => {
  const { db, t: s } = t.deps.database
  return (await db.select().from(s.users).where(eq(s.users.email, email)))[0]
}
const countSessions = async (t: TestApp) => (await t.deps.database.db.select().from(t.deps.database.t.sessions)).length
const errorOf = (res: TestResponse) => new URL(res.headers.get('location')!, 'http://x').searchParams.get('error')

eachDialect('single sign-on: the flow', (dialect) => {
  let fake: FakeOidc
  let t: TestApp
  beforeAll(async () => {
    fake = await startFakeOidc()
    t = await createTestApp(dialect, envFor(fake, { HEARTH_CORS_ORIGINS: 'https://app.example.com' }))
    await createAdmin(t)
  })
  afterAll(async () => {
    await t.close()
    await fake.stop()
  })

  test('the providers list: { id, name } in a list page', async () => {
    const res = await t.request('GET', '/api/v1/auth/oidc')
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ items: [{ id: 'fake', name: 'Fake IdP' }], total: 1, limit: 1, offset: 0, has_more: false })
  })

  test('start redirects to the provider with PKCE S256, state, nonce and the callback URL, and binds the state to the browser', async () => {
    const res = await t.request('GET', '/api/v1/auth/oidc/fake/start?redirect=/welcome')
    expect(res.status).toBe(302)
    const url = new URL(res.headers.get('location')!)
    expect(url.origin + url.pathname).toBe(`${fake.issuer}/authorize`)
    expect(Object.fromEntries(url.searchParams)).toMatchObject({ client_id: 'hearth-test', response_type: 'code', code_challenge_method: 'S256', redirect_uri: 'http://localhost/api/v1/auth/oidc/fake/callback', scope: 'openid email profile' })
    expect(url.searchParams.get('state')!.length).toBeGreaterThan(20)
    expect(url.searchParams.get('nonce')!.length).toBeGreaterThan(20)
    expect(url.searchParams.get('code_challenge')!.length).toBe(43)
    const setCookie = res.headers.getSetCookie().find((c) => c.startsWith('hearth_oidc_'))!
    expect(setCookie).toContain('HttpOnly')
    expect(setCookie).toContain('Path=/api/v1/auth/oidc')
    expect(setCookie.toLowerCase()).toContain('samesite=lax')
    const { db, t: s } = t.deps.database
    const [row] = await db.select().from(s.oidcLogins).where(eq(s.oidcLogins.redirectUri, 'http://localhost/api/v1/auth/oidc/fake/callback'))
    expect(row).toMatchObject({ providerId: 'fake', returnTo: '/welcome', linkUserId: null })
    expect(row!.expiresAt.getTime() - Date.now()).toBeGreaterThan(9 * 60_000)
  })

  test('a first sign-in creates the account (no password, verified email, identity), signs it in with cookies and redirects', async () => {
    const sub = subject()
    const email = `${sub}@corp.example`
    const flow = await signIn(t, fake, { sub, email, email_verified: true, name: 'Ada Lovelace', preferred_username: 'ada.lovelace' }, { redirect: '/home?tab=1' })
    expect(flow.callback.status).toBe(302)
    expect(flow.callback.headers.get('location')).toBe('/home?tab=1')
    const cookies = cookiesOf(flow.callback)
    expect(cookies.hearth_access).toBeTruthy()
    expect(cookies.hearth_refresh).toBeTruthy()
    const user = (await userByEmail(t, email))!
    expect(user).toMatchObject({ username: 'ada_lovelace', displayName: 'Ada Lovelace', emailVerified: true, hasPassword: false, role: 'user' })
    const sessions = await sessionsOf(t, user.id)
    expect(sessions.map((s) => s.method)).toEqual(['oidc'])
    const { db, t: s } = t.deps.database
    expect(await db.select({ providerId: s.userIdentities.providerId, email: s.userIdentities.email }).from(s.userIdentities).where(eq(s.userIdentities.subject, sub))).toEqual([{ providerId: 'fake', email }])
    // the cookie works
    const me = await t.request('GET', '/api/v1/auth/me', { headers: { cookie: `hearth_access=${cookies.hearth_access}` } })
    expect(me.body).toMatchObject({ id: user.id, email })
    // the token request carried the PKCE verifier, the stored redirect_uri and the client's secret
    expect(fake.tokenRequests.at(-1)).toMatchObject({ grant_type: 'authorization_code', redirect_uri: 'http://localhost/api/v1/auth/oidc/fake/callback', client_secret: fake.clientSecret })
    expect(fake.tokenRequests.at(-1)!.code_verifier!.length).toBeGreaterThanOrEqual(43)

    // a second sign-in reuses the account
    const again = await signIn(t, fake, { sub, email, email_verified: true, preferred_username: 'ada.lovelace' })
    expect(again.callback.headers.get('location')).toBe('/')
    expect((await sessionsOf(t, user.id)).length).toBe(2)
    expect((await db.select().from(s.users).where(eq(s.users.email, email))).length).toBe(1)
  })

  test('a taken username gets a suffix; a name too short or with other characters is made valid', async () => {
    const taken = await register(t, 'grace')
    const sub = subject()
    await signIn(t, fake, { sub, email: `${sub}@corp.example`, email_verified: true, preferred_username: taken.username })
    const user = (await userByEmail(t, `${sub}@corp.example`))!
    expect(user.username).toMatch(new RegExp(`^${taken.username}-\\d{4}$`))
    const sub2 = subject()
    await signIn(t, fake, { sub: sub2, email: `${sub2}@corp.example`, email_verified: true, preferred_username: 'é' })
    expect((await userByEmail(t, `${sub2}@corp.example`))!.username).toMatch(/^[A-Za-z0-9_-]{3,50}$/)
  })

  test('an account with the same email is linked only when the provider says the email is verified, and the account\'s own address was verified', async () => {
    const existing = await register(t, 'linkme')
    const sub = subject()
    const before = await countSessions(t)
    const refused = await signIn(t, fake, { sub, email: existing.email, email_verified: false }, { redirect: '/after' })
    expect(refused.callback.status).toBe(302)
    expect(refused.callback.headers.get('location')).toBe('/after?error=email_not_verified')
    expect(cookiesOf(refused.callback).hearth_access).toBeUndefined()
    expect(await countSessions(t)).toBe(before)
    const { db, t: s } = t.deps.database
    expect(await db.select().from(s.userIdentities).where(eq(s.userIdentities.subject, sub))).toEqual([])

    // an account whose own address was never verified, and that has a password, is not linked either (pre-hijacking)
    const unverified = await signIn(t, fake, { sub, email: existing.email, email_verified: true }, { redirect: '/after' })
    expect(unverified.callback.headers.get('location')).toBe('/after?error=account_unverified')
    expect(cookiesOf(unverified.callback).hearth_access).toBeUndefined()
    expect(await countSessions(t)).toBe(before)
    expect(await db.select().from(s.userIdentities).where(eq(s.userIdentities.subject, sub))).toEqual([])

    await db.update(s.users).set({ emailVerified: true }).where(eq(s.users.id, existing.id))
    const linked = await signIn(t, fake, { sub, email: existing.email.toUpperCase(), email_verified: true })
    expect(linked.callback.headers.get('location')).toBe('/')
    const [identity] = await db.select().from(s.userIdentities).where(eq(s.userIdentities.subject, sub))
    expect(identity!.userId).toBe(existing.id)
    expect((await sessionsOf(t, existing.id)).map((x) => x.method).sort()).toEqual(['oidc', 'password'])
    // the password still works: linking changes nothing about it
    expect((await userByEmail(t, existing.email))!.hasPassword).toBe(true)
  })

  test('an email only in userinfo is read from there', async () => {
    fake.knobs.emailOnlyInUserinfo = true
    try {
      const sub = subject()
      const flow = await signIn(t, fake, { sub, email: `${sub}@info.example`, email_verified: true })
      expect(flow.callback.headers.get('location')).toBe('/')
      expect(await userByEmail(t, `${sub}@info.example`)).toBeDefined()
    } finally {
      fake.knobs.emailOnlyInUserinfo = false
    }
  })

  test('a state is used once: a replayed callback (same state and code) is refused', async () => {
    const sub = subject()
    const flow = await signIn(t, fake, { sub, email: `${sub}@corp.example`, email_verified: true })
    expect(flow.callback.status).toBe(302)
    const before = await countSessions(t)
    const replay = await t.request('GET', `/api/v1/auth/oidc/fake/callback?code=${flow.code}&state=${flow.state}`, { headers: { cookie: flow.cookie } })
    expectProblem(replay, 422, 'VALIDATION_ERROR')
    expect(replay.body.errors).toEqual([{ path: 'state', message: 'no pending sign-in' }])
    expect(await countSessions(t)).toBe(before)
  })

  test('a code replayed with a new state is refused by the provider: invalid_token, nobody signed in', async () => {
    const sub = subject()
    const first = await signIn(t, fake, { sub, email: `${sub}@corp.example`, email_verified: true })
    expect(first.callback.headers.get('location')).toBe('/')
    const start = await t.request('GET', '/api/v1/auth/oidc/fake/start')
    const [name, value] = stateCookie(start)!
    const state = new URL(start.headers.get('location')!).searchParams.get('state')!
    const before = await countSessions(t)
    const res = await t.request('GET', `/api/v1/auth/oidc/fake/callback?code=${first.code}&state=${state}`, { headers: { cookie: `${name}=${value}` } })
    expect(res.status).toBe(302)
    expect(errorOf(res)).toBe('invalid_token')
    expect(await countSessions(t)).toBe(before)
  })

  test('a wrong state and a missing state cookie are refused, and nobody is signed in', async () => {
    const start = await t.request('GET', '/api/v1/auth/oidc/fake/start')
    const [name, value] = stateCookie(start)!
    fake.nextLogin({ sub: subject(), email: 'x@corp.example', email_verified: true })
    const back = await fake.authorize(start.headers.get('location')!)
    const before = await countSessions(t)
    const wrong = await t.request('GET', `/api/v1/auth/oidc/fake/callback?code=${back.code}&state=not-the-state`, { headers: { cookie: `${name}=${value}` } })
    // the cookie for another state is not this one's
    expectProblem(wrong, 403, 'FORBIDDEN')
    const noCookie = await t.request('GET', `/api/v1/auth/oidc/fake/callback?code=${back.code}&state=${back.state}`)
    expectProblem(noCookie, 403, 'FORBIDDEN')
    expect(noCookie.body.detail).toContain('browser')
    expect(await countSessions(t)).toBe(before)
    // the sign-in is still usable from the browser that started it
    const ok = await t.request('GET', `/api/v1/auth/oidc/fake/callback?code=${back.code}&state=${back.state}`, { headers: { cookie: `${name}=${value}` } })
    expect(ok.headers.get('location')).toBe('/')
    // a state nobody issued, with a cookie of its name, is a 422
    const forged = 'forged-state-value'
    const { sha256 } = await import('../src/lib/crypto.ts')
    const res = await t.request('GET', `/api/v1/auth/oidc/fake/callback?code=x&state=${forged}`, { headers: { cookie: `hearth_oidc_${sha256(forged).slice(0, 16)}=1` } })
    expectProblem(res, 422, 'VALIDATION_ERROR')
  })

  test('missing or duplicated callback parameters are 422 naming them', async () => {
    const missingState = await t.request('GET', '/api/v1/auth/oidc/fake/callback?code=abc')
    expectProblem(missingState, 422, 'VALIDATION_ERROR')
    expect(JSON.stringify(missingState.body.errors)).toContain('state')
    const missingCode = await t.request('GET', '/api/v1/auth/oidc/fake/callback?state=abc')
    expectProblem(missingCode, 422, 'VALIDATION_ERROR')
    expect(missingCode.body.errors).toEqual([{ path: 'code', message: 'required' }])
    const twoCodes = await t.request('GET', '/api/v1/auth/oidc/fake/callback?code=a&code=b&state=abc')
    expectProblem(twoCodes, 422, 'VALIDATION_ERROR')
    expect(JSON.stringify(twoCodes.body.errors)).toContain('code')
    const twoStates = await t.request('GET', '/api/v1/auth/oidc/fake/callback?code=a&state=x&state=y')
    expectProblem(twoStates, 422, 'VALIDATION_ERROR')
    expect(JSON.stringify(twoStates.body.errors)).toContain('state')
  })

  test('the provider answering with an error (the user cancelled) redirects with provider_error', async () => {
    fake.knobs.authorizeError = 'access_denied'
    try {
      const flow = await signIn(t, fake, { sub: subject() }, { redirect: '/x' })
      expect(flow.callback.headers.get('location')).toBe('/x?error=provider_error')
      expect(fake.tokenRequests.length).toBeGreaterThan(0)
    } finally {
      fake.knobs.authorizeError = undefined
    }
  })

  const badTokens: [string, Partial<FakeOidc['knobs']>][] = [
    ['a signature by another key', { otherKey: true }],
    ['a wrong audience', { audience: 'someone-else' }],
    ['an expired ID token', { expired: true }],
  ]
  for (const [name, knobs] of badTokens)
    test(`${name} is refused: invalid_token, no account, no session`, async () => {
      Object.assign(fake.knobs, knobs)
      try {
        const sub = subject()
        const before = await countSessions(t)
        const flow = await signIn(t, fake, { sub, email: `${sub}@corp.example`, email_verified: true }, { redirect: '/r' })
        expect(flow.callback.status).toBe(302)
        expect(flow.callback.headers.get('location')).toBe('/r?error=invalid_token')
        expect(cookiesOf(flow.callback).hearth_access).toBeUndefined()
        expect(await userByEmail(t, `${sub}@corp.example`)).toBeUndefined()
        expect(await countSessions(t)).toBe(before)
      } finally {
        for (const k of Object.keys(knobs)) delete (fake.knobs as Record<string, unknown>)[k]
      }
    })

  test('a 1 MB ID token is refused cleanly: upstream_error, nobody signed in', async () => {
    fake.knobs.huge = true
    try {
      const before = await countSessions(t)
      const sub = subject()
      const flow = await signIn(t, fake, { sub, email: `${sub}@corp.example`, email_verified: true })
      expect(errorOf(flow.callback)).toBe('upstream_error')
      expect(await countSessions(t)).toBe(before)
      expect(t.logText()).toContain('is larger than 262144 bytes')
    } finally {
      fake.knobs.huge = false
    }
  })

  test('a token endpoint answering HTML: upstream_error, nobody signed in', async () => {
    fake.knobs.html = 'token'
    try {
      const before = await countSessions(t)
      const flow = await signIn(t, fake, { sub: subject(), email: 'h@corp.example', email_verified: true })
      expect(errorOf(flow.callback)).toBe('upstream_error')
      expect(await countSessions(t)).toBe(before)
    } finally {
      fake.knobs.html = undefined
    }
  })

  const refusedRedirects = ['//evil.com', 'https://evil.com/', '/\\evil.com', 'javascript:alert(1)', '/\t/evil.com', 'https://app.example.com@evil.com/', 'evil.com']
  for (const redirect of refusedRedirects)
    test(`start refuses redirect ${JSON.stringify(redirect)}: 422 naming redirect`, async () => {
      const res = await t.request('GET', `/api/v1/auth/oidc/fake/start?redirect=${encodeURIComponent(redirect)}`)
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect(res.body.errors).toEqual([{ path: 'redirect', message: expect.any(String) }])
      expect(res.headers.get('location')).toBeNull()
    })

  test('an origin of HEARTH_CORS_ORIGINS is an allowed redirect; an error is added to its query', async () => {
    const sub = subject()
    const flow = await signIn(t, fake, { sub, email: `${sub}@corp.example`, email_verified: true }, { redirect: 'https://app.example.com/done' })
    expect(flow.callback.headers.get('location')).toBe('https://app.example.com/done')
    fake.knobs.otherKey = true
    try {
      const bad = await signIn(t, fake, { sub, email: `${sub}@corp.example`, email_verified: true }, { redirect: 'https://app.example.com/done?x=1#top' })
      expect(bad.callback.headers.get('location')).toBe('https://app.example.com/done?x=1&error=invalid_token#top')
    } finally {
      fake.knobs.otherKey = false
    }
  })

  test('an unknown provider is 404 at start', async () => {
    expectProblem(await t.request('GET', '/api/v1/auth/oidc/nope/start'), 404, 'NOT_FOUND')
  })
})

eachDialect('single sign-on: who may get an account', (dialect) => {
  let fake: FakeOidc
  beforeAll(async () => (fake = await startFakeOidc()))
  afterAll(() => fake.stop())

  const cases: [mode: string, verified: boolean, created: boolean, error?: string][] = [
    ['closed', true, false, 'registration_closed'],
    ['invite', true, false, 'registration_closed'],
    ['verify', false, false, 'registration_closed'],
    ['verify', true, true],
    ['open', false, true],
  ]
  for (const [mode, verified, created, error] of cases)
    test(`registration ${mode}, email ${verified ? 'verified' : 'not verified'}: ${created ? 'created' : 'refused'}`, async () => {
      const t = await createTestApp(dialect, envFor(fake, { HEARTH_REGISTRATION: mode }))
      try {
        await createAdmin(t)
        const sub = subject()
        const flow = await signIn(t, fake, { sub, email: `${sub}@corp.example`, email_verified: verified })
        expect(errorOf(flow.callback)).toBe(error ?? null)
        const user = await userByEmail(t, `${sub}@corp.example`)
        expect(user !== undefined).toBe(created)
        if (user) expect(user.emailVerified).toBe(verified)
      } finally {
        await t.close()
      }
    })

  test('while no admin exists, single sign-on creates no account (the first admin needs the setup token)', async () => {
    const t = await createTestApp(dialect, envFor(fake))
    try {
      const sub = subject()
      const flow = await signIn(t, fake, { sub, email: `${sub}@corp.example`, email_verified: true })
      expect(errorOf(flow.callback)).toBe('setup_required')
      expect(await t.deps.database.db.select().from(t.deps.database.t.users)).toEqual([])
    } finally {
      await t.close()
    }
  })

  test('a disabled account is not signed in', async () => {
    const t = await createTestApp(dialect, envFor(fake))
    try {
      const admin = await register(t, 'admin')
      const sub = subject()
      await signIn(t, fake, { sub, email: `${sub}@corp.example`, email_verified: true })
      const user = (await userByEmail(t, `${sub}@corp.example`))!
      expect((await t.request('PATCH', `/api/v1/admin/users/${user.id}`, { token: admin.access, body: { is_active: false } })).status).toBe(200)
      const before = await countSessions(t)
      const flow = await signIn(t, fake, { sub, email: `${sub}@corp.example`, email_verified: true })
      expect(errorOf(flow.callback)).toBe('account_disabled')
      expect(await countSessions(t)).toBe(before)
    } finally {
      await t.close()
    }
  })
})

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
