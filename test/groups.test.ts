/**
 * Groups (docs/api.md §21): admins' CRUD and members, group admins' settings and members (with usage
 * only where members allow it), who may do what (a group admin of another group, or a plain member,
 * is 404), the precedence of effective settings, and their enforcement — allowed models in chat,
 * tasks and the /v1 gateway, the group rate limit, defaults for new conversations — and, on
 * Postgres, a change on one instance enforced on another at once.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { register, setupCallers, type Account } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { DIALECTS, eachDialect } from './helpers/db.ts'
import { expectOpenAIError, expectProblem } from './helpers/problems.ts'
import { scenarios, type ScenarioContext } from './helpers/scenarios.ts'
import { readEvents } from './helpers/sse.ts'
import { eventually } from './helpers/streams.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

type Json = Record<string, any>

const ok = (r: TestResponse, status = 200) => {
  expect({ status: r.status, body: r.body }).toMatchObject({ status })
  return r.body as Json
}

/** A fake upstream with one global provider and models alpha (the instance default), beta and gamma. */
async function withModels(t: TestApp, admin: string, fake: FakeLlm) {
  const p = ok(await t.request('POST', '/api/v1/providers', { token: admin, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } }), 201)
  const ids: Record<string, string> = {}
  for (const [name, def, n] of [['alpha', true, 3], ['beta', false, 4], ['gamma', false, 5]] as const) {
    ids[name] = ok(await t.request('POST', '/api/v1/models', { token: admin, body: { provider_id: p.id, name, model_id: `fake:tokens=${n}`, is_default: def } }), 201).id
  }
  return ids
}

const groupOf = async (t: TestApp, admin: string, name: string, settings: Json = {}) => ok(await t.request('POST', '/api/v1/groups', { token: admin, body: { name, settings } }), 201)
const join = async (t: TestApp, admin: string, groupId: string, userId: string, role = 'member') => ok(await t.request('POST', `/api/v1/groups/${groupId}/members`, { token: admin, body: { user_id: userId, role } }), 201)

// -------------------------------------------------------------------------------------------------

type Kind = 'guest' | 'user' | 'member' | 'gadmin' | 'other' | 'admin'
interface Ctx extends ScenarioContext<Kind> {
  a: string
  b: string
  member: Account
  user: Account
}

