import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import OpenAI from 'openai'
import { jsonSchema, streamText, tool } from 'ai'
import { createAnthropic } from '@ai-sdk/anthropic'
import { createGoogleGenerativeAI } from '@ai-sdk/google'
import { parseScenario, startFakeLlm, type FakeLlm } from './fakes/llm.ts'

let fake: FakeLlm
beforeAll(async () => {
  fake = await startFakeLlm()
})
afterAll(async () => {
  await fake.stop()
})

type Json = Record<string, any>
type SseEvent = { event?: string; data: string }

const OPENAI = { authorization: 'Bearer sk-test', 'content-type': 'application/json' }
const ANTHROPIC = { 'x-api-key': 'ak-test', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' }
const GEMINI = { 'x-goog-api-key': 'gk-test', 'content-type': 'application/json' }
const msgs = (text = 'hello there') => [{ role: 'user', content: text }]

const post = (path: string, headers: Record<string, string>, body: unknown, init: RequestInit = {}) =>
  fetch(fake.url + path, { method: 'POST', headers, body: JSON.stringify(body), ...init })
const openai = (body: Json, init?: RequestInit) => post('/v1/chat/completions', OPENAI, { messages: msgs(), ...body }, init)
const anthropic = (body: Json, init?: RequestInit) => post('/v1/messages', ANTHROPIC, { max_tokens: 100, messages: msgs(), ...body }, init)
const gemini = (model: string, stream: boolean, body: Json = {}, init?: RequestInit) =>
  post(`/v1beta/models/${model}:${stream ? 'streamGenerateContent?alt=sse' : 'generateContent'}`, GEMINI,
    { contents: [{ role: 'user', parts: [{ text: 'hello there' }] }], ...body }, init)

function parseSse(text: string): SseEvent[] {
  return text.split('\n\n').filter(Boolean).map(block => {
    const e: SseEvent = { data: '' }
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) e.event = line.slice(7)
      else if (line.startsWith('data: ')) e.data += line.slice(6)
    }
    return e
  })
}
const sse = async (res: Response) => {
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toStartWith('text/event-stream')
  return parseSse(await res.text())
}
const datas = (events: SseEvent[]) => events.filter(e => e.data !== '[DONE]').map(e => JSON.parse(e.data) as Json)

/** ceil("hello there".length / 4) */
const PROMPT = 3

describe('scenario parsing', () => {
  test('defaults, options, and names that are not fake', () => {
    expect(parseScenario('fake')).toMatchObject({ tokens: 8, delay: 0, hang: 0, reason: 0, finish: 'stop' })
    expect(parseScenario('fake:tokens=64,delay=5,text=hello world,tool=get_weather,reason=2,finish=length,fail=503,failmid=3,hang=10'))
      .toMatchObject({ name: 'fake', tokens: 64, delay: 5, words: ['hello', 'world'], tool: 'get_weather', reason: 2, finish: 'length', fail: 503, failmid: 3, hang: 10 })
    expect(parseScenario('llama3:8b')).toMatchObject({ name: 'llama3:8b', tokens: 8 })
    expect(() => parseScenario('fake:tokes=3')).toThrow('unknown fake model option')
    expect(() => parseScenario('fake:tokens=x')).toThrow('whole number')
  })

  test('a bad option is a 400 in the protocol\'s error shape', async () => {
    const res = await openai({ model: 'fake:bogus=1' })
    expect(res.status).toBe(400)
    expect((await res.json()).error).toMatchObject({ type: 'invalid_request_error', message: expect.stringContaining('bogus') })
  })
})

