/**
 * Background tasks (docs/api.md §16) against the fake upstream: an agent task's events in order and
 * stored as steps, Last-Event-ID re-attach, tool calls through the tool loop, cancel (pending, and
 * running: the upstream call aborted within a second), retry, failure after max attempts, SIGTERM
 * hand-back (close()), external tasks' steps and playback timing, shares, IDOR rows and bad input;
 * tools that need approval pause the task until `POST /tasks/{id}/tool-approvals` (approve, deny,
 * timeout, cancel, IDOR, and on Postgres a decision posted to another instance).
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { setupCallers, type CallersContext } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { readEvents } from './helpers/sse.ts'
import { scenarios } from './helpers/scenarios.ts'
import { eventually } from './helpers/streams.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'
import { createAgentRunner } from '../src/modules/tasks/agent-runner.ts'
import { createTaskApprovals } from '../src/modules/tasks/approvals.ts'
import { createTaskEngine } from '../src/tasks/engine.ts'

type Json = Record<string, any>

eachDialect('tasks', (dialect) => {
  let t: TestApp
  let fake: FakeLlm
  let ctx: CallersContext
  let server: ReturnType<typeof Bun.serve>
  let base: string
  let user: string

  beforeAll(async () => {
    fake = await startFakeLlm()
    t = await createTestApp(dialect, { HEARTH_TASK_RETRY_MS: '20', HEARTH_TASK_USER_CONCURRENCY: '2' })
    server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: t.app.fetch, idleTimeout: 30 })
    base = `http://127.0.0.1:${server.port}/api/v1`
    ctx = await setupCallers(t)
    user = ctx.tokens.user!
    const provider = await t.request('POST', '/api/v1/providers', { token: ctx.tokens.admin, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
    expect(provider.status).toBe(201)
    for (const [name, id, def] of [
      ['quick', 'fake:tokens=4', true],
      ['tooly', 'fake:tokens=3,calls=current_time,rounds=2', false],
      ['hang', 'fake:hang=30000', false],
      ['slow', 'fake:tokens=50,delay=20', false],
      ['broken', 'fake:fail=500', false],
    ] as const) {
      const r = await t.request('POST', '/api/v1/models', { token: ctx.tokens.admin, body: { provider_id: provider.body.id, name, model_id: id, is_default: def } })
      expect({ status: r.status, body: r.body }).toMatchObject({ status: 201 })
    }
  })

  afterAll(async () => {
    server?.stop(true)
    await t?.close()
    await fake?.stop()
  })

  const create = async (body: Json, token = user) => {
    const r = await t.request('POST', '/api/v1/tasks', { token, body })
    expect({ status: r.status, body: r.body }).toMatchObject({ status: 202 })
    return r.body as Json
  }
  const events = (id: string, headers: Record<string, string> = {}) => fetch(`${base}/tasks/${id}/events`, { headers: { authorization: `Bearer ${user}`, ...headers } })
  const task = async (id: string) => (await t.request('GET', `/api/v1/tasks/${id}`, { token: user })).body as Json
  const waitFor = async (id: string, statuses: string[], ms = 4000) => {
    let row: Json = {}
    await eventually(async () => statuses.includes((row = await task(id)).status), ms, `task ${id} ${statuses}`)
    return row
  }

  test('an agent task: 202 + Location, then task_started … agent_message, usage, task_completed, all stored as steps in order', async () => {
    const r = await t.request('POST', '/api/v1/tasks', { token: user, body: { prompt: 'Say hi' } })
    expect(r.status).toBe(202)
    expect(r.headers.get('location')).toBe(`/api/v1/tasks/${r.body.id}`)
    expect(r.body).toMatchObject({ kind: 'agent', status: 'pending', input: { prompt: 'Say hi' }, attempts: 0, max_attempts: 3, progress: 0 })
    const got = await readEvents(await events(r.body.id))
    const stored = got.filter((e) => e.id !== undefined)
    expect(stored.map((e) => e.event)).toEqual(['task_started', 'agent_message', 'usage', 'task_completed'])
    expect(stored.map((e) => e.id)).toEqual([1, 2, 3, 4])
    expect(stored[0]!.data).toEqual({ task_id: r.body.id, attempt: 1 })
    expect(stored[1]!.data).toEqual({ agent: 'assistant', content: 'tok0 tok1 tok2 tok3 ' })
    expect(stored[3]!.data).toEqual({ task_id: r.body.id, result: { content: 'tok0 tok1 tok2 tok3 ' } })
    const done = await task(r.body.id)
    expect(done).toMatchObject({ status: 'completed', progress: 100, result: { content: 'tok0 tok1 tok2 tok3 ' }, error: null, attempts: 1 })
    expect(done.usage.output_tokens).toBe(4)
    const steps = await t.request('GET', `/api/v1/tasks/${r.body.id}/steps`, { token: user })
    expect(steps.body.items.map((s: Json) => [s.seq, s.step])).toEqual([[1, 'task_started'], [2, 'agent_message'], [3, 'usage'], [4, 'task_completed']])
    const usageOnly = await t.request('GET', `/api/v1/tasks/${r.body.id}/steps?step=usage`, { token: user })
    expect(usageOnly.body.total).toBe(1)
    // re-attach after the second event: the rest, exactly once; /stream is the same
    const rest = await readEvents(await fetch(`${base}/tasks/${r.body.id}/stream`, { headers: { authorization: `Bearer ${user}`, 'last-event-id': '2' } }))
    expect(rest.map((e) => e.id)).toEqual([3, 4])
  })

  test('use_stream: the events stream at once, deltas (live, no id) while the turn streams', async () => {
    const res = await fetch(`${base}/tasks`, { method: 'POST', headers: { authorization: `Bearer ${user}`, 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Stream', model_id: 'slow', use_stream: true }) })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('text/event-stream')
    const got = await readEvents(res)
    const deltas = got.filter((e) => e.event === 'delta')
    expect(deltas.length).toBeGreaterThan(10)
    expect(deltas.every((e) => e.id === undefined)).toBe(true)
    expect(got.at(-1)!.event).toBe('task_completed')
    const ids = got.filter((e) => e.id !== undefined).map((e) => e.id!)
    expect(ids).toEqual([...ids].sort((a, b) => a - b))
  })

  test('tools: tool_called and tool_result steps, progress as steps advance, max_steps respected', async () => {
    const body = await create({ prompt: 'What time is it?', model_id: 'tooly', tools: ['current_time'], max_steps: 5 })
    const got = await readEvents(await events(body.id))
    const names = got.filter((e) => e.id !== undefined).map((e) => e.event)
    expect(names).toEqual(['task_started', 'agent_message', 'usage', 'tool_called', 'tool_result', 'task_progress', 'agent_message', 'usage', 'tool_called', 'tool_result', 'task_progress', 'agent_message', 'usage', 'task_completed'])
    const called = got.find((e) => e.event === 'tool_called')!.data
    const result = got.find((e) => e.event === 'tool_result')!.data
    expect(called).toMatchObject({ tool: 'current_time' })
    expect(result).toMatchObject({ id: called.id, tool: 'current_time', is_error: false })
    expect(got.find((e) => e.event === 'task_progress')!.data).toEqual({ progress: 20, message: 'Step 1 of at most 5 done' })
    // max_steps 2: one round of calls, then an answer without tools
    const capped = await create({ prompt: 'Again', model_id: 'tooly', tools: ['current_time'], max_steps: 2 })
    const capEvents = await readEvents(await events(capped.id))
    expect(capEvents.filter((e) => e.event === 'agent_message')).toHaveLength(2)
    expect(capEvents.at(-1)!.event).toBe('task_completed')
  })

  test('cancel: a pending task at once; a running one aborts its upstream call within 1 s; finished: 409', async () => {
    const running = await create({ prompt: 'hang to be cancelled', model_id: 'hang' })
    const running2 = await create({ prompt: 'hang', model_id: 'hang' })
    await waitFor(running.id, ['running'])
    await waitFor(running2.id, ['running'])
    // the user's cap (2) holds the third back
    const pending = await create({ prompt: 'wait' })
    await Bun.sleep(100)
    expect((await task(pending.id)).status).toBe('pending')
    const c1 = await t.request('POST', `/api/v1/tasks/${pending.id}/cancel`, { token: user })
    expect(c1.body).toMatchObject({ status: 'cancelled' })
    const follow = readEvents(await events(running.id))
    const started = performance.now()
    const c2 = await t.request('POST', `/api/v1/tasks/${running.id}/cancel`, { token: user })
    expect({ status: c2.status, body: c2.body }).toMatchObject({ status: 200, body: { status: 'cancelled' } })
    await eventually(() => t.deps.services.taskEngine.running === 1, 1000, 'the cancelled run ended')
    expect(performance.now() - started).toBeLessThan(1000)
    // the upstream saw its streaming request closed by the client within 1 s of the cancel
    const upstream = fake.requests.filter((q) => JSON.stringify(q.body).includes('hang to be cancelled'))
    expect(upstream).toHaveLength(1)
    expect(upstream[0]!.body).toMatchObject({ stream: true })
    await eventually(() => upstream[0]!.abortedAt !== undefined, 1000, 'the upstream request was aborted')
    expect(upstream[0]!.abortedAt! - started).toBeLessThan(1000)
    const got = await follow
    expect(got.at(-1)).toMatchObject({ event: 'task_cancelled', data: { task_id: running.id } })
    expect((await t.request('POST', `/api/v1/tasks/${running.id}/cancel`, { token: user })).status).toBe(409)
    expect((await t.request('DELETE', `/api/v1/tasks/${running2.id}`, { token: user })).status).toBe(409)
    await t.request('POST', `/api/v1/tasks/${running2.id}/cancel`, { token: user })
    // nothing after the cancel was written by the aborted worker
    const steps = (await t.request('GET', `/api/v1/tasks/${running.id}/steps`, { token: user })).body.items as Json[]
    expect(steps.at(-1)!.step).toBe('task_cancelled')
  })

  test('retry with backoff on upstream failures, failed after max_attempts; POST /retry puts it back', async () => {
    const body = await create({ prompt: 'fail', model_id: 'broken' })
    const row = await waitFor(body.id, ['failed'], 5000)
    expect(row).toMatchObject({ status: 'failed', attempts: 3, error: { code: 'UPSTREAM_ERROR' } })
    const steps = ((await t.request('GET', `/api/v1/tasks/${body.id}/steps`, { token: user })).body.items as Json[]).map((s) => s.step)
    expect(steps).toEqual(['task_started', 'message_created', 'task_started', 'message_created', 'task_started', 'error'])
    const retry = await t.request('POST', `/api/v1/tasks/${body.id}/retry`, { token: user })
    expect({ status: retry.status, body: retry.body }).toMatchObject({ status: 202, body: { error: null } })
    expect(['pending', 'running']).toContain(retry.body.status)
    await waitFor(body.id, ['failed'], 5000)
    const done = await create({ prompt: 'ok' })
    await waitFor(done.id, ['completed'])
    expect((await t.request('POST', `/api/v1/tasks/${done.id}/retry`, { token: user })).status).toBe(409)
  })

  test('quota: a balance too small for the turn fails the task with QUOTA_EXCEEDED at once, not retried', async () => {
    const enforced = await createTestApp(dialect, { HEARTH_CREDITS: 'on', HEARTH_TASK_RETRY_MS: '20' })
    try {
      const c = await setupCallers(enforced)
      const provider = await enforced.request('POST', '/api/v1/providers', { token: c.tokens.admin, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
      expect(provider.status).toBe(201)
      const model = await enforced.request('POST', '/api/v1/models', { token: c.tokens.admin, body: { provider_id: provider.body.id, name: 'priced', model_id: 'fake:tokens=4', is_default: true, input_price: 1000, output_price: 1000 } })
      expect(model.status).toBe(201)
      // whatever the user has, take it all away: a hold needs a balance above 0
      const before = (await enforced.request('GET', '/api/v1/users/me/credits', { token: c.tokens.user })).body as Json
      if (before.balance !== 0) {
        const patch = await enforced.request('PATCH', `/api/v1/admin/users/${c.accounts.user.id}`, { token: c.tokens.admin, body: { credits_delta: -before.balance } })
        expect(patch.status).toBe(200)
      }
      expect((await enforced.request('GET', '/api/v1/users/me/credits', { token: c.tokens.user })).body).toMatchObject({ balance: 0, enforced: true })
      const upstreamBefore = fake.requests.length
      const r = await enforced.request('POST', '/api/v1/tasks', { token: c.tokens.user, body: { prompt: 'hi, with no credits' } })
      expect(r.status).toBe(202)
      let row: Json = {}
      await eventually(async () => ['completed', 'failed'].includes((row = (await enforced.request('GET', `/api/v1/tasks/${r.body.id}`, { token: c.tokens.user })).body).status), 4000, 'the task ended')
      expect(row).toMatchObject({ status: 'failed', attempts: 1, result: null, error: { code: 'QUOTA_EXCEEDED' } })
      // not put back for a retry: still failed, one attempt, after several retry delays
      await Bun.sleep(200)
      expect((await enforced.request('GET', `/api/v1/tasks/${r.body.id}`, { token: c.tokens.user })).body).toMatchObject({ status: 'failed', attempts: 1 })
      const steps = ((await enforced.request('GET', `/api/v1/tasks/${r.body.id}/steps`, { token: c.tokens.user })).body.items as Json[])
      expect(steps.filter((s) => s.step === 'task_started')).toHaveLength(1)
      expect(steps.at(-1)).toMatchObject({ step: 'error' })
      expect(JSON.stringify(steps.at(-1))).toContain('QUOTA_EXCEEDED')
      // refused before any upstream call
      expect(fake.requests.slice(upstreamBefore).some((q) => JSON.stringify(q.body).includes('with no credits'))).toBe(false)
    } finally {
      await enforced.close()
    }
  })

  test('close() hands running tasks back at once: pending, lease cleared, not counted as an attempt', async () => {
    if (dialect !== 'sqlite') return // the Postgres hand-back is covered with two instances (tasks-instances.test.ts)
    const first = await createTestApp(dialect, {})
    const c = await setupCallers(first)
    const provider = await first.request('POST', '/api/v1/providers', { token: c.tokens.admin, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
    await first.request('POST', '/api/v1/models', { token: c.tokens.admin, body: { provider_id: provider.body.id, name: 'hang', model_id: 'fake:hang=30000', is_default: true } })
    const r = await first.request('POST', '/api/v1/tasks', { token: c.tokens.user, body: { prompt: 'hang' } })
    await eventually(async () => (await first.request('GET', `/api/v1/tasks/${r.body.id}`, { token: c.tokens.user })).body.status === 'running')
    const started = performance.now()
    await first.deps.services.taskEngine.close()
    expect(performance.now() - started).toBeLessThan(1000)
    const [row] = await first.deps.database.db.select().from(first.deps.database.t.tasks).where(eq(first.deps.database.t.tasks.id, r.body.id))
    expect(row).toMatchObject({ status: 'pending', attempts: 0, leaseOwner: null })
    await first.close()
  })

  test('external tasks: created running, steps posted and pushed live, a terminal step ends it; steps CRUD; playback timing; shares', async () => {
    const ext = await create({ kind: 'external', title: 'Robot run', input: { robot: 7 } })
    expect(ext).toMatchObject({ kind: 'external', status: 'running', title: 'Robot run', input: { robot: 7 } })
    const live = readEvents(await events(ext.id))
    const s1 = await t.request('POST', `/api/v1/tasks/${ext.id}/steps`, { token: user, body: { step: 'moved', data: { x: 1 } } })
    expect({ status: s1.status, body: s1.body }).toMatchObject({ status: 201, body: { seq: 1, step: 'moved', data: { x: 1 }, task_id: ext.id } })
    const s2 = await t.request('POST', `/api/v1/tasks/${ext.id}/steps`, { token: user, body: { step: 'task_progress', data: { progress: 50, message: 'half' } } })
    expect(s2.status).toBe(201)
    const put = await t.request('PUT', `/api/v1/steps/${s1.body.id}`, { token: user, body: { data: { x: 2 } } })
    expect(put.body).toMatchObject({ seq: 1, data: { x: 2 } })
    expect((await t.request('GET', `/api/v1/steps/${s1.body.id}`, { token: user })).body.data).toEqual({ x: 2 })
    expect((await t.request('GET', `/api/v1/steps/${s1.body.id}`, { token: ctx.tokens.other })).status).toBe(404)
    expect((await task(ext.id)).progress).toBe(50)
    const s3 = await t.request('POST', `/api/v1/tasks/${ext.id}/steps`, { token: user, body: { step: 'task_completed', data: { result: { ok: true } } } })
    expect(s3.status).toBe(201)
    const got = await live
    expect(got.map((e) => [e.id, e.event])).toEqual([[1, 'step'], [2, 'task_progress'], [3, 'task_completed']])
    expect(got[0]!.data).toEqual({ step: 'moved', data: { x: 1 } })
    expect(await task(ext.id)).toMatchObject({ status: 'completed', result: { ok: true } })
    expect((await t.request('POST', `/api/v1/tasks/${ext.id}/steps`, { token: user, body: { step: 'late' } })).status).toBe(409)

    // playback: the delay between steps, then done
    const started = performance.now()
    const played = await readEvents(await fetch(`${base}/tasks/${ext.id}/playback?delay=0.2`, { headers: { authorization: `Bearer ${user}` } }))
    expect(played.map((e) => e.event)).toEqual(['step', 'task_progress', 'task_completed', 'done'])
    const gaps = played.slice(1, 3).map((e, i) => e.at - played[i]!.at)
    // arrival times jitter on a loaded machine (one late event shortens the next gap): each gap near 200 ms, the two together at least 380
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(120)
    expect(gaps[0]! + gaps[1]!).toBeGreaterThanOrEqual(380)
    expect(performance.now() - started).toBeLessThan(3000)
    expect((await t.request('GET', `/api/v1/tasks/${ext.id}/playback?delay=6`, { token: user })).status).toBe(422)

    // share: a frozen snapshot without auth, its playback, and the conversation shares on the same route
    const share = await t.request('POST', `/api/v1/tasks/${ext.id}/share`, { token: user })
    expect({ status: share.status, body: share.body }).toMatchObject({ status: 201, body: { url: `/api/v1/share/${share.body.share_token}` } })
    await t.request('POST', `/api/v1/tasks/${ext.id}/steps`, { token: user, body: { step: 'after' } }) // 409: finished; the snapshot is frozen anyway
    const shown = await t.request('GET', `/api/v1/share/${share.body.share_token}`)
    expect({ status: shown.status, body: shown.body }).toMatchObject({ status: 200, body: { task: { id: ext.id, status: 'completed' } } })
    expect(shown.body.steps).toHaveLength(3)
    const sharedPlay = await readEvents(await fetch(`${base}/share/${share.body.share_token}/playback?delay=0`))
    expect(sharedPlay.map((e) => e.event)).toEqual(['step', 'task_progress', 'task_completed', 'done'])
    expect((await t.request('DELETE', `/api/v1/tasks/${ext.id}/share`, { token: user })).status).toBe(204)
    expect((await t.request('GET', `/api/v1/share/${share.body.share_token}`)).status).toBe(404)
    const conv = await t.request('POST', '/api/v1/conversations', { token: user, body: { title: 'Shared chat' } })
    const convShare = await t.request('POST', `/api/v1/conversations/${conv.body.id}/share`, { token: user })
    expect((await t.request('GET', `/api/v1/share/${convShare.body.share_token}`)).body).toMatchObject({ title: 'Shared chat' })

    // steps of tasks Hearth runs cannot be posted, changed or deleted
    const agentTask = await create({ prompt: 'x' })
    expect((await t.request('POST', `/api/v1/tasks/${agentTask.id}/steps`, { token: user, body: { step: 'mine' } })).status).toBe(409)
    await waitFor(agentTask.id, ['completed'])
    const first = (await t.request('GET', `/api/v1/tasks/${agentTask.id}/steps`, { token: user })).body.items[0]
    expect((await t.request('PUT', `/api/v1/steps/${first.id}`, { token: user, body: { data: 1 } })).status).toBe(409)
    expect((await t.request('DELETE', `/api/v1/steps/${first.id}`, { token: user })).status).toBe(409)
    const del = await t.request('DELETE', `/api/v1/steps/${s1.body.id}`, { token: user })
    expect(del.status).toBe(204)
  })

  test('bad input: unknown agent or model, max_steps out of range, 1 MB prompt, huge step data, bad filters', async () => {
    const bad = async (body: unknown, status: number, path?: string) => {
      const r = await t.request('POST', '/api/v1/tasks', { token: user, body })
      expect({ status: r.status, body: r.body }).toMatchObject({ status })
      if (path) expect(JSON.stringify(r.body.errors)).toContain(path)
      return r
    }
    await bad({ prompt: 'x', agent_id: 'nope' }, 422, 'agent_id')
    await bad({ prompt: 'x', model_id: 'nope' }, 422, 'model_id')
    await bad({ prompt: 'x', max_steps: 0 }, 422, 'max_steps')
    await bad({ prompt: 'x', max_steps: 51 }, 422, 'max_steps')
    await bad({}, 422, 'prompt')
    await bad({ prompt: 'x', kind: 'plan' }, 422, 'kind')
    await bad({ prompt: 'x'.repeat(1024 * 1024 + 10) }, 413)
    expect((await t.request('GET', '/api/v1/tasks?status=weird', { token: user })).status).toBe(422)
    const ext = await create({ kind: 'external' })
    const huge = await t.request('POST', `/api/v1/tasks/${ext.id}/steps`, { token: user, body: { step: 'big', data: 'y'.repeat(300_000) } })
    expect(huge.status).toBe(413)
    expect((await t.request('POST', `/api/v1/tasks/${ext.id}/steps`, { token: user, body: { step: 'bad name\n' } })).status).toBe(422)
    // another user's global-less personal agent is unknown here; a global active agent works
    const { db, t: tables } = t.deps.database
    const [mine] = await db.insert(tables.agents).values({ userId: ctx.accounts.other.id, name: 'theirs' }).returning()
    await bad({ prompt: 'x', agent_id: mine!.id }, 422, 'agent_id')
    const [global] = await db.insert(tables.agents).values({ userId: null, name: 'helper', systemPrompt: 'Be brief' }).returning()
    const ok = await create({ prompt: 'x', agent_id: global!.id })
    const got = await readEvents(await events(ok.id))
    expect(got.find((e) => e.event === 'agent_message')!.data.agent).toBe('helper')
    // the run is one of the agent's executions
    let executions: Json = {}
    await eventually(async () => (executions = (await t.request('GET', `/api/v1/agents/${global!.id}/executions`, { token: user })).body).items?.[0]?.status === 'completed')
    expect(executions.items).toHaveLength(1)
    expect(executions.items[0]).toMatchObject({ task_id: ok.id, execution_type: 'task', status: 'completed', tool_calls: 0 })
    expect(executions.items[0].token_usage.output_tokens).toBe(4)
    const filtered = await t.request('GET', `/api/v1/tasks?agent_id=${global!.id}&kind=agent&status=completed`, { token: user })
    expect(filtered.body.items.map((i: Json) => i.id)).toEqual([ok.id])
  })

  test('deleting a task ends its open streams with `deleted`', async () => {
    const ext = await create({ kind: 'external' })
    const live = readEvents(await events(ext.id))
    await Bun.sleep(50)
    expect((await t.request('DELETE', `/api/v1/tasks/${ext.id}`, { token: user })).status).toBe(204)
    const got = await live
    expect(got.at(-1)).toMatchObject({ event: 'deleted', data: { code: 'NOT_FOUND', reason: 'task_deleted' } })
    expect((await t.request('GET', `/api/v1/tasks/${ext.id}`, { token: user })).status).toBe(404)
  })

  test('stats and system status count tasks', async () => {
    const stats = await t.request('GET', '/api/v1/users/me/stats', { token: user })
    expect(stats.body.tasks).toBeGreaterThan(5)
    const status = await t.request('GET', '/api/v1/system/status', { token: ctx.tokens.admin })
    expect(status.body.counts.tasks).toBeGreaterThanOrEqual(stats.body.tasks)
  })

  let ownId = ''
  test('IDOR setup', async () => {
    ownId = (await create({ kind: 'external' })).id
  })
  scenarios(() => ctx, [
    { name: 'guest', as: 'guest', method: 'GET', path: '/api/v1/tasks', status: 401 },
    { name: 'own list', as: 'user', method: 'GET', path: '/api/v1/tasks', status: 200 },
    { name: "another's task", as: 'other', method: 'GET', path: () => `/api/v1/tasks/${ownId}`, status: 404 },
    { name: "admin, another's task", as: 'admin', method: 'GET', path: () => `/api/v1/tasks/${ownId}`, status: 404 },
    { name: "another's cancel", as: 'other', method: 'POST', path: () => `/api/v1/tasks/${ownId}/cancel`, status: 404 },
    { name: "another's retry", as: 'other', method: 'POST', path: () => `/api/v1/tasks/${ownId}/retry`, status: 404 },
    { name: "another's delete", as: 'other', method: 'DELETE', path: () => `/api/v1/tasks/${ownId}`, status: 404 },
    { name: "another's events", as: 'other', method: 'GET', path: () => `/api/v1/tasks/${ownId}/events`, status: 404 },
    { name: "another's steps", as: 'other', method: 'GET', path: () => `/api/v1/tasks/${ownId}/steps`, status: 404 },
    { name: "another's step post", as: 'other', method: 'POST', path: () => `/api/v1/tasks/${ownId}/steps`, body: { step: 'x' }, status: 404 },
    { name: "another's playback", as: 'other', method: 'GET', path: () => `/api/v1/tasks/${ownId}/playback`, status: 404 },
    { name: "another's share", as: 'other', method: 'POST', path: () => `/api/v1/tasks/${ownId}/share`, status: 404 },
    { name: 'guest create', as: 'guest', method: 'POST', path: '/api/v1/tasks', body: { prompt: 'x' }, status: 401 },
    { name: 'own get', as: 'user', method: 'GET', path: () => `/api/v1/tasks/${ownId}`, status: 200 },
  ])
})

/** how long a task's tool call waits for approval here (then it is refused) */
const APPROVAL_TIMEOUT_MS = 2_000

