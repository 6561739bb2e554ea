/**
 * The WebSocket across two instances on one Postgres, both listening: a frame published on A reaches
 * a socket on B (also one larger than NOTIFY's 8000 bytes), a message sent on a socket at B is
 * answered on A's socket, a lock taken by an agent on A is heard on B, and a logout on A closes the
 * session's socket on B with 4401.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { MAX_INLINE_BYTES } from '../src/db/bus.ts'
import { sessionFramesChannel } from '../src/modules/sessions/types.ts'
import { workflowLockChannel } from '../src/modules/workflows/types.ts'
import { login, register, type Account } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp } from './helpers/app.ts'
import { DIALECTS } from './helpers/db.ts'
import { listen, openSocket, type SocketOptions, type TestSocket } from './helpers/ws.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

const WORKFLOW = { '3': { class_type: 'KSampler', inputs: { seed: 1 } } }
const EDITED = { '3': { class_type: 'KSampler', inputs: { seed: 42 } } }

for (const dialect of DIALECTS.filter((d) => d === 'postgres')) {
  describe(`the WebSocket across two instances [${dialect}]`, () => {
    let fake: FakeLlm
    let a: TestApp
    let b: TestApp
    let servers: ReturnType<typeof listen>[]
    let user: Account
    let other: Account
    const sockets: TestSocket[] = []
    /** an admitted socket on instance `i` */
    const connect = async (i: number, opts: SocketOptions) => {
      const s = openSocket(servers[i]!.url, opts)
      sockets.push(s)
      await s.opened
      s.send({ type: 'PING' })
      await s.next('PONG')
      return s
    }

    beforeAll(async () => {
      fake = await startFakeLlm()
      a = await createTestApp(dialect)
      b = await createSecondInstance(a)
      servers = [listen(a), listen(b)]
      const admin = await register(a, 'wsiadmin')
      user = await register(a, 'wsi')
      other = await register(a, 'wsiother')
      const provider = await a.request('POST', '/api/v1/providers', { token: admin.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
      for (const [name, model, isDefault] of [
        ['plain', 'fake:tokens=3', true],
        ['editor', 'fake:tokens=3,calls=update_workflow,argsjson', false],
      ] as const)
        expect((await a.request('POST', '/api/v1/models', { token: admin.access, body: { provider_id: provider.body.id, name, model_id: model, is_default: isDefault } })).status).toBe(201)
    })
    afterAll(async () => {
      for (const s of sockets) s.close()
      for (const s of servers) s.server.stop(true)
      await b.close()
      await a.close()
      await fake.stop()
    })

    async function session(agentModel?: string) {
      const workflow = await a.deps.services.workflows.create(user.id, { name: 'txt2img', workflowData: WORKFLOW })
      let agentId: string | undefined
      if (agentModel) agentId = (await a.request('POST', '/api/v1/agents', { token: user.access, body: { name: `wf-${Math.random().toString(36).slice(2)}`, type: 'workflow', model_id: agentModel } })).body.id
      const res = await a.request('POST', '/api/v1/sessions', { token: user.access, body: { workflow_id: workflow.id, ...(agentId ? { agent_id: agentId } : {}) } })
      expect(res.status).toBe(201)
      return { sessionId: res.body.id as string, workflowId: workflow.id }
    }

    test('a frame published on A reaches the socket on B (and only its user’s)', async () => {
      const onB = await connect(1, { token: user.access })
      const otherOnB = await connect(1, { token: other.access })
      await a.deps.services.bus.publish(sessionFramesChannel, { type: 'MESSAGE_DELTA', user_id: user.id, session_id: 's-a', message_id: 'm', text: 'from A' })
      expect(await onB.next()).toEqual({ type: 'MESSAGE_DELTA', session_id: 's-a', message_id: 'm', text: 'from A' })
      await a.deps.services.bus.publish(workflowLockChannel, { type: 'WORKFLOW_UNLOCKED', user_id: other.id, workflow_id: 'w' })
      expect(await otherOnB.next()).toEqual({ type: 'WORKFLOW_UNLOCKED', workflow_id: 'w' })
      expect(onB.frames).toHaveLength(2) // its PONG and its own frame
    })

    test(`a frame larger than NOTIFY carries (${MAX_INLINE_BYTES}+ bytes) crosses too, whole`, async () => {
      const onB = await connect(1, { token: user.access })
      const text = 'é'.repeat(6000) + 'x'.repeat(4000) // 16,000 bytes of UTF-8
      await a.deps.services.bus.publish(sessionFramesChannel, { type: 'MESSAGE_DELTA', user_id: user.id, session_id: 's-big', message_id: 'm', text })
      const frame = await onB.next()
      expect(frame.text.length).toBe(text.length)
      expect(frame.text).toBe(text)
    })

    test('SEND_MESSAGE on a socket at B: the user message and the reply reach the socket at A, in order', async () => {
      const { sessionId } = await session()
      const onA = await connect(0, { token: user.access })
      const onB = await connect(1, { protocols: ['bearer', user.access] })
      onB.send({ type: 'SEND_MESSAGE', session_id: sessionId, content: 'from B', client_msg_id: 'b-1' })
      for (const s of [onA, onB]) {
        const first = await s.next((f) => f.session_id === sessionId)
        expect(first).toMatchObject({ type: 'MESSAGE_RECEIVED', client_msg_id: 'b-1', message: { role: 'user', content: 'from B' } })
        const rest = []
        for (;;) {
          const f = await s.next((f) => f.session_id === sessionId)
          rest.push(f)
          if (f.type === 'MESSAGE_RECEIVED') break
        }
        expect(rest.at(-1)).toMatchObject({ message: { role: 'assistant', content: 'tok0 tok1 tok2 ' } })
        expect(rest.slice(0, -1).map((f) => f.text).join('')).toBe('tok0 tok1 tok2 ')
      }
    })

    test('an agent edit on A: the socket on B hears WORKFLOW_LOCKED, then WORKFLOW_UNLOCKED', async () => {
      const { sessionId, workflowId } = await session('editor')
      const onB = await connect(1, { token: user.access })
      const content = `Seed 42. FAKE_TOOL_ARGS=${JSON.stringify({ workflow_data: EDITED, note: 'seed 42' })}`
      expect((await a.request('POST', `/api/v1/sessions/${sessionId}/messages`, { token: user.access, body: { content } })).status).toBe(201)
      expect(await onB.next((f) => f.workflow_id === workflowId)).toEqual({ type: 'WORKFLOW_LOCKED', workflow_id: workflowId, reason: 'edited by the session agent' })
      expect(await onB.next((f) => f.workflow_id === workflowId)).toEqual({ type: 'WORKFLOW_UNLOCKED', workflow_id: workflowId })
    })

    test('a logout on A closes that session’s socket on B with 4401; the user’s other session stays', async () => {
      const second = await login(a, user)
      const leaving = await login(a, user)
      const onB = await connect(1, { token: leaving.access })
      const kept = await connect(1, { token: second.access })
      expect((await a.request('POST', '/api/v1/auth/logout', { token: leaving.access })).status).toBe(204)
      expect(await onB.closed).toEqual({ code: 4401, reason: 'UNAUTHORIZED: session_revoked' })
      kept.send({ type: 'PING' })
      expect(await kept.next()).toEqual({ type: 'PONG' })
    })
  })
}
