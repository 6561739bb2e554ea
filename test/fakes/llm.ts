/**
 * A fake model provider that speaks the real wire protocols of OpenAI chat completions, Anthropic
 * messages and Gemini generateContent on one loopback Bun.serve, for tests and benchmarks.
 *
 * The scenario is chosen per request by the MODEL NAME, so production code needs no test hooks:
 * `fake` or `fake:<opt>=<value>,…` (any name starting with `fake`; other names get the defaults).
 *
 *   tokens=N     N content deltas (default 8); delta i is `tok{i} ` (i from 0), or with text=… the words in turn
 *   text=W1 W2   the words to repeat instead of `tok{i}` (no commas)
 *   delay=MS     wait before each delta (default 0)
 *   fail=STATUS  answer with that HTTP status and the protocol's error body
 *   failmid=N    send N deltas (fewer if there are fewer), then reset the connection before the final event
 *   hang=MS      wait that long before the status line (stop() ends it)
 *   tool=NAME    reply with a call to NAME with arguments {"city":"Paris"} (in pieces) instead of text, always
 *   calls=A+B    a model that uses tools: while the request offers tools (and tool_choice is not `none`),
 *                the turn calls A and B at once (one call each, in that order, arguments
 *                {"timezone":"Europe/Paris"} streamed in pieces) instead of text — OpenAI streamed
 *                `tool_calls` deltas, Anthropic `tool_use` blocks with `input_json_delta`, Gemini
 *                `functionCall` parts; once the request holds `rounds` tool rounds after its last user
 *                question (or offers no tools, or tool_choice `none`) it answers with text
 *   rounds=N     how many turns of a `calls` model call tools before it answers (default 1)
 *   args=K:V     the `calls` arguments are {"K":"V"} instead (V a string; for an MCP tool such as echo's `message`)
 *   argsjson     the `calls` arguments are the JSON object that follows the request's last `FAKE_TOOL_ARGS=`
 *                (any JSON object, e.g. a whole workflow), streamed in 4 pieces
 *   reason=N     N reasoning deltas `think{i} ` first (OpenAI delta.reasoning_content, Anthropic thinking, Gemini thought parts)
 *   finish=length|stop   length → length / max_tokens / MAX_TOKENS
 *   script       the answer text is scripted by the request: its text holds
 *                `FAKE_ANSWERS=["first answer", "second answer", …]` (a JSON array of strings) and the turn answers with the entry for the number of assistant turns already in
 *                the request (the last entry once they run out), streamed in 4 deltas — e.g. an invalid JSON
 *                answer, then a valid one for the repair turn that carries the first answer back
 *
 * Usage: prompt tokens = ceil(characters of the request's message text / 4), min 1; completion tokens =
 * deltas streamed (reasoning + text, or reasoning + tool-argument pieces).
 */

/** `abortedAt` (performance.now()) is set when the client closed the request before the fake finished it. */
export type RecordedRequest = { method: string; path: string; headers: Record<string, string>; body: unknown; abortedAt?: number }
export type FakeLlm = { url: string; requests: RecordedRequest[]; stop(): Promise<void> }

export type Scenario = {
  name: string
  tokens: number
  words?: string[]
  delay: number
  fail?: number
  failmid?: number
  hang: number
  tool?: string
  calls?: string[]
  /** the argument pieces of every `calls=` call */
  callPieces: string[]
  rounds: number
  reason: number
  finish: 'stop' | 'length'
  script?: boolean
  argsJson?: boolean
}

export const FAKE_MODELS = ['fake', 'fake-large', 'fake-small'] as const
export const TOOL_ARGS = { city: 'Paris' }
const ARG_PIECES = ['{"', 'city', '":"', 'Paris', '"}']
/** the arguments of every `calls=` call: valid for the built-in `current_time` */
export const CALL_ARGS = { timezone: 'Europe/Paris' }
const CALL_PIECES = ['{"', 'timezone', '":"', 'Europe/', 'Paris', '"}']
const CREATED = 1_700_000_000

/** `{"key":"value"}` in the pieces a model streams it in. */
const argPieces = (key: string, value: string) => ['{"', key, '":', JSON.stringify(value).slice(0, -1), '"}']

