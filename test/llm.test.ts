/** The provider-neutral stream against the fake upstreams of all three protocols. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createOutboundGuard } from '../src/lib/outbound.ts'
import { listModels, streamChat, UpstreamError, type ChatEvent, type ProviderConnection, type ProviderType } from '../src/llm/index.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

let fake: FakeLlm
beforeAll(async () => {
  fake = await startFakeLlm()
})
afterAll(() => fake.stop())

const PATHS: Record<ProviderType, string> = { openai: '/v1', openai_compatible: '/v1', anthropic: '/v1', google: '/v1beta' }
// the fake is on loopback: reached as an admin would
const viaGuard = createOutboundGuard({ allowPrivate: false }).fetchFor({ role: 'admin' })
const conn = (type: ProviderType, timeoutMs = 5000): ProviderConnection => ({ type, baseUrl: fake.url + PATHS[type], apiKey: 'key', headers: {}, timeoutMs, fetch: viaGuard, fetchMedia: viaGuard })
const collect = async (type: ProviderType, model: string, extra: Partial<Parameters<typeof streamChat>[1]> = {}, signal?: AbortSignal, timeoutMs?: number) => {
  const events: ChatEvent[] = []
  for await (const e of streamChat(conn(type, timeoutMs), { model, messages: [{ role: 'user', content: 'hello' }], ...extra }, signal)) events.push(e)
  return events
}
const text = (events: ChatEvent[]) => events.map((e) => (e.type === 'text' ? e.text : '')).join('')

for (const type of ['openai_compatible', 'anthropic', 'google'] as const) {
  describe(`streamChat over ${type}`, () => {
    test('text, then one finish with usage', async () => {
      const events = await collect(type, 'fake:tokens=4', { system: 'Be brief.', temperature: 0.3, maxTokens: 20 })
      expect(text(events)).toBe('tok0 tok1 tok2 tok3 ')
      expect(events.filter((e) => e.type === 'finish')).toEqual([{ type: 'finish', reason: 'stop', usage: { inputTokens: expect.any(Number), outputTokens: 4 } }])
      expect(events.at(-1)!.type).toBe('finish')
    })

    test('tool calls come whole, with their arguments', async () => {
      const events = await collect(type, 'fake:tool=get_weather', { tools: [{ name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }] })
      const call = events.find((e) => e.type === 'tool_call')
      expect(call).toMatchObject({ type: 'tool_call', name: 'get_weather' })
      expect(JSON.parse((call as { arguments: string }).arguments)).toEqual({ city: 'Paris' })
      expect(events.at(-1)).toMatchObject({ type: 'finish', reason: 'tool_calls' })
    })

    test('reasoning deltas', async () => {
      const events = await collect(type, 'fake:tokens=1,reason=2')
      expect(events.filter((e) => e.type === 'reasoning').map((e) => (e as { text: string }).text).join('')).toContain('think0')
    })

    test('finish reason length', async () => {
      expect((await collect(type, 'fake:tokens=2,finish=length')).at(-1)).toMatchObject({ reason: 'length' })
    })

    test('an HTTP failure is an UpstreamError with the status', async () => {
      const error = await collect(type, 'fake:fail=503').catch((e) => e)
      expect(error).toBeInstanceOf(UpstreamError)
      expect(error.status).toBe(503)
    })

    test('a stream broken mid-way is an error, never a quiet end', async () => {
      const error = await collect(type, 'fake:tokens=6,failmid=2').catch((e) => e)
      expect(error).toBeInstanceOf(UpstreamError)
    })

    test('silence longer than the timeout is a timeout error', async () => {
      const error = await collect(type, 'fake:hang=3000', {}, undefined, 300).catch((e) => e)
      expect(error).toBeInstanceOf(UpstreamError)
      expect(error.kind).toBe('timeout')
    })

    test('aborting ends the stream quietly', async () => {
      const controller = new AbortController()
      const events: ChatEvent[] = []
      for await (const e of streamChat(conn(type), { model: 'fake:tokens=100,delay=10', messages: [{ role: 'user', content: 'hi' }] }, controller.signal)) {
        events.push(e)
        if (events.length === 3) controller.abort()
      }
      expect(events.length).toBeLessThan(20)
      expect(events.some((e) => e.type === 'finish')).toBe(false)
    })
  })
}

test('OpenAI-type requests carry the system prompt, history and options in OpenAI form', async () => {
  const before = fake.requests.length
  await collect('openai', 'fake:tokens=1', {
    system: 'Sys',
    messages: [
      { role: 'user', content: 'q1' },
      { role: 'assistant', content: [{ type: 'text', text: 'a1' }, { type: 'tool-call', toolCallId: 'c1', toolName: 'f', input: { x: 1 } }] },
      { role: 'tool', content: [{ type: 'tool-result', toolCallId: 'c1', toolName: 'f', output: { type: 'text', value: 'r1' } }] },
      { role: 'user', content: 'q2' },
    ],
    temperature: 0.1,
    maxTokens: 9,
    stop: ['X'],
    toolChoice: { name: 'f' },
    tools: [{ name: 'f', parameters: { type: 'object' } }],
    responseFormat: { type: 'json' },
  })
  const sent = fake.requests[before]!
  expect(sent.headers.authorization).toBe('Bearer key')
  expect(sent.body).toMatchObject({
    model: 'fake:tokens=1',
    stream: true,
    stream_options: { include_usage: true },
    temperature: 0.1,
    max_tokens: 9,
    stop: ['X'],
    tool_choice: { type: 'function', function: { name: 'f' } },
    response_format: { type: 'json_object' },
    messages: [
      { role: 'system', content: 'Sys' },
      { role: 'user', content: 'q1' },
      { role: 'assistant', content: 'a1', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"x":1}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'r1' },
      { role: 'user', content: 'q2' },
    ],
  })
})

test("a provider's error text reaches users trimmed: control and format characters gone, whitespace collapsed, at most 300 characters", async () => {
  const message = 'bad\u0000\u001b[31m\r\n  thing\u202e\u2028' + 'x'.repeat(5000)
  const hostile = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => Response.json({ type: 'error', error: { type: 'invalid_request_error', message } }, { status: 400 }) })
  try {
    for (const type of ['openai_compatible', 'anthropic', 'google'] as const) {
      const c = { ...conn(type), baseUrl: `http://127.0.0.1:${hostile.port}${PATHS[type]}` }
      const errors = [
        await (async () => {
          for await (const _ of streamChat(c, { model: 'm', messages: [{ role: 'user', content: 'hi' }] })) void _
        })().catch((e) => e),
        await listModels(c).catch((e) => e),
      ]
      for (const error of errors) {
        expect(error).toBeInstanceOf(UpstreamError)
        const prefix = 'the provider answered 400: '
        expect({ type, start: error.message.slice(0, prefix.length + 16) }).toEqual({ type, start: `${prefix}bad [31m thing x` })
        expect(error.message.length).toBe(prefix.length + 300)
        expect(error.message.endsWith('x…')).toBe(true)
        expect(error.message).not.toMatch(/[\u0000-\u001f\u007f\u202e\u2028]/)
      }
    }
  } finally {
    hostile.stop(true)
  }
})
