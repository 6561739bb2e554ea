/**
 * Conversations (docs/api.md §11) against the fake upstream: CRUD and pages, ownership (another user's
 * conversation is 404 everywhere, admins included), search over titles and message text, titles
 * of new conversations, frozen shares, export, and conversations started from presets.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { firstWords } from '../src/modules/chat/turns.ts'
import { register, setupCallers, type Account, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Caller, type Scenario } from './helpers/scenarios.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

type Json = Record<string, any>

const CONVERSATION_KEYS = ['agent_id', 'connection_id', 'created_at', 'id', 'is_favorite', 'message_count', 'model_id', 'preset_id', 'system_prompt', 'title', 'tools', 'updated_at']
const MESSAGE_KEYS = ['content', 'conversation_id', 'created_at', 'id', 'metadata', 'parent_id', 'role', 'status']
/** what the fake answers for `fake:tokens=5` */
const ANSWER5 = 'tok0 tok1 tok2 tok3 tok4 '
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

const ids = (r: TestResponse) => (r.body.items as Json[]).map((i) => i.id as string)

interface Ctx extends CallersContext {
  fake: FakeLlm
  /** catalogue ids of the models */
  models: { chat: string; quick3: string; broken: string }
  /** a conversation of `user`, with one exchange */
  mine: string
  /** its assistant message */
  answer: string
}

/** A test app with callers (admin, user, other), a fake provider and its models (chat-model is the default). */
async function setup(dialect: Parameters<typeof createTestApp>[0]): Promise<Omit<Ctx, 'mine' | 'answer'>> {
  const fake = await startFakeLlm()
  const t = await createTestApp(dialect)
  const callers = await setupCallers(t)
  const admin = callers.accounts.admin.access
  const p = await t.request('POST', '/api/v1/providers', { token: admin, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
  expect({ status: p.status, body: p.body }).toMatchObject({ status: 201 })
  const model = async (name: string, modelId: string, extra: Json = {}) => {
    const res = await t.request('POST', '/api/v1/models', { token: admin, body: { provider_id: p.body.id, name, model_id: modelId, ...extra } })
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
    return res.body.id as string
  }
  const models = { chat: await model('chat-model', 'fake:tokens=5', { is_default: true }), quick3: await model('quick3', 'fake:tokens=3'), broken: await model('broken', 'fake:fail=500') }
  return { ...callers, fake, models }
}

/** Request helpers bound to a context. */
function helpers(get: () => Pick<Ctx, 't' | 'tokens'>) {
  const req = (who: Caller | Account, method: string, path: string, body?: unknown) => get().t.request(method, path, { token: typeof who === 'string' ? get().tokens[who] : who.access, body })
  const create = async (who: Caller | Account, body: Json = {}) => {
    const res = await req(who, 'POST', '/api/v1/conversations', body)
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
    return res.body as Json
  }
  /** one exchange in JSON mode */
  const exchange = async (who: Caller | Account, id: string, content: string, extra: Json = {}) => {
    const res = await req(who, 'POST', `/api/v1/conversations/${id}/messages`, { content, ...extra })
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
    return res.body as { user_message: Json; assistant_message: Json }
  }
  const view = async (who: Caller | Account, id: string) => {
    const res = await req(who, 'GET', `/api/v1/conversations/${id}`)
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 200 })
    return res.body as Json
  }
  /** poll until the conversation has a title (given before `done`, so at once after a JSON exchange; SSE readers may be quicker than the view) */
  const titled = async (who: Caller | Account, id: string, ms = 2000) => {
    const deadline = Date.now() + ms
    for (;;) {
      const c = await view(who, id)
      if (c.title !== null || Date.now() > deadline) return c
      await Bun.sleep(25)
    }
  }
  return { req, create, exchange, view, titled }
}