/** Parses `fake:tokens=3,delay=5`; throws on an unknown option or a bad value. */
export function parseScenario(model: string): Scenario {
  const colon = model.indexOf(':')
  const name = colon < 0 || !model.startsWith('fake') ? model : model.slice(0, colon)
  const s: Scenario = { name, tokens: 8, delay: 0, hang: 0, callPieces: CALL_PIECES, rounds: 1, reason: 0, finish: 'stop' }
  if (name === model) return s
  const int = (k: string, v: string) => {
    if (!/^\d+$/.test(v)) throw new Error(`fake model option ${k} needs a whole number, got "${v}"`)
    return Number(v)
  }
  for (const opt of model.slice(colon + 1).split(',').filter(Boolean)) {
    const eq = opt.indexOf('=')
    const k = eq < 0 ? opt : opt.slice(0, eq)
    const v = eq < 0 ? '' : opt.slice(eq + 1)
    if (k === 'tokens') s.tokens = int(k, v)
    else if (k === 'delay') s.delay = int(k, v)
    else if (k === 'hang') s.hang = int(k, v)
    else if (k === 'reason') s.reason = int(k, v)
    else if (k === 'rounds') s.rounds = int(k, v)
    else if (k === 'calls' && /^[\w-]+(\+[\w-]+)*$/.test(v)) s.calls = v.split('+')
    else if (k === 'args' && /^\w+:/.test(v)) s.callPieces = argPieces(v.slice(0, v.indexOf(':')), v.slice(v.indexOf(':') + 1))
    else if (k === 'failmid') s.failmid = int(k, v)
    else if (k === 'fail') {
      s.fail = int(k, v)
      if (s.fail < 400 || s.fail > 599) throw new Error(`fake model option fail needs a status 400-599, got ${v}`)
    } else if (k === 'tool' && v) s.tool = v
    else if (k === 'text' && v.trim()) s.words = v.trim().split(/\s+/)
    else if (k === 'finish' && (v === 'stop' || v === 'length')) s.finish = v
    else if (k === 'script' && !v) s.script = true
    else if (k === 'argsjson' && !v) s.argsJson = true
    else throw new Error(`unknown fake model option "${opt}"`)
  }
  return s
}

/** One tool call of a reply: its id suffix (`call_fake{n}{suffix}`), name and argument pieces. */
type PlannedCall = { suffix: string; name: string; pieces: string[] }

/** What every protocol replies, before it is dressed in that protocol's shapes. */
type Plan = {
  sc: Scenario
  model: string
  n: number
  reasoning: string[]
  text: string[]
  calls: PlannedCall[]
  finish: 'stop' | 'length' | 'tool'
  prompt: number
  completion: number
}

/** What a request says about tools, for a `calls=` model: whether it may call them, and the tool rounds since its last question. */
type ToolState = { offered: boolean; rounds: number; /** assistant turns already in the request */ answered?: number }

/** A `script` model's answer: the request's FAKE_ANSWERS entry for this turn, in 4 pieces. */
function scriptedAnswer(promptText: string, answered: number): string[] {
  const start = promptText.indexOf('FAKE_ANSWERS=[')
  // the shortest JSON array after the marker (the request's texts are joined, so more may follow it on the line)
  let answers: string[] | undefined
  for (let end = promptText.indexOf(']', start); start >= 0 && end >= 0 && !answers; end = promptText.indexOf(']', end + 1)) {
    try {
      answers = JSON.parse(promptText.slice(start + 'FAKE_ANSWERS='.length, end + 1)) as string[]
    } catch {}
  }
  if (!answers) throw new Error('a script model needs a FAKE_ANSWERS=[…] array in the request')
  const answer = String(answers[Math.min(answered, answers.length - 1)] ?? '')
  const size = Math.max(1, Math.ceil(answer.length / 4))
  return Array.from({ length: Math.ceil(answer.length / size) }, (_, i) => answer.slice(i * size, (i + 1) * size))
}

