/**
 * Open event streams are subscriptions of the credential that opened them (src/runs/subscriptions.ts):
 * revoking a session or an API key, or a cut-off of its user, ends them at once with a `revoked`
 * event; disabling or deleting a user also stops their answers. Per-user caps on open streams and
 * running answers (429), and a deleted conversation's streams end with `deleted`, its re-attach 404.
 * Over real HTTP against a fake provider that drips tokens slowly.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { eq, inArray } from 'drizzle-orm'
import { login, register, type Account } from './helpers/accounts.ts'
import { createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { eventually, follow } from './helpers/streams.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

/** how soon a stream must end after the request that ends it has been answered */
const PROMPTLY_MS = 1000

function useStreamingApp(dialect: Parameters<typeof createTestApp>[0], env: Record<string, string> = {}) {
  const ctx = {} as { t: TestApp; fake: FakeLlm; server: ReturnType<typeof Bun.serve>; base: string; admin: Account }
  beforeAll(async () => {
    ctx.fake = await startFakeLlm()
    ctx.t = await createTestApp(dialect, env)
    ctx.server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: ctx.t.app.fetch, idleTimeout: 30 })
    ctx.base = `http://127.0.0.1:${ctx.server.port}/api/v1`
    ctx.admin = await register(ctx.t, 'admin')
    const p = await ctx.t.request('POST', '/api/v1/providers', { token: ctx.admin.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${ctx.fake.url}/v1`, api_key: 'k', scope: 'global' } })
    // 400 tokens 20 ms apart: 8 s, longer than any test waits
    for (const [name, id, extra] of [['slow', 'fake:tokens=400,delay=20', { is_default: true }], ['quick', 'fake:tokens=3', {}]] as const)
      expect((await ctx.t.request('POST', '/api/v1/models', { token: ctx.admin.access, body: { provider_id: p.body.id, name, model_id: id, ...extra } })).status).toBe(201)
  })
  afterAll(async () => {
    ctx.server.stop(true)
    await ctx.t.close()
    await ctx.fake.stop()
  })

  const h = {
    conversation: async (token: string) => (await ctx.t.request('POST', '/api/v1/conversations', { token, body: {} })).body.id as string,
    send: (token: string, c: string, body: Record<string, unknown> = { content: 'Tell me everything' }) =>
      fetch(`${ctx.base}/conversations/${c}/messages`, { method: 'POST', headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    reattach: (token: string, c: string, init: { signal?: AbortSignal } = {}) => fetch(`${ctx.base}/conversations/${c}/stream`, { headers: { authorization: `Bearer ${token}` }, signal: init.signal }),
    stop: (token: string, c: string) => ctx.t.request('POST', `/api/v1/conversations/${c}/stop`, { token }),
    /** a streamed /v1 completion of the slow model */
    complete: (token: string) =>
      fetch(`${ctx.base.replace('/api/v1', '')}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'slow', stream: true, messages: [{ role: 'user', content: 'Tell me everything' }] }),
      }),
    /** the last answer of these conversations, straight from the database (their user may be signed out) */
    async answers(...conversations: string[]) {
      const { db, t } = ctx.t.deps.database
      const rows = await db.select().from(t.messages).where(inArray(t.messages.conversationId, conversations))
      return conversations.map((c) => rows.filter((m) => m.conversationId === c && m.role === 'assistant').at(-1)!)
    },
  }
  return { ctx, h }
}

