/**
 * Plans: plan types (built-in `pet_diet`, admin-defined ones with JSON Schemas that must compile),
 * POST /plans (input checked against the type's input schema, a pending `plan` task and the plan
 * written together), history, detail, delete; and the plan runner against the fake upstream —
 * structured output per provider type, one repair turn carrying the validation errors, a clear
 * failure after it, an upstream failure.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { and, eq } from 'drizzle-orm'
import type { Principal } from '../src/modules/auth/service.ts'
import { PET_DIET } from '../src/modules/plans/builtins.ts'
import { createPlanRunner, PlanFailure, type PlanSpec } from '../src/modules/plans/runner.ts'
import { planKind } from '../src/modules/plans/kind.ts'
import { setupCallers, useCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'
import { readEvents } from './helpers/sse.ts'
import { eventually } from './helpers/streams.ts'

type Json = Record<string, any>

const PET = { pet_type: 'dog', pet_breed: 'Beagle', age: 4, pet_weight: 11.5, pet_health_status: 'healthy, a little overweight', special_requirements: 'grain-free' }

const customType = (id: string) => ({
  id,
  name: 'Trip plan',
  description: 'A day trip',
  input_schema: { type: 'object', required: ['city'], properties: { city: { type: 'string', minLength: 1 } } },
  output_schema: { type: 'object', required: ['stops'], properties: { stops: { type: 'array', items: { type: 'string' } } } },
  prompt: 'Plan a day trip in the city given.',
})

/** A global openai_compatible provider on the fake upstream with a default model, made by the admin. */
async function addFakeModels(t: TestApp, adminToken: string, fake: FakeLlm, type: 'openai' | 'openai_compatible' = 'openai_compatible', models: [string, string][] = [['quick', 'fake:tokens=3']]) {
  const p = await t.request('POST', '/api/v1/providers', { token: adminToken, body: { name: `fake-${type}`, type, base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
  expect({ status: p.status, body: p.body }).toMatchObject({ status: 201 })
  for (const [i, [name, id]] of models.entries()) {
    const res = await t.request('POST', '/api/v1/models', { token: adminToken, body: { provider_id: p.body.id, name, model_id: id, ...(i === 0 && type === 'openai_compatible' ? { is_default: true } : {}) } })
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
  }
}

async function accepted(res: TestResponse): Promise<Json> {
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 202 })
  expect(res.body).toEqual({ plan_id: expect.any(String), task_id: expect.any(String), status: 'pending' })
  expect(res.headers.get('location')).toBe(`/api/v1/plans/${res.body.plan_id}`)
  return res.body
}

const paths = (r: TestResponse) => ((r.body.errors ?? []) as { path: string }[]).map((e) => e.path)

// -------------------------------------------------------------------------------------------------

interface Ctx extends CallersContext {
  mine: string
  custom: string
}

eachDialect('plans: who may do what', (dialect) => {
  let ctx: Ctx
  let fake: FakeLlm
  beforeAll(async () => {
    fake = await startFakeLlm()
    const t = await createTestApp(dialect)
    // the plans here stay pending: no worker claims them
    await t.deps.services.taskEngine.close()
    const callers = await setupCallers(t)
    await addFakeModels(t, callers.accounts.admin.access, fake)
    const plan = await accepted(await t.request('POST', '/api/v1/plans', { token: callers.accounts.user.access, body: { type: 'pet_diet', input: { ...PET, pet_breed: 'SECRET-breed' } } }))
    const custom = await t.request('POST', '/api/v1/plan-types', { token: callers.accounts.admin.access, body: customType('trip') })
    expect(custom.status).toBe(201)
    ctx = { ...callers, mine: plan.plan_id, custom: 'trip' }
  })
  afterAll(async () => {
    await ctx.t.close()
    await fake.stop()
  })

  const endpoints: [string, (c: Ctx) => string, unknown?][] = [
    ['GET', () => '/api/v1/plan-types'],
    ['GET', () => '/api/v1/plan-types/pet_diet'],
    ['POST', () => '/api/v1/plan-types', customType('guest_type')],
    ['PATCH', (c) => `/api/v1/plan-types/${c.custom}`, { name: 'x' }],
    ['DELETE', (c) => `/api/v1/plan-types/${c.custom}`],
    ['POST', () => '/api/v1/plans', { type: 'pet_diet', input: PET }],
    ['GET', () => '/api/v1/plans/history'],
    ['GET', (c) => `/api/v1/plans/${c.mine}`],
    ['DELETE', (c) => `/api/v1/plans/${c.mine}`],
  ]
  const secret = ['SECRET-breed']

  scenarios<Ctx>(() => ctx, [
    ...endpoints.map(([method, path, body]): Scenario<Ctx> => ({ name: 'needs credentials', as: 'guest', method, path, body, status: 401, code: 'UNAUTHORIZED', notContains: secret })),
    ...(['user', 'other'] as const).flatMap((as): Scenario<Ctx>[] => [
      { name: 'plan types are for everyone to read', as, method: 'GET', path: '/api/v1/plan-types', status: 200, check: (r) => expect((r.body.items as Json[]).map((i) => i.id)).toEqual(['pet_diet', 'trip']) },
      { name: 'one plan type', as, method: 'GET', path: '/api/v1/plan-types/trip', status: 200, check: (r) => expect(r.body.is_builtin).toBe(false) },
      { name: 'only admins create plan types', as, method: 'POST', path: '/api/v1/plan-types', body: customType(`${as}_type`), status: 403, code: 'FORBIDDEN' },
      { name: 'only admins change plan types', as, method: 'PATCH', path: '/api/v1/plan-types/trip', body: { name: 'mine now' }, status: 403, code: 'FORBIDDEN' },
      { name: 'only admins delete plan types', as, method: 'DELETE', path: '/api/v1/plan-types/trip', status: 403, code: 'FORBIDDEN' },
    ]),
    ...(['other', 'admin'] as const).flatMap((as): Scenario<Ctx>[] => [
      { name: "another user's plan is invisible", as, method: 'GET', path: (c) => `/api/v1/plans/${c.mine}`, status: 404, code: 'NOT_FOUND', notContains: secret },
      { name: "another user's plan cannot be deleted", as, method: 'DELETE', path: (c) => `/api/v1/plans/${c.mine}`, status: 404, code: 'NOT_FOUND' },
      { name: "the history has none of another user's plans", as, method: 'GET', path: '/api/v1/plans/history', status: 200, notContains: secret, check: (r) => expect(r.body.total).toBe(0) },
      { name: 'a plan of their own', as, method: 'POST', path: '/api/v1/plans', body: { type: 'trip', input: { city: 'Lyon' } }, status: 202 },
    ]),
    { name: 'built-in types are read-only, for admins too: PATCH', as: 'admin', method: 'PATCH', path: '/api/v1/plan-types/pet_diet', body: { name: 'x' }, status: 403, code: 'FORBIDDEN' },
    { name: 'built-in types are read-only, for admins too: DELETE', as: 'admin', method: 'DELETE', path: '/api/v1/plan-types/pet_diet', status: 403, code: 'FORBIDDEN' },
    { name: 'admins change their types', as: 'admin', method: 'PATCH', path: '/api/v1/plan-types/trip', body: { name: 'Day trip' }, status: 200, check: (r) => expect(r.body.name).toBe('Day trip') },
    { name: 'the owner reads the plan', as: 'user', method: 'GET', path: (c) => `/api/v1/plans/${c.mine}`, status: 200, check: (r, c) => expect(r.body).toMatchObject({ id: c.mine, type: 'pet_diet', status: 'pending', result: null }) },
    { name: "the owner's history", as: 'user', method: 'GET', path: '/api/v1/plans/history', status: 200, check: (r, c) => expect((r.body.items as Json[]).map((i) => i.id)).toEqual([c.mine]) },
    { name: 'unknown plan', as: 'user', method: 'GET', path: '/api/v1/plans/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'unknown plan: DELETE', as: 'user', method: 'DELETE', path: '/api/v1/plans/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'unknown plan type', as: 'admin', method: 'PATCH', path: '/api/v1/plan-types/nope', body: { name: 'x' }, status: 404, code: 'NOT_FOUND' },
  ])
})

// -------------------------------------------------------------------------------------------------

eachDialect('plan types', (dialect) => {
  let t: TestApp
  let admin: string
  useCallers(dialect, (app, callers) => ((t = app), (admin = callers.accounts.admin.access)))

  test('pet_diet is built in, seeded once, with compiling schemas and a prompt', async () => {
    const res = await t.request('GET', '/api/v1/plan-types/pet_diet', { token: admin })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ id: 'pet_diet', is_builtin: true, name: PET_DIET.name })
    expect(res.body.input_schema.required).toEqual(['pet_type', 'pet_breed', 'age', 'pet_weight', 'pet_health_status'])
    expect(Object.keys(res.body.input_schema.properties)).toContain('special_requirements')
    expect(res.body.output_schema.required).toEqual(['pet_information', 'ai_suggestions', 'pet_diet_plan'])
    expect(res.body.prompt.length).toBeGreaterThan(100)
    expect(await t.deps.services.plans.seedBuiltins()).toEqual([])
  })

  test('create → 201 + Location; list, get, patch, delete → 204, then 404', async () => {
    const res = await t.request('POST', '/api/v1/plan-types', { token: admin, body: { ...customType('trip-1'), surprise: 'boo-field' } })
    expect(res.status).toBe(201)
    expect(res.headers.get('location')).toBe('/api/v1/plan-types/trip-1')
    expect(res.text).not.toContain('boo-field')
    expect(res.body).toEqual({ ...customType('trip-1'), is_builtin: false, created_at: expect.any(String), updated_at: expect.any(String) })
    const list = await t.request('GET', '/api/v1/plan-types', { token: admin })
    expect((list.body.items as Json[]).map((i) => i.id)).toEqual(['pet_diet', 'trip-1'])
    const patched = await t.request('PATCH', '/api/v1/plan-types/trip-1', { token: admin, body: { prompt: 'Plan it well.', description: null, id: 'renamed' } })
    expect(patched.status).toBe(200)
    expect(patched.body).toMatchObject({ id: 'trip-1', prompt: 'Plan it well.', description: null, name: 'Trip plan' })
    expect((await t.request('DELETE', '/api/v1/plan-types/trip-1', { token: admin })).status).toBe(204)
    expectProblem(await t.request('GET', '/api/v1/plan-types/trip-1', { token: admin }), 404, 'NOT_FOUND')
    expectProblem(await t.request('DELETE', '/api/v1/plan-types/trip-1', { token: admin }), 404, 'NOT_FOUND')
  })

  test('a taken id → 409, the built-in one too', async () => {
    expect((await t.request('POST', '/api/v1/plan-types', { token: admin, body: customType('dup') })).status).toBe(201)
    expectProblem(await t.request('POST', '/api/v1/plan-types', { token: admin, body: customType('dup') }), 409, 'CONFLICT')
    expectProblem(await t.request('POST', '/api/v1/plan-types', { token: admin, body: customType('pet_diet') }), 409, 'CONFLICT')
  })

  const invalid: [string, Json, string][] = [
    ['an id with capitals', { ...customType('x'), id: 'Trip' }, 'id'],
    ['an id with a slash', { ...customType('x'), id: 'a/b' }, 'id'],
    ['an id of 65 characters', { ...customType('x'), id: 'a'.repeat(65) }, 'id'],
    ['no name', { ...customType('x'), name: '' }, 'name'],
    ['no prompt', { ...customType('x'), prompt: ' ' }, 'prompt'],
    ['an input schema that is not an object', { ...customType('x'), input_schema: 'object' }, 'input_schema'],
    ['an input schema that does not compile', { ...customType('x'), input_schema: { $ref: '#/nowhere' } }, 'input_schema'],
    ['an output schema that does not compile', { ...customType('x'), output_schema: { type: 'object', properties: { a: { $ref: '#/$defs/missing' } } } }, 'output_schema'],
    ['no output schema', { ...customType('x'), output_schema: undefined }, 'output_schema'],
  ]
  for (const [name, body, field] of invalid) {
    test(`create: ${name} → 422 naming ${field}`, async () => {
      const res = await t.request('POST', '/api/v1/plan-types', { token: admin, body })
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect(paths(res)).toContain(field)
    })
  }

  test('patch: a schema that does not compile → 422 naming it, the type unchanged', async () => {
    expect((await t.request('POST', '/api/v1/plan-types', { token: admin, body: customType('keep') })).status).toBe(201)
    const res = await t.request('PATCH', '/api/v1/plan-types/keep', { token: admin, body: { output_schema: { $ref: '#/nowhere' } } })
    expectProblem(res, 422, 'VALIDATION_ERROR')
    expect(paths(res)).toEqual(['output_schema'])
    expect((await t.request('GET', '/api/v1/plan-types/keep', { token: admin })).body.output_schema).toEqual(customType('keep').output_schema)
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('plans', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let user: string
  let fake: FakeLlm
  beforeAll(async () => (fake = await startFakeLlm()))
  afterAll(() => fake.stop())
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers), (user = callers.accounts.user.access)))
  // the plans here stay pending (their status is set by hand): no worker claims them; 'plans run as tasks' runs them
  beforeAll(() => t.deps.services.taskEngine.close())
  beforeAll(() => addFakeModels(t, ctx.accounts.admin.access, fake, 'openai_compatible', [['quick', 'fake:tokens=3'], ['other-model', 'fake:tokens=2']]))

  const post = (body: unknown, token = user) => t.request('POST', '/api/v1/plans', { token, body })
  const taskOf = async (id: string) => (await t.deps.database.db.select().from(t.deps.database.t.tasks).where(eq(t.deps.database.t.tasks.id, id)))[0]

  test('POST → 202; the pending plan task and the plan are written; detail and history read them', async () => {
    const res = await accepted(await post({ type: 'pet_diet', input: PET, model_id: 'other-model' }))
    const task = await taskOf(res.task_id)
    expect(task).toMatchObject({ userId: ctx.accounts.user.id, kind: 'plan', status: 'pending', input: { type: 'pet_diet', input: PET }, modelId: 'other-model', title: 'Diet plan for a Beagle dog' })
    const got = await t.request('GET', `/api/v1/plans/${res.plan_id}`, { token: user })
    expect(got.status).toBe(200)
    expect(got.body).toEqual({ id: res.plan_id, type: 'pet_diet', input: PET, status: 'pending', result: null, task_id: res.task_id, created_at: expect.any(String) })
    const history = await t.request('GET', '/api/v1/plans/history?limit=1', { token: user })
    expect(history.body).toMatchObject({ limit: 1, offset: 0 })
    expect(history.body.items).toEqual([{ id: res.plan_id, type: 'pet_diet', title: 'Diet plan for a Beagle dog', status: 'pending', created_at: got.body.created_at }])
  })

  test('the status and result are the task’s', async () => {
    const res = await accepted(await post({ type: 'pet_diet', input: PET }))
    const { db, t: tables } = t.deps.database
    await db.update(tables.tasks).set({ status: 'completed', result: { pet_information: { x: 1 } } }).where(eq(tables.tasks.id, res.task_id))
    const got = await t.request('GET', `/api/v1/plans/${res.plan_id}`, { token: user })
    expect(got.body).toMatchObject({ status: 'completed', result: { pet_information: { x: 1 } } })
    const history = await t.request('GET', '/api/v1/plans/history', { token: user })
    expect((history.body.items as Json[]).find((i) => i.id === res.plan_id)?.status).toBe('completed')
  })

  test('pet_diet fields may stand at the top level; `input` wins when both are given; other fields are ignored', async () => {
    const top = await accepted(await post({ type: 'pet_diet', ...PET, surprise: 'boo' }))
    expect((await taskOf(top.task_id))?.input).toEqual({ type: 'pet_diet', input: PET })
    const both = await accepted(await post({ type: 'pet_diet', ...PET, pet_type: 'ignored', input: { ...PET, pet_type: 'cat' } }))
    expect(((await taskOf(both.task_id))?.input as Json).input.pet_type).toBe('cat')
  })

  const invalid: [string, Json, string[]][] = [
    ['no pet_weight', { type: 'pet_diet', input: { ...PET, pet_weight: undefined } }, ['input.pet_weight']],
    ['an age that is neither a number nor words', { type: 'pet_diet', input: { ...PET, age: true } }, ['input.age']],
    ['a negative weight', { type: 'pet_diet', input: { ...PET, pet_weight: -3 } }, ['input.pet_weight']],
    ['two fields missing at the top level', { type: 'pet_diet', pet_type: 'dog', pet_breed: 'Pug', age: 2 }, ['input.pet_weight', 'input.pet_health_status']],
    ['no input for an admin-defined type', { type: 'trip2' }, ['input']],
    ['an admin-defined type’s input failing its schema', { type: 'trip2', input: { city: '' } }, ['input.city']],
    ['an input that is not an object', { type: 'pet_diet', input: [1, 2] }, ['input']],
    ['an unknown type', { type: 'moon_base', input: {} }, ['type']],
    ['no type', { input: PET }, ['type']],
    ['an unknown model', { type: 'pet_diet', input: PET, model_id: 'no-such-model' }, ['model_id']],
  ]
  for (const [name, body, expected] of invalid) {
    test(`POST: ${name} → 422 with field errors, nothing written`, async () => {
      await t.request('POST', '/api/v1/plan-types', { token: ctx.accounts.admin.access, body: customType('trip2') })
      const { db, t: tables } = t.deps.database
      const before = (await db.select().from(tables.tasks).where(eq(tables.tasks.userId, ctx.accounts.other.id))).length
      const res = await post(body, ctx.accounts.other.access)
      expectProblem(res, 422, 'VALIDATION_ERROR')
      for (const p of expected) expect(paths(res)).toContain(p)
      expect((await db.select().from(tables.tasks).where(eq(tables.tasks.userId, ctx.accounts.other.id))).length).toBe(before)
    })
  }

  test('DELETE → 204 and the task goes with it; a running one → 409 and stays', async () => {
    const { db, t: tables } = t.deps.database
    const done = await accepted(await post({ type: 'pet_diet', input: PET }))
    const del = await t.request('DELETE', `/api/v1/plans/${done.plan_id}`, { token: user })
    expect(del.status).toBe(204)
    expect(del.text).toBe('')
    expect(await taskOf(done.task_id)).toBeUndefined()
    expectProblem(await t.request('GET', `/api/v1/plans/${done.plan_id}`, { token: user }), 404, 'NOT_FOUND')

    const running = await accepted(await post({ type: 'pet_diet', input: PET }))
    await db.update(tables.tasks).set({ status: 'running' }).where(eq(tables.tasks.id, running.task_id))
    expectProblem(await t.request('DELETE', `/api/v1/plans/${running.plan_id}`, { token: user }), 409, 'CONFLICT')
    expect((await taskOf(running.task_id))?.status).toBe('running')
    expect((await db.select().from(tables.plans).where(and(eq(tables.plans.id, running.plan_id)))).length).toBe(1)
  })

  test('with no model at all, POST → 422 naming model_id', async () => {
    const bare = await createTestApp(dialect)
    try {
      const a = await setupCallers(bare)
      const res = await bare.request('POST', '/api/v1/plans', { token: a.accounts.user.access, body: { type: 'pet_diet', input: PET } })
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect(paths(res)).toContain('model_id')
    } finally {
      await bare.close()
    }
  })
})