describe('OpenAI chat completions', () => {
  test('non-streaming reply, usage, and the recorded request', async () => {
    const res = await openai({ model: 'fake:tokens=3' })
    expect(res.status).toBe(200)
    const body = await res.json()
    expect(body).toMatchObject({ object: 'chat.completion', model: 'fake:tokens=3', choices: [{ index: 0, message: { role: 'assistant', content: 'tok0 tok1 tok2 ' }, finish_reason: 'stop' }] })
    expect(body.usage).toMatchObject({ prompt_tokens: PROMPT, completion_tokens: 3, total_tokens: PROMPT + 3 })
    const rec = fake.requests.at(-1)!
    expect(rec).toMatchObject({ method: 'POST', path: '/v1/chat/completions', body: { model: 'fake:tokens=3' } })
    expect(rec.headers.authorization).toBe('Bearer sk-test')
  })

  test('text= words repeat; finish=length', async () => {
    const body = await (await openai({ model: 'fake:tokens=3,text=hi there,finish=length' })).json()
    expect(body.choices[0]).toMatchObject({ message: { content: 'hi there hi ' }, finish_reason: 'length' })
  })

  test('401 without a bearer key', async () => {
    const res = await fetch(fake.url + '/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model: 'fake', messages: msgs() }) })
    expect(res.status).toBe(401)
    expect(await res.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_api_key', message: expect.any(String) } })
  })

  test('streaming without include_usage: role chunk, deltas, finish chunk, [DONE], no usage key', async () => {
    const events = await sse(await openai({ model: 'fake:tokens=4', stream: true }))
    expect(events.at(-1)!.data).toBe('[DONE]')
    const chunks = datas(events)
    expect(chunks.every(c => c.object === 'chat.completion.chunk' && !('usage' in c))).toBe(true)
    expect(chunks[0]!.choices[0].delta).toMatchObject({ role: 'assistant', content: '' })
    expect(chunks.map(c => c.choices[0].delta.content ?? '').join('')).toBe('tok0 tok1 tok2 tok3 ')
    expect(chunks.at(-1)!.choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' })
    expect(chunks.slice(0, -1).every(c => c.choices[0].finish_reason === null)).toBe(true)
  })

  test('streaming with include_usage: usage null on every chunk, then a usage chunk with no choices', async () => {
    const chunks = datas(await sse(await openai({ model: 'fake:tokens=2,reason=2', stream: true, stream_options: { include_usage: true } })))
    const last = chunks.at(-1)!
    expect(last.choices).toEqual([])
    expect(last.usage).toMatchObject({ prompt_tokens: PROMPT, completion_tokens: 4, total_tokens: PROMPT + 4, completion_tokens_details: { reasoning_tokens: 2 } })
    expect(chunks.slice(0, -1).every(c => c.usage === null)).toBe(true)
    expect(chunks.map(c => c.choices[0]?.delta.reasoning_content ?? '').join('')).toBe('think0 think1 ')
  })

  test('streamed tool call: id/name first, arguments in pieces, finish tool_calls', async () => {
    const chunks = datas(await sse(await openai({ model: 'fake:tool=get_weather', stream: true })))
    const calls = chunks.flatMap(c => c.choices[0].delta.tool_calls ?? [])
    expect(calls[0]).toMatchObject({ index: 0, id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_weather', arguments: '' } })
    expect(calls.length).toBeGreaterThan(3)
    expect(calls.map(c => c.function.arguments).join('')).toBe('{"city":"Paris"}')
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('tool_calls')
  })

  test('non-streaming tool call', async () => {
    const body = await (await openai({ model: 'fake:tool=get_weather' })).json()
    expect(body.choices[0]).toMatchObject({ message: { content: null, tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] }, finish_reason: 'tool_calls' })
  })

  test('models list', async () => {
    const body = await (await fetch(fake.url + '/v1/models', { headers: OPENAI })).json()
    expect(body).toMatchObject({ object: 'list', data: [{ id: 'fake', object: 'model', owned_by: expect.any(String), created: expect.any(Number) }, { id: 'fake-large' }, { id: 'fake-small' }] })
  })

  describe('the official openai SDK', () => {
    const client = () => new OpenAI({ baseURL: fake.url + '/v1', apiKey: 'x', maxRetries: 0 })

    test('streams with include_usage', async () => {
      const stream = await client().chat.completions.create({ model: 'fake:tokens=5', messages: [{ role: 'user', content: 'hello there' }], stream: true, stream_options: { include_usage: true } })
      let text = ''
      let usage: OpenAI.CompletionUsage | null | undefined
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? ''
        usage = chunk.usage
      }
      expect(text).toBe('tok0 tok1 tok2 tok3 tok4 ')
      expect(usage).toMatchObject({ prompt_tokens: PROMPT, completion_tokens: 5, total_tokens: PROMPT + 5 })
    })

    test('assembles a streamed tool call', async () => {
      const stream = client().chat.completions.stream({
        model: 'fake:tool=get_weather', messages: [{ role: 'user', content: 'weather?' }],
        tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
      })
      const done = await stream.finalChatCompletion()
      expect(done.choices[0]!.finish_reason).toBe('tool_calls')
      const call = done.choices[0]!.message.tool_calls![0]!
      expect(call.type === 'function' && call.function).toMatchObject({ name: 'get_weather', arguments: '{"city":"Paris"}' })
    })

    test('non-streaming, models, and errors', async () => {
      const c = await client().chat.completions.create({ model: 'fake:tokens=2', messages: [{ role: 'user', content: 'hi' }] })
      expect(c.choices[0]!.message.content).toBe('tok0 tok1 ')
      expect(c.usage?.completion_tokens).toBe(2)
      expect((await client().models.list()).data.map(m => m.id)).toEqual(['fake', 'fake-large', 'fake-small'])
      const err = await client().chat.completions.create({ model: 'fake:fail=429', messages: [{ role: 'user', content: 'hi' }] }).catch(e => e)
      expect(err).toBeInstanceOf(OpenAI.RateLimitError)
      expect(err.status).toBe(429)
    })
  })
})

describe('Anthropic messages', () => {
  test('non-streaming text, thinking and usage', async () => {
    const res = await anthropic({ model: 'fake:tokens=3,reason=2' })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({
      id: expect.stringMatching(/^msg_/), type: 'message', role: 'assistant', model: 'fake:tokens=3,reason=2',
      content: [{ type: 'thinking', thinking: 'think0 think1 ', signature: expect.any(String) }, { type: 'text', text: 'tok0 tok1 tok2 ' }],
      stop_reason: 'end_turn', usage: { input_tokens: PROMPT, output_tokens: 5 },
    })
    const rec = fake.requests.at(-1)!
    expect(rec.headers['x-api-key']).toBe('ak-test')
    expect(rec.headers['anthropic-version']).toBe('2023-06-01')
  })

  test('non-streaming tool_use and max_tokens', async () => {
    const tool = await (await anthropic({ model: 'fake:tool=get_weather' })).json()
    expect(tool).toMatchObject({ content: [{ type: 'tool_use', id: expect.stringMatching(/^toolu_/), name: 'get_weather', input: { city: 'Paris' } }], stop_reason: 'tool_use' })
    expect((await (await anthropic({ model: 'fake:finish=length' })).json()).stop_reason).toBe('max_tokens')
  })

  test('auth: 401 without x-api-key, 400 without anthropic-version', async () => {
    const noKey = await post('/v1/messages', { 'anthropic-version': '2023-06-01' }, { model: 'fake', max_tokens: 5, messages: msgs() })
    expect(noKey.status).toBe(401)
    expect(await noKey.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error', message: expect.any(String) } })
    const noVersion = await post('/v1/messages', { 'x-api-key': 'k' }, { model: 'fake', max_tokens: 5, messages: msgs() })
    expect(noVersion.status).toBe(400)
    expect((await noVersion.json()).error.type).toBe('invalid_request_error')
  })

  test('streaming event sequence with thinking, text and a tool call', async () => {
    const events = await sse(await anthropic({ model: 'fake:tokens=2,reason=1', stream: true }))
    expect(events.map(e => e.event)).toEqual([
      'message_start', 'ping',
      'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop',
      'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop',
      'message_delta', 'message_stop',
    ])
    const d = datas(events)
    expect(d.every((x, i) => x.type === events[i]!.event)).toBe(true)
    expect(d[0]!.message).toMatchObject({ role: 'assistant', content: [], usage: { input_tokens: PROMPT } })
    expect(d[2]).toMatchObject({ index: 0, content_block: { type: 'thinking' } })
    expect(d[3]).toMatchObject({ index: 0, delta: { type: 'thinking_delta', thinking: 'think0 ' } })
    expect(d[4]).toMatchObject({ index: 0, delta: { type: 'signature_delta' } })
    expect(d[6]).toMatchObject({ index: 1, content_block: { type: 'text', text: '' } })
    expect(d[7]).toMatchObject({ index: 1, delta: { type: 'text_delta', text: 'tok0 ' } })
    expect(d[10]).toMatchObject({ delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 3 } })

    const tool = datas(await sse(await anthropic({ model: 'fake:tool=get_weather', stream: true })))
    expect(tool.find(x => x.type === 'content_block_start')!.content_block).toMatchObject({ type: 'tool_use', name: 'get_weather', input: {} })
    expect(tool.filter(x => x.delta?.type === 'input_json_delta').map(x => x.delta.partial_json).join('')).toBe('{"city":"Paris"}')
    expect(tool.find(x => x.type === 'message_delta')!.delta.stop_reason).toBe('tool_use')
  })

  test('models list', async () => {
    const body = await (await fetch(fake.url + '/v1/models', { headers: ANTHROPIC })).json()
    expect(body).toMatchObject({ data: [{ type: 'model', id: 'fake', display_name: expect.any(String), created_at: expect.any(String) }, { id: 'fake-large' }, { id: 'fake-small' }], has_more: false, first_id: 'fake', last_id: 'fake-small' })
  })

  test('@ai-sdk/anthropic streamText: text, reasoning, usage, and a tool call', async () => {
    const model = (id: string) => createAnthropic({ baseURL: fake.url + '/v1', apiKey: 'x' })(id)
    const parts = await collect(streamText({ model: model('fake:tokens=3,reason=2'), prompt: 'hello there', maxOutputTokens: 100, maxRetries: 0 }).fullStream)
    expect(textOf(parts)).toBe('tok0 tok1 tok2 ')
    expect(parts.filter(p => p.type === 'reasoning-delta').map(p => p.text).join('')).toBe('think0 think1 ')
    expect(finishOf(parts)).toMatchObject({ finishReason: 'stop', totalUsage: { inputTokens: PROMPT, outputTokens: 5 } })

    const tools = { get_weather: tool({ inputSchema: jsonSchema<{ city: string }>({ type: 'object', properties: { city: { type: 'string' } } }) }) }
    const toolParts = await collect(streamText({ model: model('fake:tool=get_weather'), prompt: 'weather?', tools, maxOutputTokens: 100, maxRetries: 0 }).fullStream)
    expect(toolParts.find(p => p.type === 'tool-call')).toMatchObject({ toolName: 'get_weather', input: { city: 'Paris' } })
    expect(finishOf(toolParts).finishReason).toBe('tool-calls')
  })
})

describe('Gemini generateContent', () => {
  test('non-streaming text and function call', async () => {
    const res = await gemini('fake:tokens=3', false)
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({
      candidates: [{ content: { role: 'model', parts: [{ text: 'tok0 tok1 tok2 ' }] }, finishReason: 'STOP', index: 0 }],
      usageMetadata: { promptTokenCount: PROMPT, candidatesTokenCount: 3, totalTokenCount: PROMPT + 3 }, modelVersion: 'fake:tokens=3',
    })
    expect(fake.requests.at(-1)).toMatchObject({ path: '/v1beta/models/fake:tokens=3:generateContent', headers: { 'x-goog-api-key': 'gk-test' } })
    const call = await (await gemini('fake:tool=get_weather', false)).json()
    expect(call.candidates[0]).toMatchObject({ content: { parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } } }] }, finishReason: 'STOP' })
    expect((await (await gemini('fake:finish=length', false)).json()).candidates[0].finishReason).toBe('MAX_TOKENS')
  })

  test('auth: key in the query works, none is a 403', async () => {
    const body = { contents: [{ parts: [{ text: 'hi' }] }] }
    const byQuery = await fetch(fake.url + '/v1beta/models/fake:generateContent?key=q', { method: 'POST', body: JSON.stringify(body) })
    expect(byQuery.status).toBe(200)
    expect(fake.requests.at(-1)!.path).toBe('/v1beta/models/fake:generateContent?key=q')
    const none = await fetch(fake.url + '/v1beta/models/fake:generateContent', { method: 'POST', body: JSON.stringify(body) })
    expect(none.status).toBe(403)
    expect(await none.json()).toMatchObject({ error: { code: 403, message: expect.any(String), status: 'PERMISSION_DENIED' } })
  })

  test('streaming: data chunks with partial text, usage on each, finishReason on the last', async () => {
    const events = await sse(await gemini('fake:tokens=3', true))
    expect(events.every(e => e.event === undefined)).toBe(true)
    const chunks = datas(events)
    expect(chunks.map(c => c.candidates[0].content.parts[0].text).join('')).toBe('tok0 tok1 tok2 ')
    expect(chunks.every(c => c.usageMetadata.promptTokenCount === PROMPT)).toBe(true)
    expect(chunks.at(-1)).toMatchObject({ candidates: [{ finishReason: 'STOP' }], usageMetadata: { candidatesTokenCount: 3, totalTokenCount: PROMPT + 3 } })
    expect(chunks.slice(0, -1).every(c => c.candidates[0].finishReason === undefined)).toBe(true)
  })

  test('streaming without alt=sse is one JSON array', async () => {
    const res = await post('/v1beta/models/fake:tokens=2:streamGenerateContent', GEMINI, { contents: [{ parts: [{ text: 'hello there' }] }] })
    const arr = await res.json()
    expect(arr).toHaveLength(3)
    expect(arr.at(-1).candidates[0].finishReason).toBe('STOP')
  })

  test('models list', async () => {
    const body = await (await fetch(fake.url + '/v1beta/models', { headers: GEMINI })).json()
    expect(body.models.map((m: Json) => m.name)).toEqual(['models/fake', 'models/fake-large', 'models/fake-small'])
    expect(body.models[0]).toMatchObject({ displayName: expect.any(String), supportedGenerationMethods: ['generateContent'], inputTokenLimit: expect.any(Number), outputTokenLimit: expect.any(Number) })
  })

  test('@ai-sdk/google streamText: text, reasoning, usage, and a function call', async () => {
    const model = (id: string) => createGoogleGenerativeAI({ baseURL: fake.url + '/v1beta', apiKey: 'x' })(id)
    const parts = await collect(streamText({ model: model('fake:tokens=3,reason=2'), prompt: 'hello there', maxOutputTokens: 100, maxRetries: 0 }).fullStream)
    expect(textOf(parts)).toBe('tok0 tok1 tok2 ')
    expect(parts.filter(p => p.type === 'reasoning-delta').map(p => p.text).join('')).toBe('think0 think1 ')
    expect(finishOf(parts)).toMatchObject({ finishReason: 'stop', totalUsage: { inputTokens: PROMPT, outputTokens: 5 } })
    expect(fake.requests.at(-1)!.headers['x-goog-api-key']).toBe('x')

    const tools = { get_weather: tool({ inputSchema: jsonSchema<{ city: string }>({ type: 'object', properties: { city: { type: 'string' } } }) }) }
    const toolParts = await collect(streamText({ model: model('fake:tool=get_weather'), prompt: 'weather?', tools, maxOutputTokens: 100, maxRetries: 0 }).fullStream)
    expect(toolParts.find(p => p.type === 'tool-call')).toMatchObject({ toolName: 'get_weather', input: { city: 'Paris' } })
    expect(finishOf(toolParts).finishReason).toBe('tool-calls')
  })
})