eachDialect('groups: who may do what', (dialect) => {
  let ctx: Ctx
  beforeAll(async () => {
    const t = await createTestApp(dialect)
    const { accounts } = await setupCallers(t)
    const member = await register(t, 'member')
    const gadmin = await register(t, 'gadmin')
    const admin = accounts.admin.access
    const a = (await groupOf(t, admin, 'Group A', { system_prompt: 'SECRET-A-prompt' })).id
    const b = (await groupOf(t, admin, 'Group B', { system_prompt: 'SECRET-B-prompt' })).id
    await join(t, admin, a, member.id)
    await join(t, admin, a, gadmin.id, 'group_admin')
    // `other` administers B only
    await join(t, admin, b, accounts.other.id, 'group_admin')
    ctx = { t, a, b, member, user: accounts.user, tokens: { admin, user: accounts.user.access, other: accounts.other.access, member: member.access, gadmin: gadmin.access } }
  })
  afterAll(() => ctx.t.close())

  const adminRoutes: [string, (c: Ctx) => string, unknown?][] = [
    ['GET', () => '/api/v1/groups'],
    ['POST', () => '/api/v1/groups', { name: 'nope' }],
    ['GET', (c) => `/api/v1/groups/${c.a}`],
    ['PATCH', (c) => `/api/v1/groups/${c.a}`, { name: 'renamed' }],
    ['DELETE', (c) => `/api/v1/groups/${c.a}`],
    ['GET', (c) => `/api/v1/groups/${c.a}/members`],
    ['POST', (c) => `/api/v1/groups/${c.a}/members`, (c: Ctx) => ({ user_id: c.user.id })],
    ['DELETE', (c) => `/api/v1/groups/${c.a}/members/${c.member.id}`],
  ]
  const groupAdminRoutes: [string, (c: Ctx) => string, unknown?][] = [
    ['GET', (c) => `/api/v1/group-admin/${c.a}/settings`],
    ['PUT', (c) => `/api/v1/group-admin/${c.a}/settings`, { system_prompt: 'overwritten' }],
    ['GET', (c) => `/api/v1/group-admin/${c.a}/members`],
  ]
  const secretA = ['SECRET-A-prompt']

  scenarios<Ctx, Kind>(() => ctx, [
    ...[...adminRoutes, ...groupAdminRoutes, ['GET', () => '/api/v1/users/me/groups'] as const, ['GET', () => '/api/v1/users/me/effective-settings'] as const].map(
      ([method, path, body]) => ({ name: 'needs credentials', as: 'guest' as const, method, path, body, status: 401, code: 'UNAUTHORIZED' }),
    ),
    ...(['user', 'member', 'gadmin', 'other'] as const).flatMap((as) =>
      adminRoutes.map(([method, path, body]) => ({ name: 'admins only', as, method, path, body, status: 403, code: 'FORBIDDEN', notContains: secretA })),
    ),
    ...(['user', 'member', 'other'] as const).flatMap((as) =>
      groupAdminRoutes.map(([method, path, body]) => ({ name: "not their group's admin: 404", as, method, path, body, status: 404, code: 'NOT_FOUND', notContains: secretA })),
    ),
    { name: 'unknown group: 404', as: 'gadmin', method: 'GET', path: '/api/v1/group-admin/nope/settings', status: 404, code: 'NOT_FOUND' },
    { name: 'the group admin of A reads its settings', as: 'gadmin', method: 'GET', path: (c) => `/api/v1/group-admin/${c.a}/settings`, status: 200, check: (r) => expect(r.body.system_prompt).toBe('SECRET-A-prompt') },
    { name: 'the group admin of A is nobody on B', as: 'gadmin', method: 'GET', path: (c) => `/api/v1/group-admin/${c.b}/settings`, status: 404, code: 'NOT_FOUND', notContains: ['SECRET-B-prompt'] },
    { name: 'nor may they change it', as: 'gadmin', method: 'PUT', path: (c) => `/api/v1/group-admin/${c.b}/settings`, body: { system_prompt: 'hijacked' }, status: 404, code: 'NOT_FOUND' },
    { name: "B's settings are unchanged", as: 'other', method: 'GET', path: (c) => `/api/v1/group-admin/${c.b}/settings`, status: 200, check: (r) => expect(r.body.system_prompt).toBe('SECRET-B-prompt') },
    { name: "A's members, for its group admin", as: 'gadmin', method: 'GET', path: (c) => `/api/v1/group-admin/${c.a}/members`, status: 200, check: (r, c) => expect(r.body.items.map((m: Json) => m.user_id)).toContain(c.member.id) },
    { name: 'admins administer every group', as: 'admin', method: 'GET', path: (c) => `/api/v1/group-admin/${c.b}/settings`, status: 200 },
    { name: 'a member sees their group and role', as: 'member', method: 'GET', path: '/api/v1/users/me/groups', status: 200, notContains: secretA,
      check: (r, c) => expect(r.body).toMatchObject({ total: 1, items: [{ id: c.a, name: 'Group A', role: 'member', joined_at: expect.any(String) }] }) },
    { name: 'a group admin sees their role', as: 'other', method: 'GET', path: '/api/v1/users/me/groups', status: 200, check: (r, c) => expect(r.body.items).toMatchObject([{ id: c.b, role: 'group_admin' }]) },
    { name: 'a user in no group has none', as: 'user', method: 'GET', path: '/api/v1/users/me/groups', status: 200, check: (r) => expect(r.body).toMatchObject({ items: [], total: 0 }) },
    { name: "a member's effective system prompt is their group's", as: 'member', method: 'GET', path: '/api/v1/users/me/effective-settings', status: 200,
      check: (r, c) => expect(r.body.system_prompt).toEqual({ value: 'SECRET-A-prompt', source: 'group', group_id: c.a }) },
    { name: "others' are not", as: 'user', method: 'GET', path: '/api/v1/users/me/effective-settings', status: 200, notContains: secretA, check: (r) => expect(r.body.system_prompt).toEqual({ value: null, source: 'instance', group_id: null }) },
  ])
})

