/**
 * The WebSocket `/ws/chat` with real clients (Bun's WebSocket) against a real listening server:
 * the three ways to authenticate (and the header), refusals closing with 4401/4403, frames in
 * order, an ERROR for each kind of bad frame with the socket still working, the per-socket rate
 * limit and a flood, isolation between users, SUBSCRIBE, lock events, revocation closing with
 * 4401, heartbeats, shutdown.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createApp } from '../src/app.ts'
import { sessionFramesChannel, type SessionFrame } from '../src/modules/sessions/types.ts'
import { workflowLockChannel } from '../src/modules/workflows/types.ts'
import { FRAMES_PER_SECOND, HARD_MAX_FRAME_BYTES, MAX_FRAME_BYTES } from '../src/modules/ws/frames.ts'
import { socketServer } from '../src/modules/ws/routes.ts'
import { login, register, type Account } from './helpers/accounts.ts'
import { createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { eventually } from './helpers/streams.ts'
import { listen, openSocket, type SocketOptions, type TestSocket } from './helpers/ws.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

const ALLOWED_ORIGIN = 'https://app.example'

/** A small ComfyUI API-format workflow, and the edit the `editor` model makes to it (update_workflow with these arguments). */
const WORKFLOW = { '3': { class_type: 'KSampler', inputs: { seed: 1, steps: 20 } }, '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd15.safetensors' } } }
const EDITED = { ...WORKFLOW, '3': { class_type: 'KSampler', inputs: { seed: 42, steps: 20 } } }
const EDIT_REQUEST = `Set the seed to 42. FAKE_TOOL_ARGS=${JSON.stringify({ workflow_data: EDITED, note: 'seed 42' })}`

async function apiKey(t: TestApp, a: Account, scopes?: string[]) {
  const res = await t.request('POST', '/api/v1/api-keys', { token: a.access, body: { name: 'socket', ...(scopes ? { scopes } : {}) } })
  expect(res.status).toBe(201)
  return res.body as { id: string; key: string }
}

/** A socket that is open and answers PING. */
async function ready(url: string, opts: SocketOptions): Promise<TestSocket> {
  const s = openSocket(url, opts)
  await s.opened
  s.send({ type: 'PING' })
  await s.next('PONG')
  return s
}

const delta = (user: Account, session: string, text: string): SessionFrame => ({ type: 'MESSAGE_DELTA', user_id: user.id, session_id: session, message_id: 'm1', text })