describe('a model that uses tools (calls=, rounds=, args=)', () => {
  const TOOL = { type: 'function', function: { name: 'a', parameters: { type: 'object' } } }
  const ARGS = '{"timezone":"Europe/Paris"}'

  test('parsing', () => {
    expect(parseScenario('fake:calls=a+b_c,rounds=2')).toMatchObject({ calls: ['a', 'b_c'], rounds: 2 })
    expect(parseScenario('fake')).toMatchObject({ rounds: 1 })
    expect(() => parseScenario('fake:calls=a b')).toThrow('unknown fake model option')
    // args=K:V: the calls' arguments are {"K":"V"}, streamed in pieces
    expect(parseScenario('fake:calls=a').callPieces.join('')).toBe(ARGS)
    expect(JSON.parse(parseScenario('fake:calls=a,args=message:say "hi"').callPieces.join(''))).toEqual({ message: 'say "hi"' })
    expect(() => parseScenario('fake:calls=a,args=nokey')).toThrow('unknown fake model option')
  })

  test('OpenAI: several calls in one streamed turn while tools are offered; text once the rounds are done, without tools, or with tool_choice none', async () => {
    const chunks = datas(await sse(await openai({ model: 'fake:calls=a+b', stream: true, tools: [TOOL] })))
    const deltas = chunks.flatMap(c => c.choices[0]?.delta.tool_calls ?? [])
    expect(deltas.filter(d => d.id).map(d => [d.index, d.id, d.function.name])).toEqual([[0, expect.stringMatching(/^call_fake\d+_0$/), 'a'], [1, expect.stringMatching(/^call_fake\d+_1$/), 'b']])
    for (const index of [0, 1]) expect(deltas.filter(d => d.index === index).map(d => d.function.arguments).join('')).toBe(ARGS)
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('tool_calls')
    const round = [...msgs(), { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'a', arguments: ARGS } }] }, { role: 'tool', tool_call_id: 'c1', content: 'now' }]
    for (const body of [{ tools: [TOOL], messages: round }, {}, { tools: [TOOL], tool_choice: 'none' }]) {
      const reply = await (await openai({ model: 'fake:tokens=2,calls=a', ...body })).json()
      expect(reply.choices[0]).toMatchObject({ message: { content: 'tok0 tok1 ' }, finish_reason: 'stop' })
    }
    // a new question starts the count again; rounds=2 calls twice
    const again = await (await openai({ model: 'fake:calls=a', tools: [TOOL], messages: [...round, { role: 'user', content: 'and now?' }] })).json()
    expect(again.choices[0].finish_reason).toBe('tool_calls')
    expect((await (await openai({ model: 'fake:calls=a,rounds=2', tools: [TOOL], messages: round })).json()).choices[0].finish_reason).toBe('tool_calls')
  })

  test('Anthropic: a tool_use block per call, arguments as input_json_delta; text once a tool_result answered them', async () => {
    const tools = [{ name: 'a', input_schema: { type: 'object' } }]
    const events = datas(await sse(await anthropic({ model: 'fake:calls=a+b', stream: true, tools })))
    expect(events.filter(x => x.type === 'content_block_start').map(x => x.content_block)).toEqual([
      { type: 'tool_use', id: expect.stringMatching(/^toolu_fake\d+_0$/), name: 'a', input: {} },
      { type: 'tool_use', id: expect.stringMatching(/^toolu_fake\d+_1$/), name: 'b', input: {} },
    ])
    for (const index of [0, 1]) expect(events.filter(x => x.index === index && x.delta?.type === 'input_json_delta').map(x => x.delta.partial_json).join('')).toBe(ARGS)
    const answered = [...msgs(), { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'a', input: {} }] }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'now' }] }]
    const reply = await (await anthropic({ model: 'fake:tokens=1,calls=a', tools, messages: answered })).json()
    expect(reply).toMatchObject({ content: [{ type: 'text', text: 'tok0 ' }], stop_reason: 'end_turn' })
  })
})

