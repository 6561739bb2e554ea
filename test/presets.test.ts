/**
 * Presets (docs/api.md §12): built-ins seeded at start, listed for everyone and read-only for everyone
 * (admins included); each user's own presets invisible (404) to everyone else; validation; pages.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { and, eq, isNull } from 'drizzle-orm'
import { BUILTIN_PRESETS } from '../src/modules/presets/service.ts'
import type { BuiltinTool } from '../src/modules/tools/types.ts'
import { register, setupCallers, unique, type Account, useCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'

type Json = Record<string, any>

const BUILTIN_NAMES = ['General assistant', 'Translator', 'Code reviewer', 'Summarizer']

/** 50 tools with names of the longest a tool may have (64 characters): a preset may name as many as that */
const MANY_TOOLS: BuiltinTool[] = Array.from({ length: 50 }, (_, i) => ({
  name: `${i}`.padEnd(64, 't'),
  description: 'A tool to be named',
  inputSchema: { type: 'object' },
  call: async () => ({ content: [], isError: false }),
}))

async function created(res: TestResponse): Promise<Json> {
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
  expect(res.headers.get('location')).toBe(`/api/v1/presets/${res.body.id}`)
  return res.body
}

const ids = (r: TestResponse) => (r.body.items as Json[]).map((i) => i.id as string)
const names = (r: TestResponse) => (r.body.items as Json[]).map((i) => i.name as string)

async function builtinRows(t: TestApp) {
  const { db, t: tables } = t.deps.database
  return db.select().from(tables.presets).where(and(isNull(tables.presets.userId), eq(tables.presets.isBuiltin, true)))
}

// -------------------------------------------------------------------------------------------------

interface Ctx extends CallersContext {
  builtin: string
  mine: string
}

