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
  const reg = await api.api.v1.auth.register.post({ username: 'eden_user', email: 'eden@example.com', password: 'eden-password' })
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

test('a query field with a server default may be left out; its type is kept', async () => {
  const api = treaty<App>(t.app)
  const reg = await api.api.v1.auth.register.post({ username: 'eden_pager', email: 'eden-pager@example.com', password: 'eden-password' })
  const authed = treaty<App>(t.app, { headers: { authorization: `Bearer ${reg.data!.tokens.access_token}` } })

  const all = await authed.api.v1.memories.get()
  const limit: number | undefined = all.data?.limit
  expect({ status: all.status, limit, offset: all.data?.offset }).toEqual({ status: 200, limit: 50, offset: 0 })
  const one = await authed.api.v1.conversations.get({ query: { limit: 1, q: 'nothing' } })
  expect({ status: one.status, limit: one.data?.limit, offset: one.data?.offset }).toEqual({ status: 200, limit: 1, offset: 0 })
  const conversation = await authed.api.v1.conversations.post({ title: 'Pager' })
  const exported = await authed.api.v1.conversations({ id: conversation.data!.id }).export.get()
  expect(exported.status).toBe(200)

  // @ts-expect-error: limit is a number
  await authed.api.v1.memories.get({ query: { limit: 'many' } })
})
