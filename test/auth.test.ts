import { afterAll, beforeAll, expect, test } from 'bun:test'
import { SignJWT } from 'jose'
import { deriveKeyBytes } from '../src/lib/crypto.ts'
import { createAdmin, login, register, setupCallers, unique, useCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, TEST_SECRET, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { inOneWindow } from './helpers/windows.ts'
import { scenarios } from './helpers/scenarios.ts'

const me = (t: TestApp, token: string) => t.request('GET', '/api/v1/auth/me', { token })

eachDialect('registration', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  test('the first user becomes admin, the next ones user; 201 with Location and httpOnly cookies', async () => {
    const first = await t.request('POST', '/api/v1/auth/register', { body: { username: 'First_One', email: 'First@Example.com', password: 'first-password', display_name: 'First' } })
    expect(first.status).toBe(201)
    expect(first.headers.get('location')).toBe('/api/v1/users/me')
    expect(first.body.user).toMatchObject({ username: 'First_One', email: 'first@example.com', display_name: 'First', role: 'admin', is_active: true, email_verified: false, avatar_url: null })
    expect(first.body.user.id).toMatch(/^[0-9a-f-]{36}$/)
    expect(first.body.tokens).toMatchObject({ token_type: 'bearer', expires_in: 900 })
    expect(first.body.tokens.refresh_token).toStartWith('hrt_')
    const cookies = first.headers.getSetCookie()
    expect(cookies.find((c) => c.startsWith('hearth_access='))).toMatch(/HttpOnly/i)
    expect(cookies.find((c) => c.startsWith('hearth_access='))).toMatch(/SameSite=Lax/i)
    expect(cookies.find((c) => c.startsWith('hearth_refresh='))).toContain('Path=/api/v1/auth')
    expect(cookies.join()).not.toMatch(/Secure/)
    const second = await register(t, 'second')
    expect((await me(t, second.access)).body.role).toBe('user')
    expect(JSON.stringify(first.body)).not.toContain('first-password')
  })

  test('username (any case) and email (any case) are unique: 409 naming which', async () => {
    const a = await register(t, 'dupe')
    const sameName = await t.request('POST', '/api/v1/auth/register', { body: { username: a.username.toUpperCase(), email: 'x' + a.email, password: 'password-1' } })
    expect(sameName.status).toBe(409)
    expect(sameName.body).toMatchObject({ code: 'CONFLICT', detail: 'That username is already taken' })
    const sameEmail = await t.request('POST', '/api/v1/auth/register', { body: { username: unique('x'), email: a.email.toUpperCase(), password: 'password-1' } })
    expect(sameEmail.status).toBe(409)
    expect(sameEmail.body.detail).toBe('That email is already taken')
  })

  const secret = 'Sup3r-Secret-Passw0rd'
  const bad: [string, unknown, string[]][] = [
    ['missing fields', {}, ['email', 'password', 'username']],
    ['short password', { username: 'abc', email: 'a@b.co', password: 'short' }, ['password']],
    ['long password', { username: 'abc', email: 'a@b.co', password: 'x'.repeat(129) }, ['password']],
    ['short username', { username: 'ab', email: 'a@b.co', password: secret }, ['username']],
    ['long username', { username: 'a'.repeat(51), email: 'a@b.co', password: secret }, ['username']],
    ['unicode username', { username: 'jöhn_doe', email: 'a@b.co', password: secret }, ['username']],
    ['SQL in the username', { username: "x'; DROP TABLE users;--", email: 'a@b.co', password: secret }, ['username']],
    ['bad email', { username: 'abcd', email: 'not-an-email', password: secret }, ['email']],
    ['wrong types', { username: 42, email: ['a@b.co'], password: { p: secret } }, ['email', 'password', 'username']],
    ['over-long display name', { username: 'abcd', email: 'a@b.co', password: secret, display_name: 'd'.repeat(101) }, ['display_name']],
  ]
  for (const [name, body, paths] of bad) {
    test(`bad input: ${name} → 422 naming ${paths.join(', ')}, never echoing the password`, async () => {
      const res = await t.request('POST', '/api/v1/auth/register', { body })
      expect(res.status).toBe(422)
      expect(res.headers.get('content-type')).toBe('application/problem+json')
      expect(res.body.code).toBe('VALIDATION_ERROR')
      expect([...new Set(res.body.errors.map((e: { path: string }) => e.path))].sort()).toEqual(paths)
      expect(res.text).not.toContain(secret)
      expect(res.text).not.toContain('DROP TABLE')
    })
  }

  test('malformed JSON and huge bodies', async () => {
    const malformed = await t.request('POST', '/api/v1/auth/register', { raw: `{"username":"abc","password":"${secret}"`, headers: { 'content-type': 'application/json' } })
    expect(malformed.status).toBe(400)
    expect(malformed.text).not.toContain(secret)
    const huge = await t.request('POST', '/api/v1/auth/register', { body: { username: 'abc', email: 'a@b.co', password: 'p'.repeat(2 * 1024 * 1024) } })
    expect(huge.status).toBe(413)
  })

  test('the SQL-ish string is stored as text where it is allowed (display name)', async () => {
    const a = await register(t, 'sqlish', { display_name: "Robert'); DROP TABLE users;--" })
    expect((await t.request('GET', '/api/v1/users/me', { token: a.access })).body.display_name).toBe("Robert'); DROP TABLE users;--")
  })
})