eachDialect('presets: who may do what', (dialect) => {
  let ctx: Ctx
  beforeAll(async () => {
    const t = await createTestApp(dialect)
    const callers = await setupCallers(t)
    const list = await t.request('GET', '/api/v1/presets', { token: callers.accounts.user.access })
    const builtin = (list.body.items as Json[]).find((p) => p.name === 'Translator')!
    const mine = await created(await t.request('POST', '/api/v1/presets', { token: callers.accounts.user.access, body: { name: 'Private helper', system_prompt: 'SECRET-PROMPT-of-user' } }))
    ctx = { ...callers, builtin: builtin.id, mine: mine.id }
  })
  afterAll(() => ctx.t.close())

  const endpoints: [string, (c: Ctx) => string, unknown?][] = [
    ['GET', () => '/api/v1/presets'],
    ['POST', () => '/api/v1/presets', { name: 'x' }],
    ['GET', (c) => `/api/v1/presets/${c.builtin}`],
    ['PATCH', (c) => `/api/v1/presets/${c.builtin}`, { name: 'x' }],
    ['DELETE', (c) => `/api/v1/presets/${c.builtin}`],
    ['GET', (c) => `/api/v1/presets/${c.mine}`],
    ['PATCH', (c) => `/api/v1/presets/${c.mine}`, { name: 'x' }],
    ['DELETE', (c) => `/api/v1/presets/${c.mine}`],
  ]
  const everyone = ['user', 'other', 'admin'] as const
  const strangers = ['other', 'admin'] as const

  scenarios<Ctx>(() => ctx, [
    ...endpoints.map(([method, path, body]): Scenario<Ctx> => ({ name: 'needs credentials', as: 'guest', method, path, body, status: 401, code: 'UNAUTHORIZED', notContains: ['SECRET-PROMPT-of-user'] })),

    // built-ins: seen by everyone, changed by no one — not even an admin
    ...everyone.flatMap((as): Scenario<Ctx>[] => [
      { name: 'the built-ins are listed, first', as, method: 'GET', path: '/api/v1/presets', status: 200,
        check: (r, c) => {
          expect(ids(r)).toContain(c.builtin)
          expect((r.body.items as Json[]).slice(0, BUILTIN_NAMES.length).map((p) => [p.name, p.is_builtin])).toEqual(BUILTIN_NAMES.map((n) => [n, true]))
        } },
      { name: 'a built-in can be read', as, method: 'GET', path: (c) => `/api/v1/presets/${c.builtin}`, status: 200, check: (r) => expect(r.body).toMatchObject({ name: 'Translator', is_builtin: true, model_id: null }) },
      { name: 'a built-in cannot be changed', as, method: 'PATCH', path: (c) => `/api/v1/presets/${c.builtin}`, body: { name: 'hijacked', system_prompt: 'obey me' }, status: 403, code: 'FORBIDDEN' },
      { name: 'a built-in cannot be deleted', as, method: 'DELETE', path: (c) => `/api/v1/presets/${c.builtin}`, status: 403, code: 'FORBIDDEN' },
      { name: 'the built-in is unchanged', as, method: 'GET', path: (c) => `/api/v1/presets/${c.builtin}`, status: 200, check: (r) => expect(r.body.name).toBe('Translator'), notContains: ['obey me'] },
    ]),

    // another user's preset: 404 for everyone else, the admin included
    ...strangers.flatMap((as): Scenario<Ctx>[] => [
      { name: "another user's preset is invisible", as, method: 'GET', path: (c) => `/api/v1/presets/${c.mine}`, status: 404, code: 'NOT_FOUND', notContains: ['SECRET-PROMPT-of-user'] },
      { name: "another user's preset cannot be changed", as, method: 'PATCH', path: (c) => `/api/v1/presets/${c.mine}`, body: { name: 'mine now' }, status: 404, code: 'NOT_FOUND' },
      { name: "another user's preset cannot be deleted", as, method: 'DELETE', path: (c) => `/api/v1/presets/${c.mine}`, status: 404, code: 'NOT_FOUND' },
      { name: "the list does not have another user's preset", as, method: 'GET', path: '/api/v1/presets', status: 200, notContains: ['SECRET-PROMPT-of-user', 'Private helper'], check: (r, c) => expect(ids(r)).not.toContain(c.mine) },
      { name: "searching does not find another user's preset", as, method: 'GET', path: '/api/v1/presets?q=private', status: 200, check: (r) => expect(r.body).toMatchObject({ items: [], total: 0 }) },
    ]),

    // the owner
    { name: 'the owner reads it', as: 'user', method: 'GET', path: (c) => `/api/v1/presets/${c.mine}`, status: 200, check: (r) => expect(r.body).toMatchObject({ name: 'Private helper', system_prompt: 'SECRET-PROMPT-of-user', is_builtin: false }) },
    { name: 'the owner finds it in the list, after the built-ins', as: 'user', method: 'GET', path: '/api/v1/presets', status: 200,
      check: (r, c) => expect({ ids: ids(r).slice(BUILTIN_NAMES.length), total: r.body.total }).toEqual({ ids: [c.mine], total: BUILTIN_NAMES.length + 1 }) },
    { name: 'the owner searches for it', as: 'user', method: 'GET', path: '/api/v1/presets?q=PRIVATE', status: 200, check: (r, c) => expect(ids(r)).toEqual([c.mine]) },
    { name: 'unknown id', as: 'user', method: 'GET', path: '/api/v1/presets/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: PATCH', as: 'admin', method: 'PATCH', path: '/api/v1/presets/nope', body: { name: 'x' }, status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: DELETE', as: 'admin', method: 'DELETE', path: '/api/v1/presets/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'an admin may save presets of their own', as: 'admin', method: 'POST', path: '/api/v1/presets', body: { name: 'Admin helper' }, status: 201, check: (r) => expect(r.body.is_builtin).toBe(false) },
    { name: "the admin's own preset is not another user's", as: 'other', method: 'GET', path: '/api/v1/presets?q=admin%20helper', status: 200, check: (r) => expect(r.body.total).toBe(0) },
  ])
})

// -------------------------------------------------------------------------------------------------

