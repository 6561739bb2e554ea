/**
 * The caller's own account (docs/api.md §5): profile and preferences, stats from every module's
 * counter, credits — by caller kind, with bad values refused.
 */
import { describe, expect, test } from 'bun:test'
import { sumCounts } from '../src/modules/users/activity.ts'
import { register, useCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { scenarios } from './helpers/scenarios.ts'

eachDialect('users', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)))

  describe('who may call what', () => {
    scenarios<CallersContext>(() => ctx, [
      { name: 'profile needs a login', as: 'guest', method: 'GET', path: '/api/v1/users/me', status: 401, code: 'UNAUTHORIZED' },
      { name: 'own profile with default preferences', as: 'user', method: 'GET', path: '/api/v1/users/me', status: 200, check: (r, c) => expect(r.body).toMatchObject({ id: c.accounts.user.id, preferences: { language: 'en', theme: 'system', context_rounds: 10, memory_enabled: false, view_mode: 'user', default_model_id: null } }), notContains: ['password', 'hash'] },
      { name: 'stats start at zero', as: 'user', method: 'GET', path: '/api/v1/users/me/stats', status: 200, check: (r) => expect(r.body).toEqual({ conversations: 0, messages: 0, tasks: 0, input_tokens: 0, output_tokens: 0, cost: 0 }) },
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
    expect((await app.request('GET', '/api/v1/users/me/stats', { token: a.access })).body).toEqual({ conversations: 2, messages: 4, tasks: 0, input_tokens: 0, output_tokens: 0, cost: 0 })
    expect((await app.request('GET', '/api/v1/users/me/stats', { token: b.access })).body).toMatchObject({ conversations: 1, messages: 2, tasks: 0 })
    expect((await app.request('GET', '/api/v1/system/status', { token: a.access })).body.counts).toEqual({ users: 2, conversations: 3, messages: 6, tasks: 0 })
    await app.close()
  })

  test('counts from several counters add up; a kind none of them gives is 0', async () => {
    expect(await sumCounts([Promise.resolve({ conversations: 2, messages: 5 }), Promise.resolve({ tasks: 3, messages: 1 })])).toEqual({ conversations: 2, messages: 6, tasks: 3 })
    expect(await sumCounts([])).toEqual({ conversations: 0, messages: 0, tasks: 0 })
  })

})
