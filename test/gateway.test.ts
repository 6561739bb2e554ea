/**
 * The /v1 gateway over real HTTP, judged by the official `openai` SDK, against fake upstreams that
 * speak OpenAI, Anthropic and Gemini on loopback.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { treaty } from '@elysiajs/eden'
import OpenAI from 'openai'
import type { App } from '../src/client.ts'
import type { Database } from '../src/db/index.ts'
import { register, type Account } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { scenarios, type ScenarioContext } from './helpers/scenarios.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'
import { privateName } from './helpers/private-name.ts'

interface Setup {
  t: TestApp
  fake: FakeLlm
  server: ReturnType<typeof Bun.serve>
  admin: Account
  user: Account
  key: string
  client: OpenAI
}

/** A server on a loopback port with three global providers pointing at the fake. */
async function setup(dialect: 'sqlite' | 'postgres', env: Record<string, string> = {}): Promise<Setup> {
  const fake = await startFakeLlm()
  const t = await createTestApp(dialect, env)
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: t.app.fetch, idleTimeout: 30 })
  const admin = await register(t, 'gwadmin')
  const user = await register(t, 'gwuser')
  const provider = async (name: string, type: string, base: string, extra: Record<string, unknown> = {}) => {
    const res = await t.request('POST', '/api/v1/providers', { token: admin.access, body: { name, type, base_url: `${fake.url}${base}`, api_key: `key-${name}`, scope: 'global', ...extra } })
    expect(res.status).toBe(201)
    return res.body.id as string
  }
  const model = async (provider_id: string, name: string, model_id: string, extra: Record<string, unknown> = {}) => {
    const res = await t.request('POST', '/api/v1/models', { token: admin.access, body: { provider_id, name, model_id, input_price: 1, output_price: 2, ...extra } })
    expect(res.status).toBe(201)
  }
  const oai = await provider('fake-openai', 'openai_compatible', '/v1')
  const ant = await provider('fake-anthropic', 'anthropic', '/v1')
  const goo = await provider('fake-google', 'google', '/v1beta')
  const quick = await provider('fake-quick-timeout', 'openai_compatible', '/v1', { timeout_ms: 1000 })
  const quickAnt = await provider('fake-anthropic-quick', 'anthropic', '/v1', { timeout_ms: 1000 })
  for (const [p, prefix] of [[oai, 'gpt'], [ant, 'claude'], [goo, 'gemini']] as const) {
    await model(p, `${prefix}-fake`, 'fake:tokens=5')
    await model(p, `${prefix}-tool`, 'fake:tool=get_weather')
    await model(p, `${prefix}-fail`, 'fake:fail=500')
    await model(p, `${prefix}-bad`, 'fake:fail=400')
    await model(p, `${prefix}-midfail`, 'fake:tokens=6,failmid=2')
    await model(p, `${prefix}-slow`, 'fake:tokens=200,delay=10')
    await model(p, `${prefix}-reason`, 'fake:tokens=2,reason=2')
  }
  await model(quick, 'gpt-hang', 'fake:hang=5000')
  await model(quickAnt, 'claude-hang', 'fake:hang=5000')
  const key = (await t.request('POST', '/api/v1/api-keys', { token: user.access, body: { name: 'sdk' } })).body.key as string
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${server.port}/v1`, apiKey: key, maxRetries: 0 })
  return { t, fake, server, admin, user, key, client }
}

async function teardown(s: Setup) {
  s.server.stop(true)
  await s.t.close()
  await s.fake.stop()
}

const FIVE = 'tok0 tok1 tok2 tok3 tok4 '
const messages: OpenAI.ChatCompletionMessageParam[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Say five tokens.' },
]

/** Wait for the usage row the gateway writes when a call ends (written after the response). */
async function usageRows(s: Setup, count: number) {
  for (let i = 0; i < 100; i++) {
    const rows = await s.t.deps.database.db.select().from(s.t.deps.database.t.usage)
    if (rows.length >= count) return rows
    await Bun.sleep(20)
  }
  throw new Error(`fewer than ${count} usage rows`)
}

/**
 * While `during` runs, every UPDATE of a user's credit balance fails inside the database (a trigger
 * raises), as it would with the database failing under the server; nothing else is touched.
 */
async function failingCreditUpdates(database: Database, during: () => Promise<void>) {
  const { client } = database
  if (client.kind === 'sqlite') client.sqlite.run("CREATE TRIGGER fail_credit_updates BEFORE UPDATE OF credit_balance ON users BEGIN SELECT RAISE(ABORT, 'simulated database failure'); END")
  else {
    await client.sql.unsafe("CREATE FUNCTION fail_credit_updates() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'simulated database failure'; END $$")
    await client.sql.unsafe('CREATE TRIGGER fail_credit_updates BEFORE UPDATE OF credit_balance ON users FOR EACH ROW EXECUTE FUNCTION fail_credit_updates()')
  }
  try {
    await during()
  } finally {
    if (client.kind === 'sqlite') client.sqlite.run('DROP TRIGGER fail_credit_updates')
    else await client.sql.unsafe('DROP TRIGGER fail_credit_updates ON users; DROP FUNCTION fail_credit_updates()')
  }
}

eachDialect('gateway /v1: who may call what', (dialect) => {
  let s: Setup
  let ctx: ScenarioContext
  beforeAll(async () => {
    s = await setup(dialect)
    const other = await register(s.t, 'gwother')
    const p = await s.t.request('POST', '/api/v1/providers', { token: other.access, body: { name: 'theirs', type: 'openai_compatible', base_url: `${s.fake.url}/v1`, api_key: 'k' } })
    expect(p.status).toBe(201)
    expect((await s.t.request('POST', '/api/v1/models', { token: other.access, body: { provider_id: p.body.id, name: 'their-model', model_id: 'fake:tokens=2' } })).status).toBe(201)
    ctx = { t: s.t, tokens: { admin: s.admin.access, user: s.user.access, other: other.access } }
  })
  afterAll(() => teardown(s))

  const ask = (model: string, content = 'hi') => ({ model, messages: [{ role: 'user' as const, content }] })
  const isCompletion = (r: TestResponse) => expect(r.body).toMatchObject({ object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: expect.any(String) } }] })
  const completions = '/v1/chat/completions'
  scenarios(() => ctx, [
    { name: 'needs a key', as: 'guest', method: 'GET', path: '/v1/models', status: 401, code: 'unauthorized' },
    { name: 'needs a key', as: 'guest', method: 'POST', path: completions, body: ask('gpt-fake'), status: 401, code: 'unauthorized' },
    { name: 'the global models, not another user’s own', as: 'user', method: 'GET', path: '/v1/models', status: 200, contains: ['"gpt-fake"'], notContains: ['their-model'] },
    { name: 'the global models and their own', as: 'other', method: 'GET', path: '/v1/models', status: 200, contains: ['"gpt-fake"', '"their-model"'] },
    { name: 'a global model', as: 'user', method: 'POST', path: completions, body: ask('gpt-fake'), status: 200, check: isCompletion },
    { name: 'a global model', as: 'admin', method: 'POST', path: completions, body: ask('claude-fake'), status: 200, check: isCompletion },
    { name: 'a model of their own provider', as: 'other', method: 'POST', path: completions, body: ask('their-model'), status: 200, check: isCompletion },
    { name: 'another user’s personal model does not exist for them', as: 'user', method: 'POST', path: completions, body: ask('their-model'), status: 404, code: 'model_not_found' },
    { name: 'nor for an admin', as: 'admin', method: 'POST', path: completions, body: ask('their-model'), status: 404, code: 'model_not_found' },
    { name: 'an unknown model', as: 'user', method: 'POST', path: completions, body: ask('no-such-model'), status: 404, code: 'model_not_found' },
    { name: 'a body without messages', as: 'user', method: 'POST', path: completions, body: { model: 'gpt-fake' }, status: 400, code: 'validation_error', contains: ['messages'] },
    { name: 'a body that is not JSON', as: 'user', method: 'POST', path: completions, raw: '{"model":', headers: { 'content-type': 'application/json' }, status: 400, code: 'validation_error' },
    { name: 'a body over 1 MiB', as: 'user', method: 'POST', path: completions, raw: JSON.stringify(ask('gpt-fake', 'x'.repeat(1_100_000))), headers: { 'content-type': 'application/json' }, status: 413, code: 'payload_too_large' },
    { name: 'a body that is not JSON', as: 'user', method: 'POST', path: completions, raw: 'model=gpt-fake', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, code: 'unsupported_media_type' },
    { name: 'a method the path does not take', as: 'user', method: 'PUT', path: '/v1/models', status: 405, code: 'method_not_allowed' },
    { name: 'an unknown path', as: 'user', method: 'GET', path: '/v1/nothing-here', status: 404, code: 'not_found' },
  ])

  test('/openapi.json: a completion answers JSON or an event stream, and each error in OpenAI’s shape', async () => {
    const { body } = await s.t.request('GET', '/openapi.json')
    const op = body.paths['/v1/chat/completions'].post
    expect(Object.keys(op.responses)).toEqual(['200', '400', '401', '402', '403', '404', '413', '415', '422', '429', '500', '502', '504'])
    const ok = op.responses['200']
    expect(Object.keys(ok.content).sort()).toEqual(['application/json', 'text/event-stream'])
    expect(ok.description).toContain('chat.completion.chunk')
    const component = (schema: { $ref: string }) => body.components.schemas[schema.$ref.replace('#/components/schemas/', '')]
    const events = component(ok.content['text/event-stream'].schema).anyOf ?? component(ok.content['text/event-stream'].schema).oneOf
    expect(events.map((e: { properties: { data: { $ref?: string; const?: string } } }) => e.properties.data.$ref ?? e.properties.data.const)).toEqual([
      '#/components/schemas/ChatCompletionChunk',
      '#/components/schemas/OpenAIError',
      '[DONE]',
    ])
    expect(component(ok.content['application/json'].schema)).toBe(body.components.schemas.ChatCompletion)
    const completion = body.components.schemas.ChatCompletion
    expect(completion.properties.object).toMatchObject({ const: 'chat.completion' })
    expect(completion.required).toEqual(['id', 'object', 'created', 'model', 'choices', 'usage'])
    const choice = completion.properties.choices.items
    expect(Object.keys(choice.properties)).toEqual(['index', 'message', 'logprobs', 'finish_reason'])
    expect(Object.keys(choice.properties.message.properties)).toEqual(['role', 'content', 'tool_calls', 'reasoning_content', 'refusal'])
    expect(Object.keys(completion.properties.usage.properties)).toEqual(['prompt_tokens', 'completion_tokens', 'total_tokens'])
    for (const status of ['400', '401', '402', '403', '404', '413', '415', '422', '429', '500', '502', '504']) {
      const schema = op.responses[status].content['application/json'].schema
      expect({ status, error: Object.keys(component(schema).properties.error.properties) }).toEqual({ status, error: ['message', 'type', 'param', 'code'] })
    }
    expect(op.responses['402'].description).toContain('insufficient_quota')
    expect(op.responses['403'].description).toContain('`gateway` scope')
    expect(Object.keys(body.paths['/v1/models'].get.responses)).toEqual(['200', '401', '403', '429'])
  })

  test('Eden: the completion and its errors are typed, though the handler answers with a Response of its own', async () => {
    const api = treaty<App>(s.t.app, { headers: { authorization: `Bearer ${s.key}` } })
    const { data, status } = await api.v1.chat.completions.post(ask('gpt-fake'))
    expect(status).toBe(200)
    const content: string | null | undefined = data?.choices[0]?.message.content
    const total: number | undefined = data?.usage.total_tokens
    expect({ content, total: total! > 0 }).toEqual({ content: FIVE, total: true })
    const missing = await api.v1.chat.completions.post(ask('no-such-model'))
    if (missing.error?.status !== 404) throw new Error(`expected a 404, got ${missing.status}`)
    const code: string | null = missing.error.value.error.code
    expect(code).toBe('model_not_found')
  })
})

eachDialect('gateway /v1 with the openai SDK', (dialect) => {
  let s: Setup
  beforeAll(async () => {
    s = await setup(dialect)
  })
  afterAll(() => teardown(s))

  test('GET /v1/models lists the model names the caller can use', async () => {
    const page = await s.client.models.list()
    const ids = page.data.map((m) => m.id)
    expect(ids).toContain('gpt-fake')
    expect(ids).toContain('claude-fake')
    expect(ids).toContain('gemini-fake')
    expect(page.data.find((m) => m.id === 'claude-fake')?.owned_by).toBe('fake-anthropic')
  })

  for (const prefix of ['gpt', 'claude', 'gemini']) {
    describe(prefix, () => {
      test('non-streaming: the completion, its usage, finish reason stop', async () => {
        const r = await s.client.chat.completions.create({ model: `${prefix}-fake`, messages })
        expect(r.object).toBe('chat.completion')
        expect(r.choices[0]!.message.content).toBe(FIVE)
        expect(r.choices[0]!.finish_reason).toBe('stop')
        expect(r.usage?.completion_tokens).toBe(5)
        expect(r.usage?.prompt_tokens).toBeGreaterThan(0)
      })

      test('streaming with include_usage: chunks in order, then usage, then [DONE]', async () => {
        const stream = await s.client.chat.completions.create({ model: `${prefix}-fake`, messages, stream: true, stream_options: { include_usage: true } })
        let text = ''
        let finish: string | null = null
        let usage: OpenAI.CompletionUsage | undefined
        for await (const chunk of stream) {
          expect(chunk.object).toBe('chat.completion.chunk')
          if (chunk.choices[0]) {
            text += chunk.choices[0].delta.content ?? ''
            finish = chunk.choices[0].finish_reason ?? finish
          }
          if (chunk.usage) usage = chunk.usage
        }
        expect(text).toBe(FIVE)
        expect(finish).toBe('stop')
        expect(usage?.completion_tokens).toBe(5)
      })

      test('streaming without include_usage: no usage chunk reaches the client', async () => {
        const stream = await s.client.chat.completions.create({ model: `${prefix}-fake`, messages, stream: true })
        let sawUsage = false
        let chunks = 0
        for await (const chunk of stream) {
          chunks++
          expect(chunk.choices).toHaveLength(1)
          if (chunk.usage) sawUsage = true
        }
        expect(chunks).toBeGreaterThan(5)
        expect(sawUsage).toBe(false)
      })

      test('tools: the call comes back as OpenAI tool_calls', async () => {
        const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }]
        const final = await s.client.chat.completions.stream({ model: `${prefix}-tool`, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools, tool_choice: 'auto' }).finalChatCompletion()
        const call = final.choices[0]!.message.tool_calls?.[0]
        expect(call?.type).toBe('function')
        expect(call && 'function' in call ? call.function.name : undefined).toBe('get_weather')
        expect(JSON.parse(call && 'function' in call ? call.function.arguments : '{}')).toEqual({ city: 'Paris' })
        expect(final.choices[0]!.finish_reason).toBe('tool_calls')
        const plain = await s.client.chat.completions.create({ model: `${prefix}-tool`, messages: [{ role: 'user', content: 'Weather?' }], tools })
        expect(plain.choices[0]!.message.tool_calls?.length).toBe(1)
      })

      test('a tool result goes back upstream in that provider’s own format', async () => {
        const before = s.fake.requests.length
        await s.client.chat.completions.create({
          model: `${prefix}-fake`,
          messages: [
            { role: 'user', content: 'Weather in Paris?' },
            { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
            { role: 'tool', tool_call_id: 'call_1', content: 'Sunny, 21°C' },
          ],
          tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
        })
        const sent = JSON.stringify(s.fake.requests.slice(before).map((r) => r.body))
        expect(sent).toContain('Sunny, 21°C')
        expect(sent).toContain('get_weather')
      })

      test('an upstream failure before the first byte is a clean OpenAI error (502)', async () => {
        const err = await s.client.chat.completions.create({ model: `${prefix}-fail`, messages, stream: true }).catch((e) => e)
        expect(err).toBeInstanceOf(OpenAI.APIError)
        expect(err.status).toBe(502)
        expect(err.error).toMatchObject({ type: 'upstream_error' })
        const bad = await s.client.chat.completions.create({ model: `${prefix}-bad`, messages }).catch((e) => e)
        expect(bad.status).toBe(400)
      })

      test('an upstream failure mid-stream: an error event, never a silent truncated success', async () => {
        const stream = await s.client.chat.completions.create({ model: `${prefix}-midfail`, messages, stream: true })
        let text = ''
        const err = await (async () => {
          for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
        })().catch((e) => e)
        expect(err).toBeInstanceOf(OpenAI.APIError)
        expect(text.length).toBeGreaterThan(0)
        expect(text).not.toBe('tok0 tok1 tok2 tok3 tok4 tok5 ')
      })

      test('reasoning deltas are passed on as reasoning_content', async () => {
        const stream = await s.client.chat.completions.create({ model: `${prefix}-reason`, messages, stream: true })
        let reasoning = ''
        let text = ''
        for await (const chunk of stream) {
          const delta = chunk.choices[0]?.delta as { content?: string; reasoning_content?: string } | undefined
          reasoning += delta?.reasoning_content ?? ''
          text += delta?.content ?? ''
        }
        expect(reasoning).toContain('think0')
        expect(text).toBe('tok0 tok1 ')
      })
    })
  }

  test('response_format, temperature, stop and unknown fields reach the upstream', async () => {
    const before = s.fake.requests.length
    await s.client.chat.completions.create({ model: 'gpt-fake', messages, response_format: { type: 'json_object' }, temperature: 0.2, stop: ['END'], seed: 7, max_completion_tokens: 50 })
    expect(s.fake.requests[before]!.body).toMatchObject({ response_format: { type: 'json_object' }, temperature: 0.2, stop: ['END'], seed: 7, max_completion_tokens: 50 })
    for (const model of ['claude-fake', 'gemini-fake']) {
      const r = await s.client.chat.completions.create({ model, messages, response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object', properties: { text: { type: 'string' } } } } }, temperature: 0.5, max_tokens: 30 })
      expect(r.choices[0]!.finish_reason).toBe('stop')
    }
    const sent = JSON.stringify(s.fake.requests.slice(before + 1).map((r) => r.body))
    expect(sent).toContain('0.5')
    const tooMany = await s.client.chat.completions.create({ model: 'gpt-fake', messages, n: 2 }).catch((e) => e)
    expect(tooMany.status).toBe(400)
  })

  test('an upstream that never answers: 504 after the provider timeout', async () => {
    for (const model of ['gpt-hang', 'claude-hang']) {
      const started = Date.now()
      const err = await s.client.chat.completions.create({ model, messages, stream: true }).catch((e) => e)
      expect(err.status).toBe(504)
      expect(Date.now() - started).toBeLessThan(4000)
    }
  })

  test('the upstream gets the provider key and the upstream model id, never the Hearth key', async () => {
    const before = s.fake.requests.length
    await s.client.chat.completions.create({ model: 'gpt-fake', messages })
    const sent = s.fake.requests[before]!
    expect(sent.headers.authorization).toBe('Bearer key-fake-openai')
    expect((sent.body as { model: string }).model).toBe('fake:tokens=5')
    expect(JSON.stringify(s.fake.requests)).not.toContain(s.key)
  })

  test('errors in OpenAI shape: unknown model 404, no key 401, bad body 400', async () => {
    const missing = await s.client.chat.completions.create({ model: 'no-such-model', messages }).catch((e) => e)
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError)
    expect(missing.code).toBe('model_not_found')
    const anon = new OpenAI({ baseURL: s.client.baseURL, apiKey: 'hk_wrong', maxRetries: 0 })
    const unauth = await anon.chat.completions.create({ model: 'gpt-fake', messages }).catch((e) => e)
    expect(unauth).toBeInstanceOf(OpenAI.AuthenticationError)
    expect(unauth.error).toMatchObject({ type: 'authentication_error' })
    const bad = await fetch(`${s.client.baseURL}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${s.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-fake' }) })
    expect(bad.status).toBe(400)
    expect((await bad.json()).error.message).toContain('messages')
  })

  test('another user’s personal provider is invisible through the gateway', async () => {
    const owner = await register(s.t, 'privy')
    // the model is added by hand under its own name: no sync of the upstream's list (which has `fake` too)
    const p = await s.t.request('POST', '/api/v1/providers', { token: owner.access, body: { name: 'mine', type: 'openai_compatible', base_url: `${s.fake.url}/v1`, api_key: 'k', sync_models: false } })
    expect((await s.t.request('POST', '/api/v1/models', { token: owner.access, body: { provider_id: p.body.id, name: 'private-model', model_id: 'fake' } })).status).toBe(201)
    const err = await s.client.chat.completions.create({ model: 'private-model', messages }).catch((e) => e)
    expect(err.status).toBe(404)
    expect((await s.client.models.list()).data.map((m) => m.id)).not.toContain('private-model')
  })

  test('relayed streams: the usage event and the "usage":null fields are cut out unless asked for, and the tokens are recorded either way', async () => {
    for (const wants of [false, true]) {
      await s.t.deps.services.usage.flush() // earlier calls' records are written before the snapshot
      const seen = new Set((await s.t.deps.database.db.select().from(s.t.deps.database.t.usage)).map((r) => r.id))
      const res = await s.client.chat.completions.create({ model: 'gpt-fake', messages, stream: true, ...(wants ? { stream_options: { include_usage: true } } : {}) }).asResponse()
      const events = (await res.text()).split('\n\n').filter(Boolean)
      expect(events.at(-1)).toBe('data: [DONE]')
      expect(events.filter((e) => e.includes('"usage":{')).length).toBe(wants ? 1 : 0)
      // what OpenAI sends: "usage":null in every other chunk when asked for, no usage field at all when not
      expect(events.filter((e) => e.includes('"usage":null')).length).toBe(wants ? events.length - 2 : 0)
      if (!wants) expect(events.some((e) => e.includes('"usage"'))).toBe(false)
      // every event came through whole and in order: content chunks, then the finish chunk
      const deltas = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)) as OpenAI.ChatCompletionChunk)
      expect(deltas.map((d) => d.choices[0]?.delta.content ?? '').join('')).toBe(FIVE)
      const row = (await usageRows(s, seen.size + 1)).find((r) => !seen.has(r.id))!
      expect({ status: row.status, output: row.outputTokens }).toEqual({ status: 'ok', output: 5 })
    }
  })

  test('usage is recorded for every call, with tokens, cost, latency and status', async () => {
    const rows = await usageRows(s, 1)
    const mine = rows.filter((r) => r.userId === s.user.id && r.source === 'gateway')
    const ok = mine.find((r) => r.model === 'gpt-fake' && r.status === 'ok')!
    expect(ok.outputTokens).toBe(5)
    expect(ok.inputTokens).toBeGreaterThan(0)
    expect(ok.cost).toBeCloseTo((ok.inputTokens * 1 + 5 * 2) / 1e6, 12)
    expect(ok.latencyMs).toBeGreaterThanOrEqual(0)
    expect(mine.some((r) => r.model === 'claude-fake' && r.status === 'ok' && r.outputTokens === 5)).toBe(true)
    expect(mine.some((r) => r.status === 'error')).toBe(true)
    const stats = await s.t.request('GET', '/api/v1/users/me/stats', { token: s.user.access })
    expect(stats.body.output_tokens).toBe(mine.reduce((n, r) => n + r.outputTokens, 0))
  })

  test('a client that goes away aborts the upstream call', async () => {
    for (const model of ['gpt-slow', 'claude-slow']) {
      const controller = new AbortController()
      const stream = await s.client.chat.completions.create({ model, messages, stream: true }, { signal: controller.signal })
      let chunks = 0
      await (async () => {
        for await (const _ of stream) if (++chunks === 3) controller.abort()
      })().catch(() => {})
      let row
      for (let i = 0; i < 100 && !row; i++) {
        await Bun.sleep(20)
        row = (await s.t.deps.database.db.select().from(s.t.deps.database.t.usage)).find((r) => r.model === model && r.status === 'aborted')
      }
      expect(row).toBeDefined()
    }
  })
})

