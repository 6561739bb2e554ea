/**
 * Streaming chat over real HTTP (a started server on a loopback port) against the fake upstream:
 * incremental events, runs that outlive their connection, re-attach, stop, branches, context.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { register, type Account } from './helpers/accounts.ts'
import { createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { readEvents, textOf } from './helpers/sse.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

eachDialect('streaming chat', (dialect) => {
  let t: TestApp
  let fake: FakeLlm
  let server: ReturnType<typeof Bun.serve>
  let base: string
  let a: Account
  const models: Record<string, string> = {}

  beforeAll(async () => {
    fake = await startFakeLlm()
    t = await createTestApp(dialect)
    server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: t.app.fetch, idleTimeout: 30 })
    base = `http://127.0.0.1:${server.port}/api/v1`
    a = await register(t, 'chatter')
    const p = await t.request('POST', '/api/v1/providers', { token: a.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
    for (const [name, id, extra] of [
      ['quick', 'fake:tokens=5', { is_default: true }],
      ['paced', 'fake:tokens=8,delay=40', {}],
      ['long', 'fake:tokens=60,delay=25', {}],
      ['broken', 'fake:fail=500', {}],
      ['small', 'fake:tokens=3', { context_window: 200, input_price: 1, output_price: 2 }],
    ] as const) {
      const res = await t.request('POST', '/api/v1/models', { token: a.access, body: { provider_id: p.body.id, name, model_id: id, ...extra } })
      expect(res.status).toBe(201)
      models[name] = res.body.id
    }
  })
  afterAll(async () => {
    server.stop(true)
    await t.close()
    await fake.stop()
  })

  const newConversation = async (body: Record<string, unknown> = {}) => (await t.request('POST', '/api/v1/conversations', { token: a.access, body })).body.id as string
  const send = (conversationId: string, body: Record<string, unknown>, headers: Record<string, string> = {}, signal?: AbortSignal) =>
    fetch(`${base}/conversations/${conversationId}/messages`, { method: 'POST', headers: { authorization: `Bearer ${a.access}`, accept: 'text/event-stream', 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal })
  const get = async (conversationId: string) => (await t.request('GET', `/api/v1/conversations/${conversationId}`, { token: a.access })).body
  const lastAssistant = async (conversationId: string) => (await get(conversationId)).messages.at(-1)

  test('events arrive one by one, in order, with ids, and the text equals the stored message', async () => {
    const c = await newConversation()
    const res = await send(c, { content: 'Hello', model_id: 'paced' })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toStartWith('text/event-stream')
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(res.headers.get('x-accel-buffering')).toBe('no')
    const events = await readEvents(res)
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1))
    expect(events[0]!.event).toBe('message.created')
    expect(events[0]!.data.user_message).toMatchObject({ role: 'user', content: 'Hello', status: 'complete' })
    expect(events.at(-1)).toMatchObject({ event: 'done', data: { conversation_id: c, finish_reason: 'stop', message_id: events[0]!.data.assistant_message_id } })
    const deltas = events.filter((e) => e.event === 'delta')
    expect(deltas).toHaveLength(8)
    // incremental: the last delta comes well after the first (8 × 40 ms upstream), not in one burst
    expect(deltas.at(-1)!.at - deltas[0]!.at).toBeGreaterThan(150)
    expect(events.find((e) => e.event === 'usage')?.data).toMatchObject({ output_tokens: 8 })
    const stored = await lastAssistant(c)
    expect(stored).toMatchObject({ role: 'assistant', status: 'complete', content: textOf(events) })
    expect(stored.metadata).toMatchObject({ model: 'paced', output_tokens: 8, finish_reason: 'stop' })
  })

  test('the first exchange of an untitled conversation sends a `title` event just before `done`; later ones, and titled conversations, send none', async () => {
    const c = await newConversation()
    const first = await readEvents(await send(c, { content: 'Name this conversation', model_id: 'quick' }))
    expect(first.slice(-2).map((e) => e.event)).toEqual(['title', 'done'])
    // the title model is the conversation's model: the fake answers `tok0 … tok4`
    expect(first.at(-2)!.data).toEqual({ conversation_id: c, title: 'tok0 tok1 tok2 tok3 tok4' })
    expect((await get(c)).title).toBe('tok0 tok1 tok2 tok3 tok4')
    const second = await readEvents(await send(c, { content: 'And again', model_id: 'quick' }))
    expect(second.map((e) => e.event)).not.toContain('title')
    const named = await newConversation({ title: 'Mine' })
    expect((await readEvents(await send(named, { content: 'Hi', model_id: 'quick' }))).map((e) => e.event)).not.toContain('title')
    // a failed first answer gives no title
    const failed = await newConversation()
    const events = await readEvents(await send(failed, { content: 'Fail', model_id: 'broken' }))
    expect(events.map((e) => e.event)).not.toContain('title')
    expect(events.at(-1)!.event).toBe('done')
  })

  test('disconnect mid-stream; re-attach with Last-Event-ID gets every missed delta exactly once', async () => {
    const c = await newConversation()
    const controller = new AbortController()
    const first = await readEvents(await send(c, { content: 'Tell me a long story', model_id: 'long' }, {}, controller.signal), (e) => e.id === 6)
    controller.abort()
    expect(first.at(-1)!.id).toBe(6)
    await Bun.sleep(150) // the run goes on without any client
    const again = await fetch(`${base}/conversations/${c}/stream`, { headers: { authorization: `Bearer ${a.access}`, 'last-event-id': '6' } })
    expect(again.status).toBe(200)
    const rest = await readEvents(again)
    expect(rest[0]!.id).toBe(7)
    expect(rest.at(-1)!.event).toBe('done')
    const all = [...first, ...rest]
    expect(all.map((e) => e.id)).toEqual(all.map((_, i) => i + 1))
    const text = textOf(all)
    expect(text).toBe(Array.from({ length: 60 }, (_, i) => `tok${i} `).join(''))
    expect((await lastAssistant(c)).content).toBe(text)
    // a finished run replays from the start for a while; then the stream is 204
    const replay = await readEvents(await fetch(`${base}/conversations/${c}/stream`, { headers: { authorization: `Bearer ${a.access}` } }))
    expect(textOf(replay)).toBe(text)
    const after = await fetch(`${base}/conversations/${c}/stream`, { headers: { authorization: `Bearer ${a.access}`, 'last-event-id': String(all.length) } })
    expect(after.status).toBe(204)
  })

  test('stop keeps the partial text with status stopped; a second stop is false', async () => {
    const c = await newConversation()
    const res = await send(c, { content: 'Go on and on', model_id: 'long' })
    let stopped: Promise<unknown> | undefined
    const events = await readEvents(res, (e, all) => {
      if (!stopped && all.filter((x) => x.event === 'delta').length === 4) stopped = t.request('POST', `/api/v1/conversations/${c}/stop`, { token: a.access }).then((r) => r.body)
      return e.event === 'done'
    })
    expect(await stopped).toEqual({ stopped: true })
    expect(events.at(-1)!.data.finish_reason).toBe('stopped')
    const stored = await lastAssistant(c)
    expect(stored.status).toBe('stopped')
    expect(stored.content).toBe(textOf(events))
    expect(stored.content.length).toBeGreaterThan(0)
    expect(stored.content).not.toContain('tok59')
    expect((await t.request('POST', '/api/v1/chat/stop', { token: a.access, body: { conversation_id: c } })).body).toEqual({ stopped: false })
  })

  test('one answer at a time: a second send while one runs is 409; nothing running is 204', async () => {
    const c = await newConversation()
    expect((await fetch(`${base}/conversations/${c}/stream`, { headers: { authorization: `Bearer ${a.access}` } })).status).toBe(204)
    const res = await send(c, { content: 'first', model_id: 'long' })
    const reader = readEvents(res, (e) => e.event === 'done')
    const second = await t.request('POST', `/api/v1/conversations/${c}/messages`, { token: a.access, body: { content: 'second' } })
    expect([second.status, second.body.code]).toEqual([409, 'CONFLICT'])
    await t.request('POST', `/api/v1/conversations/${c}/stop`, { token: a.access })
    await reader
    const third = await t.request('POST', `/api/v1/conversations/${c}/messages`, { token: a.access, body: { content: 'third' } })
    expect(third.status).toBe(201)
  })

  test('JSON mode waits and returns both messages; an upstream failure is 502 and an error event', async () => {
    const c = await newConversation()
    const ok = await t.request('POST', `/api/v1/conversations/${c}/messages`, { token: a.access, body: { content: 'hi' } })
    expect(ok.status).toBe(201)
    expect(ok.body.user_message).toMatchObject({ role: 'user', content: 'hi', status: 'complete' })
    expect(ok.body.assistant_message).toMatchObject({ role: 'assistant', content: 'tok0 tok1 tok2 tok3 tok4 ', status: 'complete', parent_id: ok.body.user_message.id })
    const failed = await t.request('POST', `/api/v1/conversations/${c}/messages`, { token: a.access, body: { content: 'again', model_id: 'broken' } })
    expect([failed.status, failed.body.code]).toEqual([502, 'UPSTREAM_ERROR'])
    const events = await readEvents(await send(c, { content: 'once more', model_id: 'broken' }))
    expect(events.map((e) => e.event)).toEqual(['message.created', 'error', 'done'])
    expect(events[1]!.data.code).toBe('UPSTREAM_ERROR')
    expect(events[2]!.data.finish_reason).toBe('error')
    expect((await lastAssistant(c)).status).toBe('error')
  })

  test('regenerate makes a sibling and switches the branch; editing forks from the parent', async () => {
    const c = await newConversation()
    const first = await t.request('POST', `/api/v1/conversations/${c}/messages`, { token: a.access, body: { content: 'question one' } })
    const oldAnswer = first.body.assistant_message
    const regen = await readEvents(await fetch(`${base}/conversations/${c}/messages/${oldAnswer.id}/regenerate`, { method: 'POST', headers: { authorization: `Bearer ${a.access}`, accept: 'text/event-stream' } }))
    const newId = regen.at(-1)!.data.message_id
    expect(newId).not.toBe(oldAnswer.id)
    let view = await get(c)
    expect(view.messages.map((m: { id: string }) => m.id)).toEqual([first.body.user_message.id, newId])
    expect(view.messages[1].parent_id).toBe(first.body.user_message.id)
    // edit the question: a new user message with the same parent (the root)
    const edited = await t.request('POST', `/api/v1/conversations/${c}/messages`, { token: a.access, body: { content: 'question one, edited', parent_id: null } })
    view = await get(c)
    expect(view.messages.map((m: { content: string }) => m.content)).toEqual(['question one, edited', 'tok0 tok1 tok2 tok3 tok4 '])
    expect(edited.body.user_message.parent_id).toBeNull()
    expect(view.message_count).toBe(5)
    const rows = await t.deps.database.db.select().from(t.deps.database.t.messages)
    expect(rows.filter((m) => m.conversationId === c)).toHaveLength(5)
    const badParent = await t.request('POST', `/api/v1/conversations/${c}/messages`, { token: a.access, body: { content: 'x', parent_id: 'not-here' } })
    expect(badParent.status).toBe(422)
  })

  test('context: system prompt first, context_rounds honoured, memories when enabled', async () => {
    const c = await newConversation({ system_prompt: 'You are a pirate.' })
    for (const q of ['one', 'two', 'three']) await t.request('POST', `/api/v1/conversations/${c}/messages`, { token: a.access, body: { content: `question ${q}` } })
    await t.request('PUT', '/api/v1/users/me/preferences', { token: a.access, body: { context_rounds: 1, memory_enabled: true } })
    await t.request('POST', '/api/v1/memories', { token: a.access, body: { content: 'My cat is called Miso.' } })
    const before = fake.requests.length
    await t.request('POST', `/api/v1/conversations/${c}/messages`, { token: a.access, body: { content: 'question four' } })
    const sent = fake.requests.slice(before).find((r) => r.path.endsWith('/chat/completions'))!.body as { messages: { role: string; content: string }[] }
    expect(sent.messages[0]!.role).toBe('system')
    expect(sent.messages[0]!.content).toContain('You are a pirate.')
    expect(sent.messages[0]!.content).toContain('My cat is called Miso.')
    expect(sent.messages.slice(1).map((m) => `${m.role}:${m.content}`)).toEqual(['user:question three', 'assistant:tok0 tok1 tok2 tok3 tok4 ', 'user:question four'])
    await t.request('PUT', '/api/v1/users/me/preferences', { token: a.access, body: { context_rounds: 10, memory_enabled: false } })
  })

  test("the model's context window trims the oldest turns, never the system prompt or the question", async () => {
    const c = await newConversation({ system_prompt: 'Be short.', model_id: 'small' })
    for (let i = 0; i < 4; i++) await t.request('POST', `/api/v1/conversations/${c}/messages`, { token: a.access, body: { content: `question ${i} ` + 'words '.repeat(40) } })
    const before = fake.requests.length
    await t.request('POST', `/api/v1/conversations/${c}/messages`, { token: a.access, body: { content: 'last question' } })
    const sent = (fake.requests.slice(before).find((r) => r.path.endsWith('/chat/completions'))!.body as { messages: { role: string; content: string }[] }).messages
    expect(sent[0]).toMatchObject({ role: 'system', content: 'Be short.' })
    expect(sent.at(-1)).toMatchObject({ role: 'user', content: 'last question' })
    expect(sent.length).toBeLessThan(10)
    expect(sent.some((m) => m.content.startsWith('question 0'))).toBe(false)
  })

  test('EventSource-style GET with the cookie creates a conversation and streams', async () => {
    // what a browser's same-origin EventSource sends (a cookie without it is refused: cross-site.test.ts)
    const headers = { cookie: `hearth_access=${a.access}`, accept: 'text/event-stream', 'sec-fetch-site': 'same-origin' }
    const res = await fetch(`${base}/chat/stream?query=${encodeURIComponent('Hi from a browser')}&model=quick&language=en`, { headers })
    expect(res.status).toBe(200)
    const events = await readEvents(res)
    const conversationId = events[0]!.data.conversation_id
    expect(events.at(-1)!.event).toBe('done')
    const view = await get(conversationId)
    expect(view.messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant'])
    const sent = fake.requests.map((r) => r.body as { messages?: { role: string; content: string }[] }).find((b) => b?.messages?.some((m) => m.content === 'Hi from a browser'))!
    expect(sent.messages![0]!.content).toContain('Answer in English.')
  })

  test('GET /chat/stream with Last-Event-ID (an EventSource reconnecting) re-attaches or is 204, never a new run', async () => {
    const total = async (token = a.access) => (await t.request('GET', '/api/v1/conversations', { token })).body.total as number
    const open = (query: string, lastId?: string, token = a.access) =>
      fetch(`${base}/chat/stream?query=${encodeURIComponent(query)}&model=paced`, { headers: { cookie: `hearth_access=${token}`, 'sec-fetch-site': 'same-origin', accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) } })
    const before = await total()
    const calls = fake.requests.length
    // nothing was asked with this text: three reconnects are three 204s and no conversation
    for (let i = 0; i < 3; i++) expect((await open('never asked', '8')).status).toBe(204)
    expect(await total()).toBe(before)
    // a drop mid-stream: the reconnect gets the rest of the same run
    const controller = new AbortController()
    const first = await readEvents(await fetch(`${base}/chat/stream?query=${encodeURIComponent('reconnect me')}&model=paced`, { headers: { cookie: `hearth_access=${a.access}`, 'sec-fetch-site': 'same-origin' }, signal: controller.signal }), (e) => e.id === 3)
    controller.abort()
    const rest = await readEvents(await open('reconnect me', '3'))
    expect(rest.map((e) => e.id)).toEqual(rest.map((_, i) => i + 4))
    expect(rest.at(-1)).toMatchObject({ event: 'done', data: { conversation_id: first[0]!.data.conversation_id } })
    // after done: 204, also with the conversation named; another user asking the same never finds it
    expect((await open('reconnect me', String(rest.at(-1)!.id))).status).toBe(204)
    const named = await fetch(`${base}/chat/stream?query=${encodeURIComponent('reconnect me')}&conversation_id=${first[0]!.data.conversation_id}`, { headers: { cookie: `hearth_access=${a.access}`, 'sec-fetch-site': 'same-origin', 'last-event-id': '2' } })
    expect(named.status).toBe(200) // the finished run is still replayable: from event 3 on
    expect((await readEvents(named))[0]!.id).toBe(3)
    const other = await register(t, 'reconnector')
    expect((await open('reconnect me', '1', other.access)).status).toBe(204)
    expect(await total(other.access)).toBe(0)
    expect(await total()).toBe(before + 1)
    expect(fake.requests.slice(calls).filter((r) => (r.body as { messages?: { content: string }[] }).messages?.at(-1)?.content === 'reconnect me')).toHaveLength(1)
  })

  test('usage is recorded for chat, with cost at the model prices', async () => {
    const c = await newConversation({ model_id: 'small' })
    await t.request('POST', `/api/v1/conversations/${c}/messages`, { token: a.access, body: { content: 'price me' } })
    const rows = await t.deps.database.db.select().from(t.deps.database.t.usage)
    const row = rows.find((r) => r.source === 'chat' && r.model === 'small' && r.userId === a.id)!
    expect(row).toMatchObject({ status: 'ok', outputTokens: 3 })
    expect(row.cost).toBeCloseTo((row.inputTokens * 1 + 3 * 2) / 1e6, 12)
    const stats = await t.request('GET', '/api/v1/users/me/stats', { token: a.access })
    expect(stats.body.conversations).toBeGreaterThan(0)
    expect(stats.body.messages).toBeGreaterThan(0)
  })
})
