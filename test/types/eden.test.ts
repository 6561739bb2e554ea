/**
 * The Eden contract: a frontend's `treaty<App>` sees typed paths, bodies and responses. Type errors
 * here fail `tsc --noEmit` (run before the tests); the calls run for real against the app.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { treaty } from '@elysiajs/eden'
import type { App } from '../../src/client.ts'
import { createTestApp, type TestApp } from '../helpers/app.ts'

let t: TestApp
beforeAll(async () => {
  t = await createTestApp('sqlite')
})
afterAll(() => t.close())

test('register → me → preferences through Eden, fully typed', async () => {
  const api = treaty<App>(t.app)
  // the first account is the admin: it presents the setup token (the server logs it at start)
  const reg = await api.api.v1.auth.register.post({ username: 'eden_user', email: 'eden@example.com', password: 'eden-password', setup_token: t.deps.services.setup.token })
  expect(reg.status).toBe(201)
  const tokens = reg.data!.tokens
  const access: string = tokens.access_token
  const authed = treaty<App>(t.app, { headers: { authorization: `Bearer ${access}` } })

  const me = await authed.api.v1.auth.me.get()
  const username: string | undefined = me.data?.username
  const role: 'user' | 'admin' | undefined = me.data?.role
  expect({ username, role }).toEqual({ username: 'eden_user', role: 'admin' })

  const prefs = await authed.api.v1.users.me.preferences.put({ theme: 'dark' })
  const theme: 'light' | 'dark' | 'system' | undefined = prefs.data?.theme
  expect(theme).toBe('dark')

  const bad = await api.api.v1.auth.login.post({ username: 'eden_user', password: 'wrong-password' })
  expect(bad.status).toBe(401)
  expect((bad.error?.value as { code?: string } | undefined)?.code).toBe('INVALID_CREDENTIALS')

  // @ts-expect-error: username must be a string
  await api.api.v1.auth.register.post({ username: 1, email: 'x@example.com', password: 'password-1' })
})
