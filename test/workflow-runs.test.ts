/**
 * Workflow runs: `POST /workflows/{id}/runs` → a `workflow` task run on ComfyUI (the fake in
 * test/fakes/comfyui.ts, speaking its real HTTP and WebSocket protocol), its progress as steps, its
 * outputs stored as files, cancel reaching the engine, engine failures as UPSTREAM_ERROR, resume
 * without queueing twice, and no `Origin` header on any request to the engine.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { setupCallers, type CallersContext } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect, TEST_DATABASE_URL } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'
import { readEvents } from './helpers/sse.ts'
import { eventually } from './helpers/streams.ts'
import { apiWorkflow, startFakeComfy, uiWorkflow, type FakeComfy } from './fakes/comfyui.ts'

type Json = Record<string, any>

/** A service and workflows straight into their tables (the workflows API is another module's). */
async function insertService(t: TestApp, url: string, name = `comfy-${crypto.randomUUID().slice(0, 8)}`) {
  const { db, t: tables } = t.deps.database
  const [row] = await db.insert(tables.services).values({ name, url, kind: 'comfyui' }).returning()
  return row!
}
async function insertWorkflow(t: TestApp, userId: string, serviceId: string | null, data: Record<string, unknown>, name = 'Cat pictures') {
  const { db, t: tables } = t.deps.database
  const [row] = await db.insert(tables.workflows).values({ userId, serviceId, name, workflowData: data }).returning()
  return row!
}

function harness(t: () => TestApp, ctx: () => CallersContext) {
  const token = () => ctx().tokens.user!
  const run = (workflowId: string, body: unknown = {}, as = token()) => t().request('POST', `/api/v1/workflows/${workflowId}/runs`, { token: as, body })
  const accepted = async (res: TestResponse) => {
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 202, body: { kind: 'workflow', status: 'pending' } })
    expect(res.headers.get('location')).toBe(`/api/v1/tasks/${res.body.id}`)
    return res.body as Json
  }
  const task = async (id: string) => (await t().request('GET', `/api/v1/tasks/${id}`, { token: token() })).body as Json
  const waitFor = async (id: string, statuses: string[], ms = 8000) => {
    let row: Json = {}
    await eventually(async () => statuses.includes((row = await task(id)).status), ms, `task ${id} ${statuses}`)
    return row
  }
  const steps = async (id: string) => ((await t().request('GET', `/api/v1/tasks/${id}/steps?limit=500`, { token: token() })).body.items as Json[])
  return { token, run, accepted, task, waitFor, steps }
}

// -------------------------------------------------------------------------------------------------

