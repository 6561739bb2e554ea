/**
 * Tools in chat against the fake upstream emitting real tool calls — OpenAI's streamed `tool_calls`
 * deltas and Anthropic's `tool_use` blocks with `input_json_delta` (test/fakes/llm.ts `calls=`):
 * the tool loop's events, rows, usage and requests (results paired with their call ids in each
 * wire's format), max_tool_rounds, parallel and unknown calls, approvals (approve, deny, timeout,
 * stop, re-attach, another user), the JSON send, and follow-up questions after a tool exchange.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import type { BuiltinTool } from '../src/modules/tools/types.ts'
import { register, type Account } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { readEvents, textOf, type ReceivedEvent } from './helpers/sse.ts'
import { eventually, follow } from './helpers/streams.ts'
import { CALL_ARGS, startFakeLlm, type FakeLlm } from './fakes/llm.ts'

type Json = Record<string, any>

/** How long a call waits for approval in these tests (10 minutes in production). */
const APPROVAL_TIMEOUT_MS = 1_500

/** Waits `ms` (or until its run is stopped), then says so. */
const waitingTool = (name: string, ms: number): BuiltinTool => ({
  name,
  description: `Waits ${ms} ms, then answers`,
  inputSchema: { type: 'object' },
  async call(_args, { signal }) {
    const started = performance.now()
    const aborted = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), ms)
      signal.addEventListener('abort', () => (clearTimeout(timer), resolve(true)), { once: true })
    })
    return aborted ? { content: [{ type: 'text', text: 'aborted' }], isError: true } : { content: [{ type: 'text', text: `waited ${Math.round(performance.now() - started)} ms` }], isError: false }
  },
})

const ARGS = JSON.stringify(CALL_ARGS)