eachDialect('registration modes', (dialect) => {
  test('closed: 403', async () => {
    const t = await createTestApp(dialect, { HEARTH_REGISTRATION: 'closed' })
    await createAdmin(t)
    const res = await t.request('POST', '/api/v1/auth/register', { body: { username: 'someone', email: 's@example.com', password: 'password-1' } })
    expect(res.status).toBe(403)
    expect(res.body.code).toBe('FORBIDDEN')
    await t.close()
  })

  test('invite: codes from the admin, single use, expiring', async () => {
    const t = await createTestApp(dialect, { HEARTH_REGISTRATION: 'invite' })
    const { createUser } = await import('../src/modules/users/service.ts')
    await createUser(t.deps.database, { username: 'root', email: 'root@example.com', password: 'root-password', role: 'admin' })
    const admin = await login(t, { username: 'root', password: 'root-password' })
    const body = (invite_code?: string) => ({ username: unique('inv'), email: `${unique('inv')}@example.com`, password: 'password-1', invite_code })
    expect((await t.request('POST', '/api/v1/auth/register', { body: body() })).status).toBe(403)
    expect((await t.request('POST', '/api/v1/auth/register', { body: body('inv_nonsense') })).status).toBe(403)
    const created = await t.request('POST', '/api/v1/admin/invites', { token: admin.access, body: { note: 'for Ann' } })
    expect(created.status).toBe(201)
    expect(created.body.code).toStartWith('inv_')
    const list = await t.request('GET', '/api/v1/admin/invites', { token: admin.access })
    expect(list.body.items[0]).toMatchObject({ id: created.body.id, note: 'for Ann', used_at: null })
    expect(list.text).not.toContain(created.body.code)
    const ok = await t.request('POST', '/api/v1/auth/register', { body: body(created.body.code) })
    expect(ok.status).toBe(201)
    expect(ok.body.user.role).toBe('user')
    expect((await t.request('POST', '/api/v1/auth/register', { body: body(created.body.code) })).status).toBe(403)
    expect((await t.request('GET', '/api/v1/admin/invites', { token: admin.access })).body.items[0].used_by).toBe(ok.body.user.id)
    // an expiry in the past is refused when the invite is made; one that passes later stops the code
    const past = await t.request('POST', '/api/v1/admin/invites', { token: admin.access, body: { expires_at: new Date(Date.now() - 1000).toISOString() } })
    expect([past.status, past.body.errors?.map((e: { path: string }) => e.path)]).toEqual([422, ['expires_at']])
    const expired = await t.request('POST', '/api/v1/admin/invites', { token: admin.access, body: { expires_at: new Date(Date.now() + 300).toISOString() } })
    expect(expired.status).toBe(201)
    await Bun.sleep(400)
    expect((await t.request('POST', '/api/v1/auth/register', { body: body(expired.body.code) })).status).toBe(403)
    const user = await login(t, { username: ok.body.user.username, password: 'password-1' })
    expect((await t.request('POST', '/api/v1/admin/invites', { token: user.access, body: {} })).status).toBe(403)
    expect((await t.request('DELETE', `/api/v1/admin/invites/${expired.body.id}`, { token: admin.access })).status).toBe(204)
    await t.close()
  })
})

/** the refresh grace window of the token tests (10 s in production) */
const GRACE_MS = 1000

