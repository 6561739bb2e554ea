/**
 * Several instances on one Postgres: a session revoked, a user disabled or an API key deleted on
 * one instance stops working on the others within a few seconds (LISTEN/NOTIFY), rate-limit
 * counters are shared, and a refresh token's successor in its grace window is the same on each. Postgres only: SQLite is one process by design.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { login, register, type Account } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp } from './helpers/app.ts'
import { DIALECTS } from './helpers/db.ts'
import { inOneWindow } from './helpers/windows.ts'

const me = (t: TestApp, token: string) => t.request('GET', '/api/v1/auth/me', { token })

/** Poll until `check` holds, up to `ms`; returns how long it took. */
async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now()
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms`)
    await Bun.sleep(25)
  }
  return Date.now() - start
}

for (const dialect of DIALECTS.filter((d) => d === 'postgres')) {
  describe(`two instances on one database [${dialect}]`, () => {
    let a: TestApp
    let b: TestApp
    let admin: Account
    beforeAll(async () => {
      a = await createTestApp(dialect)
      b = await createSecondInstance(a)
      admin = await register(a, 'boss') // the first user: admin
    })
    afterAll(async () => {
      await b.close()
      await a.close()
    })

    test('logout on A: the access token dies on B within a few seconds', async () => {
      const u = await register(a, 'multi')
      const s = await login(b, u)
      expect((await me(b, s.access)).status).toBe(200)
      expect((await me(a, s.access)).status).toBe(200)
      expect((await a.request('POST', '/api/v1/auth/logout', { token: s.access })).status).toBe(204)
      const took = await within(3000, async () => (await me(b, s.access)).status === 401)
      expect(took).toBeLessThan(3000)
    })

    test('disable on A: tokens and API keys die on B; a role change makes B ask for a refresh', async () => {
      const u = await register(a, 'victim')
      const key = (await b.request('POST', '/api/v1/api-keys', { token: u.access, body: { name: 'k' } })).body.key
      expect((await me(b, key)).status).toBe(200)
      expect((await me(b, u.access)).status).toBe(200)
      expect((await a.request('PATCH', `/api/v1/admin/users/${u.id}`, { token: admin.access, body: { role: 'admin' } })).status).toBe(200)
      await within(3000, async () => (await me(b, u.access)).body.code === 'TOKEN_EXPIRED')
      expect((await a.request('PATCH', `/api/v1/admin/users/${u.id}`, { token: admin.access, body: { is_active: false } })).status).toBe(200)
      await within(3000, async () => (await me(b, key)).status === 401)
    })

    test('a new instance started after a revocation knows about it', async () => {
      const u = await register(a, 'late')
      const s = await login(a, u)
      expect((await a.request('DELETE', `/api/v1/auth/sessions/${(await a.request('GET', '/api/v1/auth/sessions', { token: s.access })).body.items.find((x: { current: boolean }) => x.current).id}`, { token: u.access })).status).toBe(204)
      const c = await createSecondInstance(a)
      expect((await me(c, s.access)).status).toBe(401)
      await c.close()
    })

    test('two refreshes at once with one token, on A and on B: the same successor; after the grace window the token is reuse on either, and the family dies on both', async () => {
      const GRACE_MS = 1000
      const x = await createTestApp(dialect, {}, { refreshGraceMs: GRACE_MS })
      const y = await createSecondInstance(x, {}, { refreshGraceMs: GRACE_MS })
      try {
        const u = await register(x, 'tabs')
        const refresh = (t: TestApp, token: string) => t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: token } })
        const [p, q] = await Promise.all([refresh(x, u.refresh), refresh(y, u.refresh)])
        expect([p.status, q.status]).toEqual([200, 200])
        expect(q.body.tokens.refresh_token).toBe(p.body.tokens.refresh_token)
        expect((await me(y, p.body.tokens.access_token)).status).toBe(200)
        expect((await me(x, q.body.tokens.access_token)).status).toBe(200)
        await Bun.sleep(GRACE_MS + 100)
        const late = await refresh(y, u.refresh)
        expect([late.status, late.body.code]).toEqual([401, 'UNAUTHORIZED'])
        expect((await refresh(x, p.body.tokens.refresh_token)).status).toBe(401)
        for (const t of [x, y]) for (const r of [p, q]) await within(3000, async () => (await me(t, r.body.tokens.access_token)).status === 401)
      } finally {
        await y.close()
        await x.close()
      }
    }, 15_000)

    test('rate-limit counters are shared', async () => {
      await inOneWindow(10_000) // the five requests and the two flushes between them must fall in one minute's window
      const u = await register(a, 'counted')
      const limited = await createSecondInstance(a, { HEARTH_RATE_LIMIT: '4/min' })
      const other = await createSecondInstance(a, { HEARTH_RATE_LIMIT: '4/min' })
      for (let i = 0; i < 3; i++) expect((await me(limited, u.access)).status).toBe(200)
      expect((await me(other, u.access)).status).toBe(200) // the 4th, on the other instance
      await Bun.sleep(2200) // two flush intervals: each instance has written its count and read the total
      const fifth = await me(other, u.access)
      expect([fifth.status, fifth.body.code]).toEqual([429, 'RATE_LIMITED'])
      expect((await me(limited, u.access)).status).toBe(429)
      await limited.close()
      await other.close()
    }, 20_000) // may wait out a minute window (up to 10 s)
  })
}