eachDialect('tasks: tool approvals', (dialect) => {
  let t: TestApp
  let fake: FakeLlm
  let ctx: CallersContext
  let user: string

  beforeAll(async () => {
    fake = await startFakeLlm()
    t = await createTestApp(dialect, {}, { toolApprovalTimeoutMs: APPROVAL_TIMEOUT_MS })
    ctx = await setupCallers(t)
    user = ctx.tokens.user!
    const provider = await t.request('POST', '/api/v1/providers', { token: ctx.tokens.admin, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
    expect(provider.status).toBe(201)
    const model = await t.request('POST', '/api/v1/models', { token: ctx.tokens.admin, body: { provider_id: provider.body.id, name: 'clock', model_id: 'fake:tokens=3,calls=current_time', is_default: true } })
    expect(model.status).toBe(201)
    const setting = await t.request('POST', '/api/v1/configs', { token: user, body: { config_group: 'tools', config_name: 'requires_approval', config_value: 'current_time' } })
    expect(setting.status).toBe(201)
  })

  afterAll(async () => {
    await t?.close()
    await fake?.stop()
  })

  const create = async () => {
    const r = await t.request('POST', '/api/v1/tasks', { token: user, body: { prompt: 'What time is it?', tools: ['current_time'] } })
    expect({ status: r.status, body: r.body }).toMatchObject({ status: 202 })
    return r.body.id as string
  }
  const stepsOf = async (id: string) => ((await t.request('GET', `/api/v1/tasks/${id}/steps?limit=100`, { token: user })).body.items as Json[]).map((s) => ({ step: s.step as string, data: s.data as Json }))
  /** the call the task waits for, once its `tool_approval_required` step is stored */
  const pendingCall = async (id: string) => {
    let asked: Json | undefined
    await eventually(async () => !!(asked = (await stepsOf(id)).find((s) => s.step === 'tool_approval_required')), 4000, `task ${id} asking for approval`)
    return asked!.data
  }
  const decide = (id: string, body: Json, token = user, app = t) => app.request('POST', `/api/v1/tasks/${id}/tool-approvals`, { token, body })
  const finished = async (id: string, ms = 5000) => {
    let row: Json = {}
    await eventually(async () => ['completed', 'failed', 'cancelled'].includes((row = (await t.request('GET', `/api/v1/tasks/${id}`, { token: user })).body).status), ms, `task ${id} finished`)
    return row
  }
  /** the chat requests the fake received since `from` */
  const upstream = (from: number) => fake.requests.slice(from).filter((r) => r.path === '/v1/chat/completions').map((r) => r.body as Json)
  const toolMessage = (body: Json) => (body.messages as Json[]).find((m) => m.role === 'tool')

  test('approve: the task waits (tool_approval_required), then the tool runs and the task completes; a later decision is 409', async () => {
    const id = await create()
    const call = await pendingCall(id)
    expect(call).toMatchObject({ tool: 'current_time', arguments: expect.any(String) })
    expect((await t.request('GET', `/api/v1/tasks/${id}`, { token: user })).body.status).toBe('running')
    const res = await decide(id, { tool_call_id: call.id, approve: true })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ tool_call_id: call.id, tool: 'current_time', arguments: call.arguments, approved: true })
    expect((await finished(id)).status).toBe('completed')
    const steps = await stepsOf(id)
    expect(steps.map((s) => s.step)).toEqual(['task_started', 'agent_message', 'usage', 'tool_called', 'tool_approval_required', 'tool_approval', 'tool_result', 'task_progress', 'agent_message', 'usage', 'task_completed'])
    expect(steps.find((s) => s.step === 'tool_approval')!.data).toEqual({ id: call.id, approved: true, decision: 'approved' })
    expect(steps.find((s) => s.step === 'tool_result')!.data).toMatchObject({ id: call.id, is_error: false })
    expect((await decide(id, { tool_call_id: call.id, approve: false })).status).toBe(409)
  }, 15_000)

  test('deny: the tool is not run, the model is told the user declined, the task completes', async () => {
    const from = fake.requests.length
    const id = await create()
    const call = await pendingCall(id)
    const res = await decide(id, { tool_call_id: call.id, approve: false })
    expect([res.status, res.body.approved]).toEqual([200, false])
    expect((await finished(id)).status).toBe('completed')
    const steps = await stepsOf(id)
    expect(steps.find((s) => s.step === 'tool_approval')!.data).toEqual({ id: call.id, approved: false, decision: 'declined' })
    expect(steps.find((s) => s.step === 'tool_result')!.data).toMatchObject({ id: call.id, is_error: true, result: 'The user declined this tool call: it was not run.' })
    const sent = upstream(from)
    expect(sent).toHaveLength(2)
    expect(JSON.stringify(toolMessage(sent[1]!))).toContain('The user declined this tool call')
  }, 15_000)

  test('no decision in time: a refusal (tool_approval with decision timeout), the model is told, the task completes; a late decision is 409', async () => {
    const from = fake.requests.length
    const id = await create()
    const call = await pendingCall(id)
    expect((await finished(id, APPROVAL_TIMEOUT_MS + 5000)).status).toBe('completed')
    const steps = await stepsOf(id)
    expect(steps.find((s) => s.step === 'tool_approval')!.data).toEqual({ id: call.id, approved: false, decision: 'timeout' })
    expect(JSON.stringify(toolMessage(upstream(from)[1]!))).toContain('did not approve this tool call in time')
    expect((await decide(id, { tool_call_id: call.id, approve: true })).status).toBe(409)
  }, 15_000)

  test("another user's task, an unknown call, a bad body; cancel ends the wait", async () => {
    const id = await create()
    const call = await pendingCall(id)
    expect((await decide(id, { tool_call_id: call.id, approve: true }, ctx.tokens.other)).status).toBe(404)
    expect((await decide(id, { tool_call_id: call.id, approve: true }, ctx.tokens.admin)).status).toBe(404)
    expect((await decide('no-such-task', { tool_call_id: call.id, approve: true })).status).toBe(404)
    expect((await decide(id, { tool_call_id: 'no-such-call', approve: true })).status).toBe(404)
    expect((await decide(id, { tool_call_id: call.id })).status).toBe(422)
    expect((await decide(id, { tool_call_id: '', approve: 'yes' })).status).toBe(422)
    const started = performance.now()
    expect((await t.request('POST', `/api/v1/tasks/${id}/cancel`, { token: user })).status).toBe(200)
    await eventually(() => t.deps.services.taskEngine.running === 0, 2000, 'the worker stopping')
    expect(performance.now() - started).toBeLessThan(APPROVAL_TIMEOUT_MS)
    expect((await finished(id)).status).toBe('cancelled')
    const steps = await stepsOf(id)
    expect(steps.some((s) => s.step === 'tool_approval' || s.step === 'tool_result')).toBe(false)
    expect((await decide(id, { tool_call_id: call.id, approve: true })).status).toBe(409)
  }, 15_000)

  if (dialect === 'postgres')
    test('a decision posted to another instance reaches the worker', async () => {
      const second = await createSecondInstance(t, {}, { toolApprovalTimeoutMs: 30_000 })
      try {
        const id = await create()
        const call = await pendingCall(id)
        // the decision goes to the instance that does not run the task
        await eventually(() => t.deps.services.taskEngine.running + second.deps.services.taskEngine.running === 1, 2000, 'one worker running the task')
        const other = t.deps.services.taskEngine.running ? second : t
        const res = await decide(id, { tool_call_id: call.id, approve: true }, user, other)
        expect([res.status, res.body.approved]).toEqual([200, true])
        expect((await finished(id)).status).toBe('completed')
        expect((await stepsOf(id)).find((s) => s.step === 'tool_result')!.data).toMatchObject({ id: call.id, is_error: false })
      } finally {
        await second.close()
      }
    }, 20_000)

  // last: it stops this app's workers
  test('a task handed back while it waits resumes waiting for the same call (no new question); the decision then reaches the new worker', async () => {
    const id = await create()
    const call = await pendingCall(id)
    const { database, logger, config, services } = t.deps
    await services.taskEngine.close()
    expect((await t.request('GET', `/api/v1/tasks/${id}`, { token: user })).body.status).toBe('pending')
    expect((await decide(id, { tool_call_id: call.id, approve: true })).status).toBe(409)
    // the next worker (another process, as after a crash or a restart)
    const engine = createTaskEngine({ database, bus: services.bus, logger, concurrency: 2, userConcurrency: 2, leaseMs: config.taskLeaseMs, retryBaseMs: 20 })
    engine.registerKind('agent', createAgentRunner({ database, turns: services.turns, tools: services.tools, approvals: createTaskApprovals({ database, engine, timeoutMs: 30_000 }) }))
    engine.start()
    try {
      await eventually(async () => (await stepsOf(id)).filter((s) => s.step === 'task_started').length === 2, 4000, 'the task started again')
      const res = await decide(id, { tool_call_id: call.id, approve: true })
      expect([res.status, res.body.approved]).toEqual([200, true])
      expect((await finished(id)).status).toBe('completed')
      const steps = await stepsOf(id)
      expect(steps.filter((s) => s.step === 'tool_approval_required')).toHaveLength(1)
      expect(steps.filter((s) => s.step === 'tool_result').map((s) => s.data)).toEqual([expect.objectContaining({ id: call.id, is_error: false })])
    } finally {
      await engine.close()
    }
  }, 20_000)
})