eachDialect('login and tokens', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)), {}, { refreshGraceMs: GRACE_MS })
  const refresh = (token: string) => t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: token } })

  test('by username or email, in any case, through either field', async () => {
    const { user } = ctx.accounts
    for (const body of [{ username: user.username }, { username: user.username.toUpperCase() }, { email: user.email }, { username: user.email.toUpperCase() }, { email: user.username }]) {
      const res = await t.request('POST', '/api/v1/auth/login', { body: { ...body, password: user.password } })
      expect({ body, status: res.status }).toEqual({ body, status: 200 })
      expect(res.body.user.id).toBe(user.id)
    }
  })

  test('unknown user and wrong password get the same 401 INVALID_CREDENTIALS', async () => {
    const unknown = await t.request('POST', '/api/v1/auth/login', { body: { username: 'nobody_here', password: 'whatever-pass' } })
    const wrong = await t.request('POST', '/api/v1/auth/login', { body: { username: ctx.accounts.other.username, password: 'wrong-password' } })
    expect(unknown.status).toBe(401)
    expect(wrong.status).toBe(401)
    const strip = (b: Record<string, unknown>) => ({ ...b, request_id: undefined })
    expect(strip(unknown.body)).toEqual(strip(wrong.body))
    expect(unknown.body.code).toBe('INVALID_CREDENTIALS')
    expect(wrong.text).not.toContain('wrong-password')
  })

  test('neither username nor email: 422', async () => {
    const res = await t.request('POST', '/api/v1/auth/login', { body: { password: 'x' } })
    expect(res.status).toBe(422)
    expect(res.body.errors[0].path).toBe('username')
  })

  test('repeated failures lock the account for a while, even for the right password', async () => {
    const victim = await register(t, 'victim')
    for (let i = 0; i < 5; i++) expect((await t.request('POST', '/api/v1/auth/login', { body: { username: victim.username, password: 'guess-' + i } })).status).toBe(401)
    const locked = await t.request('POST', '/api/v1/auth/login', { body: { username: victim.username, password: victim.password } })
    expect(locked.status).toBe(429)
    expect(locked.body.code).toBe('RATE_LIMITED')
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0)
    // the lock is per account: others are unaffected
    await login(t, ctx.accounts.other)
  })

  test('access token: bearer or cookie; missing, garbage, expired and foreign tokens are refused', async () => {
    const { user } = ctx.accounts
    expect((await me(t, user.access)).body.id).toBe(user.id)
    const viaCookie = await t.request('GET', '/api/v1/auth/me', { headers: { cookie: `other=1; hearth_access=${user.access}` } })
    expect(viaCookie.body.id).toBe(user.id)
    const none = await t.request('GET', '/api/v1/auth/me')
    expect([none.status, none.body.code]).toEqual([401, 'UNAUTHORIZED'])
    const garbage = await me(t, 'not.a.jwt')
    expect([garbage.status, garbage.body.code]).toEqual([401, 'UNAUTHORIZED'])
    const key = await deriveKeyBytes(TEST_SECRET, 'jwt')
    const sign = (k: Uint8Array, exp: number) =>
      new SignJWT({ sid: 'x', role: 'admin', ims: Date.now() }).setProtectedHeader({ alg: 'HS256' }).setSubject(user.id).setIssuer('hearth').setIssuedAt(exp - 900).setExpirationTime(exp).sign(k)
    const expired = await me(t, await sign(key, Math.floor(Date.now() / 1000) - 5))
    expect([expired.status, expired.body.code]).toEqual([401, 'TOKEN_EXPIRED'])
    const foreign = await me(t, await sign(new Uint8Array(32).fill(7), Math.floor(Date.now() / 1000) + 600))
    expect([foreign.status, foreign.body.code]).toEqual([401, 'UNAUTHORIZED'])
    const none_alg = `${btoa(JSON.stringify({ alg: 'none' }))}.${btoa(JSON.stringify({ sub: user.id, role: 'admin' }))}.`
    expect((await me(t, none_alg)).status).toBe(401)
  })

  test('refresh rotates; replaying a used refresh token after the grace window kills the whole session', async () => {
    const s = await login(t, ctx.accounts.user)
    const r1 = await t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: s.refresh } })
    expect(r1.status).toBe(200)
    expect(r1.body.tokens.refresh_token).not.toBe(s.refresh)
    expect((await me(t, r1.body.tokens.access_token)).status).toBe(200)
    await Bun.sleep(GRACE_MS + 100)
    // an attacker replays the stolen first token
    const replay = await t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: s.refresh } })
    expect([replay.status, replay.body.code]).toEqual([401, 'UNAUTHORIZED'])
    // ... and every token of that session family is now dead, at once
    expect((await t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: r1.body.tokens.refresh_token } })).status).toBe(401)
    expect((await me(t, r1.body.tokens.access_token)).status).toBe(401)
    expect((await me(t, s.access)).status).toBe(401)
    // other sessions live on
    expect((await me(t, ctx.accounts.user.access)).status).toBe(200)
  })

  test('two refreshes at once with one token (two tabs): both 200, with the same new refresh token; the session lives on', async () => {
    const s = await login(t, ctx.accounts.other)
    const [a, b] = await Promise.all([refresh(s.refresh), refresh(s.refresh)])
    expect([a.status, b.status]).toEqual([200, 200])
    expect(a.body.tokens.refresh_token).toBe(b.body.tokens.refresh_token)
    expect(a.body.tokens.refresh_token).not.toBe(s.refresh)
    for (const r of [a, b]) expect((await me(t, r.body.tokens.access_token)).status).toBe(200)
    // one stored successor, and it rotates on as usual
    const next = await refresh(a.body.tokens.refresh_token)
    expect(next.status).toBe(200)
    expect((await me(t, next.body.tokens.access_token)).status).toBe(200)
    expect((await me(t, s.access)).status).toBe(200)
  })

  test('within the window a late second presentation gets the same successor too; after it, the old token is reuse and the family dies', async () => {
    const s = await login(t, ctx.accounts.other)
    const first = await refresh(s.refresh)
    const second = await refresh(s.refresh)
    expect([first.status, second.status]).toEqual([200, 200])
    expect(second.body.tokens.refresh_token).toBe(first.body.tokens.refresh_token)
    await Bun.sleep(GRACE_MS + 100)
    const third = await refresh(s.refresh)
    expect([third.status, third.body.code, third.body.detail]).toEqual([401, 'UNAUTHORIZED', 'The refresh token was already used; the session has been revoked'])
    // every token of that session family is dead: both tabs' access tokens and the shared successor
    expect((await refresh(first.body.tokens.refresh_token)).status).toBe(401)
    for (const access of [s.access, first.body.tokens.access_token, second.body.tokens.access_token]) expect((await me(t, access)).status).toBe(401)
    // the user's other sessions live on
    expect((await me(t, ctx.accounts.other.access)).status).toBe(200)
  }, 10_000)

  test('refresh through the cookie, and with no token at all', async () => {
    const s = await login(t, ctx.accounts.other)
    const res = await t.request('POST', '/api/v1/auth/refresh', { headers: { cookie: `hearth_refresh=${s.refresh}` } })
    expect(res.status).toBe(200)
    expect(res.headers.getSetCookie().some((c) => c.startsWith('hearth_refresh=hrt_'))).toBe(true)
    expect((await t.request('POST', '/api/v1/auth/refresh', { body: {} })).status).toBe(401)
    expect((await t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: 'hrt_made_up' } })).status).toBe(401)
  })

  test('logout revokes the session at once and clears the cookies', async () => {
    const s = await login(t, ctx.accounts.other)
    const out = await t.request('POST', '/api/v1/auth/logout', { token: s.access })
    expect(out.status).toBe(204)
    expect(out.headers.getSetCookie().find((c) => c.startsWith('hearth_access='))).toMatch(/Max-Age=0/)
    expect((await me(t, s.access)).status).toBe(401)
    expect((await t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: s.refresh } })).status).toBe(401)
  })

  test('sessions: listed with user agent, ip and current flag; revoking one kills its tokens; another user’s is 404', async () => {
    const a = await register(t, 'sess')
    const second = await login(t, a, { 'user-agent': 'test-browser/1.0' })
    const list = await t.request('GET', '/api/v1/auth/sessions', { token: a.access })
    expect(list.status).toBe(200)
    expect(list.body.total).toBe(2)
    const current = list.body.items.find((s: { current: boolean }) => s.current)
    const other = list.body.items.find((s: { current: boolean }) => !s.current)
    expect(other.user_agent).toBe('test-browser/1.0')
    expect(typeof other.ip).toBe('string')
    expect(new Date(other.last_used_at).getTime()).toBeGreaterThan(0)
    expect((await t.request('DELETE', `/api/v1/auth/sessions/${other.id}`, { token: ctx.accounts.user.access })).status).toBe(404)
    expect((await t.request('DELETE', `/api/v1/auth/sessions/${other.id}`, { token: a.access })).status).toBe(204)
    expect((await me(t, second.access)).status).toBe(401)
    expect((await me(t, a.access)).status).toBe(200)
    expect((await t.request('GET', '/api/v1/auth/sessions', { token: a.access })).body.items.map((s: { id: string }) => s.id)).toEqual([current.id])
  })

  test('password change: wrong old password is 401; other sessions are revoked, this one stays', async () => {
    const a = await register(t, 'pwchange')
    const second = await login(t, a)
    const wrong = await t.request('PUT', '/api/v1/auth/password', { token: a.access, body: { old_password: 'nope-nope', new_password: 'new-password-1' } })
    expect([wrong.status, wrong.body.code]).toEqual([401, 'INVALID_CREDENTIALS'])
    const weak = await t.request('PUT', '/api/v1/auth/password', { token: a.access, body: { old_password: a.password, new_password: 'short' } })
    expect(weak.status).toBe(422)
    expect((await t.request('PUT', '/api/v1/auth/password', { token: a.access, body: { old_password: a.password, new_password: 'new-password-1' } })).status).toBe(204)
    expect((await me(t, a.access)).status).toBe(200)
    expect((await me(t, second.access)).status).toBe(401)
    expect((await t.request('POST', '/api/v1/auth/login', { body: { username: a.username, password: a.password } })).status).toBe(401)
    await login(t, { username: a.username, password: 'new-password-1' })
  })
})

