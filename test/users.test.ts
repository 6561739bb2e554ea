/**
 * The caller's own account (docs/api.md §5): profile and preferences, stats from every module's
 * counter, credits — by caller kind, with bad values refused.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { sumCounts } from '../src/modules/users/activity.ts'
import { register, setupCallers, unique, useCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'

eachDialect('users', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)))

  describe('who may call what', () => {
    scenarios<CallersContext>(() => ctx, [
      { name: 'profile needs a login', as: 'guest', method: 'GET', path: '/api/v1/users/me', status: 401, code: 'UNAUTHORIZED' },
      { name: 'own profile with default preferences', as: 'user', method: 'GET', path: '/api/v1/users/me', status: 200, check: (r, c) => expect(r.body).toMatchObject({ id: c.accounts.user.id, preferences: { language: 'en', theme: 'system', context_rounds: 10, memory_enabled: false, view_mode: 'user', default_model_id: null } }), notContains: ['password_hash', '$argon2', 'hash'] },
      { name: 'stats start at zero', as: 'user', method: 'GET', path: '/api/v1/users/me/stats', status: 200, check: (r) => expect(r.body).toEqual({ conversations: 0, messages: 0, tasks: 0, storage_bytes: 0, input_tokens: 0, output_tokens: 0, cost: 0 }) },
      { name: 'credits', as: 'user', method: 'GET', path: '/api/v1/users/me/credits', status: 200, check: (r) => expect(r.body).toEqual({ balance: 0, used: 0, enforced: false }) },
    ])
  })

  test('profile and preferences: partial updates merge, bad values are 422', async () => {
    const { user } = ctx.accounts
    const patched = await t.request('PATCH', '/api/v1/users/me', { token: user.access, body: { display_name: 'Ann', avatar_url: 'https://img.example/a.png' } })
    expect(patched.body).toMatchObject({ display_name: 'Ann', avatar_url: 'https://img.example/a.png' })
    expect((await t.request('PATCH', '/api/v1/users/me', { token: user.access, body: { avatar_url: 'javascript:alert(1)' } })).status).toBe(422)
    const put = await t.request('PUT', '/api/v1/users/me/preferences', { token: user.access, body: { language: 'zh', context_rounds: 20 } })
    expect(put.body).toMatchObject({ language: 'zh', context_rounds: 20, theme: 'system' })
    const put2 = await t.request('PUT', '/api/v1/users/me/preferences', { token: user.access, body: { theme: 'dark' } })
    expect(put2.body).toMatchObject({ language: 'zh', context_rounds: 20, theme: 'dark' })
    for (const body of [{ context_rounds: 51 }, { language: 'fr' }, { memory_enabled: 'yes' }]) expect((await t.request('PUT', '/api/v1/users/me/preferences', { token: user.access, body })).status).toBe(422)
    expect((await t.request('GET', '/api/v1/users/me/preferences', { token: user.access })).body.theme).toBe('dark')
  })

  test('stats and status count what each module counts: conversations and messages from chat, tasks 0 while no module counts them', async () => {
    const app = await createTestApp(dialect)
    const [a, b] = [await register(app, 'counted'), await register(app, 'counted')]
    const { db, t: tables } = app.deps.database
    for (const owner of [a, a, b]) {
      const c = await app.request('POST', '/api/v1/conversations', { token: owner.access, body: { title: 'counted' } })
      expect(c.status).toBe(201)
      await db.insert(tables.messages).values([{ conversationId: c.body.id, role: 'user', content: 'hi' }, { conversationId: c.body.id, role: 'assistant', content: 'hello' }])
    }
    expect((await app.request('GET', '/api/v1/users/me/stats', { token: a.access })).body).toEqual({ conversations: 2, messages: 4, tasks: 0, storage_bytes: 0, input_tokens: 0, output_tokens: 0, cost: 0 })
    expect((await app.request('GET', '/api/v1/users/me/stats', { token: b.access })).body).toMatchObject({ conversations: 1, messages: 2, tasks: 0 })
    expect((await app.request('GET', '/api/v1/system/status', { token: a.access })).body.counts).toEqual({ users: 2, conversations: 3, messages: 6, tasks: 0, storage_bytes: 0 })
    await app.close()
  })

  test('counts from several counters add up; a kind none of them gives is 0', async () => {
    expect(await sumCounts([Promise.resolve({ conversations: 2, messages: 5 }), Promise.resolve({ tasks: 3, messages: 1 })])).toEqual({ conversations: 2, messages: 6, tasks: 3, storage_bytes: 0 })
    expect(await sumCounts([])).toEqual({ conversations: 0, messages: 0, tasks: 0, storage_bytes: 0 })
  })

})

interface ModelCtx extends CallersContext {
  globalModel: { id: string; name: string }
  userModel: { id: string; name: string }
}

eachDialect('default_model_id: refused where it is saved unless the user can use it', (dialect) => {
  let ctx: ModelCtx
  beforeAll(async () => {
    const t = await createTestApp(dialect)
    const callers = await setupCallers(t)
    const model = async (token: string, providerBody: Record<string, unknown>, name: string) => {
      const provider = await t.request('POST', '/api/v1/providers', { token, body: providerBody })
      const m = await t.request('POST', '/api/v1/models', { token, body: { provider_id: provider.body.id, model_id: name, name } })
      expect(m.status).toBe(201)
      return { id: m.body.id as string, name }
    }
    const globalModel = await model(callers.accounts.admin.access, { name: 'shared', type: 'openai', api_key: 'sk-shared-0000', scope: 'global' }, unique('shared-model'))
    const userModel = await model(callers.accounts.user.access, { name: 'own', type: 'openai', api_key: 'sk-own-0000' }, unique('own-model'))
    ctx = { ...callers, globalModel, userModel }
  })
  afterAll(() => ctx.t.close())

  const put = '/api/v1/users/me/preferences'
  const refused = (res: TestResponse) => expect((res.body.errors as { path: string }[]).map((e) => e.path)).toEqual(['default_model_id'])
  const saved = (ref: (c: ModelCtx) => string | null) => (r: TestResponse, c: ModelCtx) => expect(r.body.default_model_id).toBe(ref(c))
  scenarios<ModelCtx>(() => ctx, [
    { name: 'needs credentials', as: 'guest', method: 'PUT', path: put, body: (c: ModelCtx) => ({ default_model_id: c.globalModel.id }), status: 401, code: 'UNAUTHORIZED' },
    ...(['user', 'other', 'admin'] as const).flatMap((as): Scenario<ModelCtx>[] => [
      { name: 'a global model by id', as, method: 'PUT', path: put, body: (c: ModelCtx) => ({ default_model_id: c.globalModel.id }), status: 200, check: saved((c) => c.globalModel.id) },
      { name: 'a global model by name', as, method: 'PUT', path: put, body: (c: ModelCtx) => ({ default_model_id: c.globalModel.name }), status: 200, check: saved((c) => c.globalModel.name) },
      { name: 'an unknown model is 422 naming default_model_id', as, method: 'PUT', path: put, body: { default_model_id: 'no-such-model', theme: 'dark' }, status: 422, code: 'VALIDATION_ERROR', check: refused },
      { name: 'null clears it', as, method: 'PUT', path: put, body: { default_model_id: null }, status: 200, check: saved(() => null) },
    ]),
    { name: 'the owner may default to their personal model, by id', as: 'user', method: 'PUT', path: put, body: (c: ModelCtx) => ({ default_model_id: c.userModel.id }), status: 200, check: saved((c) => c.userModel.id) },
    { name: 'the owner may default to their personal model, by name', as: 'user', method: 'PUT', path: put, body: (c: ModelCtx) => ({ default_model_id: c.userModel.name }), status: 200, check: saved((c) => c.userModel.name) },
    // another user's personal model does not exist for anyone else, the admin included: refused, and nothing of the request is saved
    ...(['other', 'admin'] as const).flatMap((as): Scenario<ModelCtx>[] => [
      { name: "another user's model by id is 422", as, method: 'PUT', path: put, body: (c: ModelCtx) => ({ default_model_id: c.userModel.id, theme: 'dark' }), status: 422, code: 'VALIDATION_ERROR', check: refused },
      { name: "another user's model by name is 422", as, method: 'PUT', path: put, body: (c: ModelCtx) => ({ default_model_id: c.userModel.name }), status: 422, code: 'VALIDATION_ERROR', check: refused },
      { name: 'the refused change saved nothing', as, method: 'GET', path: put, status: 200, check: (r) => expect(r.body).toMatchObject({ default_model_id: null, theme: 'system' }) },
    ]),
  ])
})
