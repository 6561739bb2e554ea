/**
 * Groups' settings enforced (docs/api.md §21): allowed models in chat, tasks and the /v1 gateway,
 * the group rate limit, defaults for new conversations — and, on Postgres, a change on one
 * instance enforced on another at once.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { register, type Account } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { DIALECTS, eachDialect } from './helpers/db.ts'
import { expectOpenAIError, expectProblem } from './helpers/problems.ts'
import { readEvents } from './helpers/sse.ts'
import { eventually } from './helpers/streams.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'
import { groupOf, join, ok, withModels, type Json } from './helpers/groups.ts'

eachDialect('groups: enforcement', (dialect) => {
  let t: TestApp
  let fake: FakeLlm
  let server: ReturnType<typeof Bun.serve>
  let base: string
  let admin: Account
  let member: Account
  let outsider: Account
  let key: string
  let group: string
  let models: Record<string, string>

  beforeAll(async () => {
    fake = await startFakeLlm()
    t = await createTestApp(dialect, { HEARTH_TASK_RETRY_MS: '20' })
    server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: t.app.fetch, idleTimeout: 30 })
    base = `http://127.0.0.1:${server.port}`
    admin = await register(t, 'admin')
    member = await register(t, 'member')
    outsider = await register(t, 'outsider')
    models = await withModels(t, admin.access, fake)
    group = (await groupOf(t, admin.access, 'Restricted', { allowed_model_ids: ['alpha', 'gamma'] })).id
    await join(t, admin.access, group, member.id)
    key = ok(await t.request('POST', '/api/v1/api-keys', { token: member.access, body: { name: 'sdk' } }), 201).key
  })
  afterAll(async () => {
    server.stop(true)
    await t.close()
    await fake.stop()
  })

  const send = (token: string, conversationId: string, body: Json) =>
    fetch(`${base}/api/v1/conversations/${conversationId}/messages`, { method: 'POST', headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const conversation = async (token: string, body: Json = {}) => ok(await t.request('POST', '/api/v1/conversations', { token, body }), 201).id as string
  const completion = (model: string, k = key) => t.request('POST', '/v1/chat/completions', { token: k, body: { model, messages: [{ role: 'user', content: 'hi' }] } })

  test('chat: a model the group does not allow is 403, naming it; allowed ones answer; outsiders are not restricted', async () => {
    const c = await conversation(member.access)
    const refused = await send(member.access, c, { content: 'hello', model_id: 'beta' })
    expect(refused.status).toBe(403)
    const problem = (await refused.json()) as Json
    expect(problem).toMatchObject({ code: 'FORBIDDEN', detail: 'Your group does not allow model beta' })
    expectProblem(await t.request('POST', '/api/v1/conversations', { token: member.access, body: { model_id: 'beta' } }), 403, 'FORBIDDEN')
    expectProblem(await t.request('POST', '/api/v1/conversations', { token: member.access, body: { model_id: models.beta } }), 403, 'FORBIDDEN')
    const events = await readEvents(await send(member.access, c, { content: 'hello', model_id: 'gamma' }))
    expect(events.at(-1)).toMatchObject({ event: 'done', data: { finish_reason: 'stop' } })
    const theirs = await conversation(outsider.access)
    expect((await readEvents(await send(outsider.access, theirs, { content: 'hello', model_id: 'beta' }))).at(-1)!.event).toBe('done')
  })

  test("the default model: the group's if it sets one, else the instance's when allowed, else the first allowed", async () => {
    // the instance default (alpha) is allowed
    const c = await conversation(member.access)
    const first = await readEvents(await send(member.access, c, { content: 'hi' }))
    expect(first.at(-1)!.event).toBe('done')
    const stored = async () => (await t.request('GET', `/api/v1/conversations/${c}`, { token: member.access })).body.messages.at(-1).metadata.model
    expect(await stored()).toBe('alpha')
    // the instance default becomes beta, which the group does not allow: the first allowed one
    ok(await t.request('PATCH', `/api/v1/models/${models.beta}`, { token: admin.access, body: { is_default: true } }))
    await readEvents(await send(member.access, c, { content: 'again' }))
    expect(await stored()).toBe('alpha')
    ok(await t.request('PUT', `/api/v1/group-admin/${group}/settings`, { token: admin.access, body: { default_model_id: 'gamma' } }))
    await readEvents(await send(member.access, c, { content: 'and again' }))
    expect(await stored()).toBe('gamma')
    ok(await t.request('PUT', `/api/v1/group-admin/${group}/settings`, { token: admin.access, body: { default_model_id: null } }))
    ok(await t.request('PATCH', `/api/v1/models/${models.alpha}`, { token: admin.access, body: { is_default: true } }))
  })

  test('a default model preference saved before joining a group that does not allow it is skipped, not a 403; an allowed one is used', async () => {
    const u = await register(t, 'prefers')
    ok(await t.request('PUT', '/api/v1/users/me/preferences', { token: u.access, body: { default_model_id: 'beta' } }))
    await join(t, admin.access, group, u.id)
    const c = await conversation(u.access)
    const events = await readEvents(await send(u.access, c, { content: 'hi' }))
    expect(events.at(-1)).toMatchObject({ event: 'done' })
    const stored = async () => (await t.request('GET', `/api/v1/conversations/${c}`, { token: u.access })).body.messages.at(-1).metadata.model
    expect(await stored()).toBe('alpha')
    expect(ok(await t.request('GET', '/api/v1/users/me/effective-settings', { token: u.access })).default_model_id).toEqual({ value: models.alpha, source: 'instance', group_id: null })
    // an allowed preference wins over the instance's default
    ok(await t.request('PUT', '/api/v1/users/me/preferences', { token: u.access, body: { default_model_id: 'gamma' } }))
    await readEvents(await send(u.access, c, { content: 'again' }))
    expect(await stored()).toBe('gamma')
    expect(ok(await t.request('GET', '/api/v1/users/me/effective-settings', { token: u.access })).default_model_id).toEqual({ value: 'gamma', source: 'preference', group_id: null })
  })

  test('tasks: a task naming a disallowed model is 403; an agent task whose agent uses one fails, saying why', async () => {
    expectProblem(await t.request('POST', '/api/v1/tasks', { token: member.access, body: { prompt: 'hi', model_id: 'beta' } }), 403, 'FORBIDDEN')
    const agent = ok(await t.request('POST', '/api/v1/agents', { token: member.access, body: { name: 'betty', model_id: 'beta' } }), 201)
    const task = ok(await t.request('POST', '/api/v1/tasks', { token: member.access, body: { prompt: 'hi', agent_id: agent.id } }), 202)
    let row: Json = {}
    await eventually(async () => ['failed', 'completed'].includes((row = ok(await t.request('GET', `/api/v1/tasks/${task.id}`, { token: member.access }))).status), 5000, 'the task ends')
    expect(row.status).toBe('failed')
    expect(row.error).toMatchObject({ code: 'FORBIDDEN', message: 'Your group does not allow model beta' })
    const allowed = ok(await t.request('POST', '/api/v1/tasks', { token: member.access, body: { prompt: 'hi', model_id: 'gamma' } }), 202)
    await eventually(async () => ['failed', 'completed'].includes((row = ok(await t.request('GET', `/api/v1/tasks/${allowed.id}`, { token: member.access }))).status), 5000, 'the task ends')
    expect(row.status).toBe('completed')
  })

  test('/v1: a disallowed model is 403 permission_error; /v1/models lists the allowed ones only', async () => {
    const refused = await completion('beta')
    expectOpenAIError(refused, 403, 'model_not_allowed')
    expect(refused.body.error).toMatchObject({ type: 'permission_error', message: 'Your group does not allow model beta' })
    expect(ok(await completion('alpha'))).toMatchObject({ object: 'chat.completion' })
    expect(ok(await t.request('GET', '/v1/models', { token: key })).data.map((m: Json) => m.id).sort()).toEqual(['alpha', 'gamma'])
    const theirs = ok(await t.request('POST', '/api/v1/api-keys', { token: outsider.access, body: { name: 'k' } }), 201).key
    // (the provider's synced models too)
    expect(ok(await t.request('GET', '/v1/models', { token: theirs })).data.map((m: Json) => m.id)).toEqual(expect.arrayContaining(['alpha', 'beta', 'gamma', 'fake']))
    expect(ok(await completion('beta', theirs))).toMatchObject({ object: 'chat.completion' })
  })

  test("a group's rate_limit replaces HEARTH_RATE_LIMIT for its members: with 3, the 4th request within a minute is 429", async () => {
    const g = await groupOf(t, admin.access, 'Limited', { rate_limit: 3 })
    // a fixed one-minute window: should it turn during the four requests, try again with a fresh member
    let u: Account
    for (let attempt = 1; ; attempt++) {
      u = await register(t, 'limited')
      await join(t, admin.access, g.id, u.id)
      const window = Math.floor(Date.now() / 60_000)
      const answers: TestResponse[] = []
      for (let i = 0; i < 4; i++) answers.push(await t.request('GET', '/api/v1/users/me', { token: u.access }))
      if (Math.floor(Date.now() / 60_000) !== window && attempt < 3) continue
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 429])
      expect(answers.map((r) => r.headers.get('ratelimit-limit'))).toEqual(['3', '3', '3', '3'])
      expectProblem(answers[3]!, 429, 'RATE_LIMITED')
      expect(Number(answers[3]!.headers.get('retry-after'))).toBeGreaterThan(0)
      break
    }
    // others keep the instance limit
    const other = await t.request('GET', '/api/v1/users/me', { token: outsider.access })
    expect(other.headers.get('ratelimit-limit')).toBe('100000')
    // raising it applies at once
    ok(await t.request('PUT', `/api/v1/group-admin/${g.id}/settings`, { token: admin.access, body: { rate_limit: 1000 } }))
    const after = await t.request('GET', '/api/v1/users/me', { token: u.access })
    expect([after.status, after.headers.get('ratelimit-limit')]).toEqual([200, '1000'])
  })

  test("new conversations take the group's preset, system prompt and tools for the fields not sent; an agent or a preset named keeps them out", async () => {
    const u = await register(t, 'defaults')
    const presets = ok(await t.request('GET', '/api/v1/presets', { token: u.access })).items as Json[]
    const [groupPreset, chosen] = [presets[0]!, presets[1]!]
    const g = await groupOf(t, admin.access, 'Defaults', { preset_id: groupPreset.id, system_prompt: 'Speak like a pirate', tools: ['current_time'] })
    await join(t, admin.access, g.id, u.id)
    const get = async (body: Json) => ok(await t.request('POST', '/api/v1/conversations', { token: u.access, body }), 201)
    expect(await get({})).toMatchObject({ preset_id: groupPreset.id, system_prompt: 'Speak like a pirate', tools: ['current_time'], model_id: null })
    expect(await get({ system_prompt: 'Mine', tools: [] })).toMatchObject({ preset_id: groupPreset.id, system_prompt: 'Mine', tools: [] })
    expect(await get({ system_prompt: null })).toMatchObject({ system_prompt: null, tools: ['current_time'] })
    expect(await get({ preset_id: chosen.id })).toMatchObject({ preset_id: chosen.id, system_prompt: null, tools: [] })
    const agent = ok(await t.request('POST', '/api/v1/agents', { token: u.access, body: { name: 'own' } }), 201)
    expect(await get({ agent_id: agent.id })).toMatchObject({ agent_id: agent.id, preset_id: null, system_prompt: null, tools: [] })
    // a user in no group: nothing added
    expect(await (async () => ok(await t.request('POST', '/api/v1/conversations', { token: outsider.access, body: {} }), 201))()).toMatchObject({ preset_id: null, system_prompt: null, tools: [] })
    // removed from the group: at once, nothing added
    expect((await t.request('DELETE', `/api/v1/groups/${g.id}/members/${u.id}`, { token: admin.access })).status).toBe(204)
    expect(await get({})).toMatchObject({ preset_id: null, system_prompt: null, tools: [] })
  })
})

// -------------------------------------------------------------------------------------------------

if (DIALECTS.includes('postgres'))
  describe('groups: two instances on one Postgres', () => {
    let a: TestApp
    let b: TestApp
    let fake: FakeLlm
    beforeAll(async () => {
      fake = await startFakeLlm()
      a = await createTestApp('postgres')
      b = await createSecondInstance(a)
    })
    afterAll(async () => {
      await b?.close()
      await a?.close()
      await fake?.stop()
    })

    test("a change of a group's allowed models on A is enforced on B at once; so is a new membership and the group's deletion", async () => {
      const admin = await register(a, 'admin')
      const member = await register(a, 'member')
      await withModels(a, admin.access, fake)
      const key = ok(await a.request('POST', '/api/v1/api-keys', { token: member.access, body: { name: 'k' } }), 201).key
      const onB = (model: string) => b.request('POST', '/v1/chat/completions', { token: key, body: { model, messages: [{ role: 'user', content: 'hi' }] } })
      const g = await groupOf(a, admin.access, 'Shared', {})
      await join(a, admin.access, g.id, member.id)
      // B has the member's (empty) group effect in memory
      expect((await onB('beta')).status).toBe(200)
      ok(await a.request('PUT', `/api/v1/group-admin/${g.id}/settings`, { token: admin.access, body: { allowed_model_ids: ['alpha'] } }))
      await eventually(async () => (await onB('beta')).status === 403, 5000, 'B refuses beta')
      expectOpenAIError(await onB('beta'), 403, 'model_not_allowed')
      expect((await onB('alpha')).status).toBe(200)
      // left: B lets them use it again
      expect((await a.request('DELETE', `/api/v1/groups/${g.id}/members/${member.id}`, { token: admin.access })).status).toBe(204)
      await eventually(async () => (await onB('beta')).status === 200, 5000, 'B allows beta')
      // joined again, then the group deleted
      await join(a, admin.access, g.id, member.id)
      await eventually(async () => (await onB('beta')).status === 403, 5000, 'B refuses beta again')
      expect((await a.request('DELETE', `/api/v1/groups/${g.id}`, { token: admin.access })).status).toBe(204)
      await eventually(async () => (await onB('beta')).status === 200, 5000, 'B allows beta once the group is gone')
    }, 30_000)
  })