eachDialect('revoking credentials ends open streams', (dialect) => {
  const { ctx, h } = useStreamingApp(dialect)

  test("logging out ends that session's streams at once with `revoked`; another session's stream stays; the answer goes on", async () => {
    const { t } = ctx
    const u = await register(t, 'streamer')
    const second = await login(t, u)
    const [c1, c2] = [await h.conversation(u.access), await h.conversation(u.access)]
    const mine = h.send(u.access, c1)
    const s1 = follow(mine)
    const s2 = follow(h.send(second.access, c2))
    await Promise.all([s1.started, s2.started])

    expect((await t.request('POST', '/api/v1/auth/logout', { token: u.access })).status).toBe(204)
    const answered = performance.now()
    const { events, at } = await s1.ended
    expect(at - answered).toBeLessThan(PROMPTLY_MS)
    expect(events.at(-1)).toEqual({ id: undefined, event: 'revoked', data: { code: 'UNAUTHORIZED', reason: 'session_revoked' }, at: expect.any(Number) })
    expect(events.some((e) => e.event === 'done')).toBe(false)

    const before = s2.deltas()
    expect(await s2.openAfter(300)).toBe('open')
    expect(s2.deltas()).toBeGreaterThan(before)

    // revoking a session ends its subscriptions, not the answers: the run of c1 is still going
    expect((await h.answers(c1))[0]!.status).toBe('streaming')
    const again = follow(h.reattach(second.access, c1))
    await again.started
    for (const c of [c1, c2]) expect((await h.stop(second.access, c)).body).toEqual({ stopped: true })
    expect((await s2.ended).events.at(-1)).toMatchObject({ event: 'done', data: { finish_reason: 'stopped' } })
    expect((await again.ended).events.at(-1)).toMatchObject({ event: 'done', data: { finish_reason: 'stopped' } })
    await eventually(() => t.deps.services.subscriptions.countOf(u.id) === 0, 2000, 'every stream released')
  })

  test('DELETE /auth/sessions/{id} and a password change end the revoked sessions’ streams, not the current one’s', async () => {
    const { t } = ctx
    const u = await register(t, 'sessions')
    const [s3, s4] = [await login(t, u), await login(t, u)]
    const sessions = (await t.request('GET', '/api/v1/auth/sessions', { token: s3.access })).body.items as { id: string; current: boolean }[]
    const s3Id = sessions.find((s) => s.current)!.id
    const c = await h.conversation(u.access)
    const on3 = follow(h.send(s3.access, c))
    await on3.started
    const onFirst = follow(h.reattach(u.access, c))
    const on4 = follow(h.reattach(s4.access, c))
    await Promise.all([onFirst.started, on4.started])

    expect((await t.request('DELETE', `/api/v1/auth/sessions/${s3Id}`, { token: s4.access })).status).toBe(204)
    let answered = performance.now()
    let ended = await on3.ended
    expect(ended.at - answered).toBeLessThan(PROMPTLY_MS)
    expect(ended.events.at(-1)).toMatchObject({ event: 'revoked', data: { code: 'UNAUTHORIZED', reason: 'session_revoked' } })
    expect(await onFirst.openAfter(200)).toBe('open')

    // a password change revokes every other session: the register session's stream ends, s4's stays
    expect((await t.request('PUT', '/api/v1/auth/password', { token: s4.access, body: { old_password: u.password, new_password: `new-${u.password}` } })).status).toBe(204)
    answered = performance.now()
    ended = await onFirst.ended
    expect(ended.at - answered).toBeLessThan(PROMPTLY_MS)
    expect(ended.events.at(-1)).toMatchObject({ event: 'revoked', data: { reason: 'session_revoked' } })
    expect(await on4.openAfter(200)).toBe('open')
    await h.stop(s4.access, c)
    expect((await on4.ended).events.at(-1)!.event).toBe('done')
  })

  test('deleting an API key ends the streams it opened with `revoked` (api_key_revoked); the session’s stream stays', async () => {
    const { t } = ctx
    const u = await register(t, 'keyed')
    const key = (await t.request('POST', '/api/v1/api-keys', { token: u.access, body: { name: 'script' } })).body
    const c = await h.conversation(u.access)
    const byKey = follow(h.send(key.key, c))
    await byKey.started
    const bySession = follow(h.reattach(u.access, c))
    await bySession.started

    expect((await t.request('DELETE', `/api/v1/api-keys/${key.id}`, { token: u.access })).status).toBe(204)
    const answered = performance.now()
    const { events, at } = await byKey.ended
    expect(at - answered).toBeLessThan(PROMPTLY_MS)
    expect(events.at(-1)).toMatchObject({ event: 'revoked', data: { code: 'UNAUTHORIZED', reason: 'api_key_revoked' } })
    expect(await bySession.openAfter(200)).toBe('open')
    await h.stop(u.access, c)
    await bySession.ended
  })

  test('a /v1 stream opened with an API key ends with an OpenAI error and [DONE] when the key is deleted; the upstream call is aborted', async () => {
    const { t } = ctx
    const u = await register(t, 'gateway')
    const key = (await t.request('POST', '/api/v1/api-keys', { token: u.access, body: { name: 'sdk' } })).body
    const res = await h.complete(key.key)
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    const decoder = new TextDecoder()
    let text = ''
    while (!text.includes('"content":"tok1 "')) text += decoder.decode((await reader.read()).value)
    expect(t.deps.services.subscriptions.countOf(u.id)).toBe(1)

    expect((await t.request('DELETE', `/api/v1/api-keys/${key.id}`, { token: u.access })).status).toBe(204)
    const answered = performance.now()
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      text += decoder.decode(value)
    }
    expect(performance.now() - answered).toBeLessThan(PROMPTLY_MS)
    expect(text).toEndWith('data: {"error":{"message":"the API key was revoked","type":"authentication_error","param":null,"code":"unauthorized"}}\n\ndata: [DONE]\n\n')
    expect(text).not.toContain('tok399')
    expect(t.deps.services.subscriptions.countOf(u.id)).toBe(0)
    const { db, t: tables } = t.deps.database
    await eventually(async () => (await db.select().from(tables.usage).where(eq(tables.usage.userId, u.id))).some((r) => r.source === 'gateway' && r.status === 'aborted'), 2000, 'the call recorded as aborted')
  })

  test('a role change ends the user’s streams with TOKEN_EXPIRED; after a refresh, re-attaching works and the answer went on', async () => {
    const { t } = ctx
    const u = await register(t, 'promoted')
    const c = await h.conversation(u.access)
    const s = follow(h.send(u.access, c))
    await s.started
    expect((await t.request('PATCH', `/api/v1/admin/users/${u.id}`, { token: ctx.admin.access, body: { role: 'admin' } })).status).toBe(200)
    const answered = performance.now()
    const { events, at } = await s.ended
    expect(at - answered).toBeLessThan(PROMPTLY_MS)
    expect(events.at(-1)).toMatchObject({ event: 'revoked', data: { code: 'TOKEN_EXPIRED', reason: 'access_changed' } })
    const refreshed = await t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: u.refresh } })
    expect(refreshed.status).toBe(200)
    const token = refreshed.body.tokens.access_token
    const again = follow(h.reattach(token, c))
    await again.started
    expect(await again.openAfter(100)).toBe('open')
    await h.stop(token, c)
    expect((await again.ended).events.at(-1)).toMatchObject({ event: 'done', data: { finish_reason: 'stopped' } })
  })

  test('disabling a user ends their streams (session and key) and stops their answers: saved as stopped', async () => {
    const { t } = ctx
    const u = await register(t, 'disabled')
    const key = (await t.request('POST', '/api/v1/api-keys', { token: u.access, body: { name: 'script' } })).body.key
    const [c1, c2] = [await h.conversation(u.access), await h.conversation(u.access)]
    const bySession = follow(h.send(u.access, c1))
    const byKey = follow(h.send(key, c2))
    await Promise.all([bySession.started, byKey.started])
    const runs = [c1, c2].map((c) => t.deps.services.runs.get(c)!)

    expect((await t.request('PATCH', `/api/v1/admin/users/${u.id}`, { token: ctx.admin.access, body: { is_active: false } })).status).toBe(200)
    const answered = performance.now()
    for (const [s, reason] of [[bySession, 'session_revoked'], [byKey, 'api_key_revoked']] as const) {
      const { events, at } = await s.ended
      expect(at - answered).toBeLessThan(PROMPTLY_MS)
      expect(events.at(-1)).toMatchObject({ event: 'revoked', data: { code: 'UNAUTHORIZED', reason } })
    }
    await eventually(() => runs.every((r) => r.done), 2000, 'both runs ended')
    for (const r of runs) expect(r.events.at(-1)).toMatchObject({ event: 'done', data: { finish_reason: 'stopped' } })
    for (const m of await h.answers(c1, c2)) {
      expect(m.status).toBe('stopped')
      expect(m.content.length).toBeGreaterThan(0)
      expect(m.content).not.toContain('tok399')
    }
  })

  test('deleting a user ends their streams and stops their answer', async () => {
    const { t } = ctx
    const u = await register(t, 'deleted')
    const c = await h.conversation(u.access)
    const s = follow(h.send(u.access, c))
    await s.started
    const run = t.deps.services.runs.get(c)!
    expect((await t.request('DELETE', `/api/v1/admin/users/${u.id}`, { token: ctx.admin.access })).status).toBe(204)
    const answered = performance.now()
    const { events, at } = await s.ended
    expect(at - answered).toBeLessThan(PROMPTLY_MS)
    expect(events.at(-1)!.event).toBe('revoked')
    await eventually(() => run.done, 2000, 'the run ended')
    expect(run.events.at(-1)).toMatchObject({ event: 'done', data: { finish_reason: 'stopped' } })
  })
})