/** An `argsjson` model's call arguments: the JSON object after the request's last FAKE_TOOL_ARGS=, in 4 pieces. */
function requestArguments(promptText: string): string[] {
  const start = promptText.lastIndexOf('FAKE_TOOL_ARGS=')
  let json: string | undefined
  // the shortest JSON object after the marker (the request's texts are joined, so more may follow it)
  for (let end = promptText.indexOf('}', start); start >= 0 && end >= 0 && json === undefined; end = promptText.indexOf('}', end + 1)) {
    const candidate = promptText.slice(start + 'FAKE_TOOL_ARGS='.length, end + 1)
    try {
      const value = JSON.parse(candidate)
      if (value && typeof value === 'object' && !Array.isArray(value)) json = candidate
    } catch {}
  }
  if (json === undefined) throw new Error('an argsjson model needs FAKE_TOOL_ARGS={…} in the request')
  const size = Math.max(1, Math.ceil(json.length / 4))
  return Array.from({ length: Math.ceil(json.length / size) }, (_, i) => json.slice(i * size, (i + 1) * size))
}

function plan(model: string, promptText: string, n: number, tools: ToolState): Plan {
  const sc = parseScenario(model)
  if (sc.argsJson && sc.calls && tools.offered && tools.rounds < sc.rounds) sc.callPieces = requestArguments(promptText)
  const reasoning = Array.from({ length: sc.reason }, (_, i) => `think${i} `)
  const calls: PlannedCall[] = sc.tool
    ? [{ suffix: '', name: sc.tool, pieces: ARG_PIECES }]
    : sc.calls && tools.offered && tools.rounds < sc.rounds ? sc.calls.map((name, i) => ({ suffix: `_${i}`, name, pieces: sc.callPieces })) : []
  const text = calls.length ? [] : sc.script ? scriptedAnswer(promptText, tools.answered ?? 0) : Array.from({ length: sc.tokens }, (_, i) => `${sc.words ? sc.words[i % sc.words.length] : `tok${i}`} `)
  const finish = sc.finish === 'length' ? 'length' : calls.length ? 'tool' : 'stop'
  const prompt = Math.max(1, Math.ceil(promptText.length / 4))
  return { sc, model, n, reasoning, text, calls, finish, prompt, completion: reasoning.length + (calls.length ? calls.reduce((k, c) => k + c.pieces.length, 0) : text.length) }
}

/** The messages after the last one `isQuestion` accepts. */
const afterLastQuestion = (messages: unknown[], isQuestion: (m: Body) => boolean) => {
  let i = messages.length
  while (i > 0 && !isQuestion((messages[i - 1] ?? {}) as Body)) i--
  return messages.slice(i).map((m) => (m ?? {}) as Body)
}
const blocks = (m: Body) => (Array.isArray(m.content) ? (m.content as Body[]) : [])

function openaiTools(b: Body): ToolState {
  const offered = Array.isArray(b.tools) && b.tools.length > 0 && b.tool_choice !== 'none'
  const rounds = afterLastQuestion(b.messages as unknown[], (m) => m.role === 'user').filter((m) => m.role === 'assistant' && Array.isArray(m.tool_calls) && m.tool_calls.length).length
  return { offered, rounds, answered: (b.messages as Body[]).filter((m) => m?.role === 'assistant').length }
}

function anthropicTools(b: Body): ToolState {
  const offered = Array.isArray(b.tools) && b.tools.length > 0 && (b.tool_choice as Body | undefined)?.type !== 'none'
  // tool results come back in `user` messages: a question is a user message with something else in it
  const question = (m: Body) => m.role === 'user' && (typeof m.content === 'string' || blocks(m).some((c) => c.type !== 'tool_result'))
  const rounds = afterLastQuestion(b.messages as unknown[], question).filter((m) => m.role === 'assistant' && blocks(m).some((c) => c.type === 'tool_use')).length
  return { offered, rounds, answered: (b.messages as Body[]).filter((m) => m?.role === 'assistant').length }
}

function geminiTools(b: Body): ToolState {
  const declared = Array.isArray(b.tools) && (b.tools as Body[]).some((t) => Array.isArray(t.functionDeclarations) && t.functionDeclarations.length)
  const mode = ((b.toolConfig as Body | undefined)?.functionCallingConfig as Body | undefined)?.mode
  const parts = (m: Body) => (Array.isArray(m.parts) ? (m.parts as Body[]) : [])
  const question = (m: Body) => m.role === 'user' && parts(m).some((p) => !p.functionResponse)
  const rounds = afterLastQuestion(b.contents as unknown[], question).filter((m) => m.role === 'model' && parts(m).some((p) => p.functionCall)).length
  return { offered: declared && mode !== 'NONE', rounds, answered: (b.contents as Body[]).filter((m) => m?.role === 'model').length }
}

