/**
 * MCP tools in chat, end to end: a global stdio server-everything added by an admin through the API,
 * run behind the recorder (test/fakes/mcp-recorder.mjs) so the tests read what Hearth really sent it;
 * a user's conversation naming `<server>__<tool>`; the fake upstream calling it over the OpenAI and
 * Anthropic wires (`calls=`, `args=`). The result in the events, the tree, the tool logs and the next
 * model request; a stop mid-call cancelling it on the server; a server whose tools need approval;
 * presets naming MCP tools.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { register, type Account } from './helpers/accounts.ts'
import { createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { EVERYTHING, RECORDER } from './helpers/mcp.ts'
import { readEvents, type ReceivedEvent } from './helpers/sse.ts'
import { eventually, follow } from './helpers/streams.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

type Json = Record<string, any>

/** A JSON-RPC message the recorder saw on the server's stdin. */
type Recorded = { id?: number | string; method?: string; params?: Json }

/** What Hearth sent the server recorded in `file`, message by message (a line still being written is left out). */
function sent(file: string): Recorded[] {
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8')
    .split('\n')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as Recorded]
      } catch {
        return []
      }
    })
}
const toolCallsIn = (file: string, tool: string) => sent(file).filter((m) => m.method === 'tools/call' && m.params?.name === tool)

const names = (events: ReceivedEvent[]) => events.map((e) => e.event)
const resultOf = (events: ReceivedEvent[]) => events.find((e) => e.event === 'tool_result')!.data