eachDialect('per-user caps and deleted conversations', (dialect) => {
  const { ctx, h } = useStreamingApp(dialect, { HEARTH_MAX_STREAMS_PER_USER: '2', HEARTH_MAX_RUNS_PER_USER: '2' })

  test('past HEARTH_MAX_STREAMS_PER_USER a stream is 429 with Retry-After, before anything starts; other users are not counted; a closed stream frees its place', async () => {
    const { t } = ctx
    const [u, other] = [await register(t, 'capped'), await register(t, 'neighbour')]
    const c = await h.conversation(u.access)
    const first = follow(h.send(u.access, c))
    await first.started
    const leaving = new AbortController()
    const second = follow(h.reattach(u.access, c, { signal: leaving.signal }))
    await second.started

    const third = await h.reattach(u.access, c)
    expect(third.status).toBe(429)
    expect(third.headers.get('retry-after')).toBe('5')
    const problem = await third.json()
    expect(problem).toMatchObject({ status: 429, code: 'RATE_LIMITED', detail: 'You have 2 event streams open, the most allowed at once; close one first' })
    // refused before anything starts: /chat/stream creates no conversation and sends nothing
    const count = async () => (await t.request('GET', '/api/v1/conversations', { token: u.access })).body.total
    const conversations = await count()
    const browser = await fetch(`${ctx.base}/chat/stream?query=hello`, { headers: { cookie: `hearth_access=${u.access}`, 'sec-fetch-site': 'same-origin' } })
    expect([browser.status, browser.headers.get('content-type')]).toEqual([429, 'application/problem+json'])
    expect(await count()).toBe(conversations)
    // plain requests are not streams
    expect((await t.request('GET', `/api/v1/conversations/${c}`, { token: u.access })).status).toBe(200)

    const theirs = follow(h.send(other.access, await h.conversation(other.access)))
    await theirs.started

    leaving.abort()
    await second.ended.catch(() => {})
    await eventually(() => t.deps.services.subscriptions.countOf(u.id) === 1, 2000, 'the closed stream released')
    const again = follow(h.reattach(u.access, c))
    await again.started
    // a /v1 stream counts too, and is refused in OpenAI's shape
    const refusedAtV1 = await h.complete(u.access)
    expect([refusedAtV1.status, refusedAtV1.headers.get('retry-after')]).toEqual([429, '5'])
    expect((await refusedAtV1.json()).error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limited', message: 'You have 2 event streams open, the most allowed at once; close one first' })
    await h.stop(u.access, c)
    await Promise.all([first.ended, again.ended])
    await eventually(() => t.deps.services.subscriptions.countOf(u.id) === 0, 2000, 'both streams released')
    const completion = await h.complete(u.access)
    expect(completion.status).toBe(200)
    await completion.body!.cancel()
    await eventually(() => t.deps.services.subscriptions.countOf(u.id) === 0, 2000, 'the /v1 stream released')
    await h.stop(other.access, (await t.request('GET', '/api/v1/conversations', { token: other.access })).body.items[0].id)
    await theirs.ended
  })

  test('past HEARTH_MAX_RUNS_PER_USER a new answer is 429 (JSON or stream) and stores nothing; a stopped answer frees its place', async () => {
    const { t } = ctx
    const u = await register(t, 'busy')
    const [c1, c2, c3] = [await h.conversation(u.access), await h.conversation(u.access), await h.conversation(u.access)]
    // JSON mode: these wait for their answers, holding no stream
    const waiting = [c1, c2].map((c) => t.request('POST', `/api/v1/conversations/${c}/messages`, { token: u.access, body: { content: 'a long one' } }))
    await eventually(async () => (await h.answers(c1, c2)).every((m) => m?.status === 'streaming'), 2000, 'two answers running')

    const refused = await t.request('POST', `/api/v1/conversations/${c3}/messages`, { token: u.access, body: { content: 'and one more', model_id: 'quick' } })
    expectProblem(refused, 429, 'RATE_LIMITED')
    expect(refused.body.detail).toBe('You have 2 answers being generated, the most allowed at once; wait for one to finish or stop one')
    expect(refused.headers.get('retry-after')).toBe('5')
    const streamed = await h.send(u.access, c3, { content: 'and one more', model_id: 'quick' })
    expect(streamed.status).toBe(429)
    expect((await streamed.json()).code).toBe('RATE_LIMITED')
    expect(t.deps.services.subscriptions.countOf(u.id)).toBe(0)
    expect((await t.request('GET', `/api/v1/conversations/${c3}`, { token: u.access })).body).toMatchObject({ message_count: 0, messages: [] })

    expect((await h.stop(u.access, c1)).body).toEqual({ stopped: true })
    const first = await waiting[0]!
    expect([first.status, first.body.assistant_message.status]).toEqual([201, 'stopped'])
    const ok = await t.request('POST', `/api/v1/conversations/${c3}/messages`, { token: u.access, body: { content: 'and one more', model_id: 'quick' } })
    expect([ok.status, ok.body.assistant_message.status]).toEqual([201, 'complete'])
    await h.stop(u.access, c2)
    expect((await waiting[1]!).status).toBe(201)
  })

  test('an answer left streaming by a dead process does not count against the cap', async () => {
    const { t } = ctx
    const u = await register(t, 'crashed')
    const [dead1, dead2, live] = [await h.conversation(u.access), await h.conversation(u.access), await h.conversation(u.access)]
    const { db, t: tables } = t.deps.database
    const long_ago = new Date(Date.now() - 60_000)
    for (const c of [dead1, dead2]) await db.insert(tables.messages).values({ conversationId: c, role: 'assistant', content: 'half', status: 'streaming', createdAt: long_ago, updatedAt: long_ago })
    const ok = await t.request('POST', `/api/v1/conversations/${live}/messages`, { token: u.access, body: { content: 'hi', model_id: 'quick' } })
    expect(ok.status).toBe(201)
    await db.delete(tables.messages).where(inArray(tables.messages.conversationId, [dead1, dead2]))
  })

  test('deleting a conversation ends its streams at once with `deleted` and stops its run; a re-attach is then 404', async () => {
    const { t } = ctx
    const u = await register(t, 'deleter')
    const c = await h.conversation(u.access)
    const sending = follow(h.send(u.access, c))
    await sending.started
    const watching = follow(h.reattach(u.access, c))
    await watching.started
    const run = t.deps.services.runs.get(c)!

    expect((await t.request('DELETE', `/api/v1/conversations/${c}`, { token: u.access })).status).toBe(204)
    const answered = performance.now()
    for (const s of [sending, watching]) {
      const { events, at } = await s.ended
      expect(at - answered).toBeLessThan(PROMPTLY_MS)
      expect(events.at(-1)).toEqual({ id: undefined, event: 'deleted', data: { code: 'NOT_FOUND', reason: 'conversation_deleted' }, at: expect.any(Number) })
    }
    // on the instance that ran it, too (it knows the run's owner and would skip the database)
    expectProblem(await t.request('GET', `/api/v1/conversations/${c}/stream`, { token: u.access }), 404, 'NOT_FOUND')
    expectProblem(await t.request('POST', `/api/v1/conversations/${c}/stop`, { token: u.access }), 404, 'NOT_FOUND')
    await eventually(() => run.done, 2000, 'the run ended')
    expect(run.events.at(-1)).toMatchObject({ event: 'done', data: { finish_reason: 'stopped' } })
    const { db, t: tables } = t.deps.database
    expect(await db.select().from(tables.messages).where(eq(tables.messages.conversationId, c))).toEqual([])
    await eventually(() => t.deps.services.subscriptions.countOf(u.id) === 0, 2000, 'every stream released')
  })
})
