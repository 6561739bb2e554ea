/**
 * The Eden contract: a frontend's `treaty<App>` sees typed paths, bodies and responses. Type errors
 * here fail `tsc --noEmit` (run before the tests); the calls run for real against the app. (The
 * installed package, from a separate project: client-package.test.ts.)
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { treaty } from '@elysiajs/eden'
import type { App } from '../../src/client.ts'
import type { ChatStreamEvent } from '../../src/modules/chat/model.ts'
import { startFakeLlm, type FakeLlm } from '../fakes/llm.ts'
import { register } from '../helpers/accounts.ts'
import { createTestApp, type TestApp } from '../helpers/app.ts'

let t: TestApp
let fake: FakeLlm
beforeAll(async () => {
  t = await createTestApp('sqlite')
  fake = await startFakeLlm()
})
afterAll(async () => {
  await t.close()
  await fake.stop()
})

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

test('a streamed send yields the chat events as typed; the JSON send and /v1 errors are typed too', async () => {
  const a = await register(t, 'eden_streamer')
  const p = await t.request('POST', '/api/v1/providers', { token: a.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k' } })
  expect((await t.request('POST', '/api/v1/models', { token: a.access, body: { provider_id: p.body.id, name: 'quick', model_id: 'fake:tokens=5' } })).status).toBe(201)
  // parseDate: false — by default Eden turns ISO strings into Date objects, which the types (strings) do not say
  const api = treaty<App>(t.app, { parseDate: false, headers: { authorization: `Bearer ${a.access}` } })
  const conversation = (await api.api.v1.conversations.post({})).data!

  const sent = await api.api.v1.conversations({ id: conversation.id }).messages.post({ content: 'Hello', model_id: 'quick' }, { headers: { accept: 'text/event-stream' } })
  expect(sent.status).toBe(200)
  const stream = sent.data!
  if (!(Symbol.asyncIterator in stream)) throw new Error('expected the event stream')
  const events: ChatStreamEvent[] = []
  for await (const e of stream) events.push(e)
  expect(events.map((e) => e.event)).toEqual(['message.created', 'delta', 'delta', 'delta', 'delta', 'delta', 'usage', 'title', 'done'])
  expect(events.map((e) => ('id' in e ? e.id : undefined))).toEqual(events.map((_, i) => i + 1))
  const [created, done] = [events[0]!, events.at(-1)!]
  if (created.event !== 'message.created' || done.event !== 'done') throw new Error('unexpected first or last event')
  expect(created.data.user_message).toMatchObject({ role: 'user', content: 'Hello', created_at: expect.any(String) })
  expect(done.data).toEqual({ conversation_id: conversation.id, message_id: created.data.assistant_message_id, finish_reason: 'stop' })
  const text = events.map((e) => (e.event === 'delta' ? e.data.text : '')).join('')
  const stored = (await api.api.v1.conversations({ id: conversation.id }).get()).data!
  expect(stored.messages.at(-1)).toMatchObject({ id: created.data.assistant_message_id, content: text, status: 'complete' })

  const waited = await api.api.v1.conversations({ id: conversation.id }).messages.post({ content: 'Again', model_id: 'quick' })
  expect(waited.status).toBe(201)
  if (!waited.data || Symbol.asyncIterator in waited.data) throw new Error('expected both messages as JSON')
  const answer: string = waited.data.assistant_message.content
  expect(answer.length).toBeGreaterThan(0)

  const key = (await api.api.v1['api-keys'].post({ name: 'eden' })).data!.key
  const gateway = treaty<App>(t.app, { headers: { authorization: `Bearer ${key}` } })
  const unknown = await gateway.v1.chat.completions.post({ model: 'no-such-model', messages: [{ role: 'user', content: 'Hi' }] })
  expect(unknown.status).toBe(404)
  const error: { message: string; type: string; param: null; code: string | null } | undefined = unknown.error?.value.error
  expect(error).toMatchObject({ type: 'invalid_request_error', code: 'model_not_found' })
})