eachDialect('gateway credits', (dialect) => {
  let s: Setup
  beforeAll(async () => {
    s = await setup(dialect, { HEARTH_CREDITS: 'on' })
  })
  afterAll(() => teardown(s))

  test('402 insufficient_quota with no balance', async () => {
    const err = await s.client.chat.completions.create({ model: 'gpt-fake', messages }).catch((e) => e)
    expect(err.status).toBe(402)
    expect(err.code).toBe('insufficient_quota')
  })

  test('many concurrent calls against a small balance cannot overspend by more than one call', async () => {
    // price a call at ~1 credit: 5 output tokens at 200k per million, input at 1 per million
    const created = await s.t.request('GET', '/api/v1/models?q=gpt-fake', { token: s.admin.access })
    const model = created.body.items.find((m: { name: string }) => m.name === 'gpt-fake')
    await s.t.request('PATCH', `/api/v1/models/${model.id}`, { token: s.admin.access, body: { output_price: 200_000, input_price: 0 } })
    const credit = 4.5
    await s.t.request('PATCH', `/api/v1/admin/users/${s.user.id}`, { token: s.admin.access, body: { credits_delta: credit } })
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        s.client.chat.completions.create({ model: 'gpt-fake', messages, max_tokens: 5 }).then(
          () => 'ok',
          (e) => (e.status === 402 ? 'quota' : `error ${e.status}`),
        ),
      ),
    )
    const ok = results.filter((r) => r === 'ok').length
    expect(results.filter((r) => r !== 'ok' && r !== 'quota')).toEqual([])
    const perCall = 1 // 5 tokens × 200,000 / 1e6
    expect(ok).toBeGreaterThanOrEqual(Math.floor(credit / perCall))
    expect(ok).toBeLessThanOrEqual(Math.ceil(credit / perCall))
    await usageRows(s, ok)
    await Bun.sleep(50)
    const credits = (await s.t.request('GET', '/api/v1/users/me/credits', { token: s.user.access })).body
    expect(credits.enforced).toBe(true)
    expect(credits.balance).toBeGreaterThanOrEqual(-perCall - 1e-9)
    expect(credits.balance).toBeCloseTo(credit - ok * perCall, 9)
    expect(credits.used).toBeCloseTo(ok * perCall, 9)
  })

  if (dialect === 'postgres')
    test('the same bound holds with the calls spread over two instances', async () => {
      const b = await createSecondInstance(s.t, { HEARTH_CREDITS: 'on' })
      const serverB = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: b.app.fetch })
      try {
        const clientB = new OpenAI({ baseURL: `http://127.0.0.1:${serverB.port}/v1`, apiKey: s.key, maxRetries: 0 })
        const balance = async () => (await s.t.request('GET', '/api/v1/users/me/credits', { token: s.user.access })).body.balance as number
        const start = await balance()
        await s.t.request('PATCH', `/api/v1/admin/users/${s.user.id}`, { token: s.admin.access, body: { credits_delta: 3.5 - start } })
        const results = await Promise.all(
          Array.from({ length: 16 }, (_, i) =>
            (i % 2 ? clientB : s.client).chat.completions.create({ model: 'gpt-fake', messages, max_tokens: 5 }).then(
              () => 'ok',
              (e) => (e.status === 402 ? 'quota' : `error ${e.status}`),
            ),
          ),
        )
        expect(results.filter((r) => r !== 'ok' && r !== 'quota')).toEqual([])
        const ok = results.filter((r) => r === 'ok').length
        expect(ok).toBeGreaterThanOrEqual(3)
        expect(ok).toBeLessThanOrEqual(4)
        await Bun.sleep(200)
        expect(await balance()).toBeGreaterThanOrEqual(-1 - 1e-9)
      } finally {
        serverB.stop(true)
        await b.close()
      }
    })

  test('a hold that fails for a database reason is a logged 500 server_error, not a 402; no credit is still a 402', async () => {
    await s.t.request('PATCH', `/api/v1/admin/users/${s.user.id}`, { token: s.admin.access, body: { credits_delta: 100 } })
    const broke = await register(s.t, 'broke')
    await s.t.deps.services.usage.flush() // nothing pending touches a balance while the trigger is there
    await failingCreditUpdates(s.t.deps.database, async () => {
      const failed = await s.client.chat.completions.create({ model: 'gpt-fake', messages }).catch((e) => e)
      expect({ status: failed.status, error: failed.error }).toMatchObject({ status: 500, error: { type: 'server_error', code: 'internal_error' } })
      expect(JSON.stringify(failed.error)).not.toContain('simulated')
      // the hold matches no row of a user with no credit, so nothing fails: the quota answer as ever
      const poor = new OpenAI({ baseURL: s.client.baseURL, apiKey: broke.access, maxRetries: 0 })
      const refused = await poor.chat.completions.create({ model: 'gpt-fake', messages }).catch((e) => e)
      expect({ status: refused.status, code: refused.code, type: refused.error?.type }).toEqual({ status: 402, code: 'insufficient_quota', type: 'insufficient_quota' })
    })
    // logged with the request id (Drizzle on Postgres names the failed query, and the database's message is its cause)
    const logged = s.t.logs.filter((l) => l.level === 'error' && l.path === '/v1/chat/completions')
    expect(logged).toEqual([expect.objectContaining({ msg: 'unhandled error', request_id: expect.any(String) })])
    const error = logged[0]!.error as { message: string; cause?: { message: string } }
    expect(error.message).toMatch(dialect === 'sqlite' ? /simulated database failure/ : /update "users" set "credit_balance"/)
    if (dialect === 'postgres') expect(error.cause?.message).toMatch(/simulated database failure/)
    // and once the database is well again, the same call goes through
    expect((await s.client.chat.completions.create({ model: 'gpt-fake', messages, max_tokens: 5 })).object).toBe('chat.completion')
  })
})

