/**
 * Agents: global ones (admin-managed, visible to all), each user's personal ones (404 to everyone
 * else), validation of model, tools and max_steps; executions (the caller's own, filtered); a
 * conversation with an agent answers with the agent's model, prompt, settings and tools and records
 * one execution per turn.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { register, setupCallers, useCallers, type Account, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'
import { readEvents, type ReceivedEvent } from './helpers/sse.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

type Json = Record<string, any>

async function created(res: TestResponse): Promise<Json> {
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
  expect(res.headers.get('location')).toBe(`/api/v1/agents/${res.body.id}`)
  return res.body
}

const ids = (r: TestResponse) => (r.body.items as Json[]).map((i) => i.id as string)
const paths = (r: TestResponse) => ((r.body.errors ?? []) as { path: string }[]).map((e) => e.path)

/** A model every account can use (a global provider's), by name. */
async function globalModel(t: TestApp, admin: string, name = 'agent-model') {
  const provider = await t.request('POST', '/api/v1/providers', { token: admin, body: { name: 'catalogue', type: 'openai', api_key: 'sk-test-0000', scope: 'global' } })
  expect((await t.request('POST', '/api/v1/models', { token: admin, body: { provider_id: provider.body.id, model_id: name, name } })).status).toBe(201)
}

// -------------------------------------------------------------------------------------------------

interface Ctx extends CallersContext {
  mine: string
  global: string
  disabledGlobal: string
}

