/**
 * Two instances on one Postgres database (docs/api.md §16): 200 tasks each started exactly once
 * (no lease expires here), claims shared by both instances within the per-user cap, a cancel sent
 * to the instance not running the task aborting it within 3 s (pushed, not seen by a heartbeat), and a task's events followed
 * from the other instance: every event once, in order.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { and, count, eq } from 'drizzle-orm'
import { setupCallers, type CallersContext } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp } from './helpers/app.ts'
import { TEST_DATABASE_URL } from './helpers/db.ts'
import { readEvents } from './helpers/sse.ts'
import { eventually } from './helpers/streams.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

const ENV = { HEARTH_TASK_CONCURRENCY: '8', HEARTH_TASK_USER_CONCURRENCY: '3' }

describe.skipIf(!TEST_DATABASE_URL)('tasks on two instances [postgres]', () => {
  let a: TestApp
  let b: TestApp
  let fake: FakeLlm
  let ctx: CallersContext

  beforeAll(async () => {
    fake = await startFakeLlm()
    a = await createTestApp('postgres', ENV)
    b = await createSecondInstance(a, ENV)
    ctx = await setupCallers(a)
    const provider = await a.request('POST', '/api/v1/providers', { token: ctx.tokens.admin, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
    await a.request('POST', '/api/v1/models', { token: ctx.tokens.admin, body: { provider_id: provider.body.id, name: 'quick', model_id: 'fake:tokens=2,delay=5', is_default: true } })
    await a.request('POST', '/api/v1/models', { token: ctx.tokens.admin, body: { provider_id: provider.body.id, name: 'hang', model_id: 'fake:hang=30000' } })
    await a.request('POST', '/api/v1/models', { token: ctx.tokens.admin, body: { provider_id: provider.body.id, name: 'slow', model_id: 'fake:tokens=20,delay=15,calls=current_time,rounds=2' } })
  }, 30_000)

  afterAll(async () => {
    await b?.close()
    await a?.close()
    await fake?.stop()
  })

  test('200 tasks: each started exactly once, both instances claim, the per-user cap holds across them', async () => {
    const { db, t } = a.deps.database
    const users = ['admin', 'user', 'other'] as const
    const ids: string[] = []
    let maxRunning = 0
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        const rows = await db.select({ userId: t.tasks.userId, n: count() }).from(t.tasks).where(eq(t.tasks.status, 'running')).groupBy(t.tasks.userId)
        for (const r of rows) maxRunning = Math.max(maxRunning, Number(r.n))
        await Bun.sleep(10)
      }
    })()
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const app = i % 2 ? a : b
        const r = await app.request('POST', '/api/v1/tasks', { token: ctx.tokens[users[i % 3]!], body: { prompt: `task ${i}` } })
        expect(r.status).toBe(202)
        ids.push(r.body.id)
      }),
    )
    await eventually(async () => {
      const [n] = await db.select({ n: count() }).from(t.tasks).where(eq(t.tasks.status, 'completed'))
      return Number(n?.n) === 200
    }, 30_000, 'all 200 completed')
    sampling = false
    await sampler
    const started = await db.select({ taskId: t.taskSteps.taskId, n: count() }).from(t.taskSteps).where(eq(t.taskSteps.step, 'task_started')).groupBy(t.taskSteps.taskId)
    expect(started).toHaveLength(200)
    expect(started.every((s) => Number(s.n) === 1)).toBe(true)
    const rows = await db.select({ attempts: t.tasks.attempts }).from(t.tasks)
    expect(rows.every((r) => r.attempts === 1)).toBe(true)
    expect(a.deps.services.taskEngine.claimed).toBeGreaterThan(10)
    expect(b.deps.services.taskEngine.claimed).toBeGreaterThan(10)
    expect(a.deps.services.taskEngine.claimed + b.deps.services.taskEngine.claimed).toBe(200)
    expect(maxRunning).toBeLessThanOrEqual(3)
  }, 60_000)

  test('cancel through the instance not running the task aborts it within 3 s, long before a heartbeat (10 s) could have seen it', async () => {
    const r = await a.request('POST', '/api/v1/tasks', { token: ctx.tokens.user, body: { prompt: 'hang, cancelled elsewhere', model_id: 'hang' } })
    const { db, t } = a.deps.database
    let owner: string | null = null
    await eventually(async () => {
      const [row] = await db.select({ owner: t.tasks.leaseOwner }).from(t.tasks).where(and(eq(t.tasks.id, r.body.id), eq(t.tasks.status, 'running')))
      return !!(owner = row?.owner ?? null)
    })
    const [runner, other] = owner === a.deps.services.taskEngine.owner ? [a, b] : [b, a]
    // the claim is committed before the claiming instance has read its answer: wait until its run is in the model call
    const upstreamOf = () => fake.requests.filter((q) => JSON.stringify(q.body).includes('hang, cancelled elsewhere'))
    await eventually(() => runner.deps.services.taskEngine.running === 1 && upstreamOf().length === 1, 5000, 'the run is waiting for the model on its instance')
    const startedAt = performance.now()
    const c = await other.request('POST', `/api/v1/tasks/${r.body.id}/cancel`, { token: ctx.tokens.user })
    expect(c.body.status).toBe('cancelled')
    await eventually(() => runner.deps.services.taskEngine.running === 0, 3000, 'the run ended on its instance')
    expect(performance.now() - startedAt).toBeLessThan(3000)
    // the runner's upstream request was closed by the client within 3 s of the cancel
    const upstream = upstreamOf()
    expect(upstream).toHaveLength(1)
    await eventually(() => upstream[0]!.abortedAt !== undefined, 3000, 'the upstream request was aborted')
    expect(upstream[0]!.abortedAt! - startedAt).toBeLessThan(3000)
  }, 15_000)

  test("a task's events followed from the other instance: every event once, in order", async () => {
    const r = await a.request('POST', '/api/v1/tasks', { token: ctx.tokens.user, body: { prompt: 'tools', model_id: 'slow', tools: ['current_time'] } })
    const { db, t } = a.deps.database
    await eventually(async () => ((await db.select({ owner: t.tasks.leaseOwner }).from(t.tasks).where(eq(t.tasks.id, r.body.id)))[0]?.owner ?? null) !== null)
    const [row] = await db.select({ owner: t.tasks.leaseOwner }).from(t.tasks).where(eq(t.tasks.id, r.body.id))
    const follower = row!.owner === a.deps.services.taskEngine.owner ? b : a
    const res = await follower.app.handle(new Request(`http://localhost/api/v1/tasks/${r.body.id}/events`, { headers: { authorization: `Bearer ${ctx.tokens.user}` } }))
    const got = await readEvents(res)
    const ids = got.filter((e) => e.id !== undefined).map((e) => e.id)
    const steps = await db.select({ seq: t.taskSteps.seq }).from(t.taskSteps).where(eq(t.taskSteps.taskId, r.body.id))
    expect(ids).toEqual(steps.map((s) => s.seq).sort((x, y) => x - y))
    expect(got.at(-1)!.event).toBe('task_completed')
    expect(got.some((e) => e.event === 'delta')).toBe(true)
  }, 15_000)
})
