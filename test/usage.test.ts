/**
 * Usage and credits (docs/api.md §9): the admin usage aggregation by UTC day, user and model, each
 * user's own stats, and settling recorded calls against credits in one batch.
 */
import { beforeAll, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { register, useCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'

type Json = Record<string, any>

eachDialect('usage aggregates and stats', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)))
  beforeAll(async () => {
    const { user, other } = ctx.accounts
    const { db, t: tables } = t.deps.database
    const row = (userId: string, model: string, at: string, inputTokens: number, outputTokens: number, cost: number, status: 'ok' | 'error' = 'ok') =>
      ({ userId, providerId: null, model, source: 'chat' as const, inputTokens, outputTokens, cost, latencyMs: 10, ttftMs: 5, status, createdAt: new Date(at) })
    await db.insert(tables.usage).values([
      row(user.id, 'm-alpha', '2026-01-10T00:00:00.000Z', 100, 10, 0.5),
      row(user.id, 'm-alpha', '2026-01-10T23:59:59.000Z', 50, 5, 0.25, 'error'),
      row(user.id, 'm-beta', '2026-01-11T00:30:00.000Z', 10, 1, 0.125),
      row(other.id, 'm-alpha', '2026-01-11T12:00:00.000Z', 7, 3, 0.0625),
      row(other.id, 'm-alpha', '2026-01-10T08:00:00.000Z', 1, 2, 0.03125),
    ])
  })

  const usage = async (query = '', token = ctx.accounts.admin.access) => {
    const res = await t.request('GET', `/api/v1/admin/usage${query}`, { token })
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 200 })
    return res.body.items as Json[]
  }
  const key = (r: Json) => `${r.day}|${r.username}|${r.model}`

  test('admins only', async () => {
    expectProblem(await t.request('GET', '/api/v1/admin/usage'), 401, 'UNAUTHORIZED')
    expectProblem(await t.request('GET', '/api/v1/admin/usage', { token: ctx.accounts.user.access }), 403, 'FORBIDDEN')
    expectProblem(await t.request('GET', '/api/v1/admin/usage?from=yesterday', { token: ctx.accounts.admin.access }), 422, 'VALIDATION_ERROR')
  })

  test('grouped by UTC day, user and model with summed tokens and cost and a call count', async () => {
    const { user, other } = ctx.accounts
    const items = await usage()
    expect(items).toHaveLength(4)
    const by = Object.fromEntries(items.map((r) => [key(r), r]))
    expect(Object.keys(by).sort()).toEqual(
      [`2026-01-10|${user.username}|m-alpha`, `2026-01-10|${other.username}|m-alpha`, `2026-01-11|${user.username}|m-beta`, `2026-01-11|${other.username}|m-alpha`].sort(),
    )
    expect(by[`2026-01-10|${user.username}|m-alpha`]).toEqual({ day: '2026-01-10', user_id: user.id, username: user.username, model: 'm-alpha', calls: 2, input_tokens: 150, output_tokens: 15, cost: 0.75, errors: 1 })
    expect(by[`2026-01-10|${other.username}|m-alpha`]).toEqual({ day: '2026-01-10', user_id: other.id, username: other.username, model: 'm-alpha', calls: 1, input_tokens: 1, output_tokens: 2, cost: 0.03125, errors: 0 })
    expect(by[`2026-01-11|${user.username}|m-beta`]).toMatchObject({ calls: 1, input_tokens: 10, output_tokens: 1, cost: 0.125, errors: 0 })
    expect(by[`2026-01-11|${other.username}|m-alpha`]).toMatchObject({ calls: 1, input_tokens: 7, output_tokens: 3, cost: 0.0625 })
    // ordered by day
    expect(items.map((r) => r.day)).toEqual(['2026-01-10', '2026-01-10', '2026-01-11', '2026-01-11'])
  })

  test('filters: from (inclusive), to (exclusive), user_id, model', async () => {
    const { user, other } = ctx.accounts
    expect((await usage('?from=2026-01-11')).map(key).sort()).toEqual([`2026-01-11|${other.username}|m-alpha`, `2026-01-11|${user.username}|m-beta`].sort())
    expect((await usage('?to=2026-01-11')).map((r) => r.day)).toEqual(['2026-01-10', '2026-01-10'])
    const fromTime = await usage(`?from=${encodeURIComponent('2026-01-10T12:00:00Z')}&to=${encodeURIComponent('2026-01-11T00:00:00.000Z')}`)
    expect(fromTime).toEqual([expect.objectContaining({ day: '2026-01-10', user_id: user.id, calls: 1, input_tokens: 50, errors: 1 })])
    const mine = await usage(`?user_id=${other.id}`)
    expect(mine).toHaveLength(2)
    expect(mine.every((r) => r.user_id === other.id)).toBe(true)
    expect(await usage('?model=m-beta')).toEqual([expect.objectContaining({ model: 'm-beta', user_id: user.id, calls: 1 })])
    expect(await usage(`?model=m-alpha&user_id=${user.id}&from=2026-01-10&to=2026-01-12`)).toEqual([expect.objectContaining({ day: '2026-01-10', calls: 2 })])
    expect(await usage('?from=2027-01-01')).toEqual([])
  })

  test('GET /api/v1/admin/usage is a §1 list page: limit and offset are honoured', async () => {
    const first = await t.request('GET', '/api/v1/admin/usage?to=2026-01-12&limit=3', { token: ctx.accounts.admin.access })
    expect(first.status).toBe(200)
    expect({ n: first.body.items.length, total: first.body.total, limit: first.body.limit, offset: first.body.offset, has_more: first.body.has_more }).toEqual({ n: 3, total: 4, limit: 3, offset: 0, has_more: true })
    const rest = await t.request('GET', '/api/v1/admin/usage?to=2026-01-12&limit=3&offset=3', { token: ctx.accounts.admin.access })
    expect({ n: rest.body.items.length, offset: rest.body.offset, has_more: rest.body.has_more }).toEqual({ n: 1, offset: 3, has_more: false })
    expectProblem(await t.request('GET', '/api/v1/admin/usage?limit=1000', { token: ctx.accounts.admin.access }), 422, 'VALIDATION_ERROR')
  })

  test("GET /users/me/stats sums the caller's own usage", async () => {
    const { user, other, admin } = ctx.accounts
    const mine = await t.request('GET', '/api/v1/users/me/stats', { token: user.access })
    expect(mine.status).toBe(200)
    expect(mine.body).toMatchObject({ input_tokens: 160, output_tokens: 16, cost: 0.875 })
    const theirs = await t.request('GET', '/api/v1/users/me/stats', { token: other.access })
    expect(theirs.body).toMatchObject({ input_tokens: 8, output_tokens: 5, cost: 0.09375 })
    expect((await t.request('GET', '/api/v1/users/me/stats', { token: admin.access })).body).toMatchObject({ input_tokens: 0, output_tokens: 0, cost: 0 })
  })

  test('a deleted user keeps their usage rows (user_id null)', async () => {
    const gone = await register(t, 'gone')
    const { db, t: tables } = t.deps.database
    await db.insert(tables.usage).values({ userId: gone.id, providerId: null, model: 'm-gone', source: 'gateway', inputTokens: 4, outputTokens: 4, cost: 0, status: 'ok', createdAt: new Date('2026-02-01T00:00:00Z') })
    expect((await t.request('DELETE', `/api/v1/admin/users/${gone.id}`, { token: ctx.accounts.admin.access })).status).toBe(204)
    expect(await usage('?model=m-gone')).toEqual([expect.objectContaining({ day: '2026-02-01', user_id: null, username: null, calls: 1, input_tokens: 4 })])
  })
})