eachDialect('conversations', (dialect) => {
  let ctx: Ctx
  const { req, create, exchange, view, titled } = helpers(() => ctx)

  beforeAll(async () => {
    const base = await setup(dialect)
    ctx = { ...base, mine: '', answer: '' }
    const c = await create('user', { title: 'Private plans' })
    const turn = await exchange('user', c.id, 'my secret question')
    ctx.mine = c.id
    ctx.answer = turn.assistant_message.id
  })
  afterAll(async () => {
    await ctx.t.close()
    await ctx.fake.stop()
  })

  // -----------------------------------------------------------------------------------------------
  describe('CRUD', () => {
    test('POST creates: 201, Location and the Conversation shape', async () => {
      const res = await req('user', 'POST', '/api/v1/conversations', { title: 'Trip to Lisbon', model_id: ctx.models.chat, system_prompt: 'Be brief.' })
      expect(res.status).toBe(201)
      expect(res.headers.get('location')).toBe(`/api/v1/conversations/${res.body.id}`)
      expect(Object.keys(res.body).sort()).toEqual(CONVERSATION_KEYS)
      expect(res.body).toEqual({
        id: expect.any(String),
        title: 'Trip to Lisbon',
        tools: [],
        model_id: ctx.models.chat,
        preset_id: null,
        agent_id: null,
        connection_id: null,
        system_prompt: 'Be brief.',
        is_favorite: false,
        message_count: 0,
        created_at: expect.stringMatching(ISO),
        updated_at: expect.stringMatching(ISO),
      })
      const empty = await req('user', 'POST', '/api/v1/conversations', {})
      expect(empty.status).toBe(201)
      expect(empty.body).toMatchObject({ title: null, model_id: null, preset_id: null, system_prompt: null, is_favorite: false, message_count: 0 })
      expect(empty.body.id).not.toBe(res.body.id)
      // and it reads back the same
      expect(await view('user', res.body.id)).toEqual({ ...res.body, messages: [] })
    })

    test('POST validates: unknown model 422, wrong types 422', async () => {
      expectProblem(await req('user', 'POST', '/api/v1/conversations', { model_id: 'no-such-model' }), 422, 'VALIDATION_ERROR')
      expectProblem(await req('user', 'POST', '/api/v1/conversations', { title: 42 }), 422, 'VALIDATION_ERROR')
      expectProblem(await req('user', 'POST', '/api/v1/conversations', { title: 'x'.repeat(201) }), 422, 'VALIDATION_ERROR')
    })

    test('GET one: the conversation and its active branch, oldest first', async () => {
      const c = await create('user', { title: 'Two turns' })
      const first = await exchange('user', c.id, 'question one')
      const second = await exchange('user', c.id, 'question two')
      const got = await view('user', c.id)
      expect(got).toMatchObject({ id: c.id, title: 'Two turns', message_count: 4 })
      const messages = got.messages as Json[]
      expect(messages.map((m) => [m.role, m.content])).toEqual([
        ['user', 'question one'],
        ['assistant', ANSWER5],
        ['user', 'question two'],
        ['assistant', ANSWER5],
      ])
      expect(messages.map((m) => m.id)).toEqual([first.user_message.id, first.assistant_message.id, second.user_message.id, second.assistant_message.id])
      // a chain: each message's parent is the one before it
      expect(messages.map((m) => m.parent_id)).toEqual([null, messages[0]!.id, messages[1]!.id, messages[2]!.id])
      for (const m of messages) {
        expect(Object.keys(m).sort()).toEqual(MESSAGE_KEYS)
        expect(m).toMatchObject({ conversation_id: c.id, status: 'complete', created_at: expect.stringMatching(ISO) })
      }
      const times = messages.map((m) => Date.parse(m.created_at))
      expect(times).toEqual([...times].sort((a, b) => a - b))
      expect(messages[1]!.metadata).toMatchObject({ model: 'chat-model', output_tokens: 5, finish_reason: 'stop' })
    })

    test('GET of an unknown id is 404', async () => {
      expectProblem(await req('user', 'GET', '/api/v1/conversations/does-not-exist'), 404, 'NOT_FOUND')
    })

    test('list: newest updated_at first, with pages', async () => {
      const u = await register(ctx.t, 'lister')
      const a = await create(u, { title: 'a' })
      await Bun.sleep(5)
      const b = await create(u, { title: 'b' })
      await Bun.sleep(5)
      const c = await create(u, { title: 'c' })
      const list = async (query = '') => {
        const res = await req(u, 'GET', `/api/v1/conversations${query}`)
        expect(res.status).toBe(200)
        return res
      }
      let res = await list()
      expect(ids(res)).toEqual([c.id, b.id, a.id])
      expect(res.body).toMatchObject({ total: 3, limit: 50, offset: 0, has_more: false })
      for (const item of res.body.items as Json[]) expect(Object.keys(item).sort()).toEqual(CONVERSATION_KEYS)
      // touching the oldest moves it to the top
      await Bun.sleep(5)
      expect((await req(u, 'PATCH', `/api/v1/conversations/${a.id}`, { title: 'a, renamed' })).status).toBe(200)
      res = await list()
      expect(ids(res)).toEqual([a.id, c.id, b.id])
      const stamps = (res.body.items as Json[]).map((i) => Date.parse(i.updated_at))
      expect(stamps).toEqual([...stamps].sort((x, y) => y - x))
      // and so does a new message
      await Bun.sleep(5)
      await exchange(u, b.id, 'bump')
      expect(ids(await list())).toEqual([b.id, a.id, c.id])

      res = await list('?limit=2')
      expect(res.body).toMatchObject({ total: 3, limit: 2, offset: 0, has_more: true })
      expect(ids(res)).toEqual([b.id, a.id])
      res = await list('?limit=2&offset=2')
      expect(res.body).toMatchObject({ total: 3, limit: 2, offset: 2, has_more: false })
      expect(ids(res)).toEqual([c.id])
      res = await list('?offset=10')
      expect(res.body).toMatchObject({ items: [], total: 3, has_more: false })
      expectProblem(await req(u, 'GET', '/api/v1/conversations?limit=0'), 422, 'VALIDATION_ERROR')
      expectProblem(await req(u, 'GET', '/api/v1/conversations?limit=101'), 422, 'VALIDATION_ERROR')
      expectProblem(await req(u, 'GET', '/api/v1/conversations?favorites=yes'), 422, 'VALIDATION_ERROR')
    })

    test('PATCH title, is_favorite, system_prompt, model_id; an unknown model is 422 and changes nothing', async () => {
      const c = await create('user', { title: 'Before' })
      let res = await req('user', 'PATCH', `/api/v1/conversations/${c.id}`, { title: 'After', is_favorite: true, system_prompt: 'Talk like a poet.', model_id: ctx.models.quick3 })
      expect(res.status).toBe(200)
      expect(Object.keys(res.body).sort()).toEqual(CONVERSATION_KEYS)
      expect(res.body).toMatchObject({ id: c.id, title: 'After', is_favorite: true, system_prompt: 'Talk like a poet.', model_id: ctx.models.quick3 })
      expect(Date.parse(res.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(c.updated_at))
      expect(await view('user', c.id)).toMatchObject({ title: 'After', is_favorite: true, system_prompt: 'Talk like a poet.', model_id: ctx.models.quick3 })
      // only what is sent changes
      res = await req('user', 'PATCH', `/api/v1/conversations/${c.id}`, { is_favorite: false })
      expect(res.body).toMatchObject({ title: 'After', is_favorite: false, system_prompt: 'Talk like a poet.', model_id: ctx.models.quick3 })
      // the model in use follows the conversation's model
      const turn = await exchange('user', c.id, 'which model?')
      expect(turn.assistant_message).toMatchObject({ content: 'tok0 tok1 tok2 ', metadata: { model: 'quick3' } })
      // null clears
      res = await req('user', 'PATCH', `/api/v1/conversations/${c.id}`, { system_prompt: null, model_id: null })
      expect(res.body).toMatchObject({ system_prompt: null, model_id: null, title: 'After' })

      expectProblem(await req('user', 'PATCH', `/api/v1/conversations/${c.id}`, { model_id: 'no-such-model', title: 'Should not stick' }), 422, 'VALIDATION_ERROR')
      expectProblem(await req('user', 'PATCH', `/api/v1/conversations/${c.id}`, { is_favorite: 'yes' }), 422, 'VALIDATION_ERROR')
      expect(await view('user', c.id)).toMatchObject({ title: 'After', model_id: null })
      expectProblem(await req('user', 'PATCH', '/api/v1/conversations/does-not-exist', { title: 'x' }), 404, 'NOT_FOUND')
    })

    test('favorite toggles and returns { is_favorite }; ?favorites=true filters', async () => {
      const u = await register(ctx.t, 'fan')
      const a = await create(u, { title: 'keep' })
      const b = await create(u, { title: 'other' })
      let res = await req(u, 'POST', `/api/v1/conversations/${a.id}/favorite`)
      expect([res.status, res.body]).toEqual([200, { is_favorite: true }])
      expect((await view(u, a.id)).is_favorite).toBe(true)
      res = await req(u, 'GET', '/api/v1/conversations?favorites=true')
      expect(ids(res)).toEqual([a.id])
      expect(res.body.total).toBe(1)
      expect(ids(await req(u, 'GET', '/api/v1/conversations?favorites=false')).sort()).toEqual([a.id, b.id].sort())
      res = await req(u, 'POST', `/api/v1/conversations/${a.id}/favorite`)
      expect([res.status, res.body]).toEqual([200, { is_favorite: false }])
      res = await req(u, 'GET', '/api/v1/conversations?favorites=true')
      expect(res.body).toMatchObject({ items: [], total: 0 })
      expectProblem(await req(u, 'POST', '/api/v1/conversations/does-not-exist/favorite'), 404, 'NOT_FOUND')
    })

    test('DELETE: 204, its messages and share go with it, then 404', async () => {
      const { db, t } = ctx.t.deps.database
      const c = await create('user', { title: 'Doomed' })
      await exchange('user', c.id, 'delete me')
      const share = await req('user', 'POST', `/api/v1/conversations/${c.id}/share`)
      expect(share.status).toBe(201)
      expect(await db.select().from(t.messages).where(eq(t.messages.conversationId, c.id))).toHaveLength(2)
      const res = await req('user', 'DELETE', `/api/v1/conversations/${c.id}`)
      expect(res.status).toBe(204)
      expect(res.text).toBe('')
      expect(await db.select().from(t.messages).where(eq(t.messages.conversationId, c.id))).toHaveLength(0)
      expect(await db.select().from(t.conversations).where(eq(t.conversations.id, c.id))).toHaveLength(0)
      expectProblem(await ctx.t.request('GET', `/api/v1/share/${share.body.share_token}`), 404, 'NOT_FOUND')
      expectProblem(await req('user', 'GET', `/api/v1/conversations/${c.id}`), 404, 'NOT_FOUND')
      expectProblem(await req('user', 'DELETE', `/api/v1/conversations/${c.id}`), 404, 'NOT_FOUND')
      expect(ids(await req('user', 'GET', '/api/v1/conversations?limit=100'))).not.toContain(c.id)
      // the other conversations are untouched
      expect((await view('user', ctx.mine)).messages).toHaveLength(2)
    })

    test('message_count after one exchange is 2; the first exchange titles an untitled conversation', async () => {
      const c = await create('user')
      expect(c.title).toBeNull()
      const turn = await exchange('user', c.id, 'Explain tides to me')
      expect(turn.user_message).toMatchObject({ role: 'user', content: 'Explain tides to me', status: 'complete', conversation_id: c.id, parent_id: null })
      expect(turn.assistant_message).toMatchObject({ role: 'assistant', content: ANSWER5, status: 'complete', parent_id: turn.user_message.id })
      const got = await titled('user', c.id)
      expect(got.message_count).toBe(2)
      expect(typeof got.title).toBe('string')
      expect(got.title.trim().length).toBeGreaterThan(0)
      // a later exchange does not retitle it, and a given title is never replaced
      await exchange('user', c.id, 'And the moon?')
      await Bun.sleep(100)
      expect(await view('user', c.id)).toMatchObject({ title: got.title, message_count: 4 })
      const named = await create('user', { title: 'My own title' })
      await exchange('user', named.id, 'hello')
      await Bun.sleep(100)
      expect(await view('user', named.id)).toMatchObject({ title: 'My own title', message_count: 2 })
    })
  })

  // -----------------------------------------------------------------------------------------------
  describe('ownership: another user’s conversation is 404 everywhere, admins included; guests 401', () => {
    const endpoints: [string, string, (c: Ctx) => string, unknown?][] = [
      ['read', 'GET', (c) => `/api/v1/conversations/${c.mine}`],
      ['rename', 'PATCH', (c) => `/api/v1/conversations/${c.mine}`, { title: 'hijacked' }],
      ['delete', 'DELETE', (c) => `/api/v1/conversations/${c.mine}`],
      ['favorite', 'POST', (c) => `/api/v1/conversations/${c.mine}/favorite`],
      ['send', 'POST', (c) => `/api/v1/conversations/${c.mine}/messages`, { content: 'intruder here' }],
      ['regenerate', 'POST', (c) => `/api/v1/conversations/${c.mine}/messages/${c.answer}/regenerate`],
      ['stream', 'GET', (c) => `/api/v1/conversations/${c.mine}/stream`],
      ['stop', 'POST', (c) => `/api/v1/conversations/${c.mine}/stop`],
      ['chat/stop', 'POST', () => '/api/v1/chat/stop', (c: Ctx) => ({ conversation_id: c.mine })],
      ['share', 'POST', (c) => `/api/v1/conversations/${c.mine}/share`],
      ['unshare', 'DELETE', (c) => `/api/v1/conversations/${c.mine}/share`],
      ['export json', 'GET', (c) => `/api/v1/conversations/${c.mine}/export?format=json`],
      ['export markdown', 'GET', (c) => `/api/v1/conversations/${c.mine}/export?format=markdown`],
    ]
    const secretText = (c: Ctx) => ['Private plans', 'my secret question', c.answer]
    const rows: Scenario<Ctx>[] = []
    for (const [name, method, path, body] of endpoints) {
      rows.push({ name: `${name}: no token`, as: 'guest', method, path, body, status: 401, code: 'UNAUTHORIZED' })
      for (const as of ['other', 'admin'] as const) rows.push({ name: `${name}: not theirs`, as, method, path, body, status: 404, code: 'NOT_FOUND', notContains: secretText })
    }
    rows.push(
      { name: 'list: no token', as: 'guest', method: 'GET', path: '/api/v1/conversations', status: 401, code: 'UNAUTHORIZED' },
      { name: 'create: no token', as: 'guest', method: 'POST', path: '/api/v1/conversations', body: { title: 'x' }, status: 401, code: 'UNAUTHORIZED' },
      { name: 'list: absent from another user’s list', as: 'other', method: 'GET', path: '/api/v1/conversations', status: 200, notContains: secretText, check: (res, c) => expect(ids(res)).not.toContain(c.mine) },
      { name: 'list: absent from the admin’s list', as: 'admin', method: 'GET', path: '/api/v1/conversations?limit=100', status: 200, notContains: secretText, check: (res, c) => expect(ids(res)).not.toContain(c.mine) },
      { name: 'search: not found by another user', as: 'other', method: 'GET', path: '/api/v1/conversations?q=secret', status: 200, check: (res) => expect(res.body).toMatchObject({ items: [], total: 0 }) },
      { name: 'the owner reads it', as: 'user', method: 'GET', path: (c) => `/api/v1/conversations/${c.mine}`, status: 200, contains: ['Private plans', 'my secret question'] },
      // the run finished moments ago, so it still replays (API: 204 only once nothing is left to send)
      { name: 'the owner re-attaches to the finished run', as: 'user', method: 'GET', path: (c) => `/api/v1/conversations/${c.mine}/stream`, status: 200, contains: ['event: done'] },
      { name: 'the owner: nothing after the last event', as: 'user', method: 'GET', path: (c) => `/api/v1/conversations/${c.mine}/stream`, headers: { 'last-event-id': '1000' }, status: 204 },
      { name: 'the owner: nothing to stop', as: 'user', method: 'POST', path: (c) => `/api/v1/conversations/${c.mine}/stop`, status: 200, check: (res) => expect(res.body).toEqual({ stopped: false }) },
      { name: 'the owner: nothing to stop (chat/stop)', as: 'user', method: 'POST', path: '/api/v1/chat/stop', body: (c: Ctx) => ({ conversation_id: c.mine }), status: 200, check: (res) => expect(res.body).toEqual({ stopped: false }) },
      { name: 'the owner: no share to revoke', as: 'user', method: 'DELETE', path: (c) => `/api/v1/conversations/${c.mine}/share`, status: 404, code: 'NOT_FOUND' },
      { name: 'the owner exports it', as: 'user', method: 'GET', path: (c) => `/api/v1/conversations/${c.mine}/export`, status: 200, contains: ['my secret question'] },
    )
    scenarios(() => ctx, rows)

    test('the refused calls changed nothing', async () => {
      const got = await view('user', ctx.mine)
      expect(got).toMatchObject({ title: 'Private plans', is_favorite: false, message_count: 2 })
      expect((got.messages as Json[]).map((m) => [m.id === ctx.answer || m.role === 'user', m.content, m.status])).toEqual([
        [true, 'my secret question', 'complete'],
        [true, ANSWER5, 'complete'],
      ])
      const { db, t } = ctx.t.deps.database
      expect(await db.select().from(t.messages).where(eq(t.messages.conversationId, ctx.mine))).toHaveLength(2)
      expect(await db.select().from(t.shares).where(eq(t.shares.conversationId, ctx.mine))).toHaveLength(0)
      expect(ctx.fake.requests.some((r) => JSON.stringify(r.body).includes('intruder here'))).toBe(false)
      // still nobody else's: the owner's list has it
      expect(ids(await req('user', 'GET', '/api/v1/conversations?limit=100'))).toContain(ctx.mine)
    })
  })

  // -----------------------------------------------------------------------------------------------
  describe('search', () => {
    let u: Account
    let v: Account
    const conv = { photo: '', fish: '', plain: '', theirs: '' }
    const search = async (who: Account, q: string) => {
      const res = await req(who, 'GET', `/api/v1/conversations?q=${encodeURIComponent(q)}`)
      expect({ q, status: res.status, body: res.body }).toMatchObject({ status: 200 })
      return res
    }
    beforeAll(async () => {
      u = await register(ctx.t, 'searcher')
      v = await register(ctx.t, 'snoop')
      conv.photo = (await create(u, { title: 'Notes on Photosynthesis' })).id
      conv.fish = (await create(u, { title: 'Aquarium log' })).id
      await exchange(u, conv.fish, 'Tell me about the zebrafish genome, please')
      await exchange(u, conv.fish, 'And the zebrafish heart?')
      conv.plain = (await create(u, { title: 'Unrelated' })).id
      await exchange(u, conv.plain, 'Nothing to see')
      conv.theirs = (await create(v, { title: 'Marine biology' })).id
      await exchange(v, conv.theirs, 'zebrafish facts')
    })

    test('finds by a word of the title, case-insensitively and by part of a word', async () => {
      for (const q of ['Photosynthesis', 'photosynthesis', 'PHOTOSYNTHESIS', 'photosyn', 'notes on']) expect({ q, ids: ids(await search(u, q)) }).toEqual({ q, ids: [conv.photo] })
    })

    test('finds by a word only present in a message, case-insensitively and by prefix; each conversation once', async () => {
      for (const q of ['zebrafish', 'ZEBRAFISH', 'Zebrafish', 'zebraf']) {
        const res = await search(u, q)
        expect({ q, ids: ids(res), total: res.body.total }).toEqual({ q, ids: [conv.fish], total: 1 })
      }
      // the assistant's text is searched too
      expect(ids(await search(u, 'tok3')).sort()).toEqual([conv.fish, conv.plain].sort())
    })

    test("never finds another user's conversations", async () => {
      expect(ids(await search(v, 'zebrafish'))).toEqual([conv.theirs])
      expect(ids(await search(v, 'photosynthesis'))).toEqual([])
      expect(ids(await search(u, 'marine'))).toEqual([])
    })

    test('a word found nowhere gives an empty page', async () => {
      expect((await search(u, 'xylophone')).body).toMatchObject({ items: [], total: 0, has_more: false })
    })

    test('SQL, LIKE and full-text syntax is taken literally: 200, never 500', async () => {
      const inputs = ['"', '""', '*', '**', "'", "'; DROP TABLE conversations; --", 'NEAR(', 'NEAR(zebrafish tok1)', '%', '%%', '_', '\\', 'zebra*', '"zebrafish"', 'zebrafish OR tok1', 'AND', 'NOT', '(', ')', '-zebrafish', 'content:zebrafish', '^', '{', ':', '&', '|', '!', '<->', 'zebrafish & tok1', "O'Brien", '😀']
      for (const q of inputs) {
        const res = await ctx.t.request('GET', `/api/v1/conversations?q=${encodeURIComponent(q)}`, { token: u.access })
        expect({ q, status: res.status }).toEqual({ q, status: 200 })
        expect(Array.isArray(res.body.items)).toBe(true)
      }
      // LIKE wildcards are not wildcards: no title or message contains them
      for (const q of ['%', '_', '\\']) expect({ q, total: (await search(u, q)).body.total }).toEqual({ q, total: 0 })
      // and the table is still there
      expect((await req(u, 'GET', '/api/v1/conversations')).body.total).toBe(3)
      expectProblem(await req(u, 'GET', `/api/v1/conversations?q=${'a'.repeat(201)}`), 422, 'VALIDATION_ERROR')
    })

    test('a blank q lists everything', async () => {
      expect((await search(u, '   ')).body.total).toBe(3)
    })
  })

  // -----------------------------------------------------------------------------------------------
  describe('share', () => {
    test('a frozen public snapshot: no auth to read, unchanged by later edits; revoke; reshare rotates the token', async () => {
      const c = await create('user', { title: 'Shared plans' })
      await exchange('user', c.id, 'first question')
      const res = await req('user', 'POST', `/api/v1/conversations/${c.id}/share`)
      expect(res.status).toBe(201)
      expect(Object.keys(res.body).sort()).toEqual(['share_token', 'url'])
      const token = res.body.share_token as string
      expect(token.length).toBeGreaterThanOrEqual(20)
      expect(res.body.url).toEndWith(`/api/v1/share/${token}`)

      const read = (tok: string) => ctx.t.request('GET', `/api/v1/share/${tok}`)
      let shared = await read(token)
      expect(shared.status).toBe(200)
      expect(shared.body).toEqual({
        title: 'Shared plans',
        messages: [
          { role: 'user', content: 'first question', created_at: expect.stringMatching(ISO) },
          { role: 'assistant', content: ANSWER5, created_at: expect.stringMatching(ISO) },
        ],
        created_at: expect.stringMatching(ISO),
      })
      // nothing about the owner or ids leaks
      for (const s of [ctx.accounts.user.id, ctx.accounts.user.email, ctx.accounts.user.username, c.id]) expect(shared.text).not.toContain(s)

      // later changes do not reach the snapshot
      await exchange('user', c.id, 'second question')
      expect((await req('user', 'PATCH', `/api/v1/conversations/${c.id}`, { title: 'Renamed' })).status).toBe(200)
      shared = await read(token)
      expect(shared.body.title).toBe('Shared plans')
      expect((shared.body.messages as Json[]).map((m) => m.content)).toEqual(['first question', ANSWER5])

      // sharing again: a new snapshot under a new token; the old one is gone
      const again = await req('user', 'POST', `/api/v1/conversations/${c.id}/share`)
      expect(again.status).toBe(201)
      const token2 = again.body.share_token as string
      expect(token2).not.toBe(token)
      expectProblem(await read(token), 404, 'NOT_FOUND')
      shared = await read(token2)
      expect(shared.body.title).toBe('Renamed')
      expect((shared.body.messages as Json[]).map((m) => m.content)).toEqual(['first question', ANSWER5, 'second question', ANSWER5])
      // a token works with any (or no) credentials
      expect((await ctx.t.request('GET', `/api/v1/share/${token2}`, { token: ctx.accounts.other.access })).status).toBe(200)

      // revoke
      const revoked = await req('user', 'DELETE', `/api/v1/conversations/${c.id}/share`)
      expect(revoked.status).toBe(204)
      expectProblem(await read(token2), 404, 'NOT_FOUND')
      expectProblem(await req('user', 'DELETE', `/api/v1/conversations/${c.id}/share`), 404, 'NOT_FOUND')
      // the conversation itself is untouched
      expect((await view('user', c.id)).messages).toHaveLength(4)
    })

    test('a made-up token is 404', async () => {
      expectProblem(await ctx.t.request('GET', '/api/v1/share/not-a-real-token'), 404, 'NOT_FOUND')
      expectProblem(await ctx.t.request('GET', `/api/v1/share/${'A'.repeat(32)}`), 404, 'NOT_FOUND')
    })
  })

  // -----------------------------------------------------------------------------------------------
  describe('export', () => {
    let c: Json
    beforeAll(async () => {
      c = await create('user', { title: 'Export me: plan/B "final"' })
      await exchange('user', c.id, 'export question')
    })

    test('json: the conversation with its messages, as an attachment', async () => {
      for (const query of ['?format=json', '']) {
        const res = await req('user', 'GET', `/api/v1/conversations/${c.id}/export${query}`)
        expect(res.status).toBe(200)
        expect(res.headers.get('content-type')).toStartWith('application/json')
        const disposition = res.headers.get('content-disposition') ?? ''
        expect(disposition).toMatch(/^attachment; filename="[\w\- ]+\.json"$/)
        expect(res.body).toMatchObject({ id: c.id, title: c.title, message_count: 2 })
        expect((res.body.messages as Json[]).map((m) => [m.role, m.content, m.status])).toEqual([
          ['user', 'export question', 'complete'],
          ['assistant', ANSWER5, 'complete'],
        ])
      }
    })

    test('markdown: text/markdown with the title, the question and the answer', async () => {
      const res = await req('user', 'GET', `/api/v1/conversations/${c.id}/export?format=markdown`)
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toStartWith('text/markdown')
      expect(res.headers.get('content-disposition') ?? '').toMatch(/^attachment; filename="[\w\- ]+\.md"$/)
      expect(res.text).toContain(`# ${c.title}`)
      expect(res.text).toContain('export question')
      expect(res.text).toContain(ANSWER5.trim())
      expect(res.text.indexOf('export question')).toBeLessThan(res.text.indexOf(ANSWER5.trim()))
    })

    test('an unknown format is 422', async () => {
      for (const format of ['pdf', 'JSON', '']) expectProblem(await req('user', 'GET', `/api/v1/conversations/${c.id}/export?format=${format}`), 422, 'VALIDATION_ERROR')
    })
  })

  // -----------------------------------------------------------------------------------------------
  describe('presets', () => {
    test('built-ins are listed; a conversation from one uses its system prompt', async () => {
      const list = await req('user', 'GET', '/api/v1/presets?limit=100')
      expect(list.status).toBe(200)
      const builtins = (list.body.items as Json[]).filter((p) => p.is_builtin)
      expect(builtins.length).toBeGreaterThan(0)
      const general = builtins.find((p) => p.name === 'General assistant')
      expect(general).toBeDefined()
      const res = await req('user', 'POST', '/api/v1/conversations', { title: 'From a preset', preset_id: general!.id })
      expect(res.status).toBe(201)
      expect(res.body.preset_id).toBe(general!.id)
      const before = ctx.fake.requests.length
      const turn = await exchange('user', res.body.id, 'preset question 7781')
      expect(turn.assistant_message.status).toBe('complete')
      const sent = ctx.fake.requests.slice(before).map((r) => r.body as { messages?: { role: string; content: string }[] }).find((b) => b.messages?.some((m) => m.content === 'preset question 7781'))
      expect(sent?.messages?.[0]).toMatchObject({ role: 'system', content: expect.stringContaining(general!.system_prompt.split('\n')[0]) })
      expect((await view('user', res.body.id)).preset_id).toBe(general!.id)
    })

    test("an unknown preset, or another user's private one, is 422", async () => {
      expectProblem(await req('user', 'POST', '/api/v1/conversations', { preset_id: 'no-such-preset' }), 422, 'VALIDATION_ERROR')
      const theirs = await req('other', 'POST', '/api/v1/presets', { name: 'Private preset', system_prompt: 'hidden' })
      expect(theirs.status).toBe(201)
      expectProblem(await req('user', 'POST', '/api/v1/conversations', { preset_id: theirs.body.id }), 422, 'VALIDATION_ERROR')
      expect((await req('other', 'POST', '/api/v1/conversations', { preset_id: theirs.body.id })).status).toBe(201)
    })
  })
})

// -------------------------------------------------------------------------------------------------
// Titles when the title call fails: the setting is instance-wide, so these get their own app.
eachDialect('conversation titles', (dialect) => {
  let ctx: Omit<Ctx, 'mine' | 'answer'>
  const { req, create, exchange, view, titled } = helpers(() => ctx)
  beforeAll(async () => {
    ctx = await setup(dialect)
  })
  afterAll(async () => {
    await ctx.t.close()
    await ctx.fake.stop()
  })

  const question = 'How do volcanoes form under the ocean floor, and why do geologists care so much about them?'

  test('by default the model gives the title (its short answer)', async () => {
    const c = await create('user', { model_id: ctx.models.quick3 })
    await exchange('user', c.id, question)
    const got = await titled('user', c.id)
    expect(got.message_count).toBe(2)
    expect(got.title).toBe('tok0 tok1 tok2')
  })

  test('when chat.title_model names no model, the title is the first words of the question', async () => {
    const set = await req('admin', 'POST', '/api/v1/configs', { config_group: 'chat', config_name: 'title_model', config_value: 'does-not-exist' })
    expect({ status: set.status, body: set.body }).toMatchObject({ status: 201 })
    try {
      const c = await create('user', { model_id: ctx.models.quick3 })
      await exchange('user', c.id, question)
      const got = await titled('user', c.id)
      expect(got.message_count).toBe(2)
      expect(got.title).toBe(firstWords(question))
      expect(got.title).toStartWith('How do volcanoes form')
      expect(got.title).not.toContain('tok')

      // and when the title model exists but its call fails
      expect((await req('admin', 'PUT', `/api/v1/configs/${set.body.id}`, { config_value: 'broken' })).status).toBe(200)
      const d = await create('user', { model_id: ctx.models.quick3 })
      await exchange('user', d.id, 'Short question here')
      expect((await titled('user', d.id)).title).toBe('Short question here')
    } finally {
      await req('admin', 'DELETE', `/api/v1/configs/${set.body.id}`)
    }
  })

  test('a title model that does not answer holds the answer back 5 s at most; then the first words are the title', async () => {
    const chatModel = (await req('admin', 'GET', `/api/v1/models/${ctx.models.chat}`)).body
    const hanging = await req('admin', 'POST', '/api/v1/models', { provider_id: chatModel.provider_id, name: 'hanging-titler', model_id: 'fake:hang=9000' })
    expect(hanging.status).toBe(201)
    const set = await req('admin', 'POST', '/api/v1/configs', { config_group: 'chat', config_name: 'title_model', config_value: 'hanging-titler' })
    expect(set.status).toBe(201)
    try {
      const c = await create('user', { model_id: ctx.models.quick3 })
      const started = performance.now()
      await exchange('user', c.id, 'Where does the title come from?')
      const waited = performance.now() - started
      expect(waited).toBeGreaterThan(4500)
      expect(waited).toBeLessThan(8000)
      // the JSON answer came after the title: no polling needed
      expect((await view('user', c.id)).title).toBe('Where does the title come from?')
    } finally {
      await req('admin', 'DELETE', `/api/v1/configs/${set.body.id}`)
    }
  }, 15_000)

  test('a failed answer gives no title; the next good one does', async () => {
    const c = await create('user')
    const failed = await req('user', 'POST', `/api/v1/conversations/${c.id}/messages`, { content: 'this will fail', model_id: ctx.models.broken })
    expectProblem(failed, 502, 'UPSTREAM_ERROR')
    await Bun.sleep(100)
    const { title } = (await req('user', 'GET', `/api/v1/conversations/${c.id}`)).body
    expect(title).toBeNull()
    await exchange('user', c.id, 'try again')
    expect((await titled('user', c.id)).title).toBe('tok0 tok1 tok2 tok3 tok4')
  })
})
