/** Single sign-on in tests: the settings for the fake provider (test/fakes/oidc.ts), a whole sign-in as a browser does it, and reading what it left. */
import { expect } from 'bun:test'
import { eq } from 'drizzle-orm'
import type { TestApp, TestResponse } from './app.ts'
import type { FakeClaims, FakeOidc } from '../fakes/oidc.ts'

export const envFor = (fake: FakeOidc, extra: Record<string, string> = {}) => ({
  HEARTH_OIDC_FAKE_ISSUER: fake.issuer,
  HEARTH_OIDC_FAKE_CLIENT_ID: fake.clientId,
  HEARTH_OIDC_FAKE_CLIENT_SECRET: fake.clientSecret,
  HEARTH_OIDC_FAKE_NAME: 'Fake IdP',
  ...extra,
})

/** the `name=value` of each Set-Cookie of an answer */
export const cookiesOf = (res: TestResponse) => Object.fromEntries(res.headers.getSetCookie().map((c) => c.split(';')[0]!.split('=') as [string, string]))
export const stateCookie = (res: TestResponse) => Object.entries(cookiesOf(res)).find(([k]) => k.startsWith('hearth_oidc_'))

let n = 0
export const subject = () => `sub-${Date.now().toString(36)}-${n++}`

export interface Flow {
  start: TestResponse
  callback: TestResponse
  code: string | null
  state: string | null
  cookie: string
}

/** A whole sign-in as a browser does it: start, the provider, the callback with the state cookie. */
export async function signIn(t: TestApp, fake: FakeOidc, claims: FakeClaims, opts: { redirect?: string; provider?: string; callbackOn?: TestApp; token?: string } = {}): Promise<Flow> {
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

export const sessionsOf = async (t: TestApp, userId: string) => {
  const { db, t: s } = t.deps.database
  return db.select().from(s.sessions).where(eq(s.sessions.userId, userId))
}
export const userByEmail = async (t: TestApp, email: string) => {
  const { db, t: s } = t.deps.database
  return (await db.select().from(s.users).where(eq(s.users.email, email)))[0]
}
export const countSessions = async (t: TestApp) => (await t.deps.database.db.select().from(t.deps.database.t.sessions)).length
export const errorOf = (res: TestResponse) => new URL(res.headers.get('location')!, 'http://x').searchParams.get('error')