/** All message text in a request body: strings, `text` fields, and `content`/`parts` recursively. */
function textOf(v: unknown): string {
  if (typeof v === 'string') return v
  if (Array.isArray(v)) return v.map(textOf).join('')
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>
    return textOf(o.text) + textOf(o.content) + textOf(o.parts)
  }
  return ''
}

// ---------------------------------------------------------------------------------------------
// Streaming: protocols yield frames; the streamer applies delay and failmid to the token frames.

type Frame = { text: string; token?: boolean; final?: boolean }
const enc = new TextEncoder()
const FLUSH_MS = 10

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    if (ms <= 0 || signal.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done)
  })
}

function streamFrames(frames: Iterable<Frame>, sc: Pick<Scenario, 'delay' | 'failmid'>, signal: AbortSignal, headers: Record<string, string>): Response {
  const it = frames[Symbol.iterator]()
  let sent = 0
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      const { value, done } = it.next()
      if (done) return c.close()
      if (sc.failmid !== undefined && (value.final || (value.token && sent >= sc.failmid))) {
        // let what was sent (and the status line) reach the client, then make Bun reset the connection;
        // c.error(undefined) does that quietly (an Error would be logged). A client that is not reading
        // when the reset lands may lose the last bytes, as with a real reset.
        await sleep(FLUSH_MS, signal)
        return c.error(undefined)
      }
      if (value.token) {
        sent++
        await sleep(sc.delay, signal)
      }
      if (!signal.aborted) c.enqueue(enc.encode(value.text))
    },
  })
  return new Response(body, { headers: { 'cache-control': 'no-cache', ...headers } })
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) => Response.json(body, { status, headers })

/** Non-streaming replies still honour delay (per delta) and failmid (half a body, then a reset). */
async function whole(p: Plan, body: unknown, signal: AbortSignal, headers: Record<string, string>): Promise<Response> {
  const { delay, failmid } = p.sc
  await sleep(delay * Math.min(p.completion, failmid ?? Infinity), signal)
  if (failmid === undefined) return json(body, 200, headers)
  const text = JSON.stringify(body)
  const frames = [{ text: text.slice(0, text.length >> 1) }, { text: '', final: true }]
  return streamFrames(frames, { delay: 0, failmid: 0 }, signal, { 'content-type': 'application/json', ...headers })
}

type Protocol = 'openai' | 'anthropic' | 'gemini'