eachDialect('workflow runs', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let fake: FakeComfy
  let serviceId: string
  let workflowId: string
  const h = harness(() => t, () => ctx)

  beforeAll(async () => {
    fake = await startFakeComfy()
    t = await createTestApp(dialect, { HEARTH_TASK_RETRY_MS: '20', HEARTH_WORKFLOW_REQUEST_TIMEOUT_MS: '2000' })
    ctx = await setupCallers(t)
    serviceId = (await insertService(t, fake.url)).id
    workflowId = (await insertWorkflow(t, ctx.accounts.user.id, serviceId, apiWorkflow({ images: 2 }))).id
  })
  afterAll(async () => {
    await t?.close()
    await fake?.stop()
  })

  test('a run through ComfyUI: 202, progress steps in order, the PNG outputs stored as workflow_output files, task_completed with them', async () => {
    const created = await h.accepted(await h.run(workflowId))
    expect(created.input).toEqual({ workflow_id: workflowId, inputs: {} })
    const events = await readEvents(await t.app.handle(new Request(`http://localhost/api/v1/tasks/${created.id}/events`, { headers: { authorization: `Bearer ${h.token()}` } })))
    const names = events.map((e) => e.event)
    expect(names[0]).toBe('task_started')
    expect(names.at(-1)).toBe('task_completed')
    expect(new Set(names.slice(1, -1))).toEqual(new Set(['task_progress']))
    // ids are the seqs, in order
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1))

    const progress = events.filter((e) => e.event === 'task_progress').map((e) => e.data)
    const percents = progress.map((p) => p.progress as number)
    expect(percents).toEqual([...percents].sort((a, b) => a - b))
    const prompt = fake.prompts.at(-1)!
    expect([progress[0].progress, typeof progress[0].prompt_id, typeof progress[0].client_id]).toEqual([0, 'string', 'string'])
    expect([progress[1].progress, progress[1].prompt_id]).toEqual([1, prompt.prompt_id])
    // the prompt was queued for the socket that was already open
    expect(prompt.client_id).toBe(progress[0].client_id)
    expect(fake.sockets.find((s) => s.clientId === prompt.client_id)).toBeDefined()
    expect(progress.filter((p) => p.node === '3' && p.max === 4).map((p) => p.value)).toEqual([1, 2, 3, 4])
    expect(progress.some((p) => p.node === '8' && /Running node 8 \(VAEDecode\)/.test(p.message))).toBe(true)
    // the preview frame (binary) was sent and did not disturb anything
    expect(fake.sockets.find((s) => s.clientId === prompt.client_id)!.frames.some((f) => 'binary' in (f as object))).toBe(true)

    const done = events.at(-1)!.data
    expect(done.task_id).toBe(created.id)
    expect(done.result.prompt_id).toBe(prompt.prompt_id)
    expect(done.result.outputs).toHaveLength(2)
    const stored = progress.filter((p) => p.file_id)
    expect(stored.map((p) => p.file_id)).toEqual(done.result.outputs.map((o: Json) => o.file_id))

    const finished = await h.task(created.id)
    expect(finished).toMatchObject({ status: 'completed', progress: 100, error: null, attempts: 1, result: done.result })

    const listed = (await t.request('GET', '/api/v1/files?purpose=workflow_output', { token: h.token() })).body.items as Json[]
    for (const out of done.result.outputs as Json[]) {
      expect(out).toMatchObject({ node: '9', url: `/api/v1/files/${out.file_id}/content`, content_type: 'image/png' })
      const file = listed.find((f) => f.id === out.file_id)!
      expect(file).toMatchObject({ purpose: 'workflow_output', content_type: 'image/png', file_name: out.file_name })
      const content = await t.app.handle(new Request(`http://localhost${out.url}`, { headers: { authorization: `Bearer ${h.token()}` } }))
      expect(content.status).toBe(200)
      expect(new Uint8Array(await content.arrayBuffer())).toEqual(fake.images.get(out.file_name)!)
    }
    // the workflow was used just now
    const { db, t: tables } = t.deps.database
    const [wf] = await db.select().from(tables.workflows).where(eq(tables.workflows.id, workflowId))
    expect(wf!.lastUsedAt!.getTime()).toBeGreaterThan(Date.now() - 60_000)
  }, 20000)

  test('inputs are set on a copy of the prompt that reaches the engine; the workflow is unchanged', async () => {
    const created = await h.accepted(await h.run(workflowId, { inputs: { '3.seed': 42, '6.text': 'a dog on a skateboard', '5.width': 768 } }))
    await h.waitFor(created.id, ['completed'])
    const sent = fake.prompts.at(-1)!.prompt
    expect(sent['3'].inputs.seed).toBe(42)
    expect(sent['6'].inputs.text).toBe('a dog on a skateboard')
    expect(sent['5'].inputs.width).toBe(768)
    // links are kept as they were
    expect(sent['3'].inputs.model).toEqual(['4', 0])
    const { db, t: tables } = t.deps.database
    const [wf] = await db.select().from(tables.workflows).where(eq(tables.workflows.id, workflowId))
    expect((wf!.workflowData as Json)['3'].inputs.seed).toBe(1)
  }, 15000)

  test('a socket dropped mid-run: the run reads the history, opens the socket again and completes with its outputs', async () => {
    const flaky = await insertWorkflow(t, ctx.accounts.user.id, serviceId, apiWorkflow({ drop_socket: true, delay_ms: 30 }), 'Flaky network')
    const created = await h.accepted(await h.run(flaky.id))
    const done = await h.waitFor(created.id, ['completed'])
    const prompt = fake.prompts.at(-1)!
    expect(done.result.prompt_id).toBe(prompt.prompt_id)
    expect(done.result.outputs).toHaveLength(1)
    expect(fake.sockets.filter((s) => s.clientId === prompt.client_id)).toHaveLength(2)
    expect(fake.requests.some((r) => r.path === `/history/${prompt.prompt_id}`)).toBe(true)
    // progress kept coming on the new socket
    expect((await h.steps(created.id)).some((s) => s.step === 'task_progress' && s.data.node === '9')).toBe(true)
  }, 15000)

  test('no body at all is a run without inputs', async () => {
    const res = await t.request('POST', `/api/v1/workflows/${workflowId}/runs`, { token: h.token() })
    const created = await h.accepted(res)
    expect(created.input).toEqual({ workflow_id: workflowId, inputs: {} })
    await h.waitFor(created.id, ['completed'])
  }, 15000)

  test('inputs that do not fit the workflow: 422 with paths, no task made', async () => {
    const before = (await t.request('GET', '/api/v1/tasks?kind=workflow', { token: h.token() })).body.total
    const res = await h.run(workflowId, { inputs: { '77.seed': 1, '3.nope': 2, seed: 3, '3.steps': 5 } })
    expectProblem(res, 422, 'VALIDATION_ERROR')
    const errors = res.body.errors as { path: string; message: string }[]
    expect(errors.map((e) => e.path).sort()).toEqual(['inputs.3.nope', 'inputs.77.seed', 'inputs.seed'])
    expect(errors.find((e) => e.path === 'inputs.3.nope')!.message).toContain('KSampler')
    expect(errors.find((e) => e.path === 'inputs.77.seed')!.message).toContain("no node '77'")
    expect((await t.request('GET', '/api/v1/tasks?kind=workflow', { token: h.token() })).body.total).toBe(before)
  })

  test('a UI-format workflow is refused with 422 naming the format, before a task is made', async () => {
    const ui = await insertWorkflow(t, ctx.accounts.user.id, serviceId, uiWorkflow(), 'Editor export')
    const res = await h.run(ui.id)
    expectProblem(res, 422, 'VALIDATION_ERROR')
    expect(res.body.detail).toContain('UI format')
    expect(res.body.detail).toContain('Save (API Format)')
    expect(res.body.errors).toEqual([{ path: 'workflow_data', message: expect.stringContaining('UI format') }])
    const odd = await insertWorkflow(t, ctx.accounts.user.id, serviceId, { '1': { inputs: {} } }, 'Not a prompt')
    const r2 = await h.run(odd.id)
    expectProblem(r2, 422, 'VALIDATION_ERROR')
    expect(r2.body.errors[0].path).toBe('workflow_data.1')
  })

  test('a workflow without a service: 422 naming service_id', async () => {
    const lone = await insertWorkflow(t, ctx.accounts.user.id, null, apiWorkflow(), 'No engine')
    const res = await h.run(lone.id)
    expectProblem(res, 422, 'VALIDATION_ERROR')
    expect(res.body.errors[0].path).toBe('service_id')
  })

  test("an engine error fails the task with UPSTREAM_ERROR and the engine's message, not retried", async () => {
    const broken = await insertWorkflow(t, ctx.accounts.user.id, serviceId, apiWorkflow({ error_node: '3', error_message: 'CUDA out of memory. Tried to allocate 2.00 GiB' }), 'Too big')
    const created = await h.accepted(await h.run(broken.id))
    const failed = await h.waitFor(created.id, ['failed'])
    expect(failed.error.code).toBe('UPSTREAM_ERROR')
    expect(failed.error.message).toContain('CUDA out of memory. Tried to allocate 2.00 GiB')
    expect(failed.error.message).toContain('node 3 (KSampler)')
    expect(failed.attempts).toBe(1)
    const last = (await h.steps(created.id)).at(-1)!
    expect(last).toMatchObject({ step: 'error', data: { task_id: created.id, code: 'UPSTREAM_ERROR' } })

    // a retry is a fresh run: the prompt is queued again, not the ended one followed
    const queued = fake.prompts.length
    const retried = await t.request('POST', `/api/v1/tasks/${created.id}/retry`, { token: h.token() })
    expect(retried.status).toBe(202)
    const again = await h.waitFor(created.id, ['failed'])
    expect(fake.prompts.length).toBe(queued + 1)
    expect(again.error.message).toContain('CUDA out of memory')
  }, 15000)

  test('a prompt the engine refuses (400 with node_errors) fails with its message, not retried', async () => {
    const invalid = await insertWorkflow(t, ctx.accounts.user.id, serviceId, apiWorkflow({ invalid_node: '4' }), 'Missing model')
    const queued = fake.prompts.length
    const created = await h.accepted(await h.run(invalid.id))
    const failed = await h.waitFor(created.id, ['failed'])
    expect(failed.error.code).toBe('UPSTREAM_ERROR')
    expect(failed.error.message).toContain('Prompt outputs failed validation')
    expect(failed.error.message).toContain('node 4 (CheckpointLoaderSimple): Value not in list')
    expect(failed.attempts).toBe(1)
    expect(fake.prompts.length).toBe(queued)
  }, 15000)

  test('over the storage quota: the task fails with STORAGE_QUOTA_EXCEEDED and nothing is kept', async () => {
    const { db, t: tables } = t.deps.database
    const other = ctx.accounts.other
    const wf = await insertWorkflow(t, other.id, serviceId, apiWorkflow(), 'Quota')
    await db.update(tables.users).set({ storageQuota: 10 }).where(eq(tables.users.id, other.id))
    const created = await h.accepted(await h.run(wf.id, {}, other.access))
    let row: Json = {}
    await eventually(async () => (row = (await t.request('GET', `/api/v1/tasks/${created.id}`, { token: other.access })).body).status === 'failed', 8000)
    expect(row.error.code).toBe('STORAGE_QUOTA_EXCEEDED')
    expect((await t.request('GET', '/api/v1/files?purpose=workflow_output', { token: other.access })).body.total).toBe(0)
    await db.update(tables.users).set({ storageQuota: null }).where(eq(tables.users.id, other.id))
  }, 15000)

  test('resume: a recorded prompt that finished is followed through /history, not queued again', async () => {
    const clientId = crypto.randomUUID()
    const r = await fetch(`${fake.url}/prompt`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: apiWorkflow(), client_id: clientId }) })
    const { prompt_id } = (await r.json()) as Json
    await eventually(() => fake.prompts.find((p) => p.prompt_id === prompt_id)!.status === 'success')
    const queued = fake.prompts.length
    const id = await crashedTask(t, ctx.accounts.user.id, workflowId, { prompt_id, client_id: clientId })
    const done = await h.waitFor(id, ['completed'])
    expect(done.result.prompt_id).toBe(prompt_id)
    expect(done.result.outputs).toHaveLength(1)
    expect(fake.prompts.length).toBe(queued)
    const file = fake.images.get(done.result.outputs[0].file_name)!
    const content = await t.app.handle(new Request(`http://localhost${done.result.outputs[0].url}`, { headers: { authorization: `Bearer ${h.token()}` } }))
    expect(new Uint8Array(await content.arrayBuffer())).toEqual(file)
  }, 15000)

  test('resume: a recorded prompt still running is followed on its socket; one the engine lost is queued again', async () => {
    const clientId = crypto.randomUUID()
    const r = await fetch(`${fake.url}/prompt`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: apiWorkflow({ delay_ms: 40 }), client_id: clientId }) })
    const { prompt_id } = (await r.json()) as Json
    const queued = fake.prompts.length
    const id = await crashedTask(t, ctx.accounts.user.id, workflowId, { prompt_id, client_id: clientId })
    const done = await h.waitFor(id, ['completed'])
    expect(done.result.prompt_id).toBe(prompt_id)
    expect(fake.prompts.length).toBe(queued)
    const followed = await h.steps(id)
    expect(followed.some((s) => s.step === 'message_created' && s.data.message.includes(`Following prompt ${prompt_id}`))).toBe(true)
    expect(followed.some((s) => s.step === 'task_progress' && s.data.node === '3' && s.data.value === 4)).toBe(true)

    const lost = await crashedTask(t, ctx.accounts.user.id, workflowId, { prompt_id: 'gone-after-a-restart', client_id: crypto.randomUUID() })
    const again = await h.waitFor(lost, ['completed'])
    expect(fake.prompts.length).toBe(queued + 1)
    expect(again.result.prompt_id).toBe(fake.prompts.at(-1)!.prompt_id)
    expect((await h.steps(lost)).some((s) => s.step === 'message_created' && s.data.message.includes('no longer has prompt gone-after-a-restart'))).toBe(true)
  }, 20000)

  describe('who may run what', () => {
    const rows = (): Scenario<CallersContext>[] => [
      { name: 'needs credentials', as: 'guest', method: 'POST', path: () => `/api/v1/workflows/${workflowId}/runs`, body: {}, status: 401, code: 'UNAUTHORIZED' },
      { name: "another user's workflow is not found", as: 'other', method: 'POST', path: () => `/api/v1/workflows/${workflowId}/runs`, body: {}, status: 404, code: 'NOT_FOUND' },
      { name: "an admin cannot run a user's workflow either", as: 'admin', method: 'POST', path: () => `/api/v1/workflows/${workflowId}/runs`, body: {}, status: 404, code: 'NOT_FOUND' },
      { name: 'an unknown workflow', as: 'user', method: 'POST', path: '/api/v1/workflows/nope/runs', body: {}, status: 404, code: 'NOT_FOUND' },
      { name: 'inputs must be an object', as: 'user', method: 'POST', path: () => `/api/v1/workflows/${workflowId}/runs`, body: { inputs: ['3.seed'] }, status: 422, code: 'VALIDATION_ERROR' },
    ]
    scenarios<CallersContext>(() => ctx, rows())
  })

  test('no request to the engine carried an Origin header, HTTP or the WebSocket upgrade', () => {
    expect(fake.requests.length).toBeGreaterThan(10)
    const upgrades = fake.requests.filter((r) => r.path.startsWith('/ws?clientId='))
    expect(upgrades.length).toBeGreaterThan(0)
    expect(upgrades.every((r) => r.headers.upgrade === 'websocket')).toBe(true)
    expect(fake.requests.filter((r) => 'origin' in r.headers)).toEqual([])
    expect(new Set(fake.requests.map((r) => `${r.method} ${r.path.split('?')[0]!.replace(/\/history\/.+/, '/history/{id}')}`))).toEqual(
      new Set(['GET /ws', 'POST /prompt', 'GET /history/{id}', 'GET /view', 'GET /queue']),
    )
  })
})