eachDialect('login lockout: per account, and per client', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect, { HEARTH_TRUST_PROXY: 'true' })
    await register(t, 'admin') // the first user
  })
  afterAll(() => t.close())

  const FIFTEEN_MINUTES = 15 * 60_000
  const attempt = (ip: string, body: Record<string, string>) => t.request('POST', '/api/v1/auth/login', { headers: { 'x-forwarded-for': ip }, body })
  /** the parts of an answer that must not tell a known account from an unknown one */
  const visible = (r: TestResponse) => ({ status: r.status, body: { ...JSON.parse(r.text), request_id: undefined }, retryAfter: r.headers.get('retry-after') })

  test('5 wrong passwords, by username and by email, lock the account for that client — even with the right password', async () => {
    await inOneWindow(5_000, FIFTEEN_MINUTES)
    const victim = await register(t, 'victim')
    const names: Record<string, string>[] = [{ username: victim.username }, { email: victim.email }, { username: victim.email.toUpperCase() }, { email: victim.username.toUpperCase() }, { username: victim.username }]
    for (const [i, name] of names.entries()) expect((await attempt('10.1.0.1', { ...name, password: `guess-${i}` })).status).toBe(401)
    for (const name of names.slice(0, 2)) {
      const locked = await attempt('10.1.0.1', { ...name, password: victim.password })
      expect([locked.status, locked.body.code]).toEqual([429, 'RATE_LIMITED'])
      expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0)
    }
  }, 20_000) // may wait out a 15-minute window (up to 5 s)

  test('the owner, from a client that has not failed, still signs in; the attacker stays locked; a new client that fails is locked at once', async () => {
    await inOneWindow(5_000, FIFTEEN_MINUTES)
    const victim = await register(t, 'owner')
    for (let i = 0; i < 5; i++) expect((await attempt('10.2.0.1', { username: victim.username, password: `guess-${i}` })).status).toBe(401)
    expect((await attempt('10.2.0.1', { username: victim.username, password: victim.password })).status).toBe(429)
    // the owner, elsewhere
    const owner = await attempt('10.2.0.2', { email: victim.email, password: victim.password })
    expect(owner.status).toBe(200)
    expect(owner.body.user.id).toBe(victim.id)
    expect((await attempt('10.2.0.2', { username: victim.username, password: victim.password })).status).toBe(200)
    expect((await attempt('10.2.0.1', { username: victim.username, password: victim.password })).status).toBe(429)
    // a second attacker gets one guess while the account is over the limit, then is locked too
    expect((await attempt('10.2.0.3', { username: victim.username, password: 'another-guess' })).status).toBe(401)
    expect((await attempt('10.2.0.3', { username: victim.username, password: victim.password })).status).toBe(429)
    // the owner's client never failed: still let in
    expect((await attempt('10.2.0.2', { username: victim.username, password: victim.password })).status).toBe(200)
  }, 20_000)

  test('parallel guesses from one client cannot get past the limit', async () => {
    await inOneWindow(5_000, FIFTEEN_MINUTES)
    const victim = await register(t, 'parallel')
    const guesses = await Promise.all(Array.from({ length: 12 }, (_, i) => attempt('10.3.0.1', { username: victim.username, password: `guess-${i}` })))
    expect(guesses.filter((r) => r.status === 401).length).toBeLessThanOrEqual(5)
    expect(guesses.filter((r) => r.status === 429).length).toBeGreaterThanOrEqual(7)
    expect((await attempt('10.3.0.1', { username: victim.username, password: victim.password })).status).toBe(429)
  }, 20_000)

  test('an unknown name behaves like a known one: the same 401s, the same lock, the same answer', async () => {
    await inOneWindow(5_000, FIFTEEN_MINUTES)
    const known = await register(t, 'known')
    const unknown = unique('nobody')
    const known401: ReturnType<typeof visible>[] = []
    const unknown401: ReturnType<typeof visible>[] = []
    for (let i = 0; i < 5; i++) {
      known401.push(visible(await attempt('10.4.0.1', { username: known.username, password: `guess-${i}` })))
      unknown401.push(visible(await attempt('10.4.0.1', { username: unknown, password: `guess-${i}` })))
    }
    expect(unknown401).toEqual(known401)
    expect(known401[0]!.status).toBe(401)
    const knownLocked = visible(await attempt('10.4.0.1', { username: known.username, password: known.password }))
    const unknownLocked = visible(await attempt('10.4.0.1', { username: unknown, password: 'whatever-pass' }))
    expect(knownLocked.status).toBe(429)
    expect(unknownLocked).toEqual(knownLocked)
    // and from another client, neither is locked before it fails
    expect((await attempt('10.4.0.2', { username: unknown, password: 'whatever-pass' })).status).toBe(401)
  }, 20_000)
})

