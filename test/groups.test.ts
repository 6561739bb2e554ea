/**
 * Groups (docs/api.md §21): admins' CRUD and members, group admins' settings and members (with usage
 * only where members allow it), who may do what (a group admin of another group, or a plain member,
 * is 404), and the precedence of effective settings. (Their enforcement, and two instances:
 * groups-enforcement.test.ts.)
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { register, setupCallers, type Account } from './helpers/accounts.ts'
import { createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type ScenarioContext } from './helpers/scenarios.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'
import { groupOf, join, ok, withModels, type Json } from './helpers/groups.ts'

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