// -------------------------------------------------------------------------------------------------

eachDialect('groups: CRUD, members, settings', (dialect) => {
  let t: TestApp
  let fake: FakeLlm
  let admin: Account
  let user: Account
  let models: Record<string, string>
  beforeAll(async () => {
    fake = await startFakeLlm()
    t = await createTestApp(dialect)
    admin = await register(t, 'admin')
    user = await register(t, 'user')
    models = await withModels(t, admin.access, fake)
  })
  afterAll(async () => {
    await t.close()
    await fake.stop()
  })
  const as = (method: string, path: string, body?: unknown, token = admin.access) => t.request(method, path, { token, body })

  test('POST → 201 + Location, unset settings null; GET, list with q, PATCH, 409 on a name taken case-insensitively, DELETE → 204 then 404', async () => {
    const res = await as('POST', '/api/v1/groups', { name: 'Engineering', description: 'builders' })
    const g = ok(res, 201)
    expect(res.headers.get('location')).toBe(`/api/v1/groups/${g.id}`)
    expect(g).toEqual({
      id: expect.any(String),
      name: 'Engineering',
      description: 'builders',
      member_count: 0,
      settings: { default_model_id: null, allowed_model_ids: null, preset_id: null, system_prompt: null, tools: null, rate_limit: null },
      created_at: expect.any(String),
      updated_at: expect.any(String),
    })
    expect(ok(await as('GET', `/api/v1/groups/${g.id}`))).toEqual(g)
    expectProblem(await as('POST', '/api/v1/groups', { name: 'ENGINEERING' }), 409, 'CONFLICT')
    const sales = ok(await as('POST', '/api/v1/groups', { name: 'Sales' }), 201)
    expect(ok(await as('GET', '/api/v1/groups?q=engin')).items.map((x: Json) => x.id)).toEqual([g.id])
    expect(ok(await as('GET', '/api/v1/groups')).total).toBe(2)
    expectProblem(await as('PATCH', `/api/v1/groups/${sales.id}`, { name: 'engineering' }), 409, 'CONFLICT')
    const changed = ok(await as('PATCH', `/api/v1/groups/${g.id}`, { name: 'Eng', description: null, settings: { rate_limit: 10 } }))
    expect(changed).toMatchObject({ name: 'Eng', description: null, settings: { rate_limit: 10, system_prompt: null } })
    expect((await as('DELETE', `/api/v1/groups/${g.id}`)).text).toBe('')
    expectProblem(await as('GET', `/api/v1/groups/${g.id}`), 404, 'NOT_FOUND')
    expectProblem(await as('DELETE', `/api/v1/groups/${g.id}`), 404, 'NOT_FOUND')
    expectProblem(await as('PATCH', `/api/v1/groups/${g.id}`, { name: 'x' }), 404, 'NOT_FOUND')
  })

  test('members: add (201 + Location), change the role (200), list, remove (204, then 404); unknown user 422, unknown group 404; deleting a group ends the memberships', async () => {
    const g = ok(await as('POST', '/api/v1/groups', { name: 'Members' }), 201)
    const res = await as('POST', `/api/v1/groups/${g.id}/members`, { user_id: user.id })
    expect(ok(res, 201)).toEqual({ user_id: user.id, username: user.username, display_name: null, email: user.email, role: 'member', joined_at: expect.any(String) })
    expect(res.headers.get('location')).toBe(`/api/v1/groups/${g.id}/members/${user.id}`)
    const promoted = ok(await as('POST', `/api/v1/groups/${g.id}/members`, { user_id: user.id, role: 'group_admin' }))
    expect(promoted.role).toBe('group_admin')
    expect(ok(await as('GET', `/api/v1/groups/${g.id}`)).member_count).toBe(1)
    expect(ok(await as('GET', `/api/v1/groups/${g.id}/members`))).toMatchObject({ total: 1, items: [{ user_id: user.id, role: 'group_admin' }] })
    expectProblem(await as('POST', `/api/v1/groups/${g.id}/members`, { user_id: 'no-such-user' }), 422, 'VALIDATION_ERROR')
    expectProblem(await as('POST', `/api/v1/groups/${g.id}/members`, { user_id: user.id, role: 'owner' }), 422, 'VALIDATION_ERROR')
    expectProblem(await as('POST', '/api/v1/groups/nope/members', { user_id: user.id }), 404, 'NOT_FOUND')
    expectProblem(await as('GET', '/api/v1/groups/nope/members'), 404, 'NOT_FOUND')
    expect((await as('DELETE', `/api/v1/groups/${g.id}/members/${user.id}`)).status).toBe(204)
    expectProblem(await as('DELETE', `/api/v1/groups/${g.id}/members/${user.id}`), 404, 'NOT_FOUND')
    expect(ok(await as('GET', `/api/v1/groups/${g.id}/members`)).total).toBe(0)

    await join(t, admin.access, g.id, user.id)
    expect(ok(await as('GET', '/api/v1/users/me/groups', undefined, user.access)).total).toBe(1)
    expect((await as('DELETE', `/api/v1/groups/${g.id}`)).status).toBe(204)
    expect(ok(await as('GET', '/api/v1/users/me/groups', undefined, user.access)).total).toBe(0)
    const { db, t: tables } = t.deps.database
    expect(await db.select().from(tables.groupMembers).where(eq(tables.groupMembers.groupId, g.id))).toEqual([])
  })

  test('settings: fields sent set, left out kept, null clears; model names stored as catalogue ids; bad references are 422 naming the field', async () => {
    const g = ok(await as('POST', '/api/v1/groups', { name: 'Settings' }), 201)
    const path = `/api/v1/group-admin/${g.id}/settings`
    const presetId = ok(await as('GET', '/api/v1/presets')).items[0].id as string
    const set = ok(await as('PUT', path, { allowed_model_ids: ['alpha', models.beta], default_model_id: 'beta', preset_id: presetId, system_prompt: 'Be kind', tools: ['current_time', 'current_time'], rate_limit: 30 }))
    expect(set).toEqual({ default_model_id: models.beta, allowed_model_ids: [models.alpha, models.beta], preset_id: presetId, system_prompt: 'Be kind', tools: ['current_time'], rate_limit: 30 })
    expect(ok(await as('PUT', path, { system_prompt: null }))).toEqual({ ...set, system_prompt: null })
    expect(ok(await as('GET', path))).toEqual({ ...set, system_prompt: null })
    expect(ok(await as('GET', `/api/v1/groups/${g.id}`)).settings).toEqual({ ...set, system_prompt: null })

    const invalid: [string, Json, string][] = [
      ['unknown allowed model', { allowed_model_ids: ['alpha', 'nope'] }, 'allowed_model_ids'],
      ['unknown default model', { default_model_id: 'nope' }, 'default_model_id'],
      ['a default outside the allowed list', { default_model_id: 'gamma' }, 'default_model_id'],
      ['unknown preset', { preset_id: 'nope' }, 'preset_id'],
      ['unknown tool', { tools: ['current_time', 'no_such_tool'] }, 'tools'],
      ['system prompt over 20,000 characters', { system_prompt: 'x'.repeat(20_001) }, 'system_prompt'],
      ['rate limit 0', { rate_limit: 0 }, 'rate_limit'],
      ['rate limit over 100000', { rate_limit: 100_001 }, 'rate_limit'],
      ['an empty allowed list', { allowed_model_ids: [] }, 'allowed_model_ids'],
    ]
    for (const [name, body, field] of invalid) {
      const r = await as('PUT', path, body)
      expectProblem(r, 422, 'VALIDATION_ERROR')
      expect({ name, paths: (r.body.errors as Json[]).map((e) => e.path) }).toEqual({ name, paths: expect.arrayContaining([expect.stringContaining(field)]) })
    }
    // the path inside a group's body names `settings`
    const r = await as('POST', '/api/v1/groups', { name: 'Bad', settings: { allowed_model_ids: ['nope'] } })
    expectProblem(r, 422, 'VALIDATION_ERROR')
    expect(r.body.errors).toEqual([{ path: 'settings.allowed_model_ids', message: expect.any(String) }])
    expect(ok(await as('GET', path))).toEqual({ ...set, system_prompt: null })
    // a user's personal model is not a group's to allow
    const own = ok(await t.request('POST', '/api/v1/providers', { token: user.access, body: { name: 'mine', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k' } }), 201)
    const mine = ok(await t.request('POST', '/api/v1/models', { token: user.access, body: { provider_id: own.id, name: 'mine-model', model_id: 'fake:tokens=1' } }), 201)
    expectProblem(await as('PUT', path, { allowed_model_ids: [mine.id] }), 422, 'VALIDATION_ERROR')
  })

  test("group admins see members' usage only where members allow it; admins see everyone's", async () => {
    const g = ok(await as('POST', '/api/v1/groups', { name: 'Usage' }), 201)
    const lead = await register(t, 'lead')
    const shy = await register(t, 'shy')
    const open = await register(t, 'open')
    await join(t, admin.access, g.id, lead.id, 'group_admin')
    await join(t, admin.access, g.id, shy.id)
    await join(t, admin.access, g.id, open.id)
    const { db, t: tables } = t.deps.database
    await db.update(tables.users).set({ usageVisibleToGroupAdmins: true }).where(eq(tables.users.id, open.id))
    await db.insert(tables.usage).values([shy, open].map((u) => ({ userId: u.id, model: 'alpha', source: 'chat' as const, inputTokens: 7, outputTokens: 5, cost: 0.25, latencyMs: 1, status: 'ok' as const })))
    const usageBy = (r: TestResponse) => Object.fromEntries((r.body.items as Json[]).map((m) => [m.user_id, m.usage]))
    const seen = { input_tokens: 7, output_tokens: 5, cost: 0.25 }
    expect(usageBy(await as('GET', `/api/v1/group-admin/${g.id}/members`, undefined, lead.access))).toEqual({ [lead.id]: { input_tokens: 0, output_tokens: 0, cost: 0 }, [shy.id]: null, [open.id]: seen })
    expect(usageBy(await as('GET', `/api/v1/group-admin/${g.id}/members`))).toEqual({ [lead.id]: { input_tokens: 0, output_tokens: 0, cost: 0 }, [shy.id]: seen, [open.id]: seen })
    expectProblem(await as('GET', `/api/v1/group-admin/${g.id}/members`, undefined, shy.access), 404, 'NOT_FOUND')
  })
})

// -------------------------------------------------------------------------------------------------

interface PrecedenceCase {
  name: string
  /** the groups the user joins, in this order */
  groups: Json[]
  preference?: string
  expect: (ids: Record<string, string>, groups: string[]) => Json
}

eachDialect('groups: effective settings precedence', (dialect) => {
  let t: TestApp
  let fake: FakeLlm
  let admin: Account
  let models: Record<string, string>
  beforeAll(async () => {
    fake = await startFakeLlm()
    t = await createTestApp(dialect, { HEARTH_RATE_LIMIT: '500/min' })
    admin = await register(t, 'admin')
    models = await withModels(t, admin.access, fake)
  })
  afterAll(async () => {
    await t.close()
    await fake.stop()
  })

  const instanceLimit = { value: { limit: 500, window_seconds: 60 }, source: 'instance', group_id: null }
  const cases: PrecedenceCase[] = [
    {
      name: 'instance only: the instance default model, no restriction, HEARTH_RATE_LIMIT',
      groups: [],
      expect: (m) => ({
        default_model_id: { value: m.alpha, source: 'instance', group_id: null },
        allowed_model_ids: { value: null, source: 'instance', group_ids: [] },
        preset_id: { value: null, source: 'instance', group_id: null },
        system_prompt: { value: null, source: 'instance', group_id: null },
        tools: { value: null, source: 'instance', group_ids: [] },
        rate_limit: instanceLimit,
      }),
    },
    {
      name: "one group: its settings",
      groups: [{ default_model_id: 'beta', allowed_model_ids: ['beta', 'gamma'], system_prompt: 'One', tools: ['current_time'], rate_limit: 40 }],
      expect: (m, [g]) => ({
        default_model_id: { value: m.beta, source: 'group', group_id: g },
        allowed_model_ids: { value: [m.beta, m.gamma], source: 'group', group_ids: [g] },
        preset_id: { value: null, source: 'instance', group_id: null },
        system_prompt: { value: 'One', source: 'group', group_id: g },
        tools: { value: ['current_time'], source: 'group', group_ids: [g] },
        rate_limit: { value: { limit: 40, window_seconds: 60 }, source: 'group', group_id: g },
      }),
    },
    {
      name: 'two groups: scalars from the oldest membership that sets them, lists united, the highest rate limit',
      groups: [
        { system_prompt: 'First', allowed_model_ids: ['alpha'], tools: ['current_time'], rate_limit: 20 },
        { system_prompt: 'Second', default_model_id: 'gamma', allowed_model_ids: ['gamma'], tools: ['web_search', 'current_time'], rate_limit: 90 },
        // a group that sets neither list nor scalars restricts nothing and lifts nothing
        {},
      ],
      expect: (m, [g1, g2]) => ({
        default_model_id: { value: m.gamma, source: 'group', group_id: g2 },
        allowed_model_ids: { value: [m.alpha, m.gamma], source: 'group', group_ids: [g1, g2] },
        preset_id: { value: null, source: 'instance', group_id: null },
        system_prompt: { value: 'First', source: 'group', group_id: g1 },
        tools: { value: ['current_time', 'web_search'], source: 'group', group_ids: [g1, g2] },
        rate_limit: { value: { limit: 90, window_seconds: 60 }, source: 'group', group_id: g2 },
      }),
    },
    {
      name: "the user's own default model beats the group's",
      groups: [{ default_model_id: 'beta' }],
      preference: 'gamma',
      expect: () => ({ default_model_id: { value: 'gamma', source: 'preference', group_id: null }, rate_limit: instanceLimit }),
    },
  ]

  for (const c of cases)
    test(c.name, async () => {
      const u = await register(t, 'prec')
      const groups: string[] = []
      for (const [i, settings] of c.groups.entries()) {
        const g = await groupOf(t, admin.access, `${u.username}-${i}`, settings)
        await join(t, admin.access, g.id, u.id)
        groups.push(g.id)
      }
      if (c.preference) ok(await t.request('PUT', '/api/v1/users/me/preferences', { token: u.access, body: { default_model_id: c.preference } }))
      const got = ok(await t.request('GET', '/api/v1/users/me/effective-settings', { token: u.access }))
      expect(got).toMatchObject(c.expect(models, groups))
    })

  test('a default model preference the groups do not allow is refused (422), nothing saved', async () => {
    const u = await register(t, 'pref')
    const g = await groupOf(t, admin.access, `${u.username}-g`, { allowed_model_ids: ['alpha'] })
    await join(t, admin.access, g.id, u.id)
    const r = await t.request('PUT', '/api/v1/users/me/preferences', { token: u.access, body: { default_model_id: 'beta', theme: 'dark' } })
    expectProblem(r, 422, 'VALIDATION_ERROR')
    expect(ok(await t.request('GET', '/api/v1/users/me/preferences', { token: u.access }))).toMatchObject({ default_model_id: null, theme: 'system' })
    expect(ok(await t.request('PUT', '/api/v1/users/me/preferences', { token: u.access, body: { default_model_id: 'alpha' } })).default_model_id).toBe('alpha')
  })
})

// -------------------------------------------------------------------------------------------------

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