eachDialect('refresh grace window: the default', (dialect) => {
  test('is 10 s: a second presentation a second later still gets the same successor', async () => {
    const t = await createTestApp(dialect)
    const a = await register(t, 'tabs')
    const first = await t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: a.refresh } })
    await Bun.sleep(1100)
    const second = await t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: a.refresh } })
    expect([first.status, second.status]).toEqual([200, 200])
    expect(second.body.tokens.refresh_token).toBe(first.body.tokens.refresh_token)
    await t.close()
  })
})

eachDialect('every account endpoint, by caller', (dialect) => {
  let ctx: CallersContext & { sessionOfUser: string; keyOfUser: string }
  beforeAll(async () => {
    const t = await createTestApp(dialect)
    const base = await setupCallers(t)
    const sessions = await t.request('GET', '/api/v1/auth/sessions', { token: base.accounts.user.access })
    const key = await t.request('POST', '/api/v1/api-keys', { token: base.accounts.user.access, body: { name: 'mine' } })
    ctx = { ...base, sessionOfUser: sessions.body.items[0].id, keyOfUser: key.body.id }
  })
  afterAll(() => ctx.t.close())

  const guarded: [string, string][] = [
    ['POST', '/api/v1/auth/logout'],
    ['GET', '/api/v1/auth/me'],
    ['PUT', '/api/v1/auth/password'],
    ['GET', '/api/v1/auth/sessions'],
    ['DELETE', '/api/v1/auth/sessions/x'],
    ['GET', '/api/v1/api-keys'],
    ['POST', '/api/v1/api-keys'],
    ['DELETE', '/api/v1/api-keys/x'],
    ['GET', '/api/v1/users/me'],
    ['PATCH', '/api/v1/users/me'],
    ['GET', '/api/v1/users/me/preferences'],
    ['PUT', '/api/v1/users/me/preferences'],
    ['GET', '/api/v1/users/me/stats'],
    ['GET', '/api/v1/users/me/credits'],
    ['GET', '/api/v1/admin/users'],
    ['PATCH', '/api/v1/admin/users/x'],
    ['DELETE', '/api/v1/admin/users/x'],
    ['GET', '/api/v1/admin/invites'],
    ['POST', '/api/v1/admin/invites'],
    ['DELETE', '/api/v1/admin/invites/x'],
    ['GET', '/api/v1/system/status'],
  ]
  scenarios<typeof ctx>(() => ctx, [
    ...guarded.map(([method, path]) => ({ name: 'needs credentials', as: 'guest' as const, method, path, body: {}, status: 401, code: 'UNAUTHORIZED' })),
    ...guarded.filter(([, p]) => p.includes('/admin/') || p.includes('/system/')).map(([method, path]) => ({ name: 'admins only', as: 'user' as const, method, path, body: {}, status: 403, code: 'FORBIDDEN' })),
    { name: "another user's session is invisible", as: 'other', method: 'DELETE', path: (c) => `/api/v1/auth/sessions/${c.sessionOfUser}`, status: 404, code: 'NOT_FOUND' },
    { name: "another user's API key is invisible", as: 'other', method: 'DELETE', path: (c) => `/api/v1/api-keys/${c.keyOfUser}`, status: 404, code: 'NOT_FOUND' },
    { name: "an admin cannot revoke a user's session through the user API either", as: 'admin', method: 'DELETE', path: (c) => `/api/v1/auth/sessions/${c.sessionOfUser}`, status: 404 },
    { name: 'own API keys listed without the key', as: 'user', method: 'GET', path: '/api/v1/api-keys', status: 200, check: (r) => expect(r.body.total).toBe(1) },
    { name: "the other user sees none of the user's keys", as: 'other', method: 'GET', path: '/api/v1/api-keys', status: 200, check: (r) => expect(r.body.total).toBe(0) },
    { name: 'login needs a password', as: 'guest', method: 'POST', path: '/api/v1/auth/login', body: { username: 'x' }, status: 422 },
    { name: 'send-code rejects an unknown code type', as: 'guest', method: 'POST', path: '/api/v1/auth/send-code', body: { email: 'a@b.co', code_type: 'magic' }, status: 422 },
    { name: 'reset rejects a non-numeric code', as: 'guest', method: 'POST', path: '/api/v1/auth/password/reset', body: { email: 'a@b.co', code: 'abcdef', new_password: 'password-1' }, status: 422 },
    { name: 'bad session id shape', as: 'user', method: 'DELETE', path: `/api/v1/auth/sessions/${'x'.repeat(65)}`, status: 422 },
  ])
})

