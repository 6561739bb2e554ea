/**
 * Memories: each user's own short facts, invisible (404) to everyone else, at most 200 per user
 * (409 beyond), handed to the chat module oldest first.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { MAX_MEMORIES_PER_USER } from '../src/modules/memories/service.ts'
import { register, setupCallers, useCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'

type Json = Record<string, any>

async function created(res: TestResponse): Promise<Json> {
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
  expect(res.headers.get('location')).toBe(`/api/v1/memories/${res.body.id}`)
  return res.body
}

const ids = (r: TestResponse) => (r.body.items as Json[]).map((i) => i.id as string)
const contents = (r: TestResponse) => (r.body.items as Json[]).map((i) => i.content as string)

/** `n` memories for a user straight into the table, a second apart, oldest first */
async function insertMemories(t: TestApp, userId: string, n: number, prefix = 'fact') {
  const { db, t: tables } = t.deps.database
  const base = Date.now() - n * 1000
  await db.insert(tables.memories).values(Array.from({ length: n }, (_, i) => ({ userId, content: `${prefix} ${i}`, createdAt: new Date(base + i * 1000), updatedAt: new Date(base + i * 1000) })))
}

// -------------------------------------------------------------------------------------------------

interface Ctx extends CallersContext {
  mine: string
}