eachDialect('presets', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let user: string
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers), (user = callers.accounts.user.access)), {}, { extraBuiltins: MANY_TOOLS })

  const post = (body: unknown, token = user) => t.request('POST', '/api/v1/presets', { token, body })

  // the models these tests' presets name: a preset's model_id must be one its owner can use
  beforeAll(async () => {
    const admin = ctx.accounts.admin.access
    const provider = await t.request('POST', '/api/v1/providers', { token: admin, body: { name: 'catalogue', type: 'openai', api_key: 'sk-test-0000', scope: 'global' } })
    for (const name of ['gpt-4o-mini', 'm', 'm'.repeat(200)]) expect((await t.request('POST', '/api/v1/models', { token: admin, body: { provider_id: provider.body.id, model_id: name, name } })).status).toBe(201)
  })

  test('the built-ins are seeded at start: good prompts, no model, no tools, no owner', async () => {
    const res = await t.request('GET', '/api/v1/presets', { token: user })
    expect(res.status).toBe(200)
    const builtins = (res.body.items as Json[]).filter((p) => p.is_builtin)
    expect(builtins.map((p) => p.name)).toEqual(BUILTIN_NAMES)
    for (const p of builtins) {
      expect(p).toEqual({ id: expect.any(String), name: expect.any(String), description: expect.any(String), system_prompt: expect.any(String), model_id: null, temperature: p.temperature, max_tokens: null, tools: [], is_builtin: true, created_at: expect.any(String), updated_at: expect.any(String) })
      expect(p.system_prompt.length).toBeGreaterThan(100)
      expect(p.temperature === null || (p.temperature >= 0 && p.temperature <= 2)).toBe(true)
    }
    expect(builtins.find((p) => p.name === 'Translator')!.system_prompt).toMatch(/Chinese/)
    expect((await builtinRows(t)).every((r) => r.userId === null)).toBe(true)
  })

  test('seedBuiltins is idempotent: again and again, and at once from several callers, never a duplicate', async () => {
    const presets = t.deps.services.presets
    expect(await presets.seedBuiltins()).toEqual([])
    expect(await presets.seedBuiltins()).toEqual([])
    expect((await builtinRows(t)).map((r) => r.name).sort()).toEqual([...BUILTIN_NAMES].sort())
    expect(BUILTIN_PRESETS.map((b) => b.name)).toEqual(BUILTIN_NAMES)

    // a missing one comes back, alone; the others keep their ids
    const before = await builtinRows(t)
    const { db, t: tables } = t.deps.database
    await db.delete(tables.presets).where(eq(tables.presets.name, 'Summarizer'))
    const results = await Promise.all([presets.seedBuiltins(), presets.seedBuiltins(), presets.seedBuiltins()])
    expect(results.flat()).toEqual(['Summarizer'])
    const after = await builtinRows(t)
    expect(after.map((r) => r.name).sort()).toEqual([...BUILTIN_NAMES].sort())
    for (const name of ['General assistant', 'Translator', 'Code reviewer']) expect(after.find((r) => r.name === name)!.id).toBe(before.find((r) => r.name === name)!.id)

    // a user's preset of the same name is not a built-in and does not stop the seed
    await created(await post({ name: 'Translator' }))
    await db.delete(tables.presets).where(and(eq(tables.presets.name, 'Translator'), eq(tables.presets.isBuiltin, true)))
    expect(await presets.seedBuiltins()).toEqual(['Translator'])
    expect((await builtinRows(t)).filter((r) => r.name === 'Translator')).toHaveLength(1)
  })

  test('POST → 201 + Location, owned by the caller, never a built-in; GET reads it back', async () => {
    const body = { name: '  Poet  ', description: 'Writes haiku', system_prompt: 'You write haiku.', model_id: 'gpt-4o-mini', temperature: 1.2, max_tokens: 256, tools: ['web_search', 'current_time', 'web_search'], is_builtin: true, user_id: ctx.accounts.other.id, surprise: 'boo-field' }
    const res = await post(body)
    const p = await created(res)
    expect(p).toEqual({ id: expect.any(String), name: 'Poet', description: 'Writes haiku', system_prompt: 'You write haiku.', model_id: 'gpt-4o-mini', temperature: 1.2, max_tokens: 256, tools: ['web_search', 'current_time'], is_builtin: false, created_at: expect.any(String), updated_at: expect.any(String) })
    expect(p.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    expect(res.text).not.toContain('boo-field')
    const got = await t.request('GET', `/api/v1/presets/${p.id}`, { token: user })
    expect(got.status).toBe(200)
    expect(got.body).toEqual(p)
    // the service other modules use
    const row = await t.deps.services.presets.get({ userId: ctx.accounts.user.id }, p.id)
    expect({ systemPrompt: row.systemPrompt, modelId: row.modelId, temperature: row.temperature, maxTokens: row.maxTokens, userId: row.userId }).toEqual({ systemPrompt: 'You write haiku.', modelId: 'gpt-4o-mini', temperature: 1.2, maxTokens: 256, userId: ctx.accounts.user.id })
    await expect(t.deps.services.presets.get({ userId: ctx.accounts.other.id }, p.id)).rejects.toMatchObject({ status: 404, code: 'NOT_FOUND' })
  })

  test('only a name is required; the rest defaults to null and no tools', async () => {
    const p = await created(await post({ name: 'Bare' }))
    expect(p).toMatchObject({ name: 'Bare', description: null, system_prompt: null, model_id: null, temperature: null, max_tokens: null, tools: [], is_builtin: false })
  })

  test('PATCH changes only what it names; null clears; {} changes nothing', async () => {
    const p = await created(await post({ name: 'Patchable', description: 'd', system_prompt: 'sp', model_id: 'm', temperature: 0.5, max_tokens: 100, tools: ['current_time'] }))
    const temp = await t.request('PATCH', `/api/v1/presets/${p.id}`, { token: user, body: { temperature: 0.9 } })
    expect(temp.status).toBe(200)
    expect(temp.body).toEqual({ ...p, temperature: 0.9, updated_at: expect.any(String) })
    expect(new Date(temp.body.updated_at).getTime()).toBeGreaterThanOrEqual(new Date(p.updated_at).getTime())

    const cleared = await t.request('PATCH', `/api/v1/presets/${p.id}`, { token: user, body: { description: null, system_prompt: null, model_id: null, temperature: null, max_tokens: null, tools: [] } })
    expect(cleared.body).toMatchObject({ name: 'Patchable', description: null, system_prompt: null, model_id: null, temperature: null, max_tokens: null, tools: [] })

    const renamed = await t.request('PATCH', `/api/v1/presets/${p.id}`, { token: user, body: { name: 'Renamed', tools: ['http_fetch', 'web_search'] } })
    expect(renamed.body).toMatchObject({ name: 'Renamed', tools: ['http_fetch', 'web_search'], created_at: p.created_at })

    const nothing = await t.request('PATCH', `/api/v1/presets/${p.id}`, { token: user, body: {} })
    expect(nothing.status).toBe(200)
    expect(nothing.body).toMatchObject({ name: 'Renamed', tools: ['http_fetch', 'web_search'] })

    expectProblem(await t.request('PATCH', `/api/v1/presets/${p.id}`, { token: user, body: { name: null } }), 422, 'VALIDATION_ERROR')
    expectProblem(await t.request('PATCH', `/api/v1/presets/${p.id}`, { token: user, body: { temperature: 3 } }), 422, 'VALIDATION_ERROR')
    expectProblem(await t.request('PATCH', `/api/v1/presets/${p.id}`, { token: user, body: { name: '' } }), 422, 'VALIDATION_ERROR')
    expect((await t.request('GET', `/api/v1/presets/${p.id}`, { token: user })).body).toMatchObject({ name: 'Renamed', temperature: null })
  })

  test('tools must be tools the caller may use: other names are 422 naming tools (POST and PATCH), and nothing is saved', async () => {
    const bad = await post({ name: 'Dreamer', tools: ['current_time', 'calculator', 'nope'] })
    expectProblem(bad, 422, 'VALIDATION_ERROR')
    expect(bad.body.errors).toEqual([
      { path: 'tools', message: "unknown tool 'calculator'" },
      { path: 'tools', message: "unknown tool 'nope'" },
    ])
    expect(names(await t.request('GET', '/api/v1/presets?q=dreamer', { token: user }))).toEqual([])

    const p = await created(await post({ name: 'Checked', tools: ['current_time'] }))
    const refused = await t.request('PATCH', `/api/v1/presets/${p.id}`, { token: user, body: { name: 'never', tools: ['current_time', 'nope'] } })
    expectProblem(refused, 422, 'VALIDATION_ERROR')
    expect(refused.body.errors).toEqual([{ path: 'tools', message: "unknown tool 'nope'" }])
    expect((await t.request('GET', `/api/v1/presets/${p.id}`, { token: user })).body).toMatchObject({ name: 'Checked', tools: ['current_time'] })
    // a built-in is still read-only first, whatever the tools
    const builtin = (await t.request('GET', '/api/v1/presets', { token: user })).body.items.find((x: Json) => x.is_builtin)
    expectProblem(await t.request('PATCH', `/api/v1/presets/${builtin.id}`, { token: user, body: { tools: ['nope'] } }), 403, 'FORBIDDEN')
  })

  test('DELETE → 204 with no body, then 404 everywhere', async () => {
    const p = await created(await post({ name: 'Doomed' }))
    const del = await t.request('DELETE', `/api/v1/presets/${p.id}`, { token: user })
    expect(del.status).toBe(204)
    expect(del.text).toBe('')
    expectProblem(await t.request('GET', `/api/v1/presets/${p.id}`, { token: user }), 404, 'NOT_FOUND')
    expectProblem(await t.request('PATCH', `/api/v1/presets/${p.id}`, { token: user, body: { name: 'back' } }), 404, 'NOT_FOUND')
    expectProblem(await t.request('DELETE', `/api/v1/presets/${p.id}`, { token: user }), 404, 'NOT_FOUND')
  })

  const invalid: [string, Json, string][] = [
    ['missing name', { description: 'x' }, 'name'],
    ['empty name', { name: '' }, 'name'],
    ['blank name', { name: '   ' }, 'name'],
    ['name over 100', { name: 'n'.repeat(101) }, 'name'],
    ['name not a string', { name: 42 }, 'name'],
    ['description over 500', { name: 'n', description: 'd'.repeat(501) }, 'description'],
    ['system_prompt over 20000', { name: 'n', system_prompt: 's'.repeat(20_001) }, 'system_prompt'],
    ['system_prompt not a string', { name: 'n', system_prompt: ['be nice'] }, 'system_prompt'],
    ['model_id over 200', { name: 'n', model_id: 'm'.repeat(201) }, 'model_id'],
    ['model_id empty', { name: 'n', model_id: '' }, 'model_id'],
    ['temperature 3', { name: 'n', temperature: 3 }, 'temperature'],
    ['temperature below 0', { name: 'n', temperature: -0.1 }, 'temperature'],
    ['temperature a string', { name: 'n', temperature: '0.5' }, 'temperature'],
    ['max_tokens 0', { name: 'n', max_tokens: 0 }, 'max_tokens'],
    ['max_tokens over 1,000,000', { name: 'n', max_tokens: 1_000_001 }, 'max_tokens'],
    ['max_tokens not an integer', { name: 'n', max_tokens: 1.5 }, 'max_tokens'],
    ['tools not an array', { name: 'n', tools: 'web_search' }, 'tools'],
    ['tools null', { name: 'n', tools: null }, 'tools'],
    ['more than 50 tools', { name: 'n', tools: Array.from({ length: 51 }, (_, i) => `tool_${i}`) }, 'tools'],
    ['a tool name over 100', { name: 'n', tools: ['t'.repeat(101)] }, 'tools.0'],
    ['a tool name not a string', { name: 'n', tools: ['ok', 7] }, 'tools.1'],
    ['an empty tool name', { name: 'n', tools: [''] }, 'tools.0'],
  ]
  for (const [name, body, path] of invalid) {
    test(`POST: ${name} → 422 naming ${path}`, async () => {
      const res = await post(body)
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect((res.body.errors as { path: string }[]).map((e) => e.path)).toContain(path)
    })
  }

  test('POST: malformed JSON → 400; the limits themselves are accepted', async () => {
    expectProblem(await t.request('POST', '/api/v1/presets', { token: user, raw: '{"name":', headers: { 'content-type': 'application/json' } }), 400, 'VALIDATION_ERROR')
    const edge = await post({ name: 'n'.repeat(100), description: 'd'.repeat(500), system_prompt: 's'.repeat(20_000), model_id: 'm'.repeat(200), temperature: 2, max_tokens: 1_000_000, tools: MANY_TOOLS.map((tool) => tool.name) })
    expect(edge.status).toBe(201)
    expect(edge.body.tools).toHaveLength(50)
    const low = await post({ name: 'low', temperature: 0, max_tokens: 1 })
    expect(low.body).toMatchObject({ temperature: 0, max_tokens: 1 })
  })

  // docs/api.md §1: every list takes ?limit (1–100, default 50) and ?offset and says so in its page
  test('GET /api/v1/presets is a §1 list page', async () => {
    const a: Account = await register(t, 'pager')
    const tag = unique('pg')
    for (const n of ['one', 'two', 'three']) await created(await post({ name: `${tag} ${n}` }, a.access))
    const all = await t.request('GET', '/api/v1/presets', { token: a.access })
    expect({ total: all.body.total, limit: all.body.limit, offset: all.body.offset, has_more: all.body.has_more, n: all.body.items.length }).toEqual({ total: BUILTIN_NAMES.length + 3, limit: 50, offset: 0, has_more: false, n: BUILTIN_NAMES.length + 3 })
    // the built-ins first (another test here re-seeds one, so their order is not checked), then the caller's own, oldest first
    const order = names(all)
    expect({ builtins: order.slice(0, BUILTIN_NAMES.length).sort(), own: order.slice(BUILTIN_NAMES.length) }).toEqual({ builtins: [...BUILTIN_NAMES].sort(), own: [`${tag} one`, `${tag} two`, `${tag} three`] })

    const first = await t.request('GET', '/api/v1/presets?limit=3', { token: a.access })
    expect({ names: names(first), total: first.body.total, limit: first.body.limit, has_more: first.body.has_more }).toEqual({ names: order.slice(0, 3), total: 7, limit: 3, has_more: true })
    const middle = await t.request('GET', '/api/v1/presets?limit=3&offset=3', { token: a.access })
    expect({ names: names(middle), offset: middle.body.offset, has_more: middle.body.has_more }).toEqual({ names: order.slice(3, 6), offset: 3, has_more: true })
    const last = await t.request('GET', '/api/v1/presets?limit=3&offset=6', { token: a.access })
    expect({ names: names(last), has_more: last.body.has_more }).toEqual({ names: [`${tag} three`], has_more: false })
    const past = await t.request('GET', '/api/v1/presets?offset=100', { token: a.access })
    expect(past.body).toMatchObject({ items: [], total: 7, has_more: false })

    const searched = await t.request('GET', `/api/v1/presets?q=${encodeURIComponent(tag.toUpperCase())}&limit=2`, { token: a.access })
    expect({ n: searched.body.items.length, total: searched.body.total, has_more: searched.body.has_more }).toEqual({ n: 2, total: 3, has_more: true })

    for (const q of ['limit=0', 'limit=101', 'limit=abc', 'offset=-1']) expectProblem(await t.request('GET', `/api/v1/presets?${q}`, { token: a.access }), 422, 'VALIDATION_ERROR')
    expectProblem(await t.request('GET', `/api/v1/presets?q=${'q'.repeat(101)}`, { token: a.access }), 422, 'VALIDATION_ERROR')
  })

  test('q matches names case-insensitively and treats % and _ literally', async () => {
    const a = await register(t, 'searcher')
    await created(await post({ name: '100% Honest' }, a.access))
    await created(await post({ name: 'snake_case helper' }, a.access))
    await created(await post({ name: 'Plain' }, a.access))
    expect(names(await t.request('GET', '/api/v1/presets?q=%25', { token: a.access }))).toEqual(['100% Honest'])
    expect(names(await t.request('GET', '/api/v1/presets?q=_', { token: a.access }))).toEqual(['snake_case helper'])
    expect(names(await t.request('GET', '/api/v1/presets?q=tRANSLAT', { token: a.access }))).toEqual(['Translator'])
  })

  test('a user’s presets go when the user is deleted; the built-ins stay', async () => {
    const a = await register(t, 'leaver')
    const p = await created(await post({ name: 'Leaver preset' }, a.access))
    const del = await t.request('DELETE', `/api/v1/admin/users/${a.id}`, { token: ctx.accounts.admin.access })
    expect(del.status).toBe(204)
    const { db, t: tables } = t.deps.database
    expect(await db.select().from(tables.presets).where(eq(tables.presets.id, p.id))).toHaveLength(0)
    expect(await builtinRows(t)).toHaveLength(BUILTIN_NAMES.length)
  })

  test('/openapi.json documents the preset routes under the Presets tag', async () => {
    const { body } = await t.request('GET', '/openapi.json')
    expect(body.paths['/api/v1/presets'].get.tags).toContain('Presets')
    for (const m of ['get', 'patch', 'delete']) expect(body.paths['/api/v1/presets/{id}'][m]).toBeDefined()
    expect(body.paths['/api/v1/presets'].post.responses['201']).toBeDefined()
  })
})