eachDialect('API keys', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)))

  test('shown once, stored hashed, usable as a bearer token, revocable', async () => {
    const { user, other } = ctx.accounts
    const created = await t.request('POST', '/api/v1/api-keys', { token: user.access, body: { name: 'script' } })
    expect(created.status).toBe(201)
    expect(created.headers.get('location')).toBe(`/api/v1/api-keys/${created.body.id}`)
    const key: string = created.body.key
    expect(key).toStartWith('hk_')
    expect(created.body).toMatchObject({ name: 'script', prefix: key.slice(0, 11), last_used_at: null, expires_at: null })
    const rows = await t.deps.database.db.select().from(t.deps.database.t.apiKeys)
    expect(JSON.stringify(rows)).not.toContain(key)

    expect((await me(t, key)).body.id).toBe(user.id)
    const list = await t.request('GET', '/api/v1/api-keys', { token: user.access })
    expect(list.body.items).toHaveLength(1)
    expect(list.text).not.toContain(key)
    expect(list.body.items[0].last_used_at).not.toBeNull()
    expect((await t.request('GET', '/api/v1/api-keys', { token: other.access })).body.items).toHaveLength(0)

    expect((await t.request('DELETE', `/api/v1/api-keys/${created.body.id}`, { token: other.access })).status).toBe(404)
    expect((await t.request('DELETE', `/api/v1/api-keys/${created.body.id}`, { token: user.access })).status).toBe(204)
    expect((await me(t, key)).status).toBe(401)
    expect((await me(t, 'hk_made_up')).status).toBe(401)
  })

  test('an expired key is refused; a bad expiry is 422', async () => {
    const { user } = ctx.accounts
    const soon = await t.request('POST', '/api/v1/api-keys', { token: user.access, body: { name: 'short-lived', expires_at: new Date(Date.now() + 300).toISOString() } })
    expect((await me(t, soon.body.key)).status).toBe(200)
    await Bun.sleep(400)
    expect((await me(t, soon.body.key)).status).toBe(401)
    expect((await t.request('POST', '/api/v1/api-keys', { token: user.access, body: { name: 'x', expires_at: 'tomorrow' } })).status).toBe(422)
    expect((await t.request('POST', '/api/v1/api-keys', { token: user.access, body: { name: '' } })).status).toBe(422)
  })

  test('an expiry in the past (or now) is refused: 422 naming expires_at, and no key is made', async () => {
    const { other } = ctx.accounts
    for (const at of [new Date(Date.now() - 1000).toISOString(), '2020-01-01T00:00:00+02:00', new Date().toISOString()]) {
      const res = await t.request('POST', '/api/v1/api-keys', { token: other.access, body: { name: 'dead on arrival', expires_at: at } })
      expect({ at, status: res.status, code: res.body.code, paths: res.body.errors?.map((e: { path: string }) => e.path) }).toEqual({ at, status: 422, code: 'VALIDATION_ERROR', paths: ['expires_at'] })
    }
    expect((await t.request('GET', '/api/v1/api-keys', { token: other.access })).body.total).toBe(0)
    const later = await t.request('POST', '/api/v1/api-keys', { token: other.access, body: { name: 'next year', expires_at: new Date(Date.now() + 365 * 86_400_000).toISOString() } })
    expect(later.status).toBe(201)
  })
})