eachDialect('memories: who may do what', (dialect) => {
  let ctx: Ctx
  beforeAll(async () => {
    const t = await createTestApp(dialect)
    const callers = await setupCallers(t)
    const mine = await created(await t.request('POST', '/api/v1/memories', { token: callers.accounts.user.access, body: { content: 'SECRET-my-dog-is-called-Rex' } }))
    ctx = { ...callers, mine: mine.id }
  })
  afterAll(() => ctx.t.close())

  const endpoints: [string, (c: Ctx) => string, unknown?][] = [
    ['GET', () => '/api/v1/memories'],
    ['POST', () => '/api/v1/memories', { content: 'x' }],
    ['GET', (c) => `/api/v1/memories/${c.mine}`],
    ['PATCH', (c) => `/api/v1/memories/${c.mine}`, { content: 'x' }],
    ['DELETE', (c) => `/api/v1/memories/${c.mine}`],
  ]
  const strangers = ['other', 'admin'] as const
  const secret = ['SECRET-my-dog-is-called-Rex']

  scenarios<Ctx>(() => ctx, [
    ...endpoints.map(([method, path, body]): Scenario<Ctx> => ({ name: 'needs credentials', as: 'guest', method, path, body, status: 401, code: 'UNAUTHORIZED', notContains: secret })),
    ...strangers.flatMap((as): Scenario<Ctx>[] => [
      { name: "another user's memory is invisible", as, method: 'GET', path: (c) => `/api/v1/memories/${c.mine}`, status: 404, code: 'NOT_FOUND', notContains: secret },
      { name: "another user's memory cannot be changed", as, method: 'PATCH', path: (c) => `/api/v1/memories/${c.mine}`, body: { content: 'overwritten' }, status: 404, code: 'NOT_FOUND', notContains: secret },
      { name: "another user's memory cannot be deleted", as, method: 'DELETE', path: (c) => `/api/v1/memories/${c.mine}`, status: 404, code: 'NOT_FOUND' },
      { name: "the list has none of another user's memories", as, method: 'GET', path: '/api/v1/memories', status: 200, notContains: secret, check: (r, c) => expect(ids(r)).not.toContain(c.mine) },
      { name: 'a memory of their own is theirs alone', as, method: 'POST', path: '/api/v1/memories', body: { content: `${as} likes tea` }, status: 201 },
    ]),
    { name: "the owner's memory is unchanged and the owner's list is the owner's alone", as: 'user', method: 'GET', path: '/api/v1/memories', status: 200,
      check: (r, c) => expect({ ids: ids(r), contents: contents(r), total: r.body.total }).toEqual({ ids: [c.mine], contents: secret, total: 1 }) },
    { name: 'the owner reads it', as: 'user', method: 'GET', path: (c) => `/api/v1/memories/${c.mine}`, status: 200, check: (r) => expect(r.body.content).toBe(secret[0]!) },
    { name: 'unknown id', as: 'user', method: 'GET', path: '/api/v1/memories/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: PATCH', as: 'user', method: 'PATCH', path: '/api/v1/memories/nope', body: { content: 'x' }, status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: DELETE', as: 'user', method: 'DELETE', path: '/api/v1/memories/nope', status: 404, code: 'NOT_FOUND' },
  ])
})

// -------------------------------------------------------------------------------------------------

eachDialect('memories', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let user: string
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers), (user = callers.accounts.user.access)))

  const post = (body: unknown, token = user) => t.request('POST', '/api/v1/memories', { token, body })

  test('POST → 201 + Location with the trimmed content; GET reads it back; unknown fields are ignored', async () => {
    const res = await post({ content: '  I prefer metric units.\n', user_id: ctx.accounts.other.id, surprise: 'boo-field' })
    const m = await created(res)
    expect(m).toEqual({ id: expect.any(String), content: 'I prefer metric units.', created_at: expect.any(String), updated_at: expect.any(String) })
    expect(m.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    expect(res.text).not.toContain('boo-field')
    const got = await t.request('GET', `/api/v1/memories/${m.id}`, { token: user })
    expect(got.status).toBe(200)
    expect(got.body).toEqual(m)
    // it is the caller's, whatever the body said
    expectProblem(await t.request('GET', `/api/v1/memories/${m.id}`, { token: ctx.accounts.other.access }), 404, 'NOT_FOUND')
  })

  test('PATCH rewrites the content (trimmed) and moves updated_at; DELETE → 204, then 404', async () => {
    const m = await created(await post({ content: 'I live in Paris' }))
    await Bun.sleep(5)
    const res = await t.request('PATCH', `/api/v1/memories/${m.id}`, { token: user, body: { content: ' I live in Lyon ' } })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ id: m.id, content: 'I live in Lyon', created_at: m.created_at, updated_at: expect.any(String) })
    expect(new Date(res.body.updated_at).getTime()).toBeGreaterThan(new Date(m.updated_at).getTime())
    expectProblem(await t.request('PATCH', `/api/v1/memories/${m.id}`, { token: user, body: {} }), 422, 'VALIDATION_ERROR')
    expectProblem(await t.request('PATCH', `/api/v1/memories/${m.id}`, { token: user, body: { content: '   ' } }), 422, 'VALIDATION_ERROR')
    expect((await t.request('GET', `/api/v1/memories/${m.id}`, { token: user })).body.content).toBe('I live in Lyon')

    const del = await t.request('DELETE', `/api/v1/memories/${m.id}`, { token: user })
    expect(del.status).toBe(204)
    expect(del.text).toBe('')
    expectProblem(await t.request('GET', `/api/v1/memories/${m.id}`, { token: user }), 404, 'NOT_FOUND')
    expectProblem(await t.request('PATCH', `/api/v1/memories/${m.id}`, { token: user, body: { content: 'back' } }), 404, 'NOT_FOUND')
    expectProblem(await t.request('DELETE', `/api/v1/memories/${m.id}`, { token: user }), 404, 'NOT_FOUND')
  })

  const invalid: [string, unknown][] = [
    ['missing content', {}],
    ['empty content', { content: '' }],
    ['blank content', { content: ' \n\t ' }],
    ['content over 2000 characters', { content: 'x'.repeat(2001) }],
    ['content a number', { content: 42 }],
    ['content null', { content: null }],
    ['content an array', { content: ['a', 'b'] }],
  ]
  for (const [name, body] of invalid) {
    test(`POST: ${name} → 422 naming content`, async () => {
      const res = await post(body)
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect((res.body.errors as { path: string }[]).map((e) => e.path)).toContain('content')
    })
  }

  test('2000 characters is the limit, counted after trimming; malformed JSON → 400', async () => {
    const m = await created(await post({ content: `  ${'y'.repeat(2000)}  ` }))
    expect(m.content).toHaveLength(2000)
    expectProblem(await t.request('POST', '/api/v1/memories', { token: user, raw: '{"content":', headers: { 'content-type': 'application/json' } }), 400, 'VALIDATION_ERROR')
  })

  test('the service checks content too (for callers other than the routes)', async () => {
    const memories = t.deps.services.memories
    await expect(memories.create(ctx.accounts.user.id, '   ')).rejects.toMatchObject({ status: 422, code: 'VALIDATION_ERROR' })
    await expect(memories.create(ctx.accounts.user.id, 'z'.repeat(2001))).rejects.toMatchObject({ status: 422, code: 'VALIDATION_ERROR' })
    const m = await memories.create(ctx.accounts.user.id, '  service-made  ')
    expect(m.content).toBe('service-made')
    await expect(memories.update(ctx.accounts.other.id, m.id, 'stolen')).rejects.toMatchObject({ status: 404, code: 'NOT_FOUND' })
    await expect(memories.remove(ctx.accounts.other.id, m.id)).rejects.toMatchObject({ status: 404, code: 'NOT_FOUND' })
    await memories.remove(ctx.accounts.user.id, m.id)
  })

  // docs/api.md §1: every list takes ?limit (1–100, default 50) and ?offset and says so in its page
  test('GET /api/v1/memories is a §1 list page, oldest first', async () => {
    const a = await register(t, 'pager')
    await insertMemories(t, a.id, 5, 'paged')
    const all = await t.request('GET', '/api/v1/memories', { token: a.access })
    expect({ contents: contents(all), total: all.body.total, limit: all.body.limit, offset: all.body.offset, has_more: all.body.has_more }).toEqual({
      contents: ['paged 0', 'paged 1', 'paged 2', 'paged 3', 'paged 4'], total: 5, limit: 50, offset: 0, has_more: false,
    })
    const first = await t.request('GET', '/api/v1/memories?limit=2', { token: a.access })
    expect({ contents: contents(first), total: first.body.total, limit: first.body.limit, has_more: first.body.has_more }).toEqual({ contents: ['paged 0', 'paged 1'], total: 5, limit: 2, has_more: true })
    const middle = await t.request('GET', '/api/v1/memories?limit=2&offset=2', { token: a.access })
    expect({ contents: contents(middle), offset: middle.body.offset, has_more: middle.body.has_more }).toEqual({ contents: ['paged 2', 'paged 3'], offset: 2, has_more: true })
    const last = await t.request('GET', '/api/v1/memories?limit=2&offset=4', { token: a.access })
    expect({ contents: contents(last), has_more: last.body.has_more }).toEqual({ contents: ['paged 4'], has_more: false })
    expect((await t.request('GET', '/api/v1/memories?offset=50', { token: a.access })).body).toMatchObject({ items: [], total: 5, has_more: false })
    for (const q of ['limit=0', 'limit=101', 'limit=abc', 'offset=-1']) expectProblem(await t.request('GET', `/api/v1/memories?${q}`, { token: a.access }), 422, 'VALIDATION_ERROR')
    const fresh = await register(t, 'empty')
    expect((await t.request('GET', '/api/v1/memories', { token: fresh.access })).body).toEqual({ items: [], total: 0, limit: 50, offset: 0, has_more: false })
  })

  test('contextFor: the contents, oldest first, of that user only', async () => {
    const a = await register(t, 'ctx')
    const b = await register(t, 'ctx-other')
    const memories = t.deps.services.memories
    expect(await memories.contextFor(a.id)).toEqual([])
    await insertMemories(t, a.id, 3, 'a-fact')
    await insertMemories(t, b.id, 2, 'b-fact')
    expect(await memories.contextFor(a.id)).toEqual(['a-fact 0', 'a-fact 1', 'a-fact 2'])
    const later = await created(await post({ content: 'newest' }, a.access))
    expect(await memories.contextFor(a.id)).toEqual(['a-fact 0', 'a-fact 1', 'a-fact 2', 'newest'])
    // an edit keeps the place
    await t.request('PATCH', `/api/v1/memories/${later.id}`, { token: a.access, body: { content: 'newest, edited' } })
    const first = (await t.request('GET', '/api/v1/memories?limit=1', { token: a.access })).body.items[0]
    await t.request('PATCH', `/api/v1/memories/${first.id}`, { token: a.access, body: { content: 'a-fact 0, edited' } })
    expect(await memories.contextFor(a.id)).toEqual(['a-fact 0, edited', 'a-fact 1', 'a-fact 2', 'newest, edited'])
    expect(await memories.contextFor(b.id)).toEqual(['b-fact 0', 'b-fact 1'])
  })

  test(`at most ${MAX_MEMORIES_PER_USER} memories per user: one more is 409; deleting one makes room; others are not affected`, async () => {
    expect(MAX_MEMORIES_PER_USER).toBe(200)
    const a = await register(t, 'hoarder')
    await insertMemories(t, a.id, 199)
    const last = await created(await post({ content: 'the 200th' }, a.access))
    const over = await post({ content: 'the 201st' }, a.access)
    expectProblem(over, 409, 'CONFLICT')
    expect(over.body.detail).toContain('200')
    expect((await t.request('GET', '/api/v1/memories?limit=1', { token: a.access })).body.total).toBe(200)
    // editing at the cap is fine
    expect((await t.request('PATCH', `/api/v1/memories/${last.id}`, { token: a.access, body: { content: 'the 200th, edited' } })).status).toBe(200)
    // another user is not affected
    expect((await post({ content: 'room for me' })).status).toBe(201)
    // delete one, and there is room for exactly one
    expect((await t.request('DELETE', `/api/v1/memories/${last.id}`, { token: a.access })).status).toBe(204)
    await created(await post({ content: 'a new 200th' }, a.access))
    expectProblem(await post({ content: 'still too many' }, a.access), 409, 'CONFLICT')
    expect(await t.deps.services.memories.contextFor(a.id)).toHaveLength(200)
  })

  test('the cap holds when requests race: of ten at once with room for one, one wins', async () => {
    const a = await register(t, 'racer')
    await insertMemories(t, a.id, MAX_MEMORIES_PER_USER - 1)
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => post({ content: `race ${i}` }, a.access)))
    expect(results.map((r) => r.status).sort()).toEqual([201, ...Array(9).fill(409)])
    const { db, t: tables } = t.deps.database
    expect(await db.select({ id: tables.memories.id }).from(tables.memories).where(eq(tables.memories.userId, a.id))).toHaveLength(MAX_MEMORIES_PER_USER)
  })

  test('a user’s memories go when the user is deleted', async () => {
    const a = await register(t, 'leaver')
    await created(await post({ content: 'bye' }, a.access))
    expect((await t.request('DELETE', `/api/v1/admin/users/${a.id}`, { token: ctx.accounts.admin.access })).status).toBe(204)
    expect(await t.deps.services.memories.contextFor(a.id)).toEqual([])
  })

  test('/openapi.json documents the memory routes under the Memory tag', async () => {
    const { body } = await t.request('GET', '/openapi.json')
    expect(body.paths['/api/v1/memories'].get.tags).toContain('Memory')
    expect(body.paths['/api/v1/memories'].post.responses['409']).toBeDefined()
    for (const m of ['get', 'patch', 'delete']) expect(body.paths['/api/v1/memories/{id}'][m]).toBeDefined()
  })
})