// -------------------------------------------------------------------------------------------------

interface ModelCtx extends CallersContext {
  globalModel: { id: string; name: string }
  userModel: { id: string; name: string }
  /** a preset of each caller's own */
  presets: Record<'user' | 'other' | 'admin', string>
}

eachDialect("a preset's model_id: refused where it is saved unless its owner can use it", (dialect) => {
  let ctx: ModelCtx
  beforeAll(async () => {
    const t = await createTestApp(dialect)
    const callers = await setupCallers(t)
    const { admin, user, other } = callers.accounts
    const model = async (token: string, providerBody: Json, name: string) => {
      const provider = await t.request('POST', '/api/v1/providers', { token, body: providerBody })
      const m = await t.request('POST', '/api/v1/models', { token, body: { provider_id: provider.body.id, model_id: name, name } })
      expect(m.status).toBe(201)
      return { id: m.body.id as string, name }
    }
    const globalModel = await model(admin.access, { name: 'shared', type: 'openai', api_key: 'sk-shared-0000', scope: 'global' }, unique('shared-model'))
    const userModel = await model(user.access, { name: 'own', type: 'openai', api_key: 'sk-own-0000' }, unique('own-model'))
    const presetOf = async (token: string) => (await created(await t.request('POST', '/api/v1/presets', { token, body: { name: 'mine' } }))).id as string
    ctx = { ...callers, globalModel, userModel, presets: { user: await presetOf(user.access), other: await presetOf(other.access), admin: await presetOf(admin.access) } }
  })
  afterAll(() => ctx.t.close())

  const refused = (res: TestResponse) => expect((res.body.errors as { path: string }[]).map((e) => e.path)).toEqual(['model_id'])
  const everyone = ['user', 'other', 'admin'] as const
  const strangers = ['other', 'admin'] as const
  const modelIs = (ref: (c: ModelCtx) => string) => (r: TestResponse, c: ModelCtx) => expect(r.body.model_id).toBe(ref(c))
  scenarios<ModelCtx>(() => ctx, [
    { name: 'needs credentials', as: 'guest', method: 'POST', path: '/api/v1/presets', body: (c: ModelCtx) => ({ name: 'x', model_id: c.globalModel.id }), status: 401, code: 'UNAUTHORIZED' },
    // a global model: fine for everyone, by id or by name
    ...everyone.flatMap((as): Scenario<ModelCtx>[] => [
      { name: 'a global model by id', as, method: 'POST', path: '/api/v1/presets', body: (c: ModelCtx) => ({ name: 'g', model_id: c.globalModel.id }), status: 201, check: modelIs((c) => c.globalModel.id) },
      { name: 'a global model by name', as, method: 'PATCH', path: (c) => `/api/v1/presets/${c.presets[as]}`, body: (c: ModelCtx) => ({ model_id: c.globalModel.name }), status: 200, check: modelIs((c) => c.globalModel.name) },
      { name: 'an unknown model is 422 naming model_id', as, method: 'POST', path: '/api/v1/presets', body: { name: 'u', model_id: 'no-such-model' }, status: 422, code: 'VALIDATION_ERROR', check: refused },
      { name: 'null clears it', as, method: 'PATCH', path: (c) => `/api/v1/presets/${c.presets[as]}`, body: { model_id: null }, status: 200, check: (r) => expect(r.body.model_id).toBeNull() },
    ]),
    // the user's own model: theirs to use
    { name: "the owner's personal model by id", as: 'user', method: 'POST', path: '/api/v1/presets', body: (c: ModelCtx) => ({ name: 'p', model_id: c.userModel.id }), status: 201, check: modelIs((c) => c.userModel.id) },
    { name: "the owner's personal model by name", as: 'user', method: 'PATCH', path: (c) => `/api/v1/presets/${c.presets.user}`, body: (c: ModelCtx) => ({ model_id: c.userModel.name }), status: 200, check: modelIs((c) => c.userModel.name) },
    // …and invisible to everyone else, the admin included: refused like an unknown one, and nothing is saved
    ...strangers.flatMap((as): Scenario<ModelCtx>[] => [
      { name: "another user's model by id is 422", as, method: 'POST', path: '/api/v1/presets', body: (c: ModelCtx) => ({ name: 'x', model_id: c.userModel.id }), status: 422, code: 'VALIDATION_ERROR', check: refused },
      { name: "another user's model by name is 422", as, method: 'POST', path: '/api/v1/presets', body: (c: ModelCtx) => ({ name: 'x', model_id: c.userModel.name }), status: 422, code: 'VALIDATION_ERROR', check: refused },
      { name: "another user's model cannot be patched in", as, method: 'PATCH', path: (c) => `/api/v1/presets/${c.presets[as]}`, body: (c: ModelCtx) => ({ name: 'changed', model_id: c.userModel.id }), status: 422, code: 'VALIDATION_ERROR', check: refused },
      { name: 'the refused patch changed nothing', as, method: 'GET', path: (c) => `/api/v1/presets/${c.presets[as]}`, status: 200, check: (r) => expect(r.body).toMatchObject({ name: 'mine', model_id: null }) },
    ]),
  ])
})