eachDialect('usage settlement', (dialect) => {
  test('records settled together are written as one batch; a record whose user is gone fails alone', async () => {
    const t = await createTestApp(dialect, { HEARTH_CREDITS: 'on' })
    const a = await register(t, 'settle_a')
    const b = await register(t, 'settle_b')
    const { db, t: tables } = t.deps.database
    await db.update(tables.users).set({ creditBalance: 10 }).where(eq(tables.users.id, a.id))
    const usage = t.deps.services.usage
    const rec = (userId: string, model: string, cost: number) =>
      ({ userId, providerId: null, model, source: 'gateway' as const, inputTokens: 3, outputTokens: 2, cost, latencyMs: 7, ttftMs: 1, status: 'ok' as const })
    const held = await usage.reserve(a.id, 4)
    await Promise.all([usage.settle(rec(a.id, 'batch-1', 1.5), held), usage.settle(rec('no-such-user', 'batch-2', 1), 0), usage.settle(rec(a.id, 'batch-3', 0.25), 0), usage.settle(rec(b.id, 'batch-4', 2), 0)])
    const rows = await db.select().from(tables.usage)
    expect(rows.map((r) => [r.model, r.userId, r.cost, r.latencyMs, r.status]).sort()).toEqual([
      ['batch-1', a.id, 1.5, 7, 'ok'],
      ['batch-3', a.id, 0.25, 7, 'ok'],
      ['batch-4', b.id, 2, 7, 'ok'],
    ])
    expect(new Set(rows.map((r) => r.id)).size).toBe(3)
    for (const r of rows) expect(Math.abs(r.createdAt.getTime() - Date.now())).toBeLessThan(10_000)
    const [ua] = await db.select().from(tables.users).where(eq(tables.users.id, a.id))
    const [ub] = await db.select().from(tables.users).where(eq(tables.users.id, b.id))
    // a: held 4, used 1.5 + 0.25 → balance 10 - 1.75; b had no hold → balance 0 - 2
    expect({ a: [ua!.creditBalance, ua!.creditUsed], b: [ub!.creditBalance, ub!.creditUsed] }).toEqual({ a: [8.25, 1.75], b: [-2, 2] })
    await t.close()
  })
})