describe('failure modes', () => {
  test('fail=STATUS answers with each protocol\'s error body', async () => {
    const o = await openai({ model: 'fake:fail=500', stream: true })
    expect(o.status).toBe(500)
    expect((await o.json()).error).toMatchObject({ type: 'server_error', message: expect.any(String) })
    const a = await anthropic({ model: 'fake:fail=529' })
    expect(a.status).toBe(529)
    expect(await a.json()).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } })
    const g = await gemini('fake:fail=429', true)
    expect(g.status).toBe(429)
    expect(await g.json()).toMatchObject({ error: { code: 429, status: 'RESOURCE_EXHAUSTED' } })
  })

  test('failmid=N streams N deltas, then resets the connection without a final event', async () => {
    for (const send of [
      () => openai({ model: 'fake:tokens=10,failmid=3', stream: true, stream_options: { include_usage: true } }),
      () => anthropic({ model: 'fake:tokens=10,failmid=3', stream: true }),
      () => gemini('fake:tokens=10,failmid=3', true),
    ]) {
      const res = await send()
      expect(res.status).toBe(200)
      const { text, error } = await readUntilError(res)
      expect(error).toBeDefined()
      expect(text).toContain('tok2 ')
      expect(text).not.toContain('tok3 ')
      expect(text).not.toMatch(/\[DONE\]|message_delta|finishReason/)
    }
    // more failmid than tokens: everything but the final event
    const { text, error } = await readUntilError(await anthropic({ model: 'fake:tokens=2,failmid=5', stream: true }))
    expect(error).toBeDefined()
    expect(text).toContain('content_block_stop')
    expect(text).not.toContain('message_delta')
    // non-streaming: half a body, then a reset
    expect(await (await openai({ model: 'fake:failmid=1' })).json().catch(e => e)).toBeInstanceOf(Error)
  })

  test('delay=MS paces each delta', async () => {
    const t0 = performance.now()
    await (await openai({ model: 'fake:tokens=5,delay=20', stream: true })).text()
    expect(performance.now() - t0).toBeGreaterThanOrEqual(90)
  })

  test('hang=MS delays the status line; an AbortController gets out of a long one', async () => {
    const t0 = performance.now()
    const res = await anthropic({ model: 'fake:hang=60,tokens=1' })
    expect(performance.now() - t0).toBeGreaterThanOrEqual(55)
    expect(res.status).toBe(200)

    const ac = new AbortController()
    setTimeout(() => ac.abort(), 50)
    const err = await gemini('fake:hang=60000', true, {}, { signal: ac.signal }).catch(e => e)
    expect(err.name).toBe('AbortError')
  })

  test('stop() ends hung and half-streamed connections', async () => {
    const other = await startFakeLlm()
    const hung = fetch(other.url + '/v1/chat/completions', { method: 'POST', headers: OPENAI, body: JSON.stringify({ model: 'fake:hang=60000', messages: msgs() }) }).catch(e => e)
    const slow = await fetch(other.url + '/v1/chat/completions', { method: 'POST', headers: OPENAI, body: JSON.stringify({ model: 'fake:delay=60000', stream: true, messages: msgs() }) })
    const slowText = slow.text().catch(e => e)
    await Bun.sleep(30)
    const t0 = performance.now()
    await other.stop()
    expect(await hung).toBeInstanceOf(Error)
    expect(await slowText).toBeInstanceOf(Error)
    expect(performance.now() - t0).toBeLessThan(2000)
    expect(other.requests).toHaveLength(2)
  })
})

async function readUntilError(res: Response): Promise<{ text: string; error?: unknown }> {
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let text = ''
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return { text }
      text += decoder.decode(value, { stream: true })
    }
  } catch (error) {
    return { text, error }
  }
}

type Part = { type: string; [k: string]: any }
async function collect(stream: AsyncIterable<Part>): Promise<Part[]> {
  const parts: Part[] = []
  for await (const part of stream) parts.push(part)
  const error = parts.find(p => p.type === 'error')
  if (error) throw error.error
  return parts
}
const textOf = (parts: Part[]) => parts.filter(p => p.type === 'text-delta').map(p => p.text).join('')
const finishOf = (parts: Part[]) => parts.find(p => p.type === 'finish')!