/** A workflow task as a dead instance left it: running, its lease run out, its recorded steps naming a queued prompt. */
async function crashedTask(t: TestApp, userId: string, workflowId: string, prompt: { prompt_id: string; client_id: string }) {
  const { db, t: tables } = t.deps.database
  const now = new Date()
  const [row] = await db
    .insert(tables.tasks)
    .values({ userId, kind: 'workflow', title: 'Run of Cat pictures', input: { workflow_id: workflowId, inputs: {} }, status: 'running', attempts: 1, leaseOwner: 'dead-instance', leaseUntil: new Date(now.getTime() - 1000), startedAt: now, createdAt: now, updatedAt: now })
    .returning()
  const engine = t.deps.services.taskEngine
  await engine.record(row!.id, 'task_started', { task_id: row!.id, attempt: 1 })
  await engine.record(row!.id, 'task_progress', { progress: 1, message: 'Queued', ...prompt }, { progress: 1 })
  await engine.announce()
  return row!.id
}

// -------------------------------------------------------------------------------------------------

eachDialect('workflow runs: cancel, timeouts, engines that misbehave', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let fake: FakeComfy
  let hanging: FakeComfy
  let redirecting: FakeComfy
  let hangId: string
  const h = harness(() => t, () => ctx)

  beforeAll(async () => {
    fake = await startFakeComfy()
    hanging = await startFakeComfy({ behaviour: 'hang' })
    redirecting = await startFakeComfy({ behaviour: 'redirect' })
    t = await createTestApp(dialect, { HEARTH_TASK_RETRY_MS: '20', HEARTH_WORKFLOW_REQUEST_TIMEOUT_MS: '400', HEARTH_WORKFLOW_RUN_TIMEOUT_MS: '4000' })
    ctx = await setupCallers(t)
    const service = await insertService(t, fake.url)
    hangId = (await insertWorkflow(t, ctx.accounts.user.id, service.id, apiWorkflow({ hang: true }), 'Forever')).id
  })
  afterAll(async () => {
    await t?.close()
    await Promise.all([fake?.stop(), hanging?.stop(), redirecting?.stop()])
  })

  test('cancel: a waiting prompt is taken off the queue, the running one is interrupted (only it), the tasks are cancelled', async () => {
    const first = await h.accepted(await h.run(hangId))
    await eventually(() => fake.prompts.some((p) => p.status === 'running'), 8000, 'the first prompt running')
    const running = fake.prompts.find((p) => p.status === 'running')!
    const second = await h.accepted(await h.run(hangId))
    await eventually(() => fake.prompts.some((p) => p.status === 'pending'), 8000, 'the second prompt queued')
    const waiting = fake.prompts.find((p) => p.status === 'pending')!

    const c2 = await t.request('POST', `/api/v1/tasks/${second.id}/cancel`, { token: h.token() })
    expect({ status: c2.status, body: c2.body }).toMatchObject({ status: 200, body: { status: 'cancelled' } })
    await eventually(() => fake.queueDeletes.some((d) => d.includes(waiting.prompt_id)), 4000, 'the queue delete')
    await eventually(() => waiting.status === 'deleted')
    expect(running.status).toBe('running')
    expect(fake.interrupts).toEqual([])

    const c1 = await t.request('POST', `/api/v1/tasks/${first.id}/cancel`, { token: h.token() })
    expect(c1.status).toBe(200)
    await eventually(() => fake.interrupts.some((b) => (b as Json)?.prompt_id === running.prompt_id), 4000, 'the interrupt')
    await eventually(() => running.status === 'interrupted')
    expect(fake.queueDeletes.some((d) => d.includes(running.prompt_id))).toBe(true)
    for (const id of [first.id, second.id]) {
      const row = await h.task(id)
      expect(row.status).toBe('cancelled')
      expect((await h.steps(id)).at(-1)!.step).toBe('task_cancelled')
    }
  }, 20000)

  test('a run past HEARTH_WORKFLOW_RUN_TIMEOUT_MS is stopped on the engine and fails with UPSTREAM_ERROR', async () => {
    const interrupts = fake.interrupts.length
    const created = await h.accepted(await h.run(hangId))
    const failed = await h.waitFor(created.id, ['failed'], 10000)
    expect(failed.error.code).toBe('UPSTREAM_ERROR')
    expect(failed.error.message).toContain('did not finish within 4 s')
    expect(fake.interrupts.length).toBe(interrupts + 1)
    await eventually(() => fake.prompts.at(-1)!.status === 'interrupted')
  }, 15000)

  test('a service that never answers: the requests time out, the task is retried and fails with UPSTREAM_ERROR', async () => {
    const service = await insertService(t, hanging.url)
    const wf = await insertWorkflow(t, ctx.accounts.user.id, service.id, apiWorkflow(), 'Silent engine')
    const created = await h.accepted(await h.run(wf.id))
    const failed = await h.waitFor(created.id, ['failed'], 12000)
    expect(failed.error.code).toBe('UPSTREAM_ERROR')
    expect(failed.error.message).toContain('did not answer within 0.4 s')
    expect(failed.attempts).toBe(3)
    const messages = (await h.steps(created.id)).filter((s) => s.step === 'message_created').map((s) => s.data.message as string)
    expect(messages.some((m) => m.includes('trying again'))).toBe(true)
    // the upgrade came first, then the prompt; nothing carried an Origin
    expect(hanging.requests[0]!.path).toStartWith('/ws?clientId=')
    expect(hanging.requests.some((r) => r.method === 'POST' && r.path === '/prompt')).toBe(true)
    expect(hanging.requests.filter((r) => 'origin' in r.headers)).toEqual([])
  }, 20000)

  test('a service that redirects: not followed, the task fails with UPSTREAM_ERROR at once', async () => {
    const service = await insertService(t, redirecting.url)
    const wf = await insertWorkflow(t, ctx.accounts.user.id, service.id, apiWorkflow(), 'Moved engine')
    const created = await h.accepted(await h.run(wf.id))
    const failed = await h.waitFor(created.id, ['failed'])
    expect(failed.error.code).toBe('UPSTREAM_ERROR')
    expect(failed.error.message).toContain('redirect (302)')
    expect(failed.attempts).toBe(1)
  }, 15000)

  test('the service gone before the run starts: the task fails with VALIDATION_ERROR', async () => {
    const service = await insertService(t, fake.url)
    const wf = await insertWorkflow(t, ctx.accounts.user.id, service.id, apiWorkflow(), 'Orphan')
    const { db, t: tables } = t.deps.database
    // as if the task was made while the service existed, and the service deleted before a worker claimed it
    await db.delete(tables.services).where(eq(tables.services.id, service.id))
    const [row] = await db.insert(tables.tasks).values({ userId: ctx.accounts.user.id, kind: 'workflow', title: 'Run of Orphan', input: { workflow_id: wf.id, inputs: {} }, status: 'pending' }).returning()
    await t.deps.services.taskEngine.announce()
    const failed = await h.waitFor(row!.id, ['failed'])
    expect(failed.error).toEqual({ code: 'VALIDATION_ERROR', message: 'The workflow has no service to run on (set its service_id)' })
  }, 15000)
})

