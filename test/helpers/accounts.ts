/** Register users through the API and collect their tokens, for scenario tables. */
import { afterAll, beforeAll, expect } from 'bun:test'
import type { Dialect } from '../../src/db/index.ts'
import { createTestApp, type TestApp } from './app.ts'
import type { Caller, ScenarioContext } from './scenarios.ts'

export interface Account {
  id: string
  username: string
  email: string
  password: string
  access: string
  refresh: string
}

let n = 0
export const unique = (base = 'user') => `${base}_${Date.now().toString(36)}_${n++}`

export async function register(t: TestApp, base = 'user', extra: Record<string, unknown> = {}): Promise<Account> {
  const username = unique(base)
  const email = `${username}@example.com`
  const password = `pw-${username}-secret`
  const res = await t.request('POST', '/api/v1/auth/register', { body: { username, email, password, ...extra } })
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
  return { id: res.body.user.id, username, email, password, access: res.body.tokens.access_token, refresh: res.body.tokens.refresh_token }
}

/** An admin created the way `hearth admin create` does it (no registration, no setup token): setup is then done. */
export async function createAdmin(t: TestApp, base = 'root'): Promise<Omit<Account, 'access' | 'refresh'>> {
  const { createUser } = await import('../../src/modules/users/service.ts')
  const username = unique(base)
  const email = `${username}@example.com`
  const password = `pw-${username}-secret`
  const user = await createUser(t.deps.database, { username, email, password, role: 'admin', emailVerified: true })
  return { id: user.id, username, email, password }
}

export async function login(t: TestApp, a: Pick<Account, 'username' | 'password'>, headers?: Record<string, string>) {
  const res = await t.request('POST', '/api/v1/auth/login', { body: { username: a.username, password: a.password }, headers })
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 200 })
  return { access: res.body.tokens.access_token as string, refresh: res.body.tokens.refresh_token as string }
}

export interface CallersContext extends ScenarioContext {
  accounts: Record<Exclude<Caller, 'guest'>, Account>
}

/** The first account registered becomes admin; then a user and another user. */
export async function setupCallers(t: TestApp): Promise<CallersContext> {
  const admin = await register(t, 'admin')
  const user = await register(t, 'user')
  const other = await register(t, 'other')
  return { t, accounts: { admin, user, other }, tokens: { admin: admin.access, user: user.access, other: other.access } }
}

/**
 * A test app with the three caller accounts for the enclosing describe block, closed after it:
 * `useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)))`.
 */
export function useCallers(dialect: Dialect, set: (t: TestApp, ctx: CallersContext) => void, env: Record<string, string> = {}, overrides: Parameters<typeof createTestApp>[2] = {}) {
  let app: TestApp | undefined
  beforeAll(async () => {
    app = await createTestApp(dialect, env, overrides)
    set(app, await setupCallers(app))
  })
  afterAll(() => app?.close())
}
