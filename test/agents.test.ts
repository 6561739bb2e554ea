/**
 * Agents: global ones (admin-managed, visible to all), each user's personal ones (404 to everyone
 * else), validation of model, tools and max_steps; executions (the caller's own, filtered); a
 * conversation with an agent answers with the agent's model, prompt, settings and tools and records
 * one execution per turn.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { register, setupCallers, useCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'

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