// -------------------------------------------------------------------------------------------------

describe.skipIf(!TEST_DATABASE_URL)('workflow runs on two instances [postgres]', () => {
  let a: TestApp
  let b: TestApp
  let ctx: CallersContext
  let fake: FakeComfy
  let serviceId: string
  const h = harness(() => a, () => ctx)

  beforeAll(async () => {
    fake = await startFakeComfy()
    a = await createTestApp('postgres', { HEARTH_TASK_RETRY_MS: '20' })
    b = await createSecondInstance(a, { HEARTH_TASK_RETRY_MS: '20' })
    ctx = await setupCallers(a)
    serviceId = (await insertService(a, fake.url)).id
  }, 30_000)
  afterAll(async () => {
    await b?.close()
    await a?.close()
    await fake?.stop()
  })

  const holder = async (taskId: string) => {
    const { db, t: tables } = a.deps.database
    const [row] = await db.select({ owner: tables.tasks.leaseOwner }).from(tables.tasks).where(eq(tables.tasks.id, taskId))
    return [a, b].find((app) => app.deps.services.taskEngine.owner === row?.owner)
  }

  test('a cancel sent to the other instance interrupts the prompt on the engine', async () => {
    const wf = await insertWorkflow(a, ctx.accounts.user.id, serviceId, apiWorkflow({ hang: true }), 'Forever')
    const created = await h.accepted(await h.run(wf.id))
    await eventually(() => fake.prompts.some((p) => p.status === 'running'), 8000, 'the prompt running')
    const running = fake.prompts.find((p) => p.status === 'running')!
    const runner = (await holder(created.id))!
    const other = runner === a ? b : a
    const c = await other.request('POST', `/api/v1/tasks/${created.id}/cancel`, { token: ctx.tokens.user })
    expect(c.status).toBe(200)
    await eventually(() => fake.interrupts.some((x) => (x as Json)?.prompt_id === running.prompt_id), 4000, 'the interrupt')
    await eventually(() => running.status === 'interrupted')
  }, 20000)

  test('an instance that hands its run back: the other one follows the same prompt to the end, without queueing it again', async () => {
    const wf = await insertWorkflow(a, ctx.accounts.user.id, serviceId, apiWorkflow({ delay_ms: 60, images: 2 }), 'Slow')
    const created = await h.accepted(await h.run(wf.id))
    await eventually(async () => (await h.steps(created.id)).some((s) => s.step === 'task_progress' && s.data.node === '3'), 8000, 'the sampler running')
    const queued = fake.prompts.length
    const interrupts = fake.interrupts.length
    const first = (await holder(created.id))!
    // what SIGTERM does: running tasks handed back at once, not counted as an attempt
    await first.deps.services.taskEngine.close()
    const done = await h.waitFor(created.id, ['completed'], 15000)
    expect(fake.prompts.length).toBe(queued)
    expect(done.result.prompt_id).toBe(fake.prompts.at(-1)!.prompt_id)
    expect(done.result.outputs).toHaveLength(2)
    // the hand-back left the prompt running on the engine
    expect(fake.interrupts.length).toBe(interrupts)
    const steps = await h.steps(created.id)
    expect(steps.filter((s) => s.step === 'task_started')).toHaveLength(2)
    expect(steps.some((s) => s.step === 'message_created' && s.data.message.startsWith('Following prompt'))).toBe(true)
  }, 30000)
})