eachDialect('MCP tools in chat', (dialect) => {
  let t: TestApp
  let fake: FakeLlm
  let server: ReturnType<typeof Bun.serve>
  let base: string
  let admin: Account
  let user: Account
  let dir: string
  /** what each server received: `every` (no approval), `guarded` (requires_approval) */
  const record = { every: '', guarded: '' }
  const serverIds = { every: '', guarded: '' }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hearth-chat-mcp-'))
    record.every = join(dir, 'every.jsonl')
    record.guarded = join(dir, 'guarded.jsonl')
    fake = await startFakeLlm()
    t = await createTestApp(dialect, {}, { toolApprovalTimeoutMs: 5_000, mcp: { idleMs: 60_000, backoffMs: () => 0 } })
    server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: t.app.fetch, idleTimeout: 30 })
    base = `http://127.0.0.1:${server.port}/api/v1`
    admin = await register(t, 'admin')
    user = await register(t, 'user')
    for (const [name, requiresApproval] of [['every', false], ['guarded', true]] as const) {
      const res = await t.request('POST', '/api/v1/mcp/servers', {
        token: admin.access,
        body: { name, command: 'node', args: [RECORDER, 'node', EVERYTHING, 'stdio'], env: { MCP_RECORD_FILE: record[name] }, requires_approval: requiresApproval, timeout_ms: 20_000 },
      })
      expect([res.status, res.body.scope, res.body.transport]).toEqual([201, 'global', 'stdio'])
      serverIds[name] = res.body.id
    }
    const openai = await t.request('POST', '/api/v1/providers', { token: admin.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
    const anthropic = await t.request('POST', '/api/v1/providers', { token: admin.access, body: { name: 'fake-anthropic', type: 'anthropic', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
    for (const [provider, name, id] of [
      [openai, 'oa-echo', 'fake:tokens=3,calls=every__echo,args=message:hello-mcp'],
      [anthropic, 'an-echo', 'fake:tokens=3,calls=every__echo,args=message:hello-mcp'],
      // its default arguments: 10 s in 5 steps
      [openai, 'oa-long', 'fake:tokens=3,calls=every__trigger-long-running-operation'],
      [openai, 'oa-guarded', 'fake:tokens=3,calls=guarded__echo,args=message:guarded'],
    ] as const) {
      const res = await t.request('POST', '/api/v1/models', { token: admin.access, body: { provider_id: provider.body.id, name, model_id: id } })
      expect(res.status).toBe(201)
    }
  }, 30_000)
  afterAll(async () => {
    server?.stop(true)
    await t?.close()
    await fake?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  const conversation = async (body: Json) => {
    const res = await t.request('POST', '/api/v1/conversations', { token: user.access, body: { title: 'MCP', ...body } })
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
    return res.body.id as string
  }
  const send = (conversationId: string, body: Json) =>
    fetch(`${base}/conversations/${conversationId}/messages`, { method: 'POST', headers: { authorization: `Bearer ${user.access}`, accept: 'text/event-stream', 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const get = async (conversationId: string) => (await t.request('GET', `/api/v1/conversations/${conversationId}`, { token: user.access })).body
  /** the chat requests the fake received since `from` */
  const upstream = (from: number, path = '/v1/chat/completions') => fake.requests.slice(from).filter((r) => r.path === path).map((r) => r.body as Json)
  const logsOf = async (conversationId: string) => ((await t.request('GET', '/api/v1/tools/logs?source=chat', { token: user.access })).body.items as Json[]).filter((l) => l.conversation_id === conversationId)

  describe('a call of an MCP tool', () => {
    test("OpenAI wire: the model calls every__echo, the server echoes, and the result is in the event, the tree, the tool log (source chat, the conversation) and the model's second request", async () => {
      const c = await conversation({ tools: ['every__echo'] })
      const from = fake.requests.length
      const callsBefore = toolCallsIn(record.every, 'echo').length
      const events = await readEvents(await send(c, { content: 'Echo something', model_id: 'oa-echo' }))
      expect(names(events)).toEqual(['message.created', 'tool_call', 'tool_result', 'delta', 'delta', 'delta', 'usage', 'done'])
      const call = events[1]!.data
      expect(call).toEqual({ id: expect.stringMatching(/^call_fake/), name: 'every__echo', arguments: '{"message":"hello-mcp"}' })
      expect(resultOf(events)).toEqual({ id: call.id, name: 'every__echo', result: { content: [{ type: 'text', text: 'Echo: hello-mcp' }] }, is_error: false })
      // the server got the call under its own name, with the model's arguments
      expect(toolCallsIn(record.every, 'echo').slice(callsBefore).map((m) => m.params!.arguments)).toEqual([{ message: 'hello-mcp' }])

      // the model was offered the tool with the server's schema, then sent the result paired with the call
      const [first, second, ...more] = upstream(from)
      expect(more).toEqual([])
      expect(first!.tools).toEqual([{ type: 'function', function: { name: 'every__echo', description: 'Echoes back the input string', parameters: expect.objectContaining({ type: 'object', required: ['message'] }) } }])
      expect(second!.messages.slice(-2)).toEqual([
        { role: 'assistant', content: null, tool_calls: [{ id: call.id, type: 'function', function: { name: 'every__echo', arguments: '{"message":"hello-mcp"}' } }] },
        { role: 'tool', tool_call_id: call.id, content: 'Echo: hello-mcp' },
      ])

      const got = await get(c)
      expect(got.messages.map((m: Json) => [m.role, m.status])).toEqual([['user', 'complete'], ['assistant', 'complete'], ['tool', 'complete'], ['assistant', 'complete']])
      const tool = got.messages[2]
      expect(tool).toMatchObject({ parent_id: got.messages[1].id, content: 'Echo: hello-mcp', metadata: { tool_call_id: call.id, name: 'every__echo', is_error: false } })
      expect(got.messages[3].content).toBe('tok0 tok1 tok2 ')

      const logs = await logsOf(c)
      expect(logs).toHaveLength(1)
      expect(logs[0]).toMatchObject({ id: tool.metadata.log_id, tool: 'every__echo', server_id: serverIds.every, arguments: { message: 'hello-mcp' }, result_preview: 'Echo: hello-mcp', is_error: false, source: 'chat', conversation_id: c, task_id: null })
    }, 30_000)

    test('Anthropic wire: the tool_use block runs on the server and the second request answers it with a tool_result block', async () => {
      const c = await conversation({ tools: ['every__echo'] })
      const from = fake.requests.length
      const events = await readEvents(await send(c, { content: 'Echo something', model_id: 'an-echo' }))
      expect(names(events)).toEqual(['message.created', 'tool_call', 'tool_result', 'delta', 'delta', 'delta', 'usage', 'done'])
      const call = events[1]!.data
      expect(call).toMatchObject({ id: expect.stringMatching(/^toolu_fake/), name: 'every__echo' })
      expect(JSON.parse(call.arguments)).toEqual({ message: 'hello-mcp' })
      expect(resultOf(events)).toMatchObject({ id: call.id, is_error: false, result: { content: [{ type: 'text', text: 'Echo: hello-mcp' }] } })
      const [first, second, ...more] = upstream(from, '/v1/messages')
      expect(more).toEqual([])
      expect(first!.tools).toEqual([expect.objectContaining({ name: 'every__echo', input_schema: expect.objectContaining({ required: ['message'] }) })])
      expect(second!.messages.slice(-2)).toEqual([
        { role: 'assistant', content: [{ type: 'tool_use', id: call.id, name: 'every__echo', input: { message: 'hello-mcp' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'Echo: hello-mcp' }] },
      ])
      expect((await get(c)).messages.map((m: Json) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant'])
      expect(await logsOf(c)).toEqual([expect.objectContaining({ tool: 'every__echo', source: 'chat', conversation_id: c, is_error: false })])
    }, 30_000)
  })

  test('a stop while an MCP call runs cancels it on the server (notifications/cancelled for that request) and the run ends at once, stopped; the server goes on', async () => {
    const c = await conversation({ tools: ['every__trigger-long-running-operation'] })
    const callsBefore = toolCallsIn(record.every, 'trigger-long-running-operation').length
    const stream = follow(send(c, { content: 'Take your time', model_id: 'oa-long' }))
    // the call reached the server (it takes 10 s there)
    await eventually(() => toolCallsIn(record.every, 'trigger-long-running-operation').length > callsBefore, 10_000, 'the tools/call reaching the server')
    const request = toolCallsIn(record.every, 'trigger-long-running-operation').at(-1)!
    await Bun.sleep(200)
    const started = performance.now()
    expect((await t.request('POST', `/api/v1/conversations/${c}/stop`, { token: user.access })).body).toEqual({ stopped: true })
    const { events } = await stream.ended
    expect(performance.now() - started).toBeLessThan(2_000)
    expect(names(events)).toEqual(['message.created', 'tool_call', 'tool_result', 'usage', 'done'])
    expect(resultOf(events)).toEqual({ id: events[1]!.data.id, name: 'every__trigger-long-running-operation', result: { content: [{ type: 'text', text: 'The call was cancelled: the run was stopped' }] }, is_error: true })
    expect(events.at(-1)!.data).toMatchObject({ finish_reason: 'stopped', message_id: events[0]!.data.assistant_message_id })

    // the server was told to stop that very request
    await eventually(() => sent(record.every).some((m) => m.method === 'notifications/cancelled' && m.params?.requestId === request.id), 3_000, 'notifications/cancelled reaching the server')

    const got = await get(c)
    expect(got.messages.map((m: Json) => [m.role, m.status])).toEqual([['user', 'complete'], ['assistant', 'stopped'], ['tool', 'complete']])
    expect(got.messages[2]).toMatchObject({ content: 'The call was cancelled: the run was stopped', metadata: { is_error: true, log_id: expect.any(String) } })
    // logged like any call, with what it said; a stop is no failure of the tool's
    expect(await logsOf(c)).toEqual([expect.objectContaining({ id: got.messages[2].metadata.log_id, is_error: true, result_preview: 'The call was cancelled: the run was stopped' })])
    expect(t.logText()).not.toContain('tool call failed')

    // the same process answers the next call
    const echo = await t.request('POST', '/api/v1/tools/call', { token: user.access, body: { tool: 'every__echo', arguments: { message: 'after the stop' } } })
    expect([echo.status, echo.body.result]).toEqual([200, { content: [{ type: 'text', text: 'Echo: after the stop' }] }])
  }, 30_000)

  describe('a server with requires_approval', () => {
    /** Start an answer whose guarded__echo call waits for approval; resolves once it waits. */
    async function waitingCall(c: string) {
      const stream = follow(send(c, { content: 'Echo, carefully', model_id: 'oa-guarded' }))
      await eventually(() => stream.events.some((e) => e.event === 'tool_approval_required'), 10_000, 'the approval request')
      return { stream, request: stream.events.find((e) => e.event === 'tool_approval_required')!.data }
    }
    const decide = (c: string, body: Json) => t.request('POST', `/api/v1/conversations/${c}/tool-approvals`, { token: user.access, body })

    test('its tools say so in GET /tools; approved, the call runs on the server', async () => {
      const listed = ((await t.request('GET', '/api/v1/tools', { token: user.access })).body.items as Json[]).filter((i) => i.name === 'guarded__echo' || i.name === 'every__echo')
      expect(listed.map((i) => [i.name, i.source, i.requires_approval])).toEqual([['every__echo', 'mcp', false], ['guarded__echo', 'mcp', true]])

      const c = await conversation({ tools: ['guarded__echo'] })
      const callsBefore = toolCallsIn(record.guarded, 'echo').length
      const { stream, request } = await waitingCall(c)
      expect(request).toEqual({ id: expect.any(String), tool: 'guarded__echo', arguments: '{"message":"guarded"}' })
      expect(await stream.openAfter(200)).toBe('open')
      expect(toolCallsIn(record.guarded, 'echo')).toHaveLength(callsBefore) // not before the approval
      expect((await decide(c, { tool_call_id: request.id, approve: true })).status).toBe(200)
      const { events } = await stream.ended
      expect(names(events)).toEqual(['message.created', 'tool_call', 'tool_approval_required', 'tool_result', 'delta', 'delta', 'delta', 'usage', 'done'])
      expect(resultOf(events)).toEqual({ id: request.id, name: 'guarded__echo', result: { content: [{ type: 'text', text: 'Echo: guarded' }] }, is_error: false })
      expect(toolCallsIn(record.guarded, 'echo').slice(callsBefore).map((m) => m.params!.arguments)).toEqual([{ message: 'guarded' }])
      expect((await get(c)).messages[2].metadata).toMatchObject({ approval: 'approved', is_error: false })
    }, 30_000)

    test('denied, the server never gets the call, and the model is told the user declined', async () => {
      const c = await conversation({ tools: ['guarded__echo'] })
      const from = fake.requests.length
      const callsBefore = toolCallsIn(record.guarded, 'echo').length
      const { stream, request } = await waitingCall(c)
      expect((await decide(c, { tool_call_id: request.id, approve: false })).body).toMatchObject({ approved: false })
      const { events } = await stream.ended
      expect(resultOf(events)).toEqual({ id: request.id, name: 'guarded__echo', result: { content: [{ type: 'text', text: 'The user declined this tool call: it was not run.' }] }, is_error: true })
      expect(events.at(-1)!.data.finish_reason).toBe('stop')
      expect(upstream(from)[1]!.messages.at(-1)).toEqual({ role: 'tool', tool_call_id: request.id, content: 'The user declined this tool call: it was not run.' })
      // give a stray call the time to arrive: none does
      await Bun.sleep(300)
      expect(toolCallsIn(record.guarded, 'echo')).toHaveLength(callsBefore)
      expect(await logsOf(c)).toEqual([])
      expect((await get(c)).messages[2].metadata).toMatchObject({ approval: 'declined', is_error: true, log_id: null })
    }, 30_000)
  })

  describe('presets naming MCP tools', () => {
    test("a preset may name a server's tools; names that are no tool are 422 naming tools; a conversation with the preset and no tools of its own offers the preset's MCP tool and runs it", async () => {
      const preset = await t.request('POST', '/api/v1/presets', { token: user.access, body: { name: 'Echoer', tools: ['every__echo'] } })
      expect([preset.status, preset.body.tools]).toEqual([201, ['every__echo']])
      const bad = await t.request('POST', '/api/v1/presets', { token: user.access, body: { name: 'Broken', tools: ['every__echo', 'every__nope'] } })
      expect([bad.status, bad.body.errors]).toEqual([422, [{ path: 'tools', message: "unknown tool 'every__nope'" }]])

      const c = await conversation({ preset_id: preset.body.id })
      expect((await get(c)).tools).toEqual([])
      const from = fake.requests.length
      const events = await readEvents(await send(c, { content: 'Echo via the preset', model_id: 'oa-echo' }))
      expect(upstream(from)[0]!.tools.map((x: Json) => x.function.name)).toEqual(['every__echo'])
      expect(resultOf(events)).toMatchObject({ name: 'every__echo', is_error: false, result: { content: [{ type: 'text', text: 'Echo: hello-mcp' }] } })
      expect(await logsOf(c)).toEqual([expect.objectContaining({ tool: 'every__echo', conversation_id: c })])
    }, 30_000)
  })
})
