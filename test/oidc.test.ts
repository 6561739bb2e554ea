/**
 * Single sign-on against a fake OpenID provider on loopback (test/fakes/oidc.ts): the flow from
 * start to callback, what the ID token must prove (signature, audience, expiry), the state's
 * single use and browser binding, linking and registration rules, the redirect rule. (A slow or
 * broken provider, the admins' providers, linked identities and two instances: oidc-providers.test.ts.)
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { createAdmin, register } from './helpers/accounts.ts'
import { createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { startFakeOidc, type FakeOidc } from './fakes/oidc.ts'
import { cookiesOf, countSessions, envFor, errorOf, sessionsOf, signIn, stateCookie, subject, userByEmail } from './helpers/oidc.ts'

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

