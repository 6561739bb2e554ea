/**
 * The load driver of the concurrent-chat part of bench/chat.ts, run as its own process. Starts every
 * chat at once (in one synchronous loop), reads each stream to its end, and writes the outcome as JSON to
 * `resultFile`. Run it with BUN_CONFIG_MAX_HTTP_REQUESTS above the number of chats (the harness does),
 * or Bun's fetch sends only 256 at a time.
 *
 *   bun bench/targets/chat-client.ts '<config JSON>'
 *
 * config: { mode: 'hearth', origin, token, conversations: [id…], tokens, resultFile, timeoutMs? }
 *           POST {origin}/api/v1/conversations/{id}/messages {content} with Accept: text/event-stream;
 *           a chat is good when it answers 200, its events are message.created, exactly `tokens` deltas,
 *           usage and done with finish_reason "stop", with ids 1, 2, 3 … and no error event.
 *       | { mode: 'direct', url, model, chats, tokens, resultFile, timeoutMs? }
 *           POST {url} (OpenAI chat completions, stream: true); good when it answers 200, exactly `tokens`
 *           chunks carry delta.content, none carries an error, and it ends with data: [DONE].
 *
 * Per chat: the time to the first delta (from just before fetch() to the chunk that holds it), the end
 * time, the deltas and their text. Result: ChatClientResult.
 */

type Config = { tokens: number; resultFile: string; timeoutMs?: number } & (
  | { mode: 'hearth'; origin: string; token: string; conversations: string[] }
  | { mode: 'direct'; url: string; model: string; chats: number }
)

export interface ChatOutcome {
  /** the conversation (hearth mode) */
  conversation?: string
  /** the assistant message, from done (hearth mode) */
  message?: string
  ok: boolean
  error?: string
  deltas: number
  /** the deltas' text, concatenated */
  text: string
  /** ms from the start of the chat to its first delta; -1 when none came */
  ttfd_ms: number
  /** ms from the moment every chat was started to this one's end */
  end_ms: number
}

export interface ChatClientResult {
  chats: number
  ok: number
  errors: number
  error_samples: string[]
  /** from just before the first fetch() to the end of the last chat */
  wall_ms: number
  outcomes: ChatOutcome[]
  /** CPU of this process (user + system) during the run */
  cpu_ms: number
}

const config = JSON.parse(process.argv[2] ?? 'null') as Config | null
if (!config || (config.mode !== 'hearth' && config.mode !== 'direct') || typeof config.resultFile !== 'string') {
  process.stderr.write('usage: bun bench/targets/chat-client.ts \'{"mode":"direct","url":…,"model":"fake:tokens=200","chats":500,"tokens":200,"resultFile":…}\'\n')
  process.exit(2)
}
const timeoutMs = config.timeoutMs ?? 120_000
const MAX_SAMPLES = 5

/** Reads an SSE body block by block (a block ends with a blank line), calling onBlock with its lines. */
async function readBlocks(body: ReadableStream<Uint8Array>, onBlock: (lines: string[]) => void): Promise<void> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let pending = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    pending += decoder.decode(value, { stream: true })
    let end: number
    while ((end = pending.indexOf('\n\n')) !== -1) {
      const block = pending.slice(0, end)
      pending = pending.slice(end + 2)
      if (block) onBlock(block.split('\n'))
    }
  }
  pending += decoder.decode()
  if (pending.trim()) onBlock(pending.split('\n'))
}

let t0 = 0