eachDialect('tools in chat', (dialect) => {
  let t: TestApp
  let fake: FakeLlm
  let server: ReturnType<typeof Bun.serve>
  let base: string
  let a: Account
  let other: Account

  beforeAll(async () => {
    fake = await startFakeLlm()
    t = await createTestApp(dialect, {}, { toolApprovalTimeoutMs: APPROVAL_TIMEOUT_MS, extraBuiltins: [waitingTool('slow_tool', 300), waitingTool('hang_tool', 30_000)] })
    server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: t.app.fetch, idleTimeout: 30 })
    base = `http://127.0.0.1:${server.port}/api/v1`
    a = await register(t, 'tooler')
    other = await register(t, 'other')
    const openai = await t.request('POST', '/api/v1/providers', { token: a.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
    const anthropic = await t.request('POST', '/api/v1/providers', { token: a.access, body: { name: 'fake-anthropic', type: 'anthropic', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
    for (const [provider, name, id] of [
      [openai, 'oa-one', 'fake:tokens=3,calls=current_time'],
      [openai, 'oa-two', 'fake:tokens=3,calls=current_time+current_time'],
      [openai, 'oa-loop', 'fake:tokens=3,calls=current_time,rounds=99'],
      [openai, 'oa-odd', 'fake:tokens=3,calls=no_such_tool+sql_query'],
      [openai, 'oa-slow', 'fake:tokens=3,calls=slow_tool+slow_tool'],
      [openai, 'oa-hang', 'fake:tokens=3,calls=hang_tool'],
      [anthropic, 'an-two', 'fake:tokens=3,calls=current_time+current_time'],
    ] as const) {
      const res = await t.request('POST', '/api/v1/models', { token: a.access, body: { provider_id: provider.body.id, name, model_id: id } })
      expect(res.status).toBe(201)
    }
  })
  afterAll(async () => {
    server.stop(true)
    await t.close()
    await fake.stop()
  })

  const conversation = async (body: Json = {}) => {
    const res = await t.request('POST', '/api/v1/conversations', { token: a.access, body: { title: 'Tools', tools: ['current_time'], ...body } })
    expect(res.status).toBe(201)
    return res.body.id as string
  }
  const send = (conversationId: string, body: Json, token = a.access) =>
    fetch(`${base}/conversations/${conversationId}/messages`, { method: 'POST', headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const get = async (conversationId: string) => (await t.request('GET', `/api/v1/conversations/${conversationId}`, { token: a.access })).body
  const decide = (conversationId: string, body: Json, token = a.access) => t.request('POST', `/api/v1/conversations/${conversationId}/tool-approvals`, { token, body })
  /** the chat requests the fake received since `from` */
  const upstream = (from: number, path = '/v1/chat/completions') => fake.requests.slice(from).filter((r) => r.path === path).map((r) => r.body as Json)
  const names = (events: ReceivedEvent[]) => events.map((e) => e.event)
  const usageRows = async (model: string) => (await t.deps.database.db.select().from(t.deps.database.t.usage)).filter((r) => r.model === model && r.userId === a.id)
  /** each call's id, name and arguments, from the `tool_call` events */
  const callsOf = (events: ReceivedEvent[]) => events.filter((e) => e.event === 'tool_call').map((e) => e.data as { id: string; name: string; arguments: string })
  const setApproval = async (value: string | null) => {
    const existing = await t.request('GET', '/api/v1/configs?config_group=tools', { token: a.access })
    const row = (existing.body.items as Json[]).find((c) => c.config_name === 'requires_approval')
    if (row) expect((await t.request('DELETE', `/api/v1/configs/${row.id}`, { token: a.access })).status).toBe(204)
    if (value) expect((await t.request('POST', '/api/v1/configs', { token: a.access, body: { config_group: 'tools', config_name: 'requires_approval', config_value: value } })).status).toBe(201)
  }

  describe('conversations name tools', () => {
    test('POST and PATCH take tools (each once); unknown names are 422 naming tools and change nothing', async () => {
      const res = await t.request('POST', '/api/v1/conversations', { token: a.access, body: { tools: ['current_time', 'sql_query', 'current_time'] } })
      expect(res.status).toBe(201)
      expect(res.body.tools).toEqual(['current_time', 'sql_query'])
      expect((await get(res.body.id)).tools).toEqual(['current_time', 'sql_query'])
      const bad = await t.request('POST', '/api/v1/conversations', { token: a.access, body: { tools: ['current_time', 'nope'] } })
      expect(bad.status).toBe(422)
      expect(bad.body.errors).toEqual([{ path: 'tools', message: "unknown tool 'nope'" }])
      const patched = await t.request('PATCH', `/api/v1/conversations/${res.body.id}`, { token: a.access, body: { tools: ['current_time'] } })
      expect([patched.status, patched.body.tools]).toEqual([200, ['current_time']])
      const refused = await t.request('PATCH', `/api/v1/conversations/${res.body.id}`, { token: a.access, body: { tools: ['nope'], title: 'never' } })
      expect([refused.status, refused.body.errors?.[0]?.path]).toEqual([422, 'tools'])
      expect(await get(res.body.id)).toMatchObject({ tools: ['current_time'], title: null })
      const cleared = await t.request('PATCH', `/api/v1/conversations/${res.body.id}`, { token: a.access, body: { tools: [] } })
      expect(cleared.body.tools).toEqual([])
    })

    test("a conversation that names no tools uses its preset's; without either the model is offered none", async () => {
      const preset = await t.request('POST', '/api/v1/presets', { token: a.access, body: { name: 'Clock', tools: ['current_time'] } })
      expect(preset.status).toBe(201)
      const from = fake.requests.length
      const c = await conversation({ tools: [], preset_id: preset.body.id })
      const events = await readEvents(await send(c, { content: 'What time is it?', model_id: 'oa-one' }))
      expect(names(events)).toContain('tool_result')
      expect(upstream(from)[0]!.tools).toEqual([{ type: 'function', function: { name: 'current_time', description: expect.any(String), parameters: expect.objectContaining({ type: 'object' }) } }])
      const plain = await conversation({ tools: [] })
      const before = fake.requests.length
      const answer = await readEvents(await send(plain, { content: 'What time is it?', model_id: 'oa-one' }))
      expect(names(answer)).toEqual(['message.created', 'delta', 'delta', 'delta', 'usage', 'done'])
      expect(upstream(before)[0]).not.toHaveProperty('tools')
    })
  })

  describe('the tool loop', () => {
    test('OpenAI wire, two calls in one turn: events in order, the results paired by call id in the second request, the rows of the tree, a usage row per turn', async () => {
      const c = await conversation()
      const from = fake.requests.length
      const rowsBefore = new Set((await usageRows('oa-two')).map((r) => r.id))
      const events = await readEvents(await send(c, { content: 'What time is it, twice?', model_id: 'oa-two' }))
      expect(names(events)).toEqual(['message.created', 'tool_call', 'tool_call', 'tool_result', 'tool_result', 'delta', 'delta', 'delta', 'usage', 'done'])
      expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1))
      const calls = callsOf(events)
      expect(calls).toEqual([
        { id: expect.stringMatching(/^call_fake\d+_0$/), name: 'current_time', arguments: ARGS },
        { id: expect.stringMatching(/^call_fake\d+_1$/), name: 'current_time', arguments: ARGS },
      ])
      const results = events.filter((e) => e.event === 'tool_result')
      for (const r of results) {
        expect(r.data).toEqual({ id: expect.any(String), name: 'current_time', result: { content: [{ type: 'text', text: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z \(/) }], structured_content: expect.objectContaining({ timezone: 'Europe/Paris' }) }, is_error: false })
      }
      expect(results.map((r) => r.data.id).sort()).toEqual(calls.map((x) => x.id).sort())
      expect(textOf(events)).toBe('tok0 tok1 tok2 ')

      // the first request offered the tool; the second sent the calls back, then a result per call id
      const [first, second, ...more] = upstream(from)
      expect(more).toEqual([])
      expect(first!.tools).toHaveLength(1)
      expect(first).not.toHaveProperty('tool_choice')
      expect(second!.messages.slice(-3)).toEqual([
        { role: 'assistant', content: null, tool_calls: calls.map((x) => ({ id: x.id, type: 'function', function: { name: 'current_time', arguments: ARGS } })) },
        { role: 'tool', tool_call_id: calls[0]!.id, content: results.find((r) => r.data.id === calls[0]!.id)!.data.result.content[0].text },
        { role: 'tool', tool_call_id: calls[1]!.id, content: results.find((r) => r.data.id === calls[1]!.id)!.data.result.content[0].text },
      ])
      expect(second!.messages.at(-4)).toEqual({ role: 'user', content: 'What time is it, twice?' })

      // the tree: question → answer with the calls → a result per call → the answer, the active leaf
      const got = await get(c)
      const [user, round, t1, t2, answer] = got.messages as Json[]
      expect(got.messages).toHaveLength(5)
      expect(got.message_count).toBe(5)
      expect(user).toMatchObject({ role: 'user', parent_id: null })
      expect(round).toMatchObject({ id: events[0]!.data.assistant_message_id, role: 'assistant', parent_id: user!.id, status: 'complete', content: '', metadata: { model: 'oa-two', finish_reason: 'tool_calls', tool_calls: calls, output_tokens: 12 } })
      expect(round!.metadata).not.toHaveProperty('pending_approvals')
      for (const [row, parent, call] of [[t1, round, calls[0]], [t2, t1, calls[1]]] as const)
        expect(row).toEqual({
          id: expect.any(String),
          conversation_id: c,
          parent_id: parent!.id,
          role: 'tool',
          content: results.find((r) => r.data.id === call!.id)!.data.result.content[0].text,
          status: 'complete',
          metadata: { tool_call_id: call!.id, name: 'current_time', is_error: false, duration_ms: expect.any(Number), log_id: expect.any(String), structured_content: expect.objectContaining({ timezone: 'Europe/Paris' }) },
          created_at: expect.any(String),
        })
      expect(answer).toMatchObject({ role: 'assistant', parent_id: t2!.id, status: 'complete', content: 'tok0 tok1 tok2 ', metadata: { model: 'oa-two', finish_reason: 'stop', output_tokens: 3 } })
      expect(events.at(-1)!.data).toEqual({ conversation_id: c, message_id: answer!.id, finish_reason: 'stop' })

      // each turn its own usage row; the usage event adds them up
      // (written as the run settles, just after `done`)
      const newRows = async () => (await usageRows('oa-two')).filter((r) => !rowsBefore.has(r.id))
      await eventually(async () => (await newRows()).length === 2)
      const rows = await newRows()
      expect(rows.map((r) => [r.source, r.status, r.outputTokens]).sort((x, y) => Number(x[2]) - Number(y[2]))).toEqual([['chat', 'ok', 3], ['chat', 'ok', 12]])
      const usage = events.find((e) => e.event === 'usage')!.data
      expect(usage).toMatchObject({ output_tokens: 15, input_tokens: rows.reduce((n, r) => n + r.inputTokens, 0) })
      // and each call is in the tool logs, from chat, with its conversation
      const logs = await t.request('GET', '/api/v1/tools/logs?source=chat&tool=current_time', { token: a.access })
      expect((logs.body.items as Json[]).filter((l) => l.conversation_id === c).map((l) => l.id).sort()).toEqual([t1!.metadata.log_id, t2!.metadata.log_id].sort())
    })

    test('Anthropic wire: tool_use blocks streamed with input_json_delta run, and the second request answers them with tool_result blocks paired by tool_use_id', async () => {
      const c = await conversation()
      const from = fake.requests.length
      const events = await readEvents(await send(c, { content: 'Time please', model_id: 'an-two' }))
      expect(names(events)).toEqual(['message.created', 'tool_call', 'tool_call', 'tool_result', 'tool_result', 'delta', 'delta', 'delta', 'usage', 'done'])
      const calls = callsOf(events)
      expect(calls.map((x) => x.id)).toEqual([expect.stringMatching(/^toolu_fake\d+_0$/), expect.stringMatching(/^toolu_fake\d+_1$/)])
      for (const call of calls) expect(JSON.parse(call.arguments)).toEqual(CALL_ARGS)
      const [first, second, ...more] = upstream(from, '/v1/messages')
      expect(more).toEqual([])
      expect(first!.tools).toEqual([expect.objectContaining({ name: 'current_time', input_schema: expect.objectContaining({ type: 'object' }) })])
      const text = (id: string) => events.find((e) => e.event === 'tool_result' && e.data.id === id)!.data.result.content[0].text
      expect(second!.messages).toEqual([
        { role: 'user', content: [{ type: 'text', text: 'Time please' }] },
        { role: 'assistant', content: calls.map((x) => ({ type: 'tool_use', id: x.id, name: 'current_time', input: CALL_ARGS })) },
        { role: 'user', content: calls.map((x) => ({ type: 'tool_result', tool_use_id: x.id, content: text(x.id) })) },
      ])
      const got = await get(c)
      expect(got.messages.map((m: Json) => m.role)).toEqual(['user', 'assistant', 'tool', 'tool', 'assistant'])
      expect(got.messages.at(-1).content).toBe('tok0 tok1 tok2 ')
    })

    test('calls of one turn run in parallel', async () => {
      const c = await conversation({ tools: ['slow_tool'] })
      const started = performance.now()
      const events = await readEvents(await send(c, { content: 'Wait twice', model_id: 'oa-slow' }))
      const elapsed = performance.now() - started
      const results = events.filter((e) => e.event === 'tool_result')
      expect(results.map((r) => r.data.is_error)).toEqual([false, false])
      // two calls of 300 ms each: together, not one after the other
      expect(elapsed).toBeLessThan(580)
      expect(Math.abs(results[1]!.at - results[0]!.at)).toBeLessThan(150)
    })

    test('max_tool_rounds: a model that keeps calling gets tool_choice none after that many rounds, and answers; default 5', async () => {
      const c = await conversation()
      const from = fake.requests.length
      const events = await readEvents(await send(c, { content: 'Loop', model_id: 'oa-loop', max_tool_rounds: 2 }))
      expect(names(events)).toEqual(['message.created', 'tool_call', 'tool_result', 'tool_call', 'tool_result', 'delta', 'delta', 'delta', 'usage', 'done'])
      const requests = upstream(from)
      expect(requests.map((r) => r.tool_choice)).toEqual([undefined, undefined, 'none'])
      // the last turn still sees the tools (Anthropic refuses tool blocks without them), and both rounds
      expect(requests[2]!.tools).toHaveLength(1)
      expect(requests[2]!.messages.map((m: Json) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'tool'])
      const got = await get(c)
      expect(got.messages.map((m: Json) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'tool', 'assistant'])
      expect(got.messages.map((m: Json) => m.metadata.output_tokens ?? null)).toEqual([null, 6, null, 6, null, 3])
      expect(events.find((e) => e.event === 'usage')!.data.output_tokens).toBe(15)

      const before = fake.requests.length
      const five = await readEvents(await send(c, { content: 'Loop on', model_id: 'oa-loop' }))
      expect(five.filter((e) => e.event === 'tool_result')).toHaveLength(5)
      expect(upstream(before).map((r) => r.tool_choice ?? 'auto')).toEqual(['auto', 'auto', 'auto', 'auto', 'auto', 'none'])
      const bad = await t.request('POST', `/api/v1/conversations/${c}/messages`, { token: a.access, body: { content: 'x', max_tool_rounds: 21 } })
      expect([bad.status, bad.body.errors?.[0]?.path]).toEqual([422, 'max_tool_rounds'])
    }, 15_000)

    test('a tool the model names that is not offered — unknown, or one of the user’s tools the conversation does not name — is an is_error result fed back', async () => {
      const c = await conversation()
      const from = fake.requests.length
      const events = await readEvents(await send(c, { content: 'Call odd things', model_id: 'oa-odd' }))
      const results = events.filter((e) => e.event === 'tool_result').map((e) => e.data)
      expect(results.map((r) => [r.name, r.is_error, r.result.content[0].text]).sort()).toEqual([
        ['no_such_tool', true, "There is no tool named 'no_such_tool' here"],
        ['sql_query', true, "There is no tool named 'sql_query' here"],
      ])
      const second = upstream(from)[1]!
      expect(second.messages.slice(-2).map((m: Json) => m.content)).toEqual(["There is no tool named 'no_such_tool' here", "There is no tool named 'sql_query' here"])
      expect(events.at(-1)!.data.finish_reason).toBe('stop')
      const got = await get(c)
      expect(got.messages.filter((m: Json) => m.role === 'tool').map((m: Json) => m.metadata)).toEqual([
        { tool_call_id: expect.any(String), name: 'no_such_tool', is_error: true, duration_ms: 0, log_id: null },
        { tool_call_id: expect.any(String), name: 'sql_query', is_error: true, duration_ms: 0, log_id: null },
      ])
    })

    test('a stop during a tool call aborts it and keeps what was done', async () => {
      const c = await conversation({ tools: ['hang_tool'] })
      const stream = follow(send(c, { content: 'Hang', model_id: 'oa-hang' }))
      await eventually(() => stream.events.some((e) => e.event === 'tool_call'))
      await Bun.sleep(100)
      const started = performance.now()
      expect((await t.request('POST', `/api/v1/conversations/${c}/stop`, { token: a.access })).body).toEqual({ stopped: true })
      const { events } = await stream.ended
      expect(performance.now() - started).toBeLessThan(2_000)
      expect(names(events)).toEqual(['message.created', 'tool_call', 'tool_result', 'usage', 'done'])
      expect(events[2]!.data).toMatchObject({ name: 'hang_tool', is_error: true, result: { content: [{ type: 'text', text: 'aborted' }] } })
      expect(events.at(-1)!.data).toMatchObject({ finish_reason: 'stopped', message_id: events[0]!.data.assistant_message_id })
      const got = await get(c)
      expect(got.messages.map((m: Json) => [m.role, m.status])).toEqual([['user', 'complete'], ['assistant', 'stopped'], ['tool', 'complete']])
      expect(got.messages[2].content).toBe('aborted')
      // nothing is left streaming: the conversation goes on
      const next = await readEvents(await send(c, { content: 'Again, without tools', model_id: 'oa-one', max_tool_rounds: 0 }))
      expect(next.at(-1)!.data.finish_reason).toBe('stop')
    })

    test('regenerating the answer of a tool exchange runs the loop again, as a sibling of its first round', async () => {
      const c = await conversation()
      await readEvents(await send(c, { content: 'Time?', model_id: 'oa-one' }))
      const [question, round, , answer] = (await get(c)).messages
      const events = await readEvents(await fetch(`${base}/conversations/${c}/messages/${answer.id}/regenerate`, { method: 'POST', headers: { authorization: `Bearer ${a.access}`, accept: 'text/event-stream', 'content-type': 'application/json' }, body: JSON.stringify({ model_id: 'oa-one' }) }))
      expect(names(events)).toEqual(['message.created', 'tool_call', 'tool_result', 'delta', 'delta', 'delta', 'usage', 'done'])
      const got = await get(c)
      expect(got.messages.map((m: Json) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant'])
      expect(got.messages[0].id).toBe(question.id)
      expect(got.messages[1]).toMatchObject({ id: events[0]!.data.assistant_message_id, parent_id: question.id })
      expect(got.messages[1].id).not.toBe(round.id)
      expect(got.message_count).toBe(7)
    })

    test('the JSON send waits for the whole loop and returns the last answer', async () => {
      const c = await conversation()
      const res = await t.request('POST', `/api/v1/conversations/${c}/messages`, { token: a.access, body: { content: 'Time?', model_id: 'oa-two' } })
      expect(res.status).toBe(201)
      const got = await get(c)
      expect(res.body.user_message).toMatchObject({ role: 'user', content: 'Time?' })
      expect(res.body.assistant_message).toEqual(got.messages.at(-1))
      expect(res.body.assistant_message).toMatchObject({ role: 'assistant', status: 'complete', content: 'tok0 tok1 tok2 ', parent_id: got.messages[3].id })
    })
  })

  describe('follow-up questions after a tool exchange', () => {
    test('OpenAI: the earlier round goes back as the assistant’s tool_calls and a tool message per call id', async () => {
      const c = await conversation()
      const first = await readEvents(await send(c, { content: 'What time is it?', model_id: 'oa-two' }))
      const calls = callsOf(first)
      const resultText = (id: string) => first.find((e) => e.event === 'tool_result' && e.data.id === id)!.data.result.content[0].text
      const from = fake.requests.length
      await readEvents(await send(c, { content: 'And in an hour?', model_id: 'oa-two' }))
      expect(upstream(from)[0]!.messages).toEqual([
        { role: 'user', content: 'What time is it?' },
        { role: 'assistant', content: null, tool_calls: calls.map((x) => ({ id: x.id, type: 'function', function: { name: 'current_time', arguments: ARGS } })) },
        ...calls.map((x) => ({ role: 'tool', tool_call_id: x.id, content: resultText(x.id) })),
        { role: 'assistant', content: 'tok0 tok1 tok2 ' },
        { role: 'user', content: 'And in an hour?' },
      ])
      // without tools now, only the answers' text goes: no calls left unanswered
      await t.request('PATCH', `/api/v1/conversations/${c}`, { token: a.access, body: { tools: [] } })
      const before = fake.requests.length
      await readEvents(await send(c, { content: 'Thanks', model_id: 'oa-two' }))
      const plain = upstream(before)[0]!
      expect(plain).not.toHaveProperty('tools')
      expect(plain.messages).toEqual([
        { role: 'user', content: 'What time is it?' },
        { role: 'assistant', content: 'tok0 tok1 tok2 ' },
        { role: 'user', content: 'And in an hour?' },
        { role: 'assistant', content: 'tok0 tok1 tok2 ' },
        { role: 'user', content: 'Thanks' },
      ])
    })

    test('Anthropic: the earlier round goes back as tool_use blocks answered by tool_result blocks', async () => {
      const c = await conversation()
      const first = await readEvents(await send(c, { content: 'What time is it?', model_id: 'an-two' }))
      const calls = callsOf(first)
      const resultText = (id: string) => first.find((e) => e.event === 'tool_result' && e.data.id === id)!.data.result.content[0].text
      const from = fake.requests.length
      const events = await readEvents(await send(c, { content: 'And now?', model_id: 'an-two' }))
      expect(events.at(-1)!.data.finish_reason).toBe('stop')
      expect(upstream(from, '/v1/messages')[0]!.messages).toEqual([
        { role: 'user', content: [{ type: 'text', text: 'What time is it?' }] },
        { role: 'assistant', content: calls.map((x) => ({ type: 'tool_use', id: x.id, name: 'current_time', input: CALL_ARGS })) },
        { role: 'user', content: calls.map((x) => ({ type: 'tool_result', tool_use_id: x.id, content: resultText(x.id) })) },
        { role: 'assistant', content: [{ type: 'text', text: 'tok0 tok1 tok2 ' }] },
        { role: 'user', content: [{ type: 'text', text: 'And now?' }] },
      ])
    })
  })

  describe('approvals', () => {
    beforeAll(() => setApproval('current_time'))
    afterAll(() => setApproval(null))

    /** Start an answer whose one call waits for approval; resolves once it waits. */
    async function waitingCall(c: string) {
      const stream = follow(send(c, { content: 'What time is it?', model_id: 'oa-one' }))
      await eventually(() => stream.events.some((e) => e.event === 'tool_approval_required'), 3_000, 'the approval request')
      const request = stream.events.find((e) => e.event === 'tool_approval_required')!
      return { stream, id: request.data.id as string, request }
    }

    test('approve: the run pauses with tool_approval_required (pending on the waiting message, for anyone to see), then runs the call', async () => {
      const c = await conversation()
      const { stream, id, request } = await waitingCall(c)
      expect(request.data).toEqual({ id, tool: 'current_time', arguments: ARGS })
      expect(names(stream.events)).toEqual(['message.created', 'tool_call', 'tool_approval_required'])
      const waiting = (await get(c)).messages.at(-1)
      expect(waiting).toMatchObject({ role: 'assistant', status: 'streaming', metadata: { pending_approvals: [{ id, tool: 'current_time', arguments: ARGS }] } })
      // another user, the wrong id, a bad body: nothing is decided
      expect((await decide(c, { tool_call_id: id, approve: true }, other.access)).status).toBe(404)
      expect((await decide(c, { tool_call_id: 'call_nope', approve: true })).status).toBe(404)
      const bad = await decide(c, { tool_call_id: id, approve: 'yes' })
      expect([bad.status, bad.body.code]).toEqual([422, 'VALIDATION_ERROR'])
      expect((await decide(c, { approve: true })).status).toBe(422)
      expect(await stream.openAfter(100)).toBe('open')

      const ok = await decide(c, { tool_call_id: id, approve: true })
      expect([ok.status, ok.body]).toEqual([200, { tool_call_id: id, tool: 'current_time', arguments: ARGS, approved: true }])
      const { events } = await stream.ended
      expect(names(events)).toEqual(['message.created', 'tool_call', 'tool_approval_required', 'tool_result', 'delta', 'delta', 'delta', 'usage', 'done'])
      expect(events[3]!.data).toMatchObject({ id, is_error: false })
      expect((await decide(c, { tool_call_id: id, approve: true })).status).toBe(404) // decided already
      const [, round, tool] = (await get(c)).messages
      expect(round.metadata).toMatchObject({ approvals: { [id]: 'approved' } })
      expect(round.metadata).not.toHaveProperty('pending_approvals')
      expect(tool.metadata).toMatchObject({ tool_call_id: id, is_error: false, approval: 'approved' })
    })

    test('deny: the model is told the user declined, as an is_error result, and answers', async () => {
      const c = await conversation()
      const from = fake.requests.length
      const { stream, id } = await waitingCall(c)
      expect((await decide(c, { tool_call_id: id, approve: false })).body).toMatchObject({ approved: false })
      const { events } = await stream.ended
      const result = events.find((e) => e.event === 'tool_result')!.data
      expect(result).toEqual({ id, name: 'current_time', result: { content: [{ type: 'text', text: 'The user declined this tool call: it was not run.' }] }, is_error: true })
      expect(upstream(from)[1]!.messages.at(-1)).toEqual({ role: 'tool', tool_call_id: id, content: 'The user declined this tool call: it was not run.' })
      expect(events.at(-1)!.data.finish_reason).toBe('stop')
      const logs = await t.request('GET', '/api/v1/tools/logs?source=chat', { token: a.access })
      expect((logs.body.items as Json[]).some((l) => l.conversation_id === c)).toBe(false) // never called
    })

    test('no answer within the timeout is a refusal; a late approval is 404', async () => {
      const c = await conversation()
      const { stream, id } = await waitingCall(c)
      const waited = performance.now()
      const { events } = await stream.ended
      expect(performance.now() - waited).toBeGreaterThan(APPROVAL_TIMEOUT_MS - 300)
      expect(events.find((e) => e.event === 'tool_result')!.data).toMatchObject({ id, is_error: true, result: { content: [{ text: 'The user did not approve this tool call in time: it was not run.' }] } })
      expect(events.at(-1)!.data.finish_reason).toBe('stop')
      expect((await decide(c, { tool_call_id: id, approve: true })).status).toBe(404)
      expect((await get(c)).messages[2].metadata).toMatchObject({ approval: 'timeout', is_error: true })
    })

    test('a waiting run is a run like any other: re-attach replays the request; stop ends it, keeping what was done', async () => {
      const c = await conversation()
      const { stream, id } = await waitingCall(c)
      const again = await fetch(`${base}/conversations/${c}/stream`, { headers: { authorization: `Bearer ${a.access}`, 'last-event-id': '1' } })
      const replay = follow(again)
      await eventually(() => replay.events.some((e) => e.event === 'tool_approval_required'))
      expect(replay.events.map((e) => [e.id, e.event])).toEqual([[2, 'tool_call'], [3, 'tool_approval_required']])
      expect((await t.request('POST', `/api/v1/conversations/${c}/stop`, { token: a.access })).body).toEqual({ stopped: true })
      const { events } = await stream.ended
      expect(names(events)).toEqual(['message.created', 'tool_call', 'tool_approval_required', 'tool_result', 'usage', 'done'])
      expect(events[3]!.data).toMatchObject({ id, is_error: true, result: { content: [{ text: 'The run was stopped before this tool call ran.' }] } })
      expect(events.at(-1)!.data.finish_reason).toBe('stopped')
      // the re-attached stream got the same events after id 1, exactly once
      const pairs = (list: ReceivedEvent[]) => list.map((e) => [e.id, e.event, e.data])
      expect(pairs((await replay.ended).events)).toEqual(pairs(events.slice(1)))
      const got = await get(c)
      expect(got.messages.map((m: Json) => [m.role, m.status])).toEqual([['user', 'complete'], ['assistant', 'stopped'], ['tool', 'complete']])
      expect((await decide(c, { tool_call_id: id, approve: true })).status).toBe(404)
    })

    test('the JSON send waits for the approval too', async () => {
      const c = await conversation()
      const answered = t.request('POST', `/api/v1/conversations/${c}/messages`, { token: a.access, body: { content: 'Time?', model_id: 'oa-one' } })
      let id: string | undefined
      await eventually(async () => {
        id = (await get(c)).messages.at(-1)?.metadata?.pending_approvals?.[0]?.id
        return !!id
      })
      expect((await decide(c, { tool_call_id: id!, approve: true })).status).toBe(200)
      const res = await answered
      expect(res.status).toBe(201)
      expect(res.body.assistant_message).toMatchObject({ status: 'complete', content: 'tok0 tok1 tok2 ' })
    })

    if (dialect === 'postgres')
      test('an approval posted to another instance reaches the run', async () => {
        const second = await createSecondInstance(t, {}, { toolApprovalTimeoutMs: APPROVAL_TIMEOUT_MS })
        try {
          const c = await conversation()
          const { stream, id } = await waitingCall(c)
          const res = await second.request('POST', `/api/v1/conversations/${c}/tool-approvals`, { token: a.access, body: { tool_call_id: id, approve: true } })
          expect([res.status, res.body.approved]).toEqual([200, true])
          const { events } = await stream.ended
          expect(events.find((e) => e.event === 'tool_result')!.data).toMatchObject({ id, is_error: false })
          expect(events.at(-1)!.data.finish_reason).toBe('stop')
          expect((await second.request('POST', `/api/v1/conversations/${c}/tool-approvals`, { token: a.access, body: { tool_call_id: id, approve: true } })).status).toBe(404)
        } finally {
          await second.close()
        }
      }, 15_000)
  })
})


eachDialect('tools in chat: credits', (dialect) => {
  test('each round holds its own credits: a later round that cannot is an error answer with QUOTA_EXCEEDED (402 for a JSON send), after the rounds that ran', async () => {
    const fake = await startFakeLlm()
    const t = await createTestApp(dialect, { HEARTH_CREDITS: 'on' })
    try {
      const a = await register(t, 'payer')
      const { db, t: tables } = t.deps.database
      const p = await t.request('POST', '/api/v1/providers', { token: a.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
      // a credit per output token, inputs free: the first turn holds (max_tokens 6) and uses (6 argument
      // pieces) all 6 credits, so the second cannot hold any (a hold needs a balance above 0)
      const model = await t.request('POST', '/api/v1/models', { token: a.access, body: { provider_id: p.body.id, name: 'priced', model_id: 'fake:tokens=3,calls=current_time', input_price: 0, output_price: 1_000_000 } })
      expect(model.status).toBe(201)
      await db.update(tables.users).set({ creditBalance: 6 }).where(eq(tables.users.id, a.id))
      const c = await t.request('POST', '/api/v1/conversations', { token: a.access, body: { title: 'Paid', tools: ['current_time'], model_id: 'priced' } })
      const res = await t.request('POST', `/api/v1/conversations/${c.body.id}/messages`, { token: a.access, body: { content: 'Time?', max_tokens: 6 } })
      expect([res.status, res.body.code]).toEqual([402, 'QUOTA_EXCEEDED'])
      const got = (await t.request('GET', `/api/v1/conversations/${c.body.id}`, { token: a.access })).body
      expect(got.messages.map((m: Json) => [m.role, m.status])).toEqual([['user', 'complete'], ['assistant', 'complete'], ['tool', 'complete'], ['assistant', 'error']])
      expect(got.messages[3].metadata).toMatchObject({ error_code: 'QUOTA_EXCEEDED', finish_reason: 'error' })
      expect(fake.requests.filter((r) => r.path === '/v1/chat/completions')).toHaveLength(1)
      const credits = (await t.request('GET', '/api/v1/users/me/credits', { token: a.access })).body
      expect(credits).toMatchObject({ balance: 0, used: 6 })
    } finally {
      await t.close()
      await fake.stop()
    }
  })
})
