/**
 * History (GET /history, docs/api.md §17): the caller's conversations and, with include_tasks, their
 * tasks in one list, newest first, each with its kind and a group by UTC day; nobody else's.
 */
import { expect, test } from 'bun:test'
import { useCallers, type CallersContext } from './helpers/accounts.ts'
import type { TestApp, TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'

type Json = Record<string, any>

const ids = (r: TestResponse) => (r.body.items as Json[]).map((i) => i.id as string)

eachDialect('history', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)))

  test("the caller's conversations and (include_tasks=true) tasks, newest first, with kind and a group by UTC day; others' never; pages", async () => {
    const { db, t: tables } = t.deps.database
    const { user, other } = ctx.accounts
    const DAY = 86_400_000
    const today = Math.floor(Date.now() / DAY) * DAY
    const at = (days: number, hour = 0) => new Date(today - days * DAY + hour * 3_600_000)
    const conv = async (userId: string, title: string, when: Date) => (await db.insert(tables.conversations).values({ userId, title, createdAt: when, updatedAt: when }).returning())[0]!.id
    const task = async (userId: string, title: string, when: Date) => (await db.insert(tables.tasks).values({ userId, kind: 'agent', title, status: 'completed', createdAt: when, updatedAt: when }).returning())[0]!.id
    const c0 = await conv(user.id, 'today', at(0, 0))
    const k1 = await task(user.id, 'yesterday task', at(1, 12))
    const c7 = await conv(user.id, 'a week ago', at(7))
    const k8 = await task(user.id, 'eight days', at(8))
    const c30 = await conv(user.id, 'thirty', at(30))
    const c31 = await conv(user.id, 'older', at(31))
    await conv(other.id, 'SECRET-other', at(0))
    await task(other.id, 'SECRET-other-task', at(0))
    const get = (q: string, token = user.access) => t.request('GET', `/api/v1/history${q}`, { token })
    const all = await get('?include_tasks=true')
    expect(all.status).toBe(200)
    expect(all.text).not.toContain('SECRET')
    expect(all.body.total).toBe(6)
    expect((all.body.items as Json[]).map((i) => [i.id, i.kind, i.group])).toEqual([
      [c0, 'conversation', 'today'],
      [k1, 'task', 'yesterday'],
      [c7, 'conversation', 'previous_7_days'],
      [k8, 'task', 'previous_30_days'],
      [c30, 'conversation', 'previous_30_days'],
      [c31, 'conversation', 'older'],
    ])
    expect(all.body.items[1]).toEqual({ id: k1, kind: 'task', title: 'yesterday task', agent_id: null, status: 'completed', group: 'yesterday', created_at: at(1, 12).toISOString(), updated_at: at(1, 12).toISOString() })
    expect(all.body.items[0]).toMatchObject({ kind: 'conversation', status: null, title: 'today' })
    const convs = await get('')
    expect([convs.body.total, ids(convs)]).toEqual([4, [c0, c7, c30, c31]])
    expect(ids(await get('?include_tasks=false'))).toEqual([c0, c7, c30, c31])
    const paged = await get('?include_tasks=true&limit=2&offset=2')
    expect(paged.body).toMatchObject({ total: 6, limit: 2, offset: 2, has_more: true })
    expect(ids(paged)).toEqual([c7, k8])
    expectProblem(await t.request('GET', '/api/v1/history'), 401, 'UNAUTHORIZED')
    expectProblem(await get('?include_tasks=yes'), 422, 'VALIDATION_ERROR')
    expect((await get('?include_tasks=true', ctx.accounts.admin.access)).body.total).toBe(0)
  })
})