eachDialect('the WebSocket /ws/chat', (dialect) => {
  let t: TestApp
  let server: ReturnType<typeof listen>['server']
  let url: string
  let http: string
  let admin: Account
  let alice: Account
  let bob: Account
  const sockets: TestSocket[] = []
  const open = (opts: SocketOptions) => {
    const s = openSocket(url, opts)
    sockets.push(s)
    return s
  }
  const connect = async (opts: SocketOptions) => {
    const s = await ready(url, opts)
    sockets.push(s)
    return s
  }
  const publish = (frame: SessionFrame) => t.deps.services.bus.publish(sessionFramesChannel, frame)

  let fake: FakeLlm
  /** while set, an agent's workflow edit waits here holding the lock; `entered` says it got there */
  let holding: Promise<void> | undefined
  let entered: (() => void) | undefined

  beforeAll(async () => {
    fake = await startFakeLlm()
    // sockets count among a user's open streams (default 20): these tests keep many open
    t = await createTestApp(dialect, { HEARTH_CORS_ORIGINS: ALLOWED_ORIGIN, HEARTH_MAX_STREAMS_PER_USER: '1000' }, { sessionEdits: { whileLocked: async () => (entered?.(), await holding) } })
    ;({ server, url, http } = listen(t))
    admin = await register(t, 'wsadmin')
    alice = await register(t, 'alice')
    bob = await register(t, 'bob')
    const provider = await t.request('POST', '/api/v1/providers', { token: admin.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
    expect(provider.status).toBe(201)
    for (const [name, model, isDefault] of [
      ['plain', 'fake:tokens=3', true],
      ['editor', 'fake:tokens=3,calls=update_workflow,argsjson', false],
    ] as const)
      expect((await t.request('POST', '/api/v1/models', { token: admin.access, body: { provider_id: provider.body.id, name, model_id: model, is_default: isDefault } })).status).toBe(201)
  })
  afterAll(async () => {
    for (const s of sockets) s.close()
    server.stop(true)
    await t.close()
    await fake.stop()
  })

  /** A workflow of `a` (through the workflows module) and a session on it, with its agent's model. */
  async function sessionOf(a: Account, model?: string) {
    const workflow = await t.deps.services.workflows.create(a.id, { name: 'txt2img', workflowData: WORKFLOW })
    let agentId: string | undefined
    if (model) {
      const agent = await t.request('POST', '/api/v1/agents', { token: a.access, body: { name: `wf-${Math.random().toString(36).slice(2)}`, type: 'workflow', model_id: model } })
      expect(agent.status).toBe(201)
      agentId = agent.body.id
    }
    const session = await t.request('POST', '/api/v1/sessions', { token: a.access, body: { workflow_id: workflow.id, title: 'ws', ...(agentId ? { agent_id: agentId } : {}) } })
    expect(session.status).toBe(201)
    return { workflowId: workflow.id, sessionId: session.body.id as string }
  }

  /** The frames of one reply on `s`, from the user message's MESSAGE_RECEIVED to the reply's. */
  async function reply(s: TestSocket, sessionId: string) {
    const frames = [await s.next((f) => f.type === 'MESSAGE_RECEIVED' && f.session_id === sessionId)]
    for (;;) {
      const f = await s.next((f) => f.session_id === sessionId || f.type === 'ERROR')
      frames.push(f)
      if (f.type === 'MESSAGE_RECEIVED' || f.type === 'ERROR') return frames
    }
  }

  describe('authentication: accepted, then closed with 4401 when the credential is bad', () => {
    test('?token= with an access token', async () => {
      await connect({ token: alice.access })
    })

    test('Sec-WebSocket-Protocol: bearer, <token> — the answer selects "bearer"', async () => {
      const s = await connect({ protocols: ['bearer', alice.access] })
      expect(s.ws.protocol).toBe('bearer')
    })

    test('the hearth_access cookie (no Origin: not a browser)', async () => {
      await connect({ headers: { cookie: `hearth_access=${alice.access}` } })
    })

    test('Authorization: Bearer (clients that can set headers)', async () => {
      await connect({ headers: { authorization: `Bearer ${alice.access}` } })
    })

    test('an API key with the api scope, by ?token= and by the subprotocol', async () => {
      const { key } = await apiKey(t, alice)
      await connect({ token: key })
      await connect({ protocols: ['bearer', key] })
    })

    test.each([
      ['a garbage token', { token: 'not-a-token' }, 'UNAUTHORIZED'],
      ['a forged JWT', { token: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl' }, 'UNAUTHORIZED'],
      ['an unknown API key', { token: `hk_${'a'.repeat(43)}` }, 'UNAUTHORIZED'],
      ['no credential at all', {}, 'UNAUTHORIZED'],
      ['an empty ?token=', { query: 'token=' }, 'UNAUTHORIZED'],
      ['the bearer subprotocol without a token', { protocols: ['bearer'] }, 'UNAUTHORIZED'],
      ['an Authorization header that is not a bearer token', { headers: { authorization: 'Basic YTpi' } }, 'UNAUTHORIZED'],
    ] as [string, SocketOptions, string][])('%s: 4401', async (_, opts, code) => {
      const s = open(opts)
      const closed = await s.closed
      expect(closed.code).toBe(4401)
      expect(closed.reason.startsWith(`${code}:`)).toBe(true)
      expect(s.frames).toEqual([])
    })

    test('the bearer subprotocol is selected on a refusal too, so a browser sees the 4401', async () => {
      const s = open({ protocols: ['bearer', 'bad-token'] })
      await s.opened
      expect(s.ws.protocol).toBe('bearer')
      expect((await s.closed).code).toBe(4401)
    })

    test('an API key without the api scope (gateway only): 4403', async () => {
      const { key } = await apiKey(t, alice, ['gateway'])
      const closed = await open({ token: key }).closed
      expect(closed.code).toBe(4403)
      expect(closed.reason).toStartWith('FORBIDDEN:')
    })

    test('a cookie from another site is refused (4403); from this site or an allowed origin it is accepted', async () => {
      const cookie = `hearth_access=${alice.access}`
      for (const headers of [
        { cookie, origin: 'https://evil.example' } as Record<string, string>,
        { cookie, origin: 'null' },
        { cookie, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
        { cookie, 'sec-fetch-site': 'cross-site' },
        { cookie, 'sec-fetch-site': 'same-site', origin: 'https://sub.app.example' },
      ]) {
        const closed = await open({ headers }).closed
        expect({ headers, code: closed.code }).toEqual({ headers, code: 4403 })
      }
      const own = new URL(url).host
      for (const headers of [{ cookie, origin: ALLOWED_ORIGIN } as Record<string, string>, { cookie, origin: `http://${own}` }, { cookie, origin: `http://${own}`, 'sec-fetch-site': 'same-origin' }]) await connect({ headers })
    })

    test('a token is not checked for its origin (another site cannot make a browser send it)', async () => {
      await connect({ token: alice.access, headers: { origin: 'https://evil.example' } })
    })

    test('a plain GET without the upgrade is not a socket', async () => {
      const res = await fetch(`${http}/ws/chat?token=${alice.access}`)
      expect(res.status).toBeGreaterThanOrEqual(400)
      expect(res.status).toBeLessThan(500)
    })
  })

  describe('frames', () => {
    test('PING → PONG', async () => {
      const s = await connect({ token: alice.access })
      s.send({ type: 'PING' })
      expect(await s.next()).toEqual({ type: 'PONG' })
    })

    test.each([
      ['text that is not JSON', 'hello there', 'VALIDATION_ERROR', /JSON object/],
      ['a JSON array', '[1,2]', 'VALIDATION_ERROR', /JSON object/],
      ['a JSON string', '"PING"', 'VALIDATION_ERROR', /JSON object/],
      ['a number', '42', 'VALIDATION_ERROR', /JSON object/],
      ['no type', '{"session_id":"s"}', 'VALIDATION_ERROR', /needs a "type"/],
      ['an unknown type', '{"type":"DELETE_EVERYTHING"}', 'VALIDATION_ERROR', /Unknown frame type "DELETE_EVERYTHING"/],
      ['SEND_MESSAGE without session_id', '{"type":"SEND_MESSAGE","content":"hi"}', 'VALIDATION_ERROR', /session_id/],
      ['SEND_MESSAGE without content', '{"type":"SEND_MESSAGE","session_id":"s1"}', 'VALIDATION_ERROR', /content/],
      ['SEND_MESSAGE with a number for content', '{"type":"SEND_MESSAGE","session_id":"s1","content":5}', 'VALIDATION_ERROR', /content/],
      ['SUBSCRIBE with neither id', '{"type":"SUBSCRIBE"}', 'VALIDATION_ERROR', /session_id or a workflow_id/],
      ['a type that is an object', '{"type":{"a":1}}', 'VALIDATION_ERROR', /Unknown frame type/],
      ['__proto__ as the type', '{"type":"__proto__"}', 'VALIDATION_ERROR', /Unknown frame type/],
      ['a NUL in session_id', '{"type":"SEND_MESSAGE","session_id":"s\\u0000","content":"hi"}', 'VALIDATION_ERROR', /session_id: must not contain control characters/],
    ] as [string, string, string, RegExp][])('%s: ERROR, and the socket still works', async (_, raw, code, message) => {
      const s = await connect({ token: alice.access })
      s.sendRaw(raw)
      const error = await s.next()
      expect(error).toMatchObject({ type: 'ERROR', code })
      expect(error.message).toMatch(message)
      s.send({ type: 'PING' })
      expect(await s.next()).toEqual({ type: 'PONG' })
    })

    test('a bad SEND_MESSAGE echoes its client_msg_id', async () => {
      const s = await connect({ token: alice.access })
      s.send({ type: 'SEND_MESSAGE', content: 'no session', client_msg_id: 'c-17' })
      expect(await s.next()).toMatchObject({ type: 'ERROR', code: 'VALIDATION_ERROR', client_msg_id: 'c-17' })
    })

    test('a binary frame: ERROR, the socket stays open', async () => {
      const s = await connect({ token: alice.access })
      s.sendRaw(new Uint8Array([0x7b, 0x7d]))
      expect(await s.next()).toMatchObject({ type: 'ERROR', code: 'VALIDATION_ERROR', message: expect.stringContaining('Binary') })
      s.send({ type: 'PING' })
      expect(await s.next()).toEqual({ type: 'PONG' })
    })

    test(`a frame over ${MAX_FRAME_BYTES} bytes: ERROR PAYLOAD_TOO_LARGE unread, the socket stays open`, async () => {
      const s = await connect({ token: alice.access })
      s.send({ type: 'SEND_MESSAGE', session_id: 's1', content: 'x'.repeat(MAX_FRAME_BYTES), client_msg_id: 'big' })
      expect(await s.next()).toMatchObject({ type: 'ERROR', code: 'PAYLOAD_TOO_LARGE' })
      // multi-byte characters count as their UTF-8 bytes
      s.send({ type: 'SEND_MESSAGE', session_id: 's1', content: 'é'.repeat(MAX_FRAME_BYTES / 2) })
      expect(await s.next()).toMatchObject({ type: 'ERROR', code: 'PAYLOAD_TOO_LARGE' })
      s.send({ type: 'PING' })
      expect(await s.next()).toEqual({ type: 'PONG' })
    })

    test(`a frame over ${HARD_MAX_FRAME_BYTES} bytes closes that socket (1009); the server and other sockets go on`, async () => {
      const other = await connect({ token: alice.access })
      const s = await connect({ token: alice.access })
      s.sendRaw('x'.repeat(HARD_MAX_FRAME_BYTES + 1))
      expect((await s.closed).code).toBe(1009)
      other.send({ type: 'PING' })
      expect(await other.next()).toEqual({ type: 'PONG' })
      await connect({ token: alice.access })
    })

    test('frames come in the order they were published', async () => {
      const s = await connect({ token: alice.access })
      for (let i = 0; i < 100; i++) await publish(delta(alice, 'ordered', `t${i}`))
      const texts: string[] = []
      for (let i = 0; i < 100; i++) texts.push((await s.next('MESSAGE_DELTA')).text)
      expect(texts).toEqual(Array.from({ length: 100 }, (_, i) => `t${i}`))
    })

    test('a bus frame reaches the socket as the contract has it: without user_id', async () => {
      const s = await connect({ token: alice.access })
      const message = { id: 'm9', role: 'user' as const, content: 'hello', created_at: new Date().toISOString() }
      await publish({ type: 'MESSAGE_RECEIVED', user_id: alice.id, session_id: 's-wire', message, client_msg_id: 'c1' })
      expect(await s.next()).toEqual({ type: 'MESSAGE_RECEIVED', session_id: 's-wire', message, client_msg_id: 'c1' })
    })

    test(`more than ${FRAMES_PER_SECOND} frames a second: ERROR RATE_LIMITED (with the client_msg_id), then it works again`, async () => {
      const s = await connect({ token: bob.access })
      await Bun.sleep(1100) // a full bucket
      for (let i = 0; i < FRAMES_PER_SECOND * 2; i++) s.send({ type: 'PING', client_msg_id: `p${i}` })
      const answers = []
      for (let i = 0; i < FRAMES_PER_SECOND * 2; i++) answers.push(await s.next())
      const pongs = answers.filter((f) => f.type === 'PONG').length
      const limited = answers.filter((f) => f.type === 'ERROR' && f.code === 'RATE_LIMITED')
      // the bucket refills while the frames travel: about half get through
      expect(pongs).toBeGreaterThanOrEqual(FRAMES_PER_SECOND)
      expect(pongs).toBeLessThan(FRAMES_PER_SECOND + 5)
      expect(limited.length).toBe(FRAMES_PER_SECOND * 2 - pongs)
      expect(limited[0].client_msg_id).toMatch(/^p\d+$/)
      await Bun.sleep(1100)
      s.send({ type: 'PING' })
      expect(await s.next()).toEqual({ type: 'PONG' })
    })

    test('a flood does not stop the server: other sockets and HTTP answer meanwhile, the flooder afterwards', async () => {
      const flooder = await connect({ token: bob.access })
      const other = await connect({ token: alice.access })
      for (let i = 0; i < 20_000; i++) flooder.sendRaw('{"type":"PING"}')
      other.send({ type: 'PING' })
      expect(await other.next('PONG')).toEqual({ type: 'PONG' })
      expect((await fetch(`${http}/health`)).status).toBe(200)
      await flooder.next((f) => f.type === 'ERROR' && f.code === 'RATE_LIMITED', 10_000)
      // every frame answered: nothing more comes
      await eventually(async () => {
        const seen = flooder.frames.length
        await Bun.sleep(200)
        return flooder.frames.length === seen
      }, 20_000)
      await Bun.sleep(1100)
      const before = flooder.frames.length
      flooder.send({ type: 'PING' })
      await eventually(() => flooder.frames.slice(before).some((f) => f.type === 'PONG'))
    }, 30_000)
  })

  describe('isolation: a socket hears only its own user', () => {
    test("bob's socket hears nothing of alice's sessions or workflows; alice's sockets all hear them", async () => {
      const a1 = await connect({ token: alice.access })
      const a2 = await connect({ protocols: ['bearer', alice.access] })
      const b = await connect({ token: bob.access })
      await publish(delta(alice, 'alice-session', 'secret'))
      await t.deps.services.bus.publish(workflowLockChannel, { type: 'WORKFLOW_LOCKED', user_id: alice.id, workflow_id: 'wf-a', reason: 'agent editing' })
      await t.deps.services.bus.publish(workflowLockChannel, { type: 'WORKFLOW_UNLOCKED', user_id: alice.id, workflow_id: 'wf-a' })
      for (const s of [a1, a2]) {
        expect(await s.next()).toEqual({ type: 'MESSAGE_DELTA', session_id: 'alice-session', message_id: 'm1', text: 'secret' })
        expect(await s.next()).toEqual({ type: 'WORKFLOW_LOCKED', workflow_id: 'wf-a', reason: 'agent editing' })
        expect(await s.next()).toEqual({ type: 'WORKFLOW_UNLOCKED', workflow_id: 'wf-a' })
      }
      // bob's own frame comes after: he heard nothing before it
      await publish(delta(bob, 'bob-session', 'mine'))
      expect(await b.next()).toMatchObject({ type: 'MESSAGE_DELTA', session_id: 'bob-session' })
      expect(b.frames).toHaveLength(2) // the PONG of `connect`, then his own
    })

    test("bob's socket hears nothing of alice's real reply; he cannot send to her session (NOT_FOUND, like a missing one)", async () => {
      const { sessionId } = await sessionOf(alice)
      const a = await connect({ token: alice.access })
      const b = await connect({ token: bob.access })
      b.send({ type: 'SEND_MESSAGE', session_id: sessionId, content: 'let me in', client_msg_id: 'b1' })
      expect(await b.next()).toEqual({ type: 'ERROR', code: 'NOT_FOUND', message: expect.any(String), client_msg_id: 'b1' })
      a.send({ type: 'SEND_MESSAGE', session_id: sessionId, content: 'hello' })
      await reply(a, sessionId)
      b.send({ type: 'PING' })
      expect(await b.next()).toEqual({ type: 'PONG' })
      expect(b.frames.map((f) => f.type)).toEqual(['PONG', 'ERROR', 'PONG'])
    })

    test("SUBSCRIBE to another user's or an unknown session or workflow: ERROR NOT_FOUND", async () => {
      const theirs = await sessionOf(alice)
      const s = await connect({ token: bob.access })
      for (const frame of [{ session_id: theirs.sessionId }, { session_id: 'no-such-session' }, { workflow_id: theirs.workflowId }, { workflow_id: 'no-such-workflow' }]) {
        s.send({ type: 'SUBSCRIBE', ...frame })
        expect({ frame, answer: await s.next() }).toEqual({ frame, answer: { type: 'ERROR', code: 'NOT_FOUND', message: expect.any(String) } })
      }
    })
  })

  describe('sessions over the socket (the real sessions module and a fake model)', () => {
    test('SEND_MESSAGE → MESSAGE_RECEIVED of the stored user message (client_msg_id echoed), MESSAGE_DELTA…, MESSAGE_RECEIVED of the reply; every socket of the user hears it', async () => {
      const { sessionId } = await sessionOf(alice)
      const s = await connect({ token: alice.access })
      const other = await connect({ protocols: ['bearer', alice.access] })
      s.send({ type: 'SEND_MESSAGE', session_id: sessionId, content: 'make it sharper', client_msg_id: 'c-1' })
      for (const socket of [s, other]) {
        const frames = await reply(socket, sessionId)
        expect(frames[0]).toEqual({ type: 'MESSAGE_RECEIVED', session_id: sessionId, message: { id: expect.any(String), role: 'user', content: 'make it sharper', created_at: expect.any(String) }, client_msg_id: 'c-1' })
        const last = frames.at(-1)
        expect(last).toEqual({ type: 'MESSAGE_RECEIVED', session_id: sessionId, message: { id: expect.any(String), role: 'assistant', content: 'tok0 tok1 tok2 ', created_at: expect.any(String) } })
        const deltas = frames.slice(1, -1)
        expect(deltas.length).toBeGreaterThan(0)
        expect(deltas.every((f) => f.type === 'MESSAGE_DELTA' && f.message_id === last.message.id)).toBe(true)
        expect(deltas.map((f) => f.text).join('')).toBe('tok0 tok1 tok2 ')
      }
      // what the socket showed is what was stored
      const stored = await t.request('GET', `/api/v1/sessions/${sessionId}/messages`, { token: alice.access })
      expect(stored.body.map((m: { role: string; content: string }) => [m.role, m.content])).toEqual([
        ['user', 'make it sharper'],
        ['assistant', 'tok0 tok1 tok2 '],
      ])
    })

    test('an API key socket sends too', async () => {
      const { sessionId } = await sessionOf(alice)
      const { key } = await apiKey(t, alice, ['api'])
      const s = await connect({ token: key })
      s.send({ type: 'SEND_MESSAGE', session_id: sessionId, content: 'by key', client_msg_id: 'k-1' })
      const frames = await reply(s, sessionId)
      expect(frames[0]).toMatchObject({ client_msg_id: 'k-1', message: { content: 'by key' } })
      expect(frames.at(-1)).toMatchObject({ type: 'MESSAGE_RECEIVED', message: { role: 'assistant' } })
    })

    test('the service refuses: ERROR with its code and the client_msg_id, and the socket goes on', async () => {
      const { sessionId } = await sessionOf(alice)
      const s = await connect({ token: alice.access })
      const cases: [Record<string, unknown>, string][] = [
        [{ session_id: 'no-such-session', content: 'hi' }, 'NOT_FOUND'],
        [{ session_id: sessionId, content: '   ' }, 'VALIDATION_ERROR'],
        [{ session_id: sessionId, content: 'a\u0000b' }, 'VALIDATION_ERROR'],
      ]
      for (const [frame, code] of cases) {
        const id = `e-${cases.findIndex(([f]) => f === frame)}`
        s.send({ type: 'SEND_MESSAGE', ...frame, client_msg_id: id })
        expect({ frame, answer: await s.next() }).toMatchObject({ frame, answer: { type: 'ERROR', code, client_msg_id: id } })
      }
      // archived: 409
      expect((await t.request('PATCH', `/api/v1/sessions/${sessionId}`, { token: alice.access, body: { status: 'archived' } })).status).toBe(200)
      s.send({ type: 'SEND_MESSAGE', session_id: sessionId, content: 'still there?', client_msg_id: 'e-arch' })
      expect(await s.next()).toMatchObject({ type: 'ERROR', code: 'CONFLICT', client_msg_id: 'e-arch' })
      s.send({ type: 'PING' })
      expect(await s.next()).toEqual({ type: 'PONG' })
    })

    test('SUBSCRIBE narrows the socket to what it named (and the sessions it writes to); a socket that did not hears everything of its user', async () => {
      const one = await sessionOf(alice)
      const two = await sessionOf(alice)
      const narrowed = await connect({ token: alice.access })
      const everything = await connect({ token: alice.access })
      narrowed.send({ type: 'SUBSCRIBE', session_id: one.sessionId })
      narrowed.send({ type: 'PING' })
      await narrowed.next('PONG') // frames are handled in order: the SUBSCRIBE holds
      await publish(delta(alice, two.sessionId, 'not for you'))
      await publish(delta(alice, one.sessionId, 'for you'))
      expect(await narrowed.next()).toMatchObject({ session_id: one.sessionId, text: 'for you' })
      expect((await everything.next()).text).toBe('not for you')
      expect((await everything.next()).text).toBe('for you')
      // writing to the other session: it hears that one from then on
      narrowed.send({ type: 'SEND_MESSAGE', session_id: two.sessionId, content: 'now this one' })
      const frames = await reply(narrowed, two.sessionId)
      expect(frames.at(-1)).toMatchObject({ type: 'MESSAGE_RECEIVED', message: { role: 'assistant' } })
      // workflows narrow separately: lock events of other workflows are no longer heard
      narrowed.send({ type: 'SUBSCRIBE', workflow_id: one.workflowId })
      narrowed.send({ type: 'PING' })
      await narrowed.next('PONG')
      await t.deps.services.bus.publish(workflowLockChannel, { type: 'WORKFLOW_LOCKED', user_id: alice.id, workflow_id: two.workflowId, reason: 'x' })
      await t.deps.services.bus.publish(workflowLockChannel, { type: 'WORKFLOW_LOCKED', user_id: alice.id, workflow_id: one.workflowId, reason: 'y' })
      expect(await narrowed.next()).toEqual({ type: 'WORKFLOW_LOCKED', workflow_id: one.workflowId, reason: 'y' })
    })

    test('the agent edits the workflow: WORKFLOW_LOCKED, a PUT is 409 meanwhile, WORKFLOW_UNLOCKED, then the reply', async () => {
      const { sessionId, workflowId } = await sessionOf(alice, 'editor')
      const s = await connect({ token: alice.access })
      const b = await connect({ token: bob.access })
      let release!: () => void
      holding = new Promise<void>((resolve) => (release = resolve))
      const inside = new Promise<void>((resolve) => (entered = resolve))
      try {
        s.send({ type: 'SEND_MESSAGE', session_id: sessionId, content: EDIT_REQUEST, client_msg_id: 'edit' })
        expect(await s.next()).toMatchObject({ type: 'MESSAGE_RECEIVED', client_msg_id: 'edit' })
        await inside
        expect(await s.next()).toEqual({ type: 'WORKFLOW_LOCKED', workflow_id: workflowId, reason: 'edited by the session agent' })
        expectProblem(await t.request('PUT', `/api/v1/workflows/${workflowId}`, { token: alice.access, body: { name: 'mine now' } }), 409, 'CONFLICT')
      } finally {
        release()
        holding = undefined
      }
      expect(await s.next()).toEqual({ type: 'WORKFLOW_UNLOCKED', workflow_id: workflowId })
      const rest = []
      for (;;) {
        const f = await s.next()
        rest.push(f)
        if (f.type === 'MESSAGE_RECEIVED') break
      }
      expect(rest.at(-1)).toMatchObject({ session_id: sessionId, message: { role: 'assistant', content: 'tok0 tok1 tok2 ' } })
      expect(rest.slice(0, -1).every((f) => f.type === 'MESSAGE_DELTA')).toBe(true)
      expect((await t.request('PUT', `/api/v1/workflows/${workflowId}`, { token: alice.access, body: { name: 'mine now' } })).status).toBe(200)
      // bob heard none of it
      expect(b.frames).toEqual([{ type: 'PONG' }])
    })
  })

  describe('revocation closes the sockets it concerns with 4401', () => {
    test('logout closes the sockets of that session only', async () => {
      const u = await register(t, 'leaver')
      const other = await login(t, u)
      const s1 = await connect({ token: u.access })
      const s2 = await connect({ headers: { cookie: `hearth_access=${u.access}` } })
      const kept = await connect({ token: other.access })
      expect((await t.request('POST', '/api/v1/auth/logout', { token: u.access })).status).toBe(204)
      for (const s of [s1, s2]) expect(await s.closed).toEqual({ code: 4401, reason: 'UNAUTHORIZED: session_revoked' })
      kept.send({ type: 'PING' })
      expect(await kept.next()).toEqual({ type: 'PONG' })
      // and the dead token cannot open a new one
      expect((await open({ token: u.access }).closed).code).toBe(4401)
    })

    test('deleting an API key closes the sockets it opened', async () => {
      const { id, key } = await apiKey(t, alice)
      const s = await connect({ token: key })
      const kept = await connect({ token: alice.access })
      expect((await t.request('DELETE', `/api/v1/api-keys/${id}`, { token: alice.access })).status).toBe(204)
      expect(await s.closed).toEqual({ code: 4401, reason: 'UNAUTHORIZED: api_key_revoked' })
      kept.send({ type: 'PING' })
      expect(await kept.next()).toEqual({ type: 'PONG' })
    })

    test('a role change closes every socket of the user (TOKEN_EXPIRED: refresh and reconnect)', async () => {
      const u = await register(t, 'promoted')
      const { key } = await apiKey(t, u)
      const s = await connect({ token: u.access })
      const k = await connect({ token: key })
      expect((await t.request('PATCH', `/api/v1/admin/users/${u.id}`, { token: admin.access, body: { role: 'admin' } })).status).toBe(200)
      for (const x of [s, k]) expect(await x.closed).toEqual({ code: 4401, reason: 'TOKEN_EXPIRED: access_changed' })
      const fresh = await t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: u.refresh } })
      await connect({ token: fresh.body.tokens.access_token })
    })

    test('a disabled user: every socket closes, and no new one opens', async () => {
      const u = await register(t, 'disabled')
      const { key } = await apiKey(t, u)
      const s = await connect({ token: u.access })
      const k = await connect({ token: key })
      expect((await t.request('PATCH', `/api/v1/admin/users/${u.id}`, { token: admin.access, body: { is_active: false } })).status).toBe(200)
      for (const x of [s, k]) expect((await x.closed).code).toBe(4401)
      for (const token of [u.access, key]) expect((await open({ token }).closed).code).toBe(4401)
    })
  })

  test('the hub forgets closed sockets', async () => {
    const u = await register(t, 'counted')
    const s = await connect({ token: u.access })
    expect(t.deps.services.socketHub.count(u.id)).toBe(1)
    s.close()
    await s.closed
    await eventually(() => t.deps.services.socketHub.count(u.id) === 0)
    expect(t.deps.services.subscriptions.countOf(u.id)).toBe(0)
  })

  test('sockets count among the open streams of a user: past HEARTH_MAX_STREAMS_PER_USER, 4429', async () => {
    const t2 = await createTestApp(dialect, { HEARTH_MAX_STREAMS_PER_USER: '2' })
    const l = listen(t2)
    try {
      const u = await register(t2, 'many')
      const first = [await ready(l.url, { token: u.access }), await ready(l.url, { token: u.access })]
      const third = openSocket(l.url, { token: u.access })
      const closed = await third.closed
      expect(closed.code).toBe(4429)
      expect(closed.reason).toStartWith('RATE_LIMITED:')
      first[0]!.close()
      await first[0]!.closed
      // its place is free once the server has seen the close
      await eventually(() => t2.deps.services.socketHub.count(u.id) === 1)
      const again = await ready(l.url, { token: u.access })
      again.close()
      first[1]!.close()
    } finally {
      l.server.stop(true)
      await t2.close()
    }
  })

  test('shutdown closes the sockets with 1001', async () => {
    const t2 = await createTestApp(dialect)
    const l = listen(t2)
    const u = await register(t2, 'shut')
    const s = await ready(l.url, { token: u.access })
    await t2.close()
    expect(await s.closed).toEqual({ code: 1001, reason: 'Server shutting down' })
    l.server.stop(true)
  })
})

describe('heartbeats', () => {
  let t: TestApp
  let server: ReturnType<typeof Bun.serve>
  let account: Account
  beforeAll(async () => {
    t = await createTestApp('sqlite')
    const app = createApp(t.deps)
    // the app's own handlers with a short idle timeout: pinged after 4 s of silence, closed 4 s later
    server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: app.fetch, websocket: { ...socketServer, idleTimeout: 4 } })
    app.server = server
    account = await register(t, 'beat')
  })
  afterAll(async () => {
    server.stop(true)
    await t.close()
  })

  test('a client that answers pings stays open while silent; a dead one is pinged, then closed', async () => {
    const live = await ready(`ws://127.0.0.1:${server.port}/ws/chat`, { token: account.access })
    const received: Uint8Array[] = []
    const { promise: deadClosed, resolve } = Promise.withResolvers<number>()
    // a peer that completes the handshake and then never answers (a vanished client)
    const dead = await Bun.connect({
      hostname: '127.0.0.1',
      port: server.port!,
      socket: { data: (_, d) => void received.push(new Uint8Array(d)), close: () => resolve(performance.now()) },
    })
    const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64')
    dead.write(`GET /ws/chat?token=${account.access} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    const started = performance.now()
    const closedAt = await deadClosed
    expect(new TextDecoder().decode(received[0]).startsWith('HTTP/1.1 101')).toBe(true)
    // a ping frame (opcode 0x9) came before the close
    expect(received.slice(1).some((chunk) => chunk[0] === 0x89)).toBe(true)
    expect(closedAt - started).toBeGreaterThan(6000)
    expect(live.ws.readyState).toBe(WebSocket.OPEN)
    live.send({ type: 'PING' })
    expect(await live.next()).toEqual({ type: 'PONG' })
    live.close()
  }, 20_000)
})