function errorResponse(protocol: Protocol, status: number, message: string): Response {
  if (protocol === 'openai') {
    const [type, code] = status === 401 ? ['invalid_request_error', 'invalid_api_key'] : status === 429 ? ['requests', 'rate_limit_exceeded']
      : status >= 500 ? ['server_error', null] : ['invalid_request_error', null]
    return json({ error: { message, type, param: null, code } }, status)
  }
  if (protocol === 'anthropic') {
    const types: Record<number, string> = { 400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error', 404: 'not_found_error', 413: 'request_too_large', 429: 'rate_limit_error', 529: 'overloaded_error' }
    return json({ type: 'error', error: { type: types[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error'), message } }, status)
  }
  const statuses: Record<number, string> = { 400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED' }
  return json({ error: { code: status, message, status: statuses[status] ?? (status >= 500 ? 'INTERNAL' : 'FAILED_PRECONDITION') } }, status)
}

// ---------------------------------------------------------------------------------------------
// OpenAI chat completions

type Body = Record<string, unknown>

function openaiReply(p: Plan, body: Body, signal: AbortSignal): Promise<Response> | Response {
  const id = `chatcmpl-fake${p.n}`
  const headers = { 'x-request-id': `req_fake${p.n}` }
  const finish_reason = { stop: 'stop', length: 'length', tool: 'tool_calls' }[p.finish]
  const usage = {
    prompt_tokens: p.prompt, completion_tokens: p.completion, total_tokens: p.prompt + p.completion,
    prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: p.reasoning.length },
  }
  const toolCall = (c: PlannedCall, args: string) => ({ id: `call_fake${p.n}${c.suffix}`, type: 'function', function: { name: c.name, arguments: args } })
  const head = { id, created: CREATED, model: p.model, system_fingerprint: 'fp_fake' }
  if (body.stream !== true) {
    const message = {
      role: 'assistant', content: p.calls.length ? null : p.text.join(''), refusal: null,
      ...(p.reasoning.length ? { reasoning_content: p.reasoning.join('') } : {}),
      ...(p.calls.length ? { tool_calls: p.calls.map((c) => toolCall(c, c.pieces.join(''))) } : {}),
    }
    return whole(p, { ...head, object: 'chat.completion', choices: [{ index: 0, message, logprobs: null, finish_reason }], usage }, signal, headers)
  }
  const withUsage = (body.stream_options as Body | undefined)?.include_usage === true
  const data = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`
  const chunk = (delta: Body, finish: string | null = null) =>
    data({ ...head, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...(withUsage ? { usage: null } : {}) })
  function* frames(): Generator<Frame> {
    yield { text: chunk({ role: 'assistant', content: '', refusal: null }) }
    for (const r of p.reasoning) yield { text: chunk({ reasoning_content: r }), token: true }
    for (const t of p.text) yield { text: chunk({ content: t }), token: true }
    for (const [index, c] of p.calls.entries()) {
      yield { text: chunk({ tool_calls: [{ index, ...toolCall(c, '') }] }) }
      for (const piece of c.pieces) yield { text: chunk({ tool_calls: [{ index, function: { arguments: piece } }] }), token: true }
    }
    yield { text: chunk({}, finish_reason), final: true }
    if (withUsage) yield { text: data({ ...head, object: 'chat.completion.chunk', choices: [], usage }) }
    yield { text: 'data: [DONE]\n\n' }
  }
  return streamFrames(frames(), p.sc, signal, { 'content-type': 'text/event-stream; charset=utf-8', ...headers })
}

// ---------------------------------------------------------------------------------------------
// Anthropic messages

function anthropicReply(p: Plan, body: Body, signal: AbortSignal): Promise<Response> | Response {
  const headers = { 'request-id': `req_fake${p.n}` }
  const stop_reason = { stop: 'end_turn', length: 'max_tokens', tool: 'tool_use' }[p.finish]
  const toolId = (c: PlannedCall) => `toolu_fake${p.n}${c.suffix}`
  const signature = `fakesig${p.n}`
  const message = { id: `msg_fake${p.n}`, type: 'message', role: 'assistant', model: p.model }
  if (body.stream !== true) {
    const content = [
      ...(p.reasoning.length ? [{ type: 'thinking', thinking: p.reasoning.join(''), signature }] : []),
      ...(p.text.length ? [{ type: 'text', text: p.text.join('') }] : []),
      ...p.calls.map((c) => ({ type: 'tool_use', id: toolId(c), name: c.name, input: JSON.parse(c.pieces.join('')) })),
    ]
    const usage = { input_tokens: p.prompt, output_tokens: p.completion, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }
    return whole(p, { ...message, content, stop_reason, stop_sequence: null, usage }, signal, headers)
  }
  const event = (type: string, o: Body = {}) => `event: ${type}\ndata: ${JSON.stringify({ type, ...o })}\n\n`
  function* frames(): Generator<Frame> {
    const usage = { input_tokens: p.prompt, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }
    yield { text: event('message_start', { message: { ...message, content: [], stop_reason: null, stop_sequence: null, usage } }) }
    yield { text: event('ping') }
    let index = 0
    function* block(start: Body, deltas: Body[], end: Body[] = []): Generator<Frame> {
      yield { text: event('content_block_start', { index, content_block: start }) }
      for (const delta of deltas) yield { text: event('content_block_delta', { index, delta }), token: true }
      for (const delta of end) yield { text: event('content_block_delta', { index, delta }) }
      yield { text: event('content_block_stop', { index: index++ }) }
    }
    if (p.reasoning.length) yield* block({ type: 'thinking', thinking: '' }, p.reasoning.map(thinking => ({ type: 'thinking_delta', thinking })), [{ type: 'signature_delta', signature }])
    if (p.text.length) yield* block({ type: 'text', text: '' }, p.text.map(text => ({ type: 'text_delta', text })))
    for (const c of p.calls) yield* block({ type: 'tool_use', id: toolId(c), name: c.name, input: {} }, c.pieces.map(partial_json => ({ type: 'input_json_delta', partial_json })))
    yield { text: event('message_delta', { delta: { stop_reason, stop_sequence: null }, usage: { output_tokens: p.completion } }), final: true }
    yield { text: event('message_stop') }
  }
  return streamFrames(frames(), p.sc, signal, { 'content-type': 'text/event-stream; charset=utf-8', ...headers })
}

// ---------------------------------------------------------------------------------------------
// Gemini generateContent / streamGenerateContent

function geminiReply(p: Plan, stream: boolean, sse: boolean, signal: AbortSignal): Promise<Response> | Response {
  const finishReason = p.finish === 'length' ? 'MAX_TOKENS' : 'STOP'
  const functionCalls = p.calls.map((c) => ({ functionCall: { name: c.name, args: JSON.parse(c.pieces.join('')) } }))
  const usageMetadata = (thoughts: number, candidates: number) => ({
    promptTokenCount: p.prompt, candidatesTokenCount: candidates, totalTokenCount: p.prompt + thoughts + candidates,
    ...(thoughts ? { thoughtsTokenCount: thoughts } : {}),
  })
  const response = (parts: Body[], thoughts: number, candidates: number, finish?: string) => ({
    candidates: [{ content: { role: 'model', parts }, ...(finish ? { finishReason: finish } : {}), index: 0 }],
    usageMetadata: usageMetadata(thoughts, candidates), modelVersion: p.model, responseId: `fake${p.n}`,
  })
  const answered = p.completion - p.reasoning.length
  if (!stream) {
    const parts = [
      ...(p.reasoning.length ? [{ text: p.reasoning.join(''), thought: true }] : []),
      ...(functionCalls.length ? functionCalls : [{ text: p.text.join('') }]),
    ]
    return whole(p, response(parts, p.reasoning.length, answered, finishReason), signal, {})
  }
  // alt=sse gives `data:` events; without it Gemini streams one JSON array
  let count = 0
  const frame = (o: unknown) => sse ? `data: ${JSON.stringify(o)}\n\n` : `${count++ ? ',\r\n' : '['}${JSON.stringify(o)}`
  function* frames(): Generator<Frame> {
    let thoughts = 0, candidates = 0
    for (const text of p.reasoning) yield { text: frame(response([{ text, thought: true }], ++thoughts, 0)), token: true }
    for (const text of p.text) yield { text: frame(response([{ text }], thoughts, ++candidates)), token: true }
    if (functionCalls.length) yield { text: frame(response(functionCalls, thoughts, answered, finishReason)), token: true, final: true }
    else yield { text: frame(response([{ text: '' }], thoughts, answered, finishReason)), final: true }
    if (!sse) yield { text: count ? ']' : '[]' }
  }
  return streamFrames(frames(), p.sc, signal, { 'content-type': sse ? 'text/event-stream' : 'application/json; charset=UTF-8' })
}

// ---------------------------------------------------------------------------------------------
// Model lists

const openaiModel = (id: string) => ({ id, object: 'model', created: CREATED, owned_by: 'fake' })
const anthropicModel = (id: string) => ({ type: 'model', id, display_name: id.replace(/^fake/, 'Fake'), created_at: new Date(CREATED * 1000).toISOString() })
const geminiModel = (id: string) => ({
  name: `models/${id}`, version: '001', displayName: id.replace(/^fake/, 'Fake'), description: 'A fake model',
  inputTokenLimit: 1_048_576, outputTokenLimit: 65_536, supportedGenerationMethods: ['generateContent'],
})

// ---------------------------------------------------------------------------------------------
// Server

export async function startFakeLlm(opts: { port?: number } = {}): Promise<FakeLlm> {
  const requests: RecordedRequest[] = []
  const life = new AbortController()
  let n = 0

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url)
    const path = url.pathname
    const headers: Record<string, string> = {}
    req.headers.forEach((v, k) => (headers[k.toLowerCase()] = v))
    const raw = req.method === 'GET' || req.method === 'HEAD' ? '' : await req.text()
    let body: unknown = null
    try {
      body = raw ? JSON.parse(raw) : null
    } catch {}
    const record: RecordedRequest = { method: req.method, path: path + url.search, headers, body }
    requests.push(record)
    req.signal.addEventListener('abort', () => { if (!life.signal.aborted) record.abortedAt ??= performance.now() }, { once: true })
    const signal = AbortSignal.any([req.signal, life.signal])
    const num = ++n

    const gemini = path.match(/^\/v1beta\/models(?:\/(.+?))?(?::(generateContent|streamGenerateContent))?$/)
    const protocol: Protocol = gemini || path.startsWith('/v1beta/') ? 'gemini'
      : path === '/v1/messages' || (path.startsWith('/v1/models') && headers['anthropic-version']) ? 'anthropic' : 'openai'
    const fail = (status: number, message: string) => errorResponse(protocol, status, message)

    // authentication, the way each provider does it
    if (protocol === 'openai' && !/^Bearer \S/.test(headers.authorization ?? ''))
      return fail(401, 'You didn\'t provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).')
    if (protocol === 'anthropic' && !headers['x-api-key']) return fail(401, 'x-api-key header is required')
    if (protocol === 'anthropic' && !headers['anthropic-version']) return fail(400, 'anthropic-version: header is required')
    if (protocol === 'gemini' && !headers['x-goog-api-key'] && !url.searchParams.get('key'))
      return fail(403, 'Method doesn\'t allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.')

    if (req.method === 'GET') {
      const id = protocol === 'gemini' ? gemini?.[1] && !gemini[2] ? decodeURIComponent(gemini[1]) : undefined : path.match(/^\/v1\/models\/(.+)$/)?.[1]
      const shape = protocol === 'openai' ? openaiModel : protocol === 'anthropic' ? anthropicModel : geminiModel
      if (path === '/v1/models' || path === '/v1beta/models') {
        const data = FAKE_MODELS.map(id => shape(id))
        if (protocol === 'openai') return json({ object: 'list', data })
        if (protocol === 'anthropic') return json({ data, has_more: false, first_id: FAKE_MODELS[0], last_id: FAKE_MODELS[FAKE_MODELS.length - 1] })
        return json({ models: data })
      }
      if (id !== undefined) return FAKE_MODELS.some(m => m === id) ? json(shape(id)) : fail(404, `model ${id} not found`)
      return fail(404, `no route for GET ${path}`)
    }

    const route = req.method !== 'POST' ? undefined
      : path === '/v1/chat/completions' ? 'openai' : path === '/v1/messages' ? 'anthropic' : gemini?.[1] && gemini[2] ? 'gemini' : undefined
    if (!route) return fail(404, `no route for ${req.method} ${path}`)
    if (!body || typeof body !== 'object' || Array.isArray(body)) return fail(400, 'the request body is not a JSON object')
    const b = body as Body

    let p: Plan
    try {
      if (route === 'openai') {
        if (typeof b.model !== 'string') return fail(400, 'you must provide a model parameter')
        if (!Array.isArray(b.messages)) return fail(400, 'messages: an array is required')
        if (b.stream_options != null && b.stream !== true) return fail(400, 'The \'stream_options\' parameter is only allowed when \'stream\' is enabled.')
        p = plan(b.model, (b.messages as unknown[]).map(m => textOf((m as Body)?.content)).join(''), num, openaiTools(b))
      } else if (route === 'anthropic') {
        if (typeof b.model !== 'string') return fail(400, 'model: Field required')
        if (!Array.isArray(b.messages)) return fail(400, 'messages: Field required')
        if (typeof b.max_tokens !== 'number') return fail(400, 'max_tokens: Field required')
        p = plan(b.model, textOf(b.system) + textOf(b.messages), num, anthropicTools(b))
      } else {
        if (!Array.isArray(b.contents)) return fail(400, '* GenerateContentRequest.contents: contents is not specified')
        p = plan(decodeURIComponent(gemini?.[1] ?? ''), textOf(b.systemInstruction) + textOf(b.contents), num, geminiTools(b))
      }
    } catch (e) {
      return fail(400, (e as Error).message)
    }

    await sleep(p.sc.hang, signal)
    if (signal.aborted) return new Response(null, { status: 499 })
    if (p.sc.fail) return fail(p.sc.fail, `fake failure ${p.sc.fail} requested by the model name`)
    if (route === 'openai') return openaiReply(p, b, signal)
    if (route === 'anthropic') return anthropicReply(p, b, signal)
    return geminiReply(p, gemini?.[2] === 'streamGenerateContent', url.searchParams.get('alt') === 'sse', signal)
  }

  const server = Bun.serve({ hostname: '127.0.0.1', port: opts.port ?? 0, idleTimeout: 0, fetch: handle })
  return {
    url: `http://127.0.0.1:${server.port}`,
    requests,
    async stop() {
      life.abort()
      await server.stop(true)
    },
  }
}