eachDialect('gateway image URLs: fetched by the server only through the outbound guard', (dialect) => {
  const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52])
  let t: TestApp
  let fake: FakeLlm
  let images: ReturnType<typeof Bun.serve>
  let fetched: string[] = []
  let admin: Account
  let user: Account
  const keys: Record<'admin' | 'user', string> = { admin: '', user: '' }
  beforeAll(async () => {
    fake = await startFakeLlm()
    // the secret image, on loopback: what a user must not make the server fetch
    images = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: (req) => (fetched.push(new URL(req.url).pathname), new Response(PNG, { headers: { 'content-type': 'image/png' } })) })
    t = await createTestApp(dialect, { HEARTH_ALLOW_PRIVATE_UPSTREAMS: 'false' })
    admin = await register(t, 'imgadmin')
    user = await register(t, 'imguser')
    for (const [type, path] of [['google', '/v1beta'], ['anthropic', '/v1']] as const) {
      // the admin's global providers may be on loopback; they are used by everyone
      const p = await t.request('POST', '/api/v1/providers', { token: admin.access, body: { name: `img-${type}`, type, base_url: `${fake.url}${path}`, api_key: 'k', scope: 'global' } })
      expect(p.status).toBe(201)
      expect((await t.request('POST', '/api/v1/models', { token: admin.access, body: { provider_id: p.body.id, name: `img-${type}`, model_id: 'fake:tokens=2', supports_vision: true } })).status).toBe(201)
    }
    for (const who of ['admin', 'user'] as const) keys[who] = (await t.request('POST', '/api/v1/api-keys', { token: (who === 'admin' ? admin : user).access, body: { name: 'img' } })).body.key as string
  })
  afterAll(async () => {
    images.stop(true)
    await t.close()
    await fake.stop()
  })

  const ask = (who: 'admin' | 'user', model: string, url: string, stream = false) =>
    t.request('POST', '/v1/chat/completions', { token: keys[who], body: { model, stream, messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url } }] }] } })

  test("Gemini: a user's image URL on a private name or address is refused (400) before anything is fetched or sent", async () => {
    fetched = []
    const before = fake.requests.length
    const port = images.port
    for (const url of [`http://${await privateName()}:${port}/secret.png`, `http://localhost.:${port}/secret.png`, `http://[::ffff:127.0.0.1]:${port}/secret.png`, `http://127.0.0.1:${port}/secret.png`])
      for (const stream of [false, true]) {
        const res = await ask('user', 'img-google', url, stream)
        expect({ url, stream, status: res.status, code: res.body.error?.code }).toEqual({ url, stream, status: 400, code: 'upstream_rejected' })
        expect(res.body.error.message).toContain('could not be fetched')
        expect(res.body.error.message).toContain('private address')
        // the path (and any token in the query) is not repeated
        expect(res.body.error.message).not.toContain('secret.png')
      }
    expect(fetched).toEqual([])
    expect(fake.requests.length).toBe(before)
  })

  test("Gemini: an admin's image URL on loopback is fetched and sent inline", async () => {
    fetched = []
    const before = fake.requests.length
    const res = await ask('admin', 'img-google', `http://${await privateName()}:${images.port}/ok.png`)
    expect({ status: res.status, content: res.body.choices?.[0]?.message?.content }).toEqual({ status: 200, content: 'tok0 tok1 ' })
    expect(fetched).toEqual(['/ok.png'])
    expect(JSON.stringify(fake.requests.slice(before).map((r) => r.body))).toContain(Buffer.from(PNG).toString('base64'))
  })

  test('Gemini: a failing or redirecting image host is a 400 that says so', async () => {
    const odd = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: (req) => (req.url.endsWith('/moved') ? Response.redirect('http://127.0.0.1:9/x', 302) : new Response('no', { status: 404 })) })
    try {
      const moved = await ask('admin', 'img-google', `http://127.0.0.1:${odd.port}/moved`)
      expect({ status: moved.status, message: moved.body.error?.message }).toEqual({ status: 400, message: 'the file at 127.0.0.1 could not be fetched: it answered 302, a redirect, which is not followed' })
      const missing = await ask('admin', 'img-google', `http://127.0.0.1:${odd.port}/missing`)
      expect({ status: missing.status, message: missing.body.error?.message }).toEqual({ status: 400, message: 'the file at 127.0.0.1 could not be fetched: it answered 404' })
    } finally {
      odd.stop(true)
    }
  })

  test('Anthropic takes image URLs itself: the URL is passed on and the server fetches nothing', async () => {
    fetched = []
    const before = fake.requests.length
    const url = `http://${await privateName()}:${images.port}/secret.png`
    const res = await ask('user', 'img-anthropic', url)
    expect(res.status).toBe(200)
    expect(fetched).toEqual([])
    expect(JSON.stringify(fake.requests.slice(before).map((r) => r.body))).toContain(JSON.stringify({ type: 'url', url }))
  })
})