async function hearthChat(conversation: string): Promise<ChatOutcome> {
  const c = config as Extract<Config, { mode: 'hearth' }>
  const start = performance.now()
  const outcome: ChatOutcome = { conversation, ok: false, deltas: 0, text: '', ttfd_ms: -1, end_ms: 0 }
  const fail = (error: string) => {
    outcome.error = error
    outcome.end_ms = performance.now() - t0
    return outcome
  }
  try {
    const response = await fetch(`${c.origin}/api/v1/conversations/${conversation}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${c.token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ content: 'Hello! Please answer at length.' }),
      signal: AbortSignal.timeout(timeoutMs),
    })
    if (response.status !== 200) return fail(`status ${response.status}: ${(await response.text().catch(() => '')).slice(0, 200)}`)
    const texts: string[] = []
    let lastId = 0
    let problem: string | undefined
    let done: { message_id?: string; finish_reason?: string } | undefined
    let sawUsage = false
    await readBlocks(response.body!, (lines) => {
      let id: number | undefined
      let event = 'message'
      let data = ''
      for (const line of lines) {
        if (line.startsWith('id: ')) id = Number(line.slice(4))
        else if (line.startsWith('event: ')) event = line.slice(7)
        else if (line.startsWith('data: ')) data += line.slice(6)
      }
      if (id === undefined) return // a comment (: connected, : ping)
      if (id !== lastId + 1) problem ??= `event id ${id} after ${lastId}`
      lastId = id
      if (done) problem ??= `${event} after done`
      if (id === 1 && event !== 'message.created') problem ??= `the first event is ${event}, not message.created`
      if (event === 'delta') {
        if (outcome.ttfd_ms < 0) outcome.ttfd_ms = performance.now() - start
        texts.push((JSON.parse(data) as { text: string }).text)
      } else if (event === 'usage') sawUsage = true
      else if (event === 'done') done = JSON.parse(data) as typeof done
      else if (event === 'error' || event === 'shutdown') problem ??= `${event} event: ${data.slice(0, 200)}`
    })
    outcome.deltas = texts.length
    outcome.text = texts.join('')
    outcome.message = done?.message_id
    if (problem) return fail(problem)
    if (!done) return fail('the stream ended without done')
    if (done.finish_reason !== 'stop') return fail(`done with finish_reason ${done.finish_reason}`)
    if (texts.length !== c.tokens) return fail(`${texts.length} deltas, not ${c.tokens}`)
    if (!sawUsage) return fail('no usage event')
    outcome.ok = true
    outcome.end_ms = performance.now() - t0
    return outcome
  } catch (error) {
    return fail(error instanceof Error ? `${error.name}: ${error.message}` : String(error))
  }
}

async function directChat(): Promise<ChatOutcome> {
  const c = config as Extract<Config, { mode: 'direct' }>
  const start = performance.now()
  const outcome: ChatOutcome = { ok: false, deltas: 0, text: '', ttfd_ms: -1, end_ms: 0 }
  const fail = (error: string) => {
    outcome.error = error
    outcome.end_ms = performance.now() - t0
    return outcome
  }
  try {
    const response = await fetch(c.url, {
      method: 'POST',
      headers: { authorization: 'Bearer x', 'content-type': 'application/json' },
      body: JSON.stringify({ model: c.model, messages: [{ role: 'user', content: 'Hello! Please answer at length.' }], stream: true }),
      signal: AbortSignal.timeout(timeoutMs),
    })
    if (response.status !== 200) return fail(`status ${response.status}: ${(await response.text().catch(() => '')).slice(0, 200)}`)
    const texts: string[] = []
    let finished = false
    let problem: string | undefined
    await readBlocks(response.body!, (lines) => {
      let data = ''
      for (const line of lines) if (line.startsWith('data: ')) data += line.slice(6)
      if (!data) return
      if (finished) problem ??= 'data after [DONE]'
      if (data === '[DONE]') {
        finished = true
        return
      }
      const chunk = JSON.parse(data) as { error?: unknown; choices?: { delta?: { content?: string } }[] }
      if (chunk.error !== undefined) problem ??= `error: ${JSON.stringify(chunk.error).slice(0, 200)}`
      const piece = chunk.choices?.[0]?.delta?.content
      if (typeof piece === 'string' && piece !== '') {
        if (outcome.ttfd_ms < 0) outcome.ttfd_ms = performance.now() - start
        texts.push(piece)
      }
    })
    outcome.deltas = texts.length
    outcome.text = texts.join('')
    if (problem) return fail(problem)
    if (!finished) return fail('the stream did not end with data: [DONE]')
    if (texts.length !== c.tokens) return fail(`${texts.length} content chunks, not ${c.tokens}`)
    outcome.ok = true
    outcome.end_ms = performance.now() - t0
    return outcome
  } catch (error) {
    return fail(error instanceof Error ? `${error.name}: ${error.message}` : String(error))
  }
}

const cpuBefore = process.cpuUsage()
t0 = performance.now()
const pending: Promise<ChatOutcome>[] = []
if (config.mode === 'hearth') for (const id of config.conversations) pending.push(hearthChat(id))
else for (let i = 0; i < config.chats; i++) pending.push(directChat())
const outcomes = await Promise.all(pending)
const wallMs = performance.now() - t0
const cpu = process.cpuUsage(cpuBefore)

const samples = new Map<string, number>()
for (const o of outcomes) if (!o.ok) samples.set(o.error!, (samples.get(o.error!) ?? 0) + 1)
const ok = outcomes.filter((o) => o.ok).length
const result: ChatClientResult = {
  chats: outcomes.length,
  ok,
  errors: outcomes.length - ok,
  error_samples: [...samples].slice(0, MAX_SAMPLES).map(([what, n]) => `${n}× ${what}`),
  wall_ms: Math.round(wallMs * 1000) / 1000,
  outcomes,
  cpu_ms: Math.round((cpu.user + cpu.system) / 100) / 10,
}
await Bun.write(config.resultFile, JSON.stringify(result))
console.log(JSON.stringify({ chats: result.chats, ok, errors: result.errors, wall_ms: result.wall_ms, error_samples: result.error_samples }))
process.exit(0)
