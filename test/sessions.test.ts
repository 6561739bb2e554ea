/**
 * Workflow sessions (docs/api.md §20 "Sessions"): CRUD and who may see what; a message answered by
 * the session's agent through the fake upstream — rows, frames on the `session_frames` bus channel
 * in order, the reply's SSE stream with Last-Event-ID; the agent's `update_workflow` tool adding a
 * version under the workflow's lock (lock events, another writer's 409 while it holds it, renewal);
 * agent executions; one reply at a time, stop, archive, delete, revocation, failures, recovery; and
 * two instances on one Postgres.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { and, eq } from 'drizzle-orm'
import type { SessionFrame } from '../src/modules/sessions/types.ts'
import { sessionFramesChannel } from '../src/modules/sessions/types.ts'
import { DEFAULT_SESSION_PROMPT, MAX_WORKFLOW_CONTEXT_CHARS, STALE_REPLY_MS } from '../src/modules/sessions/turn.ts'
import { workflowLockChannel, type WorkflowLockEvent } from '../src/modules/workflows/types.ts'
import { login, register, setupCallers, type Account, type CallersContext } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp } from './helpers/app.ts'
import { DIALECTS, eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'
import { readEvents, type ReceivedEvent } from './helpers/sse.ts'
import { eventually, follow } from './helpers/streams.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'
import type { BaseDeps } from '../src/services.ts'
import type { BuiltinTool } from '../src/modules/tools/types.ts'

type Json = Record<string, any>

/** A small ComfyUI API-format workflow. */
const WORKFLOW = {
  '3': { class_type: 'KSampler', inputs: { seed: 1, steps: 20, cfg: 7, model: ['4', 0], positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0] } },
  '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd15.safetensors' } },
  '5': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
  '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a cat', clip: ['4', 1] } },
  '7': { class_type: 'CLIPTextEncode', inputs: { text: 'blurry', clip: ['4', 1] } },
}
const EDITED = { ...WORKFLOW, '3': { ...WORKFLOW['3'], inputs: { ...WORKFLOW['3'].inputs, seed: 42 } } }
/** A message that makes an `argsjson` model call update_workflow with these arguments. */
const editRequest = (args: Json = { workflow_data: EDITED, note: 'seed 42' }) => `Set the seed to 42 please. FAKE_TOOL_ARGS=${JSON.stringify(args)}`

/** A tool of the agent's own that takes any arguments. */
const lookTool: BuiltinTool = {
  name: 'look_closer',
  description: 'Looks at the arguments',
  inputSchema: { type: 'object' },
  call: async (args) => ({ content: [{ type: 'text', text: `saw ${Object.keys(args).join(',')}` }], isError: false }),
}

interface World {
  t: TestApp
  fake: FakeLlm
  server: ReturnType<typeof Bun.serve>
  base: string
  callers: CallersContext
  user: Account
  close(): Promise<void>
}