// -------------------------------------------------------------------------------------------------

const TINY_OUTPUT = { type: 'object', required: ['stops'], properties: { stops: { type: 'array', items: { type: 'string' }, minItems: 1 } } }
/** A plan type whose prompt scripts the fake `script` model's answers, one per turn. */
const scripted = (...answers: string[]): PlanSpec => ({ id: 'tiny', prompt: `Plan the stops.\nFAKE_ANSWERS=${JSON.stringify(answers)}`, outputSchema: TINY_OUTPUT })

eachDialect('plan runner', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let fake: FakeLlm
  let p: Principal
  beforeAll(async () => (fake = await startFakeLlm()))
  afterAll(() => fake.stop())
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)))
  beforeAll(async () => {
    await addFakeModels(t, ctx.accounts.admin.access, fake, 'openai_compatible', [['compat-script', 'fake:script'], ['broken', 'fake:fail=500']])
    await addFakeModels(t, ctx.accounts.admin.access, fake, 'openai', [['openai-script', 'fake:script']])
    p = { userId: ctx.accounts.user.id, role: 'user', via: 'session', sessionId: null, apiKeyId: null, scopes: [] }
  })

  const run = (spec: PlanSpec, modelId: string, signal = new AbortController().signal) => createPlanRunner({ turns: t.deps.services.turns })({ principal: p, planType: spec, input: { city: 'Lyon' }, modelId, signal })
  /** the chat-completion requests made since `from` */
  const calls = (from: number) => fake.requests.slice(from).filter((r) => r.path === '/v1/chat/completions').map((r) => r.body as Json)
  const usageRows = async () => {
    const { db, t: tables } = t.deps.database
    return db.select().from(tables.usage).where(and(eq(tables.usage.userId, ctx.accounts.user.id), eq(tables.usage.source, 'task')))
  }

  test('valid at once: one turn, JSON mode on an openai_compatible provider, usage recorded as a task’s', async () => {
    const from = fake.requests.length
    const before = (await usageRows()).length
    const out = await run(scripted('{"stops":["Fourvière","Vieux Lyon"]}'), 'compat-script')
    expect(out.result).toEqual({ stops: ['Fourvière', 'Vieux Lyon'] })
    expect(out.turns).toBe(1)
    const [req, ...more] = calls(from)
    expect(more).toHaveLength(0)
    expect(req!.response_format).toEqual({ type: 'json_object' })
    const [system, question] = req!.messages as Json[]
    expect(system).toMatchObject({ role: 'system' })
    expect(system!.content).toContain(JSON.stringify(TINY_OUTPUT))
    expect(question).toEqual({ role: 'user', content: 'The input, as JSON:\n{\n  "city": "Lyon"\n}' })
    expect(out.usage.outputTokens).toBeGreaterThan(0)
    expect((await usageRows()).length).toBe(before + 1)
  })

  test('an openai provider gets structured output: response_format json_schema with the output schema; a fenced answer is read', async () => {
    const from = fake.requests.length
    const out = await run(scripted('```json\n{"stops":["Bellecour"]}\n```'), 'openai-script')
    expect(out.result).toEqual({ stops: ['Bellecour'] })
    expect(calls(from)[0]!.response_format).toEqual({ type: 'json_schema', json_schema: { name: 'tiny', schema: TINY_OUTPUT } })
  })

  test('invalid, then repaired: the repair turn carries the first answer and the validation errors', async () => {
    const from = fake.requests.length
    const before = (await usageRows()).length
    const out = await run(scripted('{"stops":[]}', '{"stops":["Confluence"]}'), 'compat-script')
    expect(out).toMatchObject({ result: { stops: ['Confluence'] }, turns: 2 })
    const [first, repair, ...more] = calls(from)
    expect(more).toHaveLength(0)
    expect(first!.messages.filter((m: Json) => m.role === 'assistant')).toHaveLength(0)
    const tail = repair!.messages.slice(-2) as Json[]
    expect(tail[0]).toMatchObject({ role: 'assistant', content: '{"stops":[]}' })
    expect(tail[1]!.role).toBe('user')
    expect(JSON.stringify(tail[1]!.content)).toContain('result.stops')
    expect(JSON.stringify(tail[1]!.content)).toContain('must NOT have fewer than 1 items')
    expect(repair!.response_format).toEqual({ type: 'json_object' })
    expect((await usageRows()).length).toBe(before + 2)
  })

  test('not JSON, then repaired', async () => {
    const from = fake.requests.length
    const out = await run(scripted('Sure! Here are the stops: Fourvière', '{"stops":["Fourvière"]}'), 'compat-script')
    expect(out.result).toEqual({ stops: ['Fourvière'] })
    expect(JSON.stringify(calls(from)[1]!.messages.at(-1))).toContain('is not valid JSON')
  })

  test('invalid twice → PlanFailure UPSTREAM_ERROR, not retryable, naming the problems; no third turn', async () => {
    const from = fake.requests.length
    const error = await run(scripted('{"stops":"none"}', '{"nope":1}'), 'compat-script').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(PlanFailure)
    const f = error as PlanFailure
    expect({ code: f.code, retryable: f.retryable }).toEqual({ code: 'UPSTREAM_ERROR', retryable: false })
    expect(f.message).toContain("did not match the plan type's output schema")
    expect(f.problems.map((x) => x.path)).toEqual(['result.stops'])
    expect(calls(from)).toHaveLength(2)
  })

  test('upstream 500 → PlanFailure UPSTREAM_ERROR, retryable; the failed turn is recorded', async () => {
    const before = (await usageRows()).length
    const error = await run(scripted('{}'), 'broken').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(PlanFailure)
    expect({ code: (error as PlanFailure).code, retryable: (error as PlanFailure).retryable }).toEqual({ code: 'UPSTREAM_ERROR', retryable: true })
    expect((error as PlanFailure).message).toContain('500')
    const rows = await usageRows()
    expect(rows.length).toBe(before + 1)
    expect(rows.some((r) => r.status === 'error')).toBe(true)
  })

  test('an unknown model → PlanFailure VALIDATION_ERROR; an aborted signal → CANCELLED without a call', async () => {
    expect(await run(scripted('{}'), 'nope').catch((e: PlanFailure) => e.code)).toBe('VALIDATION_ERROR')
    const from = fake.requests.length
    const aborted = new AbortController()
    aborted.abort()
    expect(await run(scripted('{}'), 'compat-script', aborted.signal).catch((e: PlanFailure) => e.code)).toBe('CANCELLED')
    expect(calls(from)).toHaveLength(0)
  })
  test('planKind runs a plan task: progress, repair and usage steps, then the result; a failure becomes the engine’s', async () => {
    const spec = scripted('{"stops":[]}', '{"stops":["Part-Dieu"]}')
    await t.deps.services.plans.createType({ id: 'kind-test', name: 'Kind test', inputSchema: { type: 'object' }, outputSchema: spec.outputSchema, prompt: spec.prompt })
    const res = await accepted(await t.request('POST', '/api/v1/plans', { token: ctx.accounts.user.access, body: { type: 'kind-test', input: { city: 'Lyon' }, model_id: 'compat-script' } }))
    const { db, t: tables } = t.deps.database
    const [task] = await db.select().from(tables.tasks).where(eq(tables.tasks.id, res.task_id))
    const steps: [string, any, any][] = []
    const failure = (code: string, message: string, retryable: boolean) => Object.assign(new Error(message), { code, retryable })
    const runner = planKind({ database: t.deps.database, turns: t.deps.services.turns, failure })
    const emit = async (event: string, data: unknown, effect?: unknown) => void steps.push([event, data, effect])
    expect(await runner({ task: task!, signal: new AbortController().signal, emit })).toEqual({ result: { stops: ['Part-Dieu'] } })
    expect(steps.map(([e]) => e)).toEqual(['task_progress', 'usage', 'message_created', 'usage', 'task_progress'])
    expect(steps[1]![2].usage.outputTokens).toBeGreaterThan(0)
    await db.update(tables.planTypes).set({ prompt: scripted('x', 'y').prompt }).where(eq(tables.planTypes.id, 'kind-test'))
    const error = (await runner({ task: task!, signal: new AbortController().signal, emit }).catch((e: unknown) => e)) as { code: string; retryable: boolean }
    expect({ code: error.code, retryable: error.retryable }).toEqual({ code: 'UPSTREAM_ERROR', retryable: false })
  })
})