eachDialect('rate limits', (dialect) => {
  test('per user: RateLimit-* headers, then 429 with Retry-After', async () => {
    await inOneWindow(10_000) // the requests below must be counted in one minute's window
    const t = await createTestApp(dialect, { HEARTH_RATE_LIMIT: '3/min' })
    const a = await register(t, 'limited')
    const statuses: number[] = []
    let last
    for (let i = 0; i < 4; i++) {
      last = await me(t, a.access)
      statuses.push(last.status)
      if (i === 0) expect(last.headers.get('ratelimit-limit')).toBe('3')
    }
    expect(statuses).toEqual([200, 200, 200, 429])
    expect(last!.body.code).toBe('RATE_LIMITED')
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(last!.headers.get('ratelimit-remaining')).toBe('0')
    await t.close()
  }, 20_000) // may wait out a minute window (up to 10 s)

  test('anonymous requests per IP; login/registration per IP on the tighter limit', async () => {
    await inOneWindow(10_000) // the requests below must be counted in one minute's window
    const t = await createTestApp(dialect, { HEARTH_RATE_LIMIT: '5/min', HEARTH_AUTH_RATE_LIMIT: '2/min', HEARTH_TRUST_PROXY: 'true' })
    const from = (ip: string) => ({ 'x-forwarded-for': ip })
    const attempt = (ip: string) => t.request('POST', '/api/v1/auth/login', { headers: from(ip), body: { username: 'nobody', password: 'nothing-here' } })
    expect((await attempt('10.0.0.1')).status).toBe(401)
    expect((await attempt('10.0.0.1')).status).toBe(401)
    const third = await attempt('10.0.0.1')
    expect([third.status, third.body.code]).toEqual([429, 'RATE_LIMITED'])
    expect((await attempt('10.0.0.2')).status).toBe(401)
    // probes are never limited
    for (let i = 0; i < 8; i++) expect((await t.request('GET', '/health', { headers: from('10.0.0.3') })).status).toBe(200)
    await t.close()
  }, 20_000)

  test('counters are shared through the database', async () => {
    await inOneWindow(10_000) // the requests below must be counted in one minute's window
    const t = await createTestApp(dialect, { HEARTH_AUTH_RATE_LIMIT: '2/min', HEARTH_TRUST_PROXY: 'true' })
    await t.deps.services.limiter.consume('auth-ip:10.9.9.9', { limit: 2, windowMs: 60_000 }, 2)
    const res = await t.request('POST', '/api/v1/auth/login', { headers: { 'x-forwarded-for': '10.9.9.9' }, body: { username: 'x', password: 'y' } })
    expect(res.status).toBe(429)
    const rows = await t.deps.database.db.select().from(t.deps.database.t.rateLimits)
    expect(rows.find((r) => r.key.startsWith('auth-ip:10.9.9.9'))?.count).toBe(3)
    await t.close()
  }, 20_000)
})