/** An app with a fake provider (global) and its models: `plain` (the default), `editor` (calls update_workflow), `looker` (look_closer and update_workflow at once), `slow`, `failing`. */
async function world(dialect: 'sqlite' | 'postgres', overrides: Partial<BaseDeps> = {}): Promise<World> {
  const fake = await startFakeLlm()
  const t = await createTestApp(dialect, {}, { extraBuiltins: [lookTool], ...overrides })
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: t.app.fetch, idleTimeout: 30 })
  const callers = await setupCallers(t)
  const admin = callers.accounts.admin
  const provider = await t.request('POST', '/api/v1/providers', { token: admin.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
  expect(provider.status).toBe(201)
  for (const [name, id, isDefault] of [
    ['plain', 'fake:tokens=3', true],
    ['editor', 'fake:tokens=3,calls=update_workflow,argsjson', false],
    ['looker', 'fake:tokens=3,calls=look_closer+update_workflow,argsjson', false],
    ['twice', 'fake:tokens=3,calls=update_workflow+update_workflow,argsjson', false],
    ['slow', 'fake:tokens=60,delay=25', false],
    ['failing', 'fake:fail=500', false],
  ] as const) {
    const res = await t.request('POST', '/api/v1/models', { token: admin.access, body: { provider_id: provider.body.id, name, model_id: id, is_default: isDefault } })
    expect(res.status).toBe(201)
  }
  return {
    t,
    fake,
    server,
    base: `http://127.0.0.1:${server.port}/api/v1`,
    callers,
    user: callers.accounts.user,
    async close() {
      server.stop(true)
      await t.close()
      await fake.stop()
    },
  }
}

/** A workflow of `userId`, made by the workflows module (version 1). */
async function insertWorkflow(t: TestApp, userId: string, data: Json = WORKFLOW, name = 'txt2img') {
  return t.deps.services.workflows.create(userId, { name, workflowData: data })
}

async function workflowRow(t: TestApp, id: string) {
  const { db, t: tables } = t.deps.database
  const [row] = await db.select().from(tables.workflows).where(eq(tables.workflows.id, id))
  return row!
}

async function versionsOf(t: TestApp, id: string) {
  const { db, t: tables } = t.deps.database
  return (await db.select().from(tables.workflowVersions).where(eq(tables.workflowVersions.workflowId, id))).sort((a, b) => a.version - b.version)
}

async function createSession(t: TestApp, a: Account, body: Json) {
  const res = await t.request('POST', '/api/v1/sessions', { token: a.access, body })
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
  expect(res.headers.get('location')).toBe(`/api/v1/sessions/${res.body.id}`)
  return res.body as Json
}

async function workflowAgent(t: TestApp, a: Account, body: Json = {}) {
  const res = await t.request('POST', '/api/v1/agents', { token: a.access, body: { name: `wf-${Math.random().toString(36).slice(2)}`, type: 'workflow', ...body } })
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
  return res.body as Json
}

/** Everything published on the bus channels sessions use, from now on. */
function listen(t: TestApp) {
  const frames: SessionFrame[] = []
  const locks: WorkflowLockEvent[] = []
  const off = [t.deps.services.bus.subscribe(sessionFramesChannel, (f) => void frames.push(f)), t.deps.services.bus.subscribe(workflowLockChannel, (e) => void locks.push(e))]
  /** wait until `n` MESSAGE_RECEIVED frames of the session were heard (the reply's comes after its row is stored) */
  const received = (sessionId: string, n = 2) => eventually(() => frames.filter((f) => f.session_id === sessionId && f.type === 'MESSAGE_RECEIVED').length >= n, 3000, `${n} MESSAGE_RECEIVED frames`)
  return { frames, locks, received, stop: () => off.forEach((f) => f()) }
}

const messagesOf = async (t: TestApp, a: Account, sessionId: string) => (await t.request('GET', `/api/v1/sessions/${sessionId}/messages`, { token: a.access })).body as Json[]
const sessionOf = async (t: TestApp, a: Account, sessionId: string) => (await t.request('GET', `/api/v1/sessions/${sessionId}`, { token: a.access })).body as Json

/** Wait for the session's reply to be over (no message `streaming`), then its messages. */
async function settled(t: TestApp, a: Account, sessionId: string, count = 2, ms = 5000) {
  let messages: Json[] = []
  await eventually(async () => {
    messages = await messagesOf(t, a, sessionId)
    return messages.length >= count && messages.every((m) => m.status !== 'streaming')
  }, ms, 'the reply to end')
  return messages
}

const send = (t: TestApp, a: Account, sessionId: string, content: string) => t.request('POST', `/api/v1/sessions/${sessionId}/messages`, { token: a.access, body: { content } })
const stream = (w: World, sessionId: string, token: string, lastEventId?: number) =>
  fetch(`${w.base}/sessions/${sessionId}/stream`, { headers: { authorization: `Bearer ${token}`, ...(lastEventId === undefined ? {} : { 'last-event-id': String(lastEventId) }) } })
const names = (events: ReceivedEvent[]) => events.map((e) => e.event)

// -------------------------------------------------------------------------------------------------

interface Ctx extends CallersContext {
  session: string
  workflow: string
}

eachDialect('sessions: who may do what', (dialect) => {
  let w: World
  let ctx: Ctx
  beforeAll(async () => {
    w = await world(dialect)
    const wf = await insertWorkflow(w.t, w.user.id)
    const s = await createSession(w.t, w.user, { workflow_id: wf.id, title: 'SECRET-session-title' })
    ctx = { ...w.callers, session: s.id, workflow: wf.id }
    await send(w.t, w.user, s.id, 'SECRET-question')
    await settled(w.t, w.user, s.id)
  }, 30_000)
  afterAll(() => w.close())

  const endpoints: [string, (c: Ctx) => string, unknown?][] = [
    ['GET', () => '/api/v1/sessions'],
    ['POST', () => '/api/v1/sessions', { workflow_id: 'x' }],
    ['GET', (c) => `/api/v1/sessions/${c.session}`],
    ['PATCH', (c) => `/api/v1/sessions/${c.session}`, { title: 'x' }],
    ['DELETE', (c) => `/api/v1/sessions/${c.session}`],
    ['GET', (c) => `/api/v1/sessions/${c.session}/messages`],
    ['POST', (c) => `/api/v1/sessions/${c.session}/messages`, { content: 'x' }],
    ['GET', (c) => `/api/v1/sessions/${c.session}/stream`],
    ['POST', (c) => `/api/v1/sessions/${c.session}/stop`],
  ]
  const secret = ['SECRET-session-title', 'SECRET-question']

  scenarios<Ctx>(() => ctx, [
    ...endpoints.map(([method, path, body]): Scenario<Ctx> => ({ name: 'needs credentials', as: 'guest', method, path, body, status: 401, code: 'UNAUTHORIZED', notContains: secret })),
    ...(['other', 'admin'] as const).flatMap((as): Scenario<Ctx>[] => [
      ...endpoints.slice(2).map(([method, path, body]): Scenario<Ctx> => ({ name: "another user's session is 404", as, method, path, body, status: 404, code: 'NOT_FOUND', notContains: secret })),
      { name: "the list has none of another user's sessions", as, method: 'GET', path: '/api/v1/sessions', status: 200, notContains: secret, check: (r, c) => expect((r.body.items as Json[]).map((i) => i.id)).not.toContain(c.session) },
      { name: "the list filtered by another user's workflow is empty", as, method: 'GET', path: (c) => `/api/v1/sessions?workflow_id=${c.workflow}`, status: 200, check: (r) => expect(r.body.total).toBe(0) },
      { name: "a session on another user's workflow is 422 naming workflow_id", as, method: 'POST', path: '/api/v1/sessions', body: (c: Ctx) => ({ workflow_id: c.workflow }), status: 422, code: 'VALIDATION_ERROR', check: (r) => expect(r.body.errors).toEqual([{ path: 'workflow_id', message: 'unknown workflow' }]) },
    ]),
    { name: 'the owner reads it', as: 'user', method: 'GET', path: (c) => `/api/v1/sessions/${c.session}`, status: 200, check: (r) => expect(r.body.title).toBe('SECRET-session-title') },
    { name: 'the owner lists its messages', as: 'user', method: 'GET', path: (c) => `/api/v1/sessions/${c.session}/messages`, status: 200, check: (r) => expect((r.body as Json[]).map((m) => m.role)).toEqual(['user', 'assistant']) },
    { name: 'the owner stops nothing', as: 'user', method: 'POST', path: (c) => `/api/v1/sessions/${c.session}/stop`, status: 200, check: (r) => expect(r.body).toEqual({ stopped: false }) },
    { name: 'unknown id', as: 'user', method: 'GET', path: '/api/v1/sessions/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: messages', as: 'user', method: 'POST', path: '/api/v1/sessions/nope/messages', body: { content: 'hi' }, status: 404, code: 'NOT_FOUND' },
    { name: 'unknown workflow', as: 'user', method: 'POST', path: '/api/v1/sessions', body: { workflow_id: 'nope' }, status: 422, code: 'VALIDATION_ERROR' },
  ])

  test('SessionsApi.visible: the owner only; send to another user’s session is 404', async () => {
    const sessions = w.t.deps.services.sessions
    const principal = (a: Account, role: 'user' | 'admin' = 'user') => ({ userId: a.id, role, via: 'session' as const, sessionId: null, apiKeyId: null, scopes: [] })
    expect(await sessions.visible(principal(w.user), ctx.session)).toBe(true)
    expect(await sessions.visible(principal(w.callers.accounts.other), ctx.session)).toBe(false)
    expect(await sessions.visible(principal(w.callers.accounts.admin, 'admin'), ctx.session)).toBe(false)
    expect(await sessions.visible(principal(w.user), 'nope')).toBe(false)
    await expect(sessions.send(principal(w.callers.accounts.other), ctx.session, 'hi')).rejects.toMatchObject({ status: 404 })
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('sessions', (dialect) => {
  let w: World
  let t: TestApp
  let user: Account
  let wf: Awaited<ReturnType<typeof insertWorkflow>>
  beforeAll(async () => {
    w = await world(dialect)
    t = w.t
    user = w.user
    wf = await insertWorkflow(t, user.id)
  }, 30_000)
  afterAll(() => w.close())

  describe('CRUD', () => {
    test('POST → 201 + Location and the Session shape; GET reads it back; PATCH title, status and agent_id; DELETE → 204 and its messages go', async () => {
      const s = await createSession(t, user, { workflow_id: wf.id, title: '  Tune it  ', surprise: 'boo-field' })
      expect(s).toEqual({ id: expect.any(String), title: 'Tune it', workflow_id: wf.id, agent_id: null, status: 'active', last_message_summary: null, message_count: 0, created_at: expect.any(String), updated_at: expect.any(String) })
      expect((await t.request('GET', `/api/v1/sessions/${s.id}`, { token: user.access })).body).toEqual(s)
      const agent = await workflowAgent(t, user)
      await Bun.sleep(5)
      const patched = await t.request('PATCH', `/api/v1/sessions/${s.id}`, { token: user.access, body: { title: 'Renamed', status: 'archived', agent_id: agent.id } })
      expect(patched.status).toBe(200)
      expect(patched.body).toMatchObject({ title: 'Renamed', status: 'archived', agent_id: agent.id })
      expect(new Date(patched.body.updated_at).getTime()).toBeGreaterThan(new Date(s.updated_at).getTime())
      const cleared = await t.request('PATCH', `/api/v1/sessions/${s.id}`, { token: user.access, body: { agent_id: null, status: 'active' } })
      expect(cleared.body).toMatchObject({ title: 'Renamed', status: 'active', agent_id: null })
      for (const body of [{ status: 'closed' }, { title: '' }, { title: 'x'.repeat(201) }]) expectProblem(await t.request('PATCH', `/api/v1/sessions/${s.id}`, { token: user.access, body }), 422, 'VALIDATION_ERROR')
      await send(t, user, s.id, 'hello there')
      await settled(t, user, s.id)
      const del = await t.request('DELETE', `/api/v1/sessions/${s.id}`, { token: user.access })
      expect([del.status, del.text]).toEqual([204, ''])
      expectProblem(await t.request('GET', `/api/v1/sessions/${s.id}`, { token: user.access }), 404, 'NOT_FOUND')
      expectProblem(await t.request('GET', `/api/v1/sessions/${s.id}/messages`, { token: user.access }), 404, 'NOT_FOUND')
      const { db, t: tables } = t.deps.database
      expect(await db.select().from(tables.sessionMessages).where(eq(tables.sessionMessages.sessionId, s.id))).toEqual([])
      // the workflow stays
      expect((await workflowRow(t, wf.id)).id).toBe(wf.id)
    })

    test('agent_id: an active workflow agent you can use (yours or global); another type, another user’s, disabled or unknown → 422 naming agent_id', async () => {
      const mine = await workflowAgent(t, user)
      const global = await workflowAgent(t, w.callers.accounts.admin, { scope: 'global' })
      const assistant = await workflowAgent(t, user, { type: 'assistant' })
      const others = await workflowAgent(t, w.callers.accounts.other)
      const disabled = await workflowAgent(t, user, { status: 'disabled' })
      expect((await createSession(t, user, { workflow_id: wf.id, agent_id: mine.id })).agent_id).toBe(mine.id)
      expect((await createSession(t, user, { workflow_id: wf.id, agent_id: global.id })).agent_id).toBe(global.id)
      for (const agentId of [assistant.id, others.id, disabled.id, 'nope']) {
        const res = await t.request('POST', '/api/v1/sessions', { token: user.access, body: { workflow_id: wf.id, agent_id: agentId } })
        expectProblem(res, 422, 'VALIDATION_ERROR')
        expect(res.body.errors).toEqual([{ path: 'agent_id', message: 'unknown, disabled or not a workflow agent' }])
      }
      const s = await createSession(t, user, { workflow_id: wf.id })
      expectProblem(await t.request('PATCH', `/api/v1/sessions/${s.id}`, { token: user.access, body: { agent_id: assistant.id } }), 422, 'VALIDATION_ERROR')
      for (const body of [{}, { workflow_id: '' }, { workflow_id: wf.id, title: 42 }]) expectProblem(await t.request('POST', '/api/v1/sessions', { token: user.access, body }), 422, 'VALIDATION_ERROR')
    })

    test('GET /sessions: a page, most recently updated first; workflow_id and status filter', async () => {
      const a = await register(t, 'lister')
      const one = await insertWorkflow(t, a.id, WORKFLOW, 'one')
      const two = await insertWorkflow(t, a.id, WORKFLOW, 'two')
      const s1 = await createSession(t, a, { workflow_id: one.id, title: 's1' })
      await Bun.sleep(5)
      const s2 = await createSession(t, a, { workflow_id: two.id, title: 's2' })
      await Bun.sleep(5)
      const s3 = await createSession(t, a, { workflow_id: one.id, title: 's3' })
      await Bun.sleep(5)
      // a change moves s1 to the front
      await t.request('PATCH', `/api/v1/sessions/${s1.id}`, { token: a.access, body: { status: 'archived' } })
      const titles = async (q = '') => {
        const res = await t.request('GET', `/api/v1/sessions${q}`, { token: a.access })
        expect(res.status).toBe(200)
        return { titles: (res.body.items as Json[]).map((i) => i.title), total: res.body.total, has_more: res.body.has_more }
      }
      expect(await titles()).toEqual({ titles: ['s1', 's3', 's2'], total: 3, has_more: false })
      expect(await titles(`?workflow_id=${one.id}`)).toEqual({ titles: ['s1', 's3'], total: 2, has_more: false })
      expect(await titles('?status=active')).toEqual({ titles: ['s3', 's2'], total: 2, has_more: false })
      expect(await titles(`?status=archived&workflow_id=${one.id}`)).toEqual({ titles: ['s1'], total: 1, has_more: false })
      expect(await titles('?limit=1&offset=1')).toEqual({ titles: ['s3'], total: 3, has_more: true })
      for (const q of ['status=open', 'limit=0', 'limit=101']) expectProblem(await t.request('GET', `/api/v1/sessions?${q}`, { token: a.access }), 422, 'VALIDATION_ERROR')
      void s2
      void s3
    })

    test('a workflow deleted takes its sessions with it', async () => {
      const a = await register(t, 'wfdel')
      const gone = await insertWorkflow(t, a.id)
      const s = await createSession(t, a, { workflow_id: gone.id })
      expect((await t.request('GET', `/api/v1/workflows/${gone.id}`, { token: a.access })).body.session_count).toBe(1)
      expect((await t.request('DELETE', `/api/v1/workflows/${gone.id}`, { token: a.access })).status).toBe(204)
      expectProblem(await t.request('GET', `/api/v1/sessions/${s.id}`, { token: a.access }), 404, 'NOT_FOUND')
    })
  })

  describe('messages and replies', () => {
    test('a message answered: 201 the user message; the reply stored; MESSAGE_RECEIVED, MESSAGE_DELTA…, MESSAGE_RECEIVED on the bus in order; the session and workflow updated', async () => {
      const s = await createSession(t, user, { workflow_id: wf.id })
      const heard = listen(t)
      const from = w.fake.requests.length
      const res = await send(t, user, s.id, '  What does node 3 do?  ')
      expect(res.status).toBe(201)
      expect(res.body).toEqual({ id: expect.any(String), role: 'user', content: 'What does node 3 do?', created_at: expect.any(String) })
      const messages = await settled(t, user, s.id)
      await heard.received(s.id)
      heard.stop()
      expect(messages.map((m) => [m.role, m.content, m.status])).toEqual([
        ['user', 'What does node 3 do?', 'complete'],
        ['assistant', 'tok0 tok1 tok2 ', 'complete'],
      ])
      expect(messages[0]!.id).toBe(res.body.id)
      const reply = messages[1]!
      const mine = heard.frames.filter((f) => f.session_id === s.id)
      expect(mine.every((f) => f.user_id === user.id)).toBe(true)
      expect(mine[0]).toEqual({ type: 'MESSAGE_RECEIVED', user_id: user.id, session_id: s.id, message: res.body })
      expect(mine.at(-1)).toEqual({ type: 'MESSAGE_RECEIVED', user_id: user.id, session_id: s.id, message: { id: reply.id, role: 'assistant', content: 'tok0 tok1 tok2 ', created_at: reply.created_at } })
      const deltas = mine.slice(1, -1)
      expect(deltas.length).toBeGreaterThan(0)
      expect(deltas.every((f) => f.type === 'MESSAGE_DELTA' && f.message_id === reply.id)).toBe(true)
      expect(deltas.map((f) => (f as { text: string }).text).join('')).toBe('tok0 tok1 tok2 ')
      // the session: counted, summarised, titled by its first message
      const after = await sessionOf(t, user, s.id)
      expect(after).toMatchObject({ message_count: 2, last_message_summary: 'tok0 tok1 tok2', title: 'What does node 3 do?' })
      expect(new Date(after.updated_at).getTime()).toBeGreaterThan(new Date(s.updated_at).getTime())
      expect((await workflowRow(t, wf.id)).lastUsedAt).not.toBeNull()
      // the model was sent the built-in prompt with the workflow's JSON, and the question
      const [request] = w.fake.requests.slice(from).filter((r) => r.path === '/v1/chat/completions').map((r) => r.body as Json)
      expect(request!.model).toBe('fake:tokens=3')
      expect(request!.messages[0].role).toBe('system')
      expect(request!.messages[0].content).toContain(DEFAULT_SESSION_PROMPT)
      // (Postgres' jsonb keeps the keys in its own order)
      expect(JSON.parse(request!.messages[0].content.split('Its current JSON:\n')[1])).toEqual(WORKFLOW)
      expect(request!.messages.at(-1)).toEqual({ role: 'user', content: 'What does node 3 do?' })
      expect(request!.tools.map((x: Json) => x.function.name)).toEqual(['update_workflow'])
      // usage is recorded like chat's (the usage table has no `session` source)
      const { db, t: tables } = t.deps.database
      await t.deps.services.usage.flush()
      const usage = (await db.select().from(tables.usage).where(eq(tables.usage.userId, user.id))).filter((u) => u.model === 'plain')
      expect(usage.at(-1)).toMatchObject({ source: 'chat', status: 'ok' })
    })

    test('the next message is sent the earlier exchange as history; client_msg_id is echoed on the user message’s frame', async () => {
      const s = await createSession(t, user, { workflow_id: wf.id, title: 'kept' })
      const heard = listen(t)
      await send(t, user, s.id, 'first question')
      await settled(t, user, s.id)
      await heard.received(s.id)
      heard.frames.length = 0
      const from = w.fake.requests.length
      const principal = { userId: user.id, role: 'user' as const, via: 'session' as const, sessionId: null, apiKeyId: null, scopes: [] }
      const message = await t.deps.services.sessions.send(principal, s.id, 'second question', { clientMsgId: 'c-42' })
      expect(message).toMatchObject({ role: 'user', content: 'second question' })
      const messages = await settled(t, user, s.id, 4)
      await heard.received(s.id)
      heard.stop()
      expect(heard.frames.filter((f) => f.session_id === s.id)[0]).toEqual({ type: 'MESSAGE_RECEIVED', user_id: user.id, session_id: s.id, message, client_msg_id: 'c-42' })
      const request = w.fake.requests.slice(from).find((r) => r.path === '/v1/chat/completions')!.body as Json
      expect(request.messages.slice(1)).toEqual([
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: 'tok0 tok1 tok2 ' },
        { role: 'user', content: 'second question' },
      ])
      expect(messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant'])
      expect((await sessionOf(t, user, s.id)).title).toBe('kept')
    })

    test('GET /stream: the reply as SSE (message.received … done), replay from Last-Event-ID, 204 once all was sent or when nothing ran', async () => {
      const s = await createSession(t, user, { workflow_id: wf.id })
      expect((await stream(w, s.id, user.access)).status).toBe(204)
      const sent = await send(t, user, s.id, 'stream me')
      const res = await stream(w, s.id, user.access)
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toStartWith('text/event-stream')
      const events = await readEvents(res)
      expect(names(events)).toEqual(['message.received', 'delta', 'delta', 'delta', 'message.received', 'usage', 'done'])
      expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1))
      const reply = (await messagesOf(t, user, s.id))[1]!
      expect(events[0]!.data).toEqual({ session_id: s.id, message: sent.body })
      expect(events[1]!.data).toEqual({ session_id: s.id, message_id: reply.id, text: 'tok0 ' })
      expect(events[4]!.data).toEqual({ session_id: s.id, message: { id: reply.id, role: 'assistant', content: 'tok0 tok1 tok2 ', created_at: reply.created_at } })
      expect(events.at(-1)!.data).toEqual({ session_id: s.id, message_id: reply.id, finish_reason: 'stop' })
      const replay = await readEvents(await stream(w, s.id, user.access, 3))
      expect(replay.map((e) => e.id)).toEqual([4, 5, 6, 7])
      expect((await stream(w, s.id, user.access, 7)).status).toBe(204)
    })

    test('one reply at a time: a second send while one is written is 409; stop keeps the text as `stopped`; then the session answers again', async () => {
      const agent = await workflowAgent(t, user, { model_id: 'slow' })
      const s = await createSession(t, user, { workflow_id: wf.id, agent_id: agent.id })
      expect((await send(t, user, s.id, 'a long one')).status).toBe(201)
      const followed = follow(stream(w, s.id, user.access))
      await followed.started
      const second = await send(t, user, s.id, 'me too')
      expectProblem(second, 409, 'CONFLICT')
      expect((await t.request('POST', `/api/v1/sessions/${s.id}/stop`, { token: user.access })).body).toEqual({ stopped: true })
      const { events } = await followed.ended
      expect(events.at(-1)!.data.finish_reason).toBe('stopped')
      const messages = await settled(t, user, s.id)
      expect(messages.map((m) => m.status)).toEqual(['complete', 'stopped'])
      expect(messages[1]!.content.length).toBeGreaterThan(0)
      expect(messages[1]!.content).toBe(events.filter((e) => e.event === 'delta').map((e) => e.data.text).join(''))
      // only two messages: the refused one was not stored
      expect((await sessionOf(t, user, s.id)).message_count).toBe(2)
      await t.request('PATCH', `/api/v1/sessions/${s.id}`, { token: user.access, body: { agent_id: null } })
      expect((await send(t, user, s.id, 'again')).status).toBe(201)
      expect((await settled(t, user, s.id, 4)).map((m) => m.status)).toEqual(['complete', 'stopped', 'complete', 'complete'])
    }, 15_000)

    test('an archived session refuses messages with 409 (the route and SessionsApi.send); content is 1–100,000 characters', async () => {
      const s = await createSession(t, user, { workflow_id: wf.id })
      await t.request('PATCH', `/api/v1/sessions/${s.id}`, { token: user.access, body: { status: 'archived' } })
      const refused = await send(t, user, s.id, 'hello?')
      expectProblem(refused, 409, 'CONFLICT')
      expect(refused.body.detail).toContain('archived')
      const principal = { userId: user.id, role: 'user' as const, via: 'session' as const, sessionId: null, apiKeyId: null, scopes: [] }
      await expect(t.deps.services.sessions.send(principal, s.id, 'hello?')).rejects.toMatchObject({ status: 409, code: 'CONFLICT' })
      expect(await messagesOf(t, user, s.id)).toEqual([])
      await t.request('PATCH', `/api/v1/sessions/${s.id}`, { token: user.access, body: { status: 'active' } })
      for (const content of ['', '   ', 'x'.repeat(100_001)]) expectProblem(await send(t, user, s.id, content), 422, 'VALIDATION_ERROR')
      expectProblem(await t.request('POST', `/api/v1/sessions/${s.id}/messages`, { token: user.access, body: {} }), 422, 'VALIDATION_ERROR')
      await expect(t.deps.services.sessions.send(principal, s.id, '  ')).rejects.toMatchObject({ status: 422 })
      await expect(t.deps.services.sessions.send(principal, s.id, 'y'.repeat(100_001))).rejects.toMatchObject({ status: 422 })
      // the WebSocket's frames reach the service unchecked by the HTTP boundary: a NUL is refused there too (Postgres cannot store it)
      await expect(t.deps.services.sessions.send(principal, s.id, 'a\u0000b')).rejects.toMatchObject({ status: 422, errors: [{ path: 'content', message: 'must not contain the NUL character (U+0000)' }] })
      expectProblem(await send(t, user, s.id, 'a\u0000b'), 422, 'VALIDATION_ERROR')
      expect(await messagesOf(t, user, s.id)).toEqual([])
    })

    test('a failing model: the reply is `error`, its frames still end with MESSAGE_RECEIVED, the stream says error then done', async () => {
      const agent = await workflowAgent(t, user, { model_id: 'failing' })
      const s = await createSession(t, user, { workflow_id: wf.id, agent_id: agent.id })
      const heard = listen(t)
      await send(t, user, s.id, 'fail please')
      const events = await readEvents(await stream(w, s.id, user.access))
      heard.stop()
      expect(names(events)).toEqual(['message.received', 'message.received', 'error', 'done'])
      expect(events[2]!.data).toMatchObject({ code: 'UPSTREAM_ERROR' })
      expect(events.at(-1)!.data.finish_reason).toBe('error')
      const messages = await messagesOf(t, user, s.id)
      expect(messages.map((m) => [m.role, m.status])).toEqual([['user', 'complete'], ['assistant', 'error']])
      expect(heard.frames.filter((f) => f.session_id === s.id).map((f) => f.type)).toEqual(['MESSAGE_RECEIVED', 'MESSAGE_RECEIVED'])
      // a failed reply is left out of the next history; the summary stays the question's
      expect((await sessionOf(t, user, s.id)).last_message_summary).toBe('fail please')
    })

    test('deleting a session while it answers: the stream ends with `deleted`, the run is stopped and forgotten', async () => {
      const agent = await workflowAgent(t, user, { model_id: 'slow' })
      const s = await createSession(t, user, { workflow_id: wf.id, agent_id: agent.id })
      await send(t, user, s.id, 'long')
      const followed = follow(stream(w, s.id, user.access))
      await followed.started
      expect((await t.request('DELETE', `/api/v1/sessions/${s.id}`, { token: user.access })).status).toBe(204)
      const { events } = await followed.ended
      expect(events.at(-1)).toMatchObject({ id: undefined, event: 'deleted', data: { code: 'NOT_FOUND', reason: 'session_deleted' } })
      expectProblem(await t.request('GET', `/api/v1/sessions/${s.id}/stream`, { token: user.access }), 404, 'NOT_FOUND')
      await eventually(() => t.deps.services.runs.get(`session:${s.id}`) === undefined || t.deps.services.runs.get(`session:${s.id}`)!.done, 3000, 'the run to stop')
    })

    test('revocation ends the stream like chat’s: logging out the session that opened it → `revoked`; the reply goes on', async () => {
      const agent = await workflowAgent(t, user, { model_id: 'slow' })
      const s = await createSession(t, user, { workflow_id: wf.id, agent_id: agent.id })
      const session = await login(t, user)
      await send(t, user, s.id, 'long')
      const followed = follow(stream(w, s.id, session.access))
      await followed.started
      expect((await t.request('POST', '/api/v1/auth/logout', { token: session.access })).status).toBe(204)
      const { events } = await followed.ended
      expect(events.at(-1)).toMatchObject({ id: undefined, event: 'revoked', data: { code: 'UNAUTHORIZED', reason: 'session_revoked' } })
      expect((await t.request('POST', `/api/v1/sessions/${s.id}/stop`, { token: user.access })).body).toEqual({ stopped: true })
      await settled(t, user, s.id)
    }, 15_000)

    test('a reply left `streaming` by a dead process is closed: by the sweep once stale, or by the next message instead of 409', async () => {
      const s = await createSession(t, user, { workflow_id: wf.id })
      const { db, t: tables } = t.deps.database
      const stale = new Date(Date.now() - STALE_REPLY_MS - 1000)
      const plant = async () => {
        const [row] = await db.insert(tables.sessionMessages).values({ sessionId: s.id, role: 'assistant', content: 'half a', status: 'streaming' }).returning()
        await db.update(tables.workflowSessions).set({ updatedAt: stale }).where(eq(tables.workflowSessions.id, s.id))
        return row!.id
      }
      const first = await plant()
      expect(await t.deps.services.sessions.recoverInterrupted(false)).toBeGreaterThanOrEqual(1)
      const [closed] = await db.select().from(tables.sessionMessages).where(eq(tables.sessionMessages.id, first))
      expect([closed!.status, closed!.content]).toEqual(['error', 'half a'])
      const second = await plant()
      expect((await send(t, user, s.id, 'are you there?')).status).toBe(201)
      const [closedToo] = await db.select().from(tables.sessionMessages).where(eq(tables.sessionMessages.id, second))
      expect(closedToo!.status).toBe('error')
      await settled(t, user, s.id, 4)
      // a fresh one is a live reply: 409
      await db.insert(tables.sessionMessages).values({ sessionId: s.id, role: 'assistant', content: '', status: 'streaming' })
      await db.update(tables.workflowSessions).set({ updatedAt: new Date() }).where(eq(tables.workflowSessions.id, s.id))
      expectProblem(await send(t, user, s.id, 'again'), 409, 'CONFLICT')
      await db.update(tables.sessionMessages).set({ status: 'error' }).where(and(eq(tables.sessionMessages.sessionId, s.id), eq(tables.sessionMessages.status, 'streaming')))
    })
  })

  describe('the agent edits the workflow', () => {
    test('update_workflow adds a version under the lock: WORKFLOW_LOCKED then WORKFLOW_UNLOCKED, the lock is free after; the stream shows the call; an agent execution is recorded with session_id', async () => {
      const own = await insertWorkflow(t, user.id)
      const agent = await workflowAgent(t, user, { model_id: 'editor', system_prompt: 'You edit workflows, tersely.' })
      const s = await createSession(t, user, { workflow_id: own.id, agent_id: agent.id })
      const heard = listen(t)
      const from = w.fake.requests.length
      await send(t, user, s.id, editRequest())
      const events = await readEvents(await stream(w, s.id, user.access))
      heard.stop()
      expect(names(events)).toEqual(['message.received', 'tool_call', 'workflow_locked', 'workflow_unlocked', 'tool_result', 'delta', 'delta', 'delta', 'message.received', 'usage', 'done'])
      expect(events[1]!.data.name).toBe('update_workflow')
      expect(JSON.parse(events[1]!.data.arguments)).toEqual({ workflow_data: EDITED, note: 'seed 42' })
      expect(events[2]!.data).toEqual({ workflow_id: own.id, reason: 'edited by the session agent' })
      expect(events[4]!.data).toMatchObject({ name: 'update_workflow', is_error: false, result: { content: [{ type: 'text', text: 'Saved: the workflow is now at version 2.' }], structured_content: { version: 2 } } })
      // the workflow: version 2 with the note, the lock let go
      const row = await workflowRow(t, own.id)
      expect(row.workflowData).toEqual(EDITED)
      expect(row.currentVersion).toBe(2)
      expect([row.lockedBy, row.lockedUntil]).toEqual([null, null])
      expect((await versionsOf(t, own.id)).map((v) => [v.version, v.note])).toEqual([[1, null], [2, 'seed 42']])
      expect(heard.locks.filter((e) => e.workflow_id === own.id)).toEqual([
        { type: 'WORKFLOW_LOCKED', user_id: user.id, workflow_id: own.id, reason: 'edited by the session agent' },
        { type: 'WORKFLOW_UNLOCKED', user_id: user.id, workflow_id: own.id },
      ])
      // the reply: the final round's text, the call in its metadata
      const [, reply] = await messagesOf(t, user, s.id)
      expect([reply!.content, reply!.status]).toEqual(['tok0 tok1 tok2 ', 'complete'])
      const { db, t: tables } = t.deps.database
      const [stored] = await db.select().from(tables.sessionMessages).where(eq(tables.sessionMessages.id, reply!.id))
      expect(stored!.metadata).toMatchObject({ model: 'editor', finish_reason: 'stop', tool_calls: [{ name: 'update_workflow', is_error: false }] })
      // the agent's prompt, then the workflow, went to the model; the second turn got the result
      const requests = w.fake.requests.slice(from).filter((r) => r.path === '/v1/chat/completions').map((r) => r.body as Json)
      expect(requests).toHaveLength(2)
      expect(requests[0]!.messages[0].content).toStartWith('You edit workflows, tersely.')
      expect(requests[1]!.messages.at(-1)).toMatchObject({ role: 'tool', content: 'Saved: the workflow is now at version 2.' })
      // the execution
      const executions = await t.request('GET', `/api/v1/agents/${agent.id}/executions?session_id=${s.id}`, { token: user.access })
      expect(executions.status).toBe(200)
      expect(executions.body.items).toHaveLength(1)
      expect(executions.body.items[0]).toMatchObject({ agent_id: agent.id, session_id: s.id, execution_type: 'session', status: 'completed', tool_calls: 1, task_id: null, conversation_id: null })
      expect(executions.body.items[0].token_usage.input_tokens).toBeGreaterThan(0)
    })

    test('the agent’s own tools run beside update_workflow (tool logs say `session`); bad arguments come back to the model as an error and change nothing', async () => {
      const own = await insertWorkflow(t, user.id)
      const agent = await workflowAgent(t, user, { model_id: 'looker', tools_config: { tools: ['look_closer'] } })
      const s = await createSession(t, user, { workflow_id: own.id, agent_id: agent.id })
      await send(t, user, s.id, editRequest())
      let events = await readEvents(await stream(w, s.id, user.access))
      const results = events.filter((e) => e.event === 'tool_result').map((e) => [e.data.name, e.data.is_error])
      expect(results.sort()).toEqual([['look_closer', false], ['update_workflow', false]])
      expect((await workflowRow(t, own.id)).currentVersion).toBe(2)
      const logs = await t.request('GET', '/api/v1/tools/logs?tool=look_closer&source=session', { token: user.access })
      expect(logs.body.total).toBe(1)
      // an array where an object belongs: refused by the tool, nothing written, no lock taken
      const editor = await workflowAgent(t, user, { model_id: 'editor' })
      const s2 = await createSession(t, user, { workflow_id: own.id, agent_id: editor.id })
      const heard = listen(t)
      await send(t, user, s2.id, editRequest({ workflow_data: 'not a workflow' }))
      events = await readEvents(await stream(w, s2.id, user.access))
      heard.stop()
      const result = events.find((e) => e.event === 'tool_result')!
      expect(result.data.is_error).toBe(true)
      expect(result.data.result.content[0].text).toContain('arguments.workflow_data')
      expect(names(events)).not.toContain('workflow_locked')
      expect(heard.locks).toEqual([])
      expect((await workflowRow(t, own.id)).currentVersion).toBe(2)
    })

    test('two update_workflow calls in one turn take turns: each holds the lock for its whole edit; the same JSON twice adds one version', async () => {
      const own = await insertWorkflow(t, user.id)
      const agent = await workflowAgent(t, user, { model_id: 'twice' })
      const s = await createSession(t, user, { workflow_id: own.id, agent_id: agent.id })
      const heard = listen(t)
      await send(t, user, s.id, editRequest())
      const events = await readEvents(await stream(w, s.id, user.access))
      heard.stop()
      expect(names(events).filter((n) => n.startsWith('workflow_'))).toEqual(['workflow_locked', 'workflow_unlocked', 'workflow_locked', 'workflow_unlocked'])
      expect(heard.locks.filter((e) => e.workflow_id === own.id).map((e) => e.type)).toEqual(['WORKFLOW_LOCKED', 'WORKFLOW_UNLOCKED', 'WORKFLOW_LOCKED', 'WORKFLOW_UNLOCKED'])
      expect(events.filter((e) => e.event === 'tool_result').map((e) => [e.data.is_error, e.data.result.structured_content])).toEqual([[false, { version: 2 }], [false, { version: 2 }]])
      expect((await versionsOf(t, own.id)).map((v) => v.version)).toEqual([1, 2])
    })

    test('a workflow too large for the context is shown cut, and update_workflow is not offered', async () => {
      const big: Json = {}
      for (let i = 0; JSON.stringify(big).length <= MAX_WORKFLOW_CONTEXT_CHARS; i++) big[String(i)] = { class_type: 'Note', inputs: { text: 'x'.repeat(500) } }
      const own = await insertWorkflow(t, user.id, big, 'huge')
      const s = await createSession(t, user, { workflow_id: own.id })
      const from = w.fake.requests.length
      await send(t, user, s.id, 'what is in it?')
      await settled(t, user, s.id)
      const request = w.fake.requests.slice(from).find((r) => r.path === '/v1/chat/completions')!.body as Json
      expect(request.messages[0].content).toContain('[… cut: the workflow has')
      expect(request.tools).toBeUndefined()
    })
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('sessions: which model, credits and caps', (dialect) => {
  let w: World
  beforeAll(async () => void (w = await world(dialect, {})), 30_000)
  afterAll(() => w.close())

  test('without an agent: the user’s default model preference, else the instance default; context_rounds bounds the history', async () => {
    const { t } = w
    const a = await register(t, 'prefers')
    const own = await insertWorkflow(t, a.id)
    const s = await createSession(t, a, { workflow_id: own.id })
    expect((await t.request('PUT', '/api/v1/users/me/preferences', { token: a.access, body: { default_model_id: 'looker', context_rounds: 1 } })).status).toBe(200)
    for (const q of ['one', 'two', 'three']) {
      await send(t, a, s.id, q)
      await settled(t, a, s.id, q === 'one' ? 2 : q === 'two' ? 4 : 6)
    }
    const last = w.fake.requests.filter((r) => r.path === '/v1/chat/completions').map((r) => r.body as Json).filter((b) => b.model.includes('look_closer')).at(-1)!
    // the agent-less session offers update_workflow only: look_closer is not its tool, so that call is refused
    expect(last.tools.map((x: Json) => x.function.name)).toEqual(['update_workflow'])
    const questions = last.messages.filter((m: Json) => m.role === 'user').map((m: Json) => m.content)
    expect(questions).toEqual(['two', 'three'])
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('sessions: the lock while the agent edits', (dialect) => {
  let w: World
  let release: (() => void) | undefined
  let holding: Promise<void> | undefined
  let entered: (() => void) | undefined
  beforeAll(async () => {
    w = await world(dialect, {
      sessionEdits: {
        lockTtlMs: 300,
        whileLocked: async () => {
          entered?.()
          await holding
        },
      },
    })
  }, 30_000)
  afterAll(() => w.close())

  test('another writer gets 409 while the agent holds the lock, for longer than one lock lasts (it is renewed); free again after', async () => {
    const { t, user } = w
    const own = await insertWorkflow(t, user.id)
    const agent = await workflowAgent(t, user, { model_id: 'editor' })
    const s = await createSession(t, user, { workflow_id: own.id, agent_id: agent.id })
    holding = new Promise<void>((resolve) => (release = resolve))
    const inside = new Promise<void>((resolve) => (entered = resolve))
    const heard = listen(t)
    await send(t, user, s.id, editRequest())
    await inside
    const put = (body: Json) => t.request('PUT', `/api/v1/workflows/${own.id}`, { token: user.access, body })
    const refused = await put({ name: 'mine now' })
    expectProblem(refused, 409, 'CONFLICT')
    expect(refused.body.detail).toContain('edited by the session agent')
    expect((await t.request('GET', `/api/v1/workflows/${own.id}`, { token: user.access })).body.locked).toEqual({ reason: 'edited by the session agent', since: expect.any(String) })
    // past the 300 ms a take lasts: renewed, still held
    await Bun.sleep(700)
    const held = await workflowRow(t, own.id)
    expect(held.lockedBy).toBe(`session:${s.id}`)
    expect(held.lockedUntil!.getTime()).toBeGreaterThan(Date.now())
    expectProblem(await put({ workflow_data: { '1': { class_type: 'Mine', inputs: {} } } }), 409, 'CONFLICT')
    expect(heard.locks.filter((e) => e.workflow_id === own.id).map((e) => e.type)).toEqual(['WORKFLOW_LOCKED'])
    release!()
    await settled(t, user, s.id)
    heard.stop()
    expect(heard.locks.filter((e) => e.workflow_id === own.id).map((e) => e.type)).toEqual(['WORKFLOW_LOCKED', 'WORKFLOW_UNLOCKED'])
    const after = await put({ name: 'mine now' })
    expect(after.status).toBe(200)
    expect(after.body).toMatchObject({ name: 'mine now', current_version: 2, locked: null, workflow_data: EDITED })
    expect((await workflowRow(t, own.id)).lockedBy).toBeNull()
  }, 15_000)
})

// -------------------------------------------------------------------------------------------------

eachDialect('sessions: credits and the cap on replies', (dialect) => {
  let t: TestApp
  let fake: FakeLlm
  let a: Account
  let own: Awaited<ReturnType<typeof insertWorkflow>>
  beforeAll(async () => {
    fake = await startFakeLlm()
    t = await createTestApp(dialect, { HEARTH_CREDITS: 'on', HEARTH_MAX_RUNS_PER_USER: '1' })
    const admin = await register(t, 'payadmin')
    a = await register(t, 'payer')
    const p = await t.request('POST', '/api/v1/providers', { token: admin.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
    await t.request('POST', '/api/v1/models', { token: admin.access, body: { provider_id: p.body.id, name: 'slow', model_id: 'fake:tokens=60,delay=25', is_default: true, input_price: 0, output_price: 1 } })
    own = await insertWorkflow(t, a.id)
  }, 30_000)
  afterAll(async () => {
    await t.close()
    await fake.stop()
  })

  test('credits used up: 402 QUOTA_EXCEEDED before anything is stored or published', async () => {
    const s = await createSession(t, a, { workflow_id: own.id })
    const heard = listen(t)
    const res = await send(t, a, s.id, 'no money')
    heard.stop()
    expectProblem(res, 402, 'QUOTA_EXCEEDED')
    expect(await messagesOf(t, a, s.id)).toEqual([])
    expect(heard.frames).toEqual([])
    expect((await sessionOf(t, a, s.id)).message_count).toBe(0)
  })

  test(`past HEARTH_MAX_RUNS_PER_USER replies at once (here 1, over all sessions): 429 with Retry-After; room again once one ends`, async () => {
    const { db, t: tables } = t.deps.database
    await db.update(tables.users).set({ creditBalance: 1_000 }).where(eq(tables.users.id, a.id))
    const first = await createSession(t, a, { workflow_id: own.id })
    const second = await createSession(t, a, { workflow_id: own.id })
    expect((await send(t, a, first.id, 'long one')).status).toBe(201)
    const refused = await send(t, a, second.id, 'me too')
    expectProblem(refused, 429, 'RATE_LIMITED')
    expect(refused.headers.get('retry-after')).toBe('5')
    expect(await messagesOf(t, a, second.id)).toEqual([])
    expect((await t.request('POST', `/api/v1/sessions/${first.id}/stop`, { token: a.access })).body).toEqual({ stopped: true })
    await settled(t, a, first.id)
    expect((await send(t, a, second.id, 'now')).status).toBe(201)
    await t.request('POST', `/api/v1/sessions/${second.id}/stop`, { token: a.access })
    await settled(t, a, second.id)
    await t.deps.services.usage.flush()
    const rows = await db.select().from(tables.usage).where(eq(tables.usage.userId, a.id))
    expect(rows.map((r) => [r.model, r.status])).toEqual([['slow', 'aborted'], ['slow', 'aborted']])
  }, 15_000)
})

// -------------------------------------------------------------------------------------------------

for (const dialect of DIALECTS.filter((d) => d === 'postgres')) {
  describe(`sessions across two instances [${dialect}]`, () => {
    let w: World
    let b: TestApp
    let serverB: ReturnType<typeof Bun.serve>
    let holding: Promise<void> | undefined
    let entered: (() => void) | undefined
    beforeAll(async () => {
      w = await world(dialect, { sessionEdits: { whileLocked: async () => (entered?.(), await holding) } })
      b = await createSecondInstance(w.t)
      serverB = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: b.app.fetch, idleTimeout: 30 })
    }, 30_000)
    afterAll(async () => {
      serverB.stop(true)
      await b.close()
      await w.close()
    })

    test('a send on A: its frames are heard on B’s bus, in order; B re-attaches to the reply’s stream; B can stop it', async () => {
      const { t, user } = w
      const own = await insertWorkflow(t, user.id)
      const s = await createSession(t, user, { workflow_id: own.id })
      const onB = listen(b)
      // a channel no one on B listened to yet: its LISTEN must be in place before A publishes
      await b.deps.services.bus.ready()
      await send(t, user, s.id, 'hello from A')
      const messages = await settled(b, user, s.id)
      await eventually(() => onB.frames.filter((f) => f.session_id === s.id && f.type === 'MESSAGE_RECEIVED').length === 2, 3000, 'B to hear the reply')
      onB.stop()
      const frames = onB.frames.filter((f) => f.session_id === s.id)
      expect(frames[0]).toMatchObject({ type: 'MESSAGE_RECEIVED', message: { id: messages[0]!.id, content: 'hello from A' } })
      expect(frames.at(-1)).toMatchObject({ type: 'MESSAGE_RECEIVED', message: { id: messages[1]!.id, content: 'tok0 tok1 tok2 ' } })
      expect(frames.slice(1, -1).every((f) => f.type === 'MESSAGE_DELTA')).toBe(true)
      expect(frames.slice(1, -1).map((f) => (f as { text: string }).text).join('')).toBe('tok0 tok1 tok2 ')
      // B replays the reply A ran, once the run's own events (relayed in 25 ms batches, apart from the frames) have reached it
      let replay: Awaited<ReturnType<typeof readEvents>> = []
      await eventually(async () => {
        const res = await fetch(`http://127.0.0.1:${serverB.port}/api/v1/sessions/${s.id}/stream`, { headers: { authorization: `Bearer ${user.access}` } })
        if (res.status === 204) return false
        replay = await readEvents(res)
        return true
      }, 3000, "B to hold A's run")
      expect(names(replay)).toEqual(['message.received', 'delta', 'delta', 'delta', 'message.received', 'usage', 'done'])
      // a slow reply on A: B refuses a second send and stops it
      await t.request('PATCH', `/api/v1/sessions/${s.id}`, { token: user.access, body: { agent_id: (await workflowAgent(t, user, { model_id: 'slow' })).id } })
      await send(t, user, s.id, 'a long one')
      await Bun.sleep(200)
      expectProblem(await send(b, user, s.id, 'me too'), 409, 'CONFLICT')
      expect((await b.request('POST', `/api/v1/sessions/${s.id}/stop`, { token: user.access })).body).toEqual({ stopped: true })
      expect((await settled(t, user, s.id, 4)).map((m) => m.status)).toEqual(['complete', 'complete', 'complete', 'stopped'])
    }, 15_000)

    test('the agent editing on A: B hears WORKFLOW_LOCKED, a PUT on B is 409 meanwhile, then WORKFLOW_UNLOCKED and the PUT passes', async () => {
      const { t, user } = w
      const own = await insertWorkflow(t, user.id)
      const agent = await workflowAgent(t, user, { model_id: 'editor' })
      const s = await createSession(t, user, { workflow_id: own.id, agent_id: agent.id })
      let release!: () => void
      holding = new Promise<void>((resolve) => (release = resolve))
      const inside = new Promise<void>((resolve) => (entered = resolve))
      const onB = listen(b)
      // a channel no one on B listened to yet: its LISTEN must be in place before A publishes
      await b.deps.services.bus.ready()
      await send(t, user, s.id, editRequest())
      await inside
      await eventually(() => onB.locks.some((e) => e.workflow_id === own.id), 3000, 'B to hear the lock')
      expectProblem(await b.request('PUT', `/api/v1/workflows/${own.id}`, { token: user.access, body: { name: 'from B' } }), 409, 'CONFLICT')
      release()
      await settled(t, user, s.id)
      await eventually(() => onB.locks.filter((e) => e.workflow_id === own.id).length === 2, 3000, 'B to hear the unlock')
      onB.stop()
      expect(onB.locks.filter((e) => e.workflow_id === own.id).map((e) => e.type)).toEqual(['WORKFLOW_LOCKED', 'WORKFLOW_UNLOCKED'])
      const put = await b.request('PUT', `/api/v1/workflows/${own.id}`, { token: user.access, body: { name: 'from B' } })
      expect([put.status, put.body.name, put.body.current_version]).toEqual([200, 'from B', 2])
    }, 15_000)
  })
}

// -------------------------------------------------------------------------------------------------

describe('sessions in /openapi.json', () => {
  let t: TestApp
  beforeAll(async () => void (t = await createTestApp('sqlite')))
  afterAll(() => t.close())

  test.each([
    ['get', '/api/v1/sessions', ['200', '401', '403', '422', '429']],
    ['post', '/api/v1/sessions', ['201', '401', '403', '422', '429']],
    ['get', '/api/v1/sessions/{id}', ['200', '401', '403', '404', '422', '429']],
    ['patch', '/api/v1/sessions/{id}', ['200', '401', '403', '404', '422', '429']],
    ['delete', '/api/v1/sessions/{id}', ['204', '401', '403', '404', '422', '429']],
    ['get', '/api/v1/sessions/{id}/messages', ['200', '401', '403', '404', '422', '429']],
    ['post', '/api/v1/sessions/{id}/messages', ['201', '401', '402', '403', '404', '409', '422', '429']],
    ['get', '/api/v1/sessions/{id}/stream', ['200', '204', '401', '403', '404', '422', '429']],
    ['post', '/api/v1/sessions/{id}/stop', ['200', '401', '403', '404', '422', '429']],
  ])('%s %s answers exactly %p', async (method, path, expected) => {
    const doc = (await t.request('GET', '/openapi.json')).body
    expect(Object.keys(doc.paths[path][method].responses)).toEqual(expected)
    expect(doc.paths[path][method].tags).toContain('Sessions')
  })

  test('the stream is text/event-stream of SessionEvent', async () => {
    const doc = (await t.request('GET', '/openapi.json')).body
    expect(doc.paths['/api/v1/sessions/{id}/stream'].get.responses['200'].content['text/event-stream'].schema).toEqual({ $ref: '#/components/schemas/SessionEvent' })
    const variants = (doc.components.schemas.SessionEvent.oneOf ?? doc.components.schemas.SessionEvent.anyOf) as Json[]
    expect(variants.map((v) => v.properties.event.const).sort()).toEqual(['deleted', 'delta', 'done', 'error', 'message.received', 'revoked', 'shutdown', 'tool_call', 'tool_result', 'usage', 'workflow_locked', 'workflow_unlocked'])
  })
})