const DIET_RESULT = {
  pet_information: { pet_type: 'dog', pet_breed: 'Beagle', age: '4 years', weight: '11.5 kg', health_status: 'healthy, a little overweight', daily_calories_kcal: 700 },
  ai_suggestions: { summary: 'A lean grain-free diet to lose a little weight.', recommendations: ['Weigh every portion'], foods_to_avoid: ['grapes'], consult_vet: false },
  pet_diet_plan: { daily_meals: [{ name: 'Breakfast', time: '07:30', foods: ['grain-free kibble'], portion: '90 g' }, { name: 'Dinner', time: '18:30', foods: ['grain-free kibble', 'green beans'], portion: '90 g' }], water: 'Fresh water at all times' },
}

eachDialect('plans run as tasks', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let fake: FakeLlm
  let user: string
  beforeAll(async () => (fake = await startFakeLlm()))
  afterAll(() => fake.stop())
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers), (user = callers.accounts.user.access)))
  beforeAll(() => addFakeModels(t, ctx.accounts.admin.access, fake, 'openai_compatible', [['script', 'fake:script']]))

  /** pet_diet's prompt (read-only through the API) scripts the fake `script` model's answers, one per turn */
  const script = async (...answers: string[]) => {
    const { db, t: tables } = t.deps.database
    await db.update(tables.planTypes).set({ prompt: `${PET_DIET.prompt}\nFAKE_ANSWERS=${JSON.stringify(answers)}` }).where(eq(tables.planTypes.id, 'pet_diet'))
  }
  const plan = async (id: string) => (await t.request('GET', `/api/v1/plans/${id}`, { token: user })).body as Json
  const settled = async (id: string) => {
    let row: Json = {}
    await eventually(async () => ['completed', 'failed', 'cancelled'].includes((row = await plan(id)).status), 8000, `plan ${id} settled`)
    return row
  }
  const stream = (body: Json, headers: Record<string, string> = {}) =>
    t.app.handle(new Request('http://localhost/api/v1/plans', { method: 'POST', headers: { authorization: `Bearer ${user}`, 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) }))

  test('POST → 202, then GET /plans/{id} is completed with the validated result; the task has its steps', async () => {
    await script(JSON.stringify(DIET_RESULT))
    const res = await accepted(await t.request('POST', '/api/v1/plans', { token: user, body: { type: 'pet_diet', input: PET } }))
    const done = await settled(res.plan_id)
    expect(done).toMatchObject({ id: res.plan_id, status: 'completed', result: DIET_RESULT, task_id: res.task_id })
    const task = (await t.request('GET', `/api/v1/tasks/${res.task_id}`, { token: user })).body as Json
    expect(task).toMatchObject({ kind: 'plan', status: 'completed', progress: 100, result: DIET_RESULT, error: null, attempts: 1 })
    expect(task.usage.output_tokens).toBeGreaterThan(0)
    const steps = (await t.request('GET', `/api/v1/tasks/${res.task_id}/steps`, { token: user })).body as Json
    expect((steps.items as Json[]).map((s) => s.step)).toEqual(['task_started', 'task_progress', 'usage', 'task_progress', 'task_completed'])
    const history = (await t.request('GET', '/api/v1/plans/history', { token: user })).body as Json
    expect((history.items as Json[]).find((i) => i.id === res.plan_id)?.status).toBe('completed')
  }, 15000)

  test('use_stream: true → the task’s events at once, ending with task_completed { task_id, result }', async () => {
    await script(JSON.stringify(DIET_RESULT))
    const res = await stream({ type: 'pet_diet', input: PET, use_stream: true })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('text/event-stream')
    const got = await readEvents(res)
    const stored = got.filter((e) => e.id !== undefined)
    expect(stored.map((e) => e.event)).toEqual(['task_started', 'task_progress', 'usage', 'task_progress', 'task_completed'])
    const last = stored.at(-1)!
    expect(last.data).toEqual({ task_id: expect.any(String), result: DIET_RESULT })
    const { db, t: tables } = t.deps.database
    const [row] = await db.select().from(tables.plans).where(eq(tables.plans.taskId, last.data.task_id))
    expect(await plan(row!.id)).toMatchObject({ status: 'completed', result: DIET_RESULT })
  }, 15000)

  test('Accept: text/event-stream streams too; a repaired answer shows message_created', async () => {
    await script('{"pet_information":{}}', JSON.stringify(DIET_RESULT))
    const got = await readEvents(await stream({ type: 'pet_diet', ...PET }, { accept: 'text/event-stream' }))
    expect(got.map((e) => e.event)).toEqual(['task_started', 'task_progress', 'usage', 'message_created', 'usage', 'task_progress', 'task_completed'])
    expect(got.at(-1)!.data.result).toEqual(DIET_RESULT)
  }, 15000)

  test('an answer failing validation twice → failed with UPSTREAM_ERROR, not retried; the stream ends with error', async () => {
    await script('{"pet_information":{}}', 'still not a plan')
    const res = await accepted(await t.request('POST', '/api/v1/plans', { token: user, body: { type: 'pet_diet', input: PET } }))
    const done = await settled(res.plan_id)
    expect(done).toMatchObject({ status: 'failed', result: null })
    const task = (await t.request('GET', `/api/v1/tasks/${res.task_id}`, { token: user })).body as Json
    expect(task).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'UPSTREAM_ERROR', message: expect.stringContaining("did not match the plan type's output schema") } })
    const streamed = await readEvents(await stream({ type: 'pet_diet', input: PET, use_stream: true }))
    expect(streamed.at(-1)).toMatchObject({ event: 'error', data: { code: 'UPSTREAM_ERROR' } })
  }, 15000)

  test('DELETE of a finished plan → 204 through the tasks service: the task and the plan are gone', async () => {
    const res = await accepted(await t.request('POST', '/api/v1/plans', { token: user, body: { type: 'pet_diet', input: PET } }))
    await settled(res.plan_id)
    const del = await t.request('DELETE', `/api/v1/plans/${res.plan_id}`, { token: user })
    expect(del.status).toBe(204)
    expectProblem(await t.request('GET', `/api/v1/tasks/${res.task_id}`, { token: user }), 404, 'NOT_FOUND')
    expectProblem(await t.request('GET', `/api/v1/plans/${res.plan_id}`, { token: user }), 404, 'NOT_FOUND')
  }, 15000)

  test('POST /tasks with kind "plan" → 422 naming kind: plans are made through /plans', async () => {
    const res = await t.request('POST', '/api/v1/tasks', { token: user, body: { kind: 'plan', prompt: 'x' } })
    expectProblem(res, 422, 'VALIDATION_ERROR')
    expect(paths(res)).toContain('kind')
  })
})

describe('the fake upstream’s script mode', () => {
  test('answers the FAKE_ANSWERS entry for the turn', async () => {
    const fake = await startFakeLlm()
    try {
      const ask = async (messages: Json[]) => {
        const res = await fetch(`${fake.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer k', 'content-type': 'application/json' }, body: JSON.stringify({ model: 'fake:script', messages }) })
        return ((await res.json()) as Json).choices[0].message.content
      }
      const system = { role: 'system', content: 'x\nFAKE_ANSWERS=["one","two"]' }
      expect(await ask([system, { role: 'user', content: 'q' }])).toBe('one')
      expect(await ask([system, { role: 'user', content: 'q' }, { role: 'assistant', content: 'one' }, { role: 'user', content: 'again' }])).toBe('two')
      expect(await ask([system, { role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }, { role: 'assistant', content: 'b' }])).toBe('two')
    } finally {
      await fake.stop()
    }
  })
})