eachDialect('agents: who may do what', (dialect) => {
  let ctx: Ctx
  beforeAll(async () => {
    const t = await createTestApp(dialect)
    const callers = await setupCallers(t)
    const { admin, user } = callers.accounts
    const mine = await created(await t.request('POST', '/api/v1/agents', { token: user.access, body: { name: 'SECRET-agent', system_prompt: 'SECRET-prompt' } }))
    const global = await created(await t.request('POST', '/api/v1/agents', { token: admin.access, body: { name: 'Shared helper' } }))
    const disabledGlobal = await created(await t.request('POST', '/api/v1/agents', { token: admin.access, body: { name: 'Retired', status: 'disabled' } }))
    ctx = { ...callers, mine: mine.id, global: global.id, disabledGlobal: disabledGlobal.id }
  }, 20_000)
  afterAll(() => ctx.t.close())

  const endpoints: [string, (c: Ctx) => string, unknown?][] = [
    ['GET', () => '/api/v1/agents'],
    ['POST', () => '/api/v1/agents', { name: 'x' }],
    ['GET', (c) => `/api/v1/agents/${c.mine}`],
    ['PATCH', (c) => `/api/v1/agents/${c.mine}`, { name: 'x' }],
    ['DELETE', (c) => `/api/v1/agents/${c.mine}`],
    ['GET', (c) => `/api/v1/agents/${c.mine}/executions`],
  ]
  const strangers = ['other', 'admin'] as const
  const secret = ['SECRET-agent', 'SECRET-prompt']

  scenarios<Ctx>(() => ctx, [
    ...endpoints.map(([method, path, body]): Scenario<Ctx> => ({ name: 'needs credentials', as: 'guest', method, path, body, status: 401, code: 'UNAUTHORIZED', notContains: secret })),
    ...strangers.flatMap((as): Scenario<Ctx>[] => [
      { name: "another user's agent is invisible", as, method: 'GET', path: (c) => `/api/v1/agents/${c.mine}`, status: 404, code: 'NOT_FOUND', notContains: secret },
      { name: "another user's agent cannot be changed", as, method: 'PATCH', path: (c) => `/api/v1/agents/${c.mine}`, body: { name: 'overwritten' }, status: 404, code: 'NOT_FOUND', notContains: secret },
      { name: "another user's agent cannot be deleted", as, method: 'DELETE', path: (c) => `/api/v1/agents/${c.mine}`, status: 404, code: 'NOT_FOUND' },
      { name: "another user's agent's executions are invisible", as, method: 'GET', path: (c) => `/api/v1/agents/${c.mine}/executions`, status: 404, code: 'NOT_FOUND' },
      { name: "the list has none of another user's agents", as, method: 'GET', path: '/api/v1/agents', status: 200, notContains: secret, check: (r, c) => expect(ids(r)).not.toContain(c.mine) },
    ]),
    ...(['user', 'other'] as const).flatMap((as): Scenario<Ctx>[] => [
      { name: 'a global agent is visible', as, method: 'GET', path: (c) => `/api/v1/agents/${c.global}`, status: 200, check: (r) => expect(r.body.scope).toBe('global') },
      { name: 'the list has the global agents', as, method: 'GET', path: '/api/v1/agents', status: 200, check: (r, c) => expect(ids(r)).toEqual(expect.arrayContaining([c.global, c.disabledGlobal])) },
      { name: 'a global agent cannot be changed', as, method: 'PATCH', path: (c) => `/api/v1/agents/${c.global}`, body: { name: 'mine now' }, status: 403, code: 'FORBIDDEN' },
      { name: 'a global agent cannot be deleted', as, method: 'DELETE', path: (c) => `/api/v1/agents/${c.global}`, status: 403, code: 'FORBIDDEN' },
      { name: 'a global agent cannot be created', as, method: 'POST', path: '/api/v1/agents', body: { name: 'x', scope: 'global' }, status: 403, code: 'FORBIDDEN' },
      { name: "a global agent's executions: the caller's own (none yet)", as, method: 'GET', path: (c) => `/api/v1/agents/${c.global}/executions`, status: 200, check: (r) => expect(r.body.total).toBe(0) },
      { name: 'an agent of their own is personal by default', as, method: 'POST', path: '/api/v1/agents', body: { name: `${as}'s` }, status: 201, check: (r) => expect(r.body.scope).toBe('personal') },
    ]),
    { name: 'the global agent is unchanged', as: 'user', method: 'GET', path: (c) => `/api/v1/agents/${c.global}`, status: 200, check: (r) => expect(r.body.name).toBe('Shared helper') },
    { name: 'the owner reads theirs', as: 'user', method: 'GET', path: (c) => `/api/v1/agents/${c.mine}`, status: 200, check: (r) => expect([r.body.name, r.body.system_prompt]).toEqual(secret) },
    { name: 'the owner changes theirs', as: 'user', method: 'PATCH', path: (c) => `/api/v1/agents/${c.mine}`, body: { description: 'mine' }, status: 200, check: (r) => expect([r.body.name, r.body.description]).toEqual(['SECRET-agent', 'mine']) },
    { name: 'an admin changes a global agent', as: 'admin', method: 'PATCH', path: (c) => `/api/v1/agents/${c.disabledGlobal}`, body: { description: 'old' }, status: 200, check: (r) => expect(r.body.description).toBe('old') },
    { name: "an admin's agent is global by default", as: 'admin', method: 'POST', path: '/api/v1/agents', body: { name: 'admin default' }, status: 201, check: (r) => expect(r.body.scope).toBe('global') },
    { name: 'an admin may keep a personal one', as: 'admin', method: 'POST', path: '/api/v1/agents', body: { name: 'admin own', scope: 'personal' }, status: 201, check: (r) => expect(r.body.scope).toBe('personal') },
    { name: 'unknown id', as: 'user', method: 'GET', path: '/api/v1/agents/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: PATCH', as: 'user', method: 'PATCH', path: '/api/v1/agents/nope', body: { name: 'x' }, status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: DELETE', as: 'user', method: 'DELETE', path: '/api/v1/agents/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: executions', as: 'user', method: 'GET', path: '/api/v1/agents/nope/executions', status: 404, code: 'NOT_FOUND' },
    { name: 'the owner deletes theirs', as: 'user', method: 'DELETE', path: (c) => `/api/v1/agents/${c.mine}`, status: 204 },
    { name: 'an admin deletes a global agent', as: 'admin', method: 'DELETE', path: (c) => `/api/v1/agents/${c.disabledGlobal}`, status: 204 },
  ])
})

// -------------------------------------------------------------------------------------------------

eachDialect('agents', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let user: string
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers), (user = callers.accounts.user.access)))
  beforeAll(() => globalModel(t, ctx.accounts.admin.access))

  const post = (body: unknown, token = user) => t.request('POST', '/api/v1/agents', { token, body })

  test('POST → 201 + Location with every field; GET reads it back; defaults; unknown fields are ignored', async () => {
    const a = await created(
      await post({ name: ' Clock ', type: 'sql', description: 'd', model_id: 'agent-model', system_prompt: 'You tell the time.', temperature: 0.2, max_tokens: 99, tools_config: { tools: ['current_time', 'current_time'], max_steps: 3 }, user_id: ctx.accounts.other.id }),
    )
    expect(a).toEqual({
      id: expect.any(String),
      name: 'Clock',
      type: 'sql',
      description: 'd',
      model_id: 'agent-model',
      system_prompt: 'You tell the time.',
      temperature: 0.2,
      max_tokens: 99,
      tools_config: { tools: ['current_time'], max_steps: 3 },
      status: 'active',
      scope: 'personal',
      created_at: expect.any(String),
      updated_at: expect.any(String),
    })
    expect((await t.request('GET', `/api/v1/agents/${a.id}`, { token: user })).body).toEqual(a)
    expectProblem(await t.request('GET', `/api/v1/agents/${a.id}`, { token: ctx.accounts.other.access }), 404, 'NOT_FOUND')
    const bare = await created(await post({ name: 'Bare' }))
    expect(bare).toMatchObject({ type: 'assistant', description: null, model_id: null, system_prompt: null, temperature: null, max_tokens: null, tools_config: { tools: [], max_steps: 10 }, status: 'active' })
  })

  test('PATCH sets what it names, null clears, tools_config parts alone; scope stays', async () => {
    const a = await created(await post({ name: 'P', model_id: 'agent-model', tools_config: { tools: ['current_time'], max_steps: 4 } }))
    await Bun.sleep(5)
    const res = await t.request('PATCH', `/api/v1/agents/${a.id}`, { token: user, body: { model_id: null, tools_config: { max_steps: 7 }, status: 'disabled', scope: 'global' } })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ name: 'P', model_id: null, tools_config: { tools: ['current_time'], max_steps: 7 }, status: 'disabled', scope: 'personal' })
    expect(new Date(res.body.updated_at).getTime()).toBeGreaterThan(new Date(a.updated_at).getTime())
    const cleared = await t.request('PATCH', `/api/v1/agents/${a.id}`, { token: user, body: { tools_config: { tools: [] } } })
    expect(cleared.body.tools_config).toEqual({ tools: [], max_steps: 7 })
  })

  test('validation: model_id, tools_config.tools and max_steps (1–50), name, type, status — 422 naming the field, nothing stored', async () => {
    const before = (await t.request('GET', '/api/v1/agents', { token: user })).body.total
    const cases: [Json, string][] = [
      [{ name: 'x', model_id: 'no-such-model' }, 'model_id'],
      [{ name: 'x', tools_config: { tools: ['current_time', 'nope'] } }, 'tools_config.tools'],
      [{ name: 'x', tools_config: { max_steps: 0 } }, 'tools_config.max_steps'],
      [{ name: 'x', tools_config: { max_steps: 51 } }, 'tools_config.max_steps'],
      [{ name: 'x', tools_config: { max_steps: 2.5 } }, 'tools_config.max_steps'],
      [{ name: '  ' }, 'name'],
      [{}, 'name'],
      [{ name: 'x', type: 'robot' }, 'type'],
      [{ name: 'x', status: 'paused' }, 'status'],
      [{ name: 'x', temperature: 3 }, 'temperature'],
      [{ name: 'x', scope: 'team' }, 'scope'],
    ]
    for (const [body, path] of cases) {
      const res = await post(body)
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect(paths(res)).toContain(path)
    }
    const unknownTool = await post({ name: 'x', tools_config: { tools: ['nope'] } })
    expect(unknownTool.body.errors).toEqual([{ path: 'tools_config.tools', message: "unknown tool 'nope'" }])
    const a = await created(await post({ name: 'V' }))
    for (const [body, path] of [[{ model_id: 'no-such-model' }, 'model_id'], [{ tools_config: { tools: ['nope'] } }, 'tools_config.tools'], [{ tools_config: { max_steps: 99 } }, 'tools_config.max_steps']] as const) {
      const res = await t.request('PATCH', `/api/v1/agents/${a.id}`, { token: user, body: { ...body, name: 'never' } })
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect(paths(res)).toEqual([path])
    }
    expect((await t.request('GET', `/api/v1/agents/${a.id}`, { token: user })).body.name).toBe('V')
    expect((await t.request('GET', '/api/v1/agents', { token: user })).body.total).toBe(before + 1)
  })

  test('GET filters by type, status and scope; newest first; pages', async () => {
    const u = await register(t, 'filters')
    const admin = ctx.accounts.admin.access
    const g = await created(await post({ name: 'G', type: 'planner' }, admin))
    const p1 = await created(await post({ name: 'P1', type: 'planner' }, u.access))
    await Bun.sleep(3)
    const p2 = await created(await post({ name: 'P2', type: 'sql', status: 'disabled' }, u.access))
    const list = (q: string) => t.request('GET', `/api/v1/agents?${q}`, { token: u.access })
    const mineOnly = (r: TestResponse) => ids(r).filter((id) => [g.id, p1.id, p2.id].includes(id))
    expect(mineOnly(await list(''))).toEqual([p2.id, p1.id, g.id])
    expect(ids(await list('scope=personal'))).toEqual([p2.id, p1.id])
    expect(ids(await list('scope=global'))).toContain(g.id)
    expect(ids(await list('scope=global'))).not.toContain(p1.id)
    expect(mineOnly(await list('type=planner'))).toEqual([p1.id, g.id])
    expect(ids(await list('status=disabled&scope=personal'))).toEqual([p2.id])
    expect(ids(await list('type=sql&status=active&scope=personal'))).toEqual([])
    const paged = await list('scope=personal&limit=1&offset=1')
    expect(paged.body).toMatchObject({ total: 2, limit: 1, offset: 1, has_more: false })
    expect(ids(paged)).toEqual([p1.id])
    for (const q of ['type=robot', 'status=x', 'scope=team', 'limit=0']) expectProblem(await list(q), 422, 'VALIDATION_ERROR')
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('conversations with an agent', (dialect) => {
  let t: TestApp
  let fake: FakeLlm
  let admin: Account
  let a: Account
  let other: Account
  let agent: Json

  beforeAll(async () => {
    fake = await startFakeLlm()
    t = await createTestApp(dialect)
    admin = await register(t, 'admin')
    a = await register(t, 'agentuser')
    other = await register(t, 'other')
    const provider = await t.request('POST', '/api/v1/providers', { token: admin.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
    for (const [name, id] of [['ag-clock', 'fake:tokens=3,calls=current_time'], ['plain', 'fake:tokens=4']]) {
      expect((await t.request('POST', '/api/v1/models', { token: admin.access, body: { provider_id: provider.body.id, name, model_id: id } })).status).toBe(201)
    }
    agent = await created(
      await t.request('POST', '/api/v1/agents', { token: a.access, body: { name: 'Clock', model_id: 'ag-clock', system_prompt: 'AGENT-PROMPT: tell the time.', temperature: 0.3, max_tokens: 77, tools_config: { tools: ['current_time'], max_steps: 2 } } }),
    )
  }, 20_000)
  afterAll(async () => {
    await t.close()
    await fake.stop()
  })

  const conversation = async (body: Json, token = a.access) => t.request('POST', '/api/v1/conversations', { token, body: { title: 'With agent', ...body } })
  const send = (conversationId: string, body: Json, token = a.access) =>
    t.app.handle(new Request(`http://localhost/api/v1/conversations/${conversationId}/messages`, { method: 'POST', headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'content-type': 'application/json' }, body: JSON.stringify(body) }))
  const upstream = (from: number) => fake.requests.slice(from).filter((r) => r.path === '/v1/chat/completions').map((r) => r.body as Json)
  const executions = (agentId: string, q = '', token = a.access) => t.request('GET', `/api/v1/agents/${agentId}/executions${q ? `?${q}` : ''}`, { token })
  const usageOf = (events: ReceivedEvent[]) => events.find((e) => e.event === 'usage')!.data as Json

  describe('agent_id on a conversation', () => {
    test('POST and PATCH take an active agent the caller can use; shown in the conversation; others are 422 naming agent_id', async () => {
      const res = await conversation({ agent_id: agent.id })
      expect([res.status, res.body.agent_id]).toEqual([201, agent.id])
      expect((await t.request('GET', `/api/v1/conversations/${res.body.id}`, { token: a.access })).body.agent_id).toBe(agent.id)
      const theirs = await created(await t.request('POST', '/api/v1/agents', { token: other.access, body: { name: 'Theirs' } }))
      const off = await created(await t.request('POST', '/api/v1/agents', { token: a.access, body: { name: 'Off', status: 'disabled' } }))
      const global = await created(await t.request('POST', '/api/v1/agents', { token: admin.access, body: { name: 'Everyone' } }))
      for (const id of ['nope', theirs.id, off.id]) {
        const bad = await conversation({ agent_id: id })
        expectProblem(bad, 422, 'VALIDATION_ERROR')
        expect(bad.body.errors).toEqual([{ path: 'agent_id', message: 'unknown or disabled agent' }])
        const patched = await t.request('PATCH', `/api/v1/conversations/${res.body.id}`, { token: a.access, body: { agent_id: id, title: 'never' } })
        expect([patched.status, paths(patched)]).toEqual([422, ['agent_id']])
      }
      expect((await conversation({ agent_id: global.id })).status).toBe(201)
      expect((await conversation({ agent_id: global.id }, other.access)).body.agent_id).toBe(global.id)
      const moved = await t.request('PATCH', `/api/v1/conversations/${res.body.id}`, { token: a.access, body: { agent_id: global.id } })
      expect([moved.status, moved.body.agent_id, moved.body.title]).toEqual([200, global.id, 'With agent'])
      const cleared = await t.request('PATCH', `/api/v1/conversations/${res.body.id}`, { token: a.access, body: { agent_id: null } })
      expect(cleared.body.agent_id).toBeNull()
      expect((await conversation({})).body.agent_id).toBeNull()
    })

    test('deleting the agent leaves the conversation, without it', async () => {
      const doomed = await created(await t.request('POST', '/api/v1/agents', { token: a.access, body: { name: 'Doomed' } }))
      const c = await conversation({ agent_id: doomed.id })
      expect((await t.request('DELETE', `/api/v1/agents/${doomed.id}`, { token: a.access })).status).toBe(204)
      expect((await t.request('GET', `/api/v1/conversations/${c.body.id}`, { token: a.access })).body.agent_id).toBeNull()
    })
  })

  describe('a turn with an agent', () => {
    test("uses the agent's model, prompt, temperature, max_tokens and tools, and records one execution with the turn's numbers", async () => {
      const c = (await conversation({ agent_id: agent.id })).body.id as string
      const from = fake.requests.length
      const before = new Date().toISOString()
      const events = await readEvents(await send(c, { content: 'What time is it?' }))
      expect(events.map((e) => e.event)).toEqual(['message.created', 'tool_call', 'tool_result', 'delta', 'delta', 'delta', 'usage', 'done'])
      const sent = upstream(from)
      expect(sent).toHaveLength(2)
      for (const body of sent) {
        expect(body.model).toBe('fake:tokens=3,calls=current_time')
        expect(body.messages[0]).toEqual({ role: 'system', content: expect.stringContaining('AGENT-PROMPT: tell the time.') })
        expect(body.temperature).toBe(0.3)
        expect(body.max_tokens ?? body.max_completion_tokens).toBe(77)
        expect((body.tools as Json[]).map((x) => x.function.name)).toEqual(['current_time'])
      }
      const usage = usageOf(events)
      const list = await executions(agent.id)
      expect(list.status).toBe(200)
      expect(list.body.total).toBe(1)
      const e = list.body.items[0]
      expect(e).toEqual({
        id: expect.any(String),
        agent_id: agent.id,
        task_id: null,
        conversation_id: c,
        session_id: null,
        execution_type: 'chat',
        status: 'completed',
        duration_ms: e.duration_ms,
        token_usage: { input_tokens: usage.input_tokens, output_tokens: usage.output_tokens, total_tokens: usage.input_tokens + usage.output_tokens },
        cost: usage.cost,
        tool_calls: 1,
        started_at: expect.any(String),
        finished_at: expect.any(String),
      })
      expect(usage.input_tokens).toBeGreaterThan(0)
      expect(e.duration_ms).toBeGreaterThanOrEqual(0)
      expect(e.started_at >= before).toBe(true)
      expect(new Date(e.finished_at).getTime() - new Date(e.started_at).getTime()).toBe(e.duration_ms)
    }, 15_000)

    test("the request's model and the conversation's prompt and tools come first; a turn without tool calls counts none", async () => {
      const c = (await conversation({ agent_id: agent.id, system_prompt: 'CONVERSATION-PROMPT' })).body.id as string
      const from = fake.requests.length
      const events = await readEvents(await send(c, { content: 'Hello', model_id: 'plain', temperature: 1.1 }))
      expect(events.map((e) => e.event)).not.toContain('tool_call')
      const [body] = upstream(from)
      expect(body!.model).toBe('fake:tokens=4')
      expect(body!.messages[0].content).toContain('CONVERSATION-PROMPT')
      expect(body!.messages[0].content).not.toContain('AGENT-PROMPT')
      expect(body!.temperature).toBe(1.1)
      expect((body!.tools as Json[]).map((x) => x.function.name)).toEqual(['current_time'])
      const rows = await executions(agent.id, `conversation_id=${c}`)
      expect(rows.body.items).toMatchObject([{ conversation_id: c, status: 'completed', tool_calls: 0, token_usage: { output_tokens: usageOf(events).output_tokens } }])
    }, 15_000)

    test('a conversation without an agent, or with one disabled since, records nothing and uses no agent settings', async () => {
      const off = await created(await t.request('POST', '/api/v1/agents', { token: a.access, body: { name: 'Soon off', model_id: 'ag-clock', system_prompt: 'OFF-PROMPT' } }))
      const c = (await conversation({ agent_id: off.id })).body.id as string
      expect((await t.request('PATCH', `/api/v1/agents/${off.id}`, { token: a.access, body: { status: 'disabled' } })).status).toBe(200)
      const from = fake.requests.length
      await readEvents(await send(c, { content: 'Hi', model_id: 'plain' }))
      expect(upstream(from)[0]!.messages[0]?.content ?? '').not.toContain('OFF-PROMPT')
      expect((await executions(off.id)).body.total).toBe(0)
    }, 15_000)
  })

  describe('executions', () => {
    test("filters: status, conversation_id, session_id, from/to; pages newest first; only the caller's own, admins included", async () => {
      const x = t.deps.services.agents.executions
      const g = await created(await t.request('POST', '/api/v1/agents', { token: admin.access, body: { name: 'Counted' } }))
      const base = Date.parse('2030-01-01T00:00:00Z')
      const at = (h: number) => new Date(base + h * 3_600_000)
      const done = { inputTokens: 5, outputTokens: 7, cost: 0.5, toolCalls: 2 }
      const t1 = await x.start({ agentId: g.id, userId: a.id, executionType: 'task', taskId: 'task-1', startedAt: at(0) })
      await x.finish(t1, { ...done, status: 'failed', finishedAt: at(1) })
      const s1 = await x.start({ agentId: g.id, userId: a.id, executionType: 'session', sessionId: 'sess-1', startedAt: at(2) })
      const c1 = await x.start({ agentId: g.id, userId: a.id, executionType: 'chat', conversationId: 'conv-1', startedAt: at(3) })
      await x.finish(c1, { ...done, status: 'completed', finishedAt: at(4) })
      await x.start({ agentId: g.id, userId: other.id, executionType: 'chat', conversationId: 'conv-other', startedAt: at(5) })
      const idsOf = async (q: string, token = a.access) => {
        const r = await executions(g.id, q, token)
        expect(r.status).toBe(200)
        return ids(r)
      }
      expect(await idsOf('')).toEqual([c1, s1, t1])
      expect(await idsOf('status=running')).toEqual([s1])
      expect(await idsOf('status=failed')).toEqual([t1])
      expect(await idsOf('session_id=sess-1')).toEqual([s1])
      expect(await idsOf('conversation_id=conv-1')).toEqual([c1])
      expect(await idsOf('conversation_id=conv-other')).toEqual([])
      expect(await idsOf(`from=${at(2).toISOString()}`)).toEqual([c1, s1])
      expect(await idsOf(`to=${at(2).toISOString()}`)).toEqual([t1])
      expect(await idsOf(`from=${at(1).toISOString()}&to=${at(3).toISOString()}`)).toEqual([s1])
      const paged = await executions(g.id, 'limit=1&offset=1')
      expect(paged.body).toMatchObject({ total: 3, limit: 1, offset: 1, has_more: true })
      expect(ids(paged)).toEqual([s1])
      expect((await executions(g.id, 'status=failed')).body.items[0]).toMatchObject({ execution_type: 'task', task_id: 'task-1', duration_ms: 3_600_000, token_usage: { input_tokens: 5, output_tokens: 7, total_tokens: 12 }, cost: 0.5, tool_calls: 2, finished_at: at(1).toISOString() })
      expect((await executions(g.id, 'status=running')).body.items[0]).toMatchObject({ duration_ms: null, finished_at: null, token_usage: { total_tokens: 0 } })
      expect((await idsOf('', other.access)).length).toBe(1)
      expect(await idsOf('', admin.access)).toEqual([])
      for (const q of ['status=done', 'from=yesterday', 'to=2030-01-01', 'limit=101']) expectProblem(await executions(g.id, q), 422, 'VALIDATION_ERROR')
      // finishing an execution that is gone does nothing
      await x.finish('no-such-execution', { ...done, status: 'completed' })
      // the agent's executions go with it
      expect((await t.request('DELETE', `/api/v1/agents/${g.id}`, { token: admin.access })).status).toBe(204)
      const { db, t: tables } = t.deps.database
      expect((await db.select().from(tables.agentExecutions)).filter((r) => r.agentId === g.id)).toEqual([])
    })
  })
})
