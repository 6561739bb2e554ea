/**
 * The load driver of the gateway benchmark (bench/gateway.ts), run as its own process so its event loop
 * is not shared with the harness or any server. Run it with BUN_CONFIG_MAX_HTTP_REQUESTS raised (the
 * harness sets 1024) so Bun's fetch never queues requests behind its own limit.
 *
 *   bun bench/targets/stream-client.ts '<config JSON>'
 *
 * config: { url, headers?, body, tokens (content chunks every stream must have),
 *           mode: 'load', connections, seconds, warmupSeconds? }   C loops for D seconds
 *        | { url, headers?, body, tokens, mode: 'seq', requests, warmupRequests? }   one at a time
 *         + resultFile? (also write the result with every TTFB sample there, for percentiles over rounds)
 *
 * Every request is a streaming POST whose body is read to the end. It counts as a completion only when
 * the status is 200, every `data:` event is JSON (but the last), exactly `tokens` of them carry a
 * non-empty choices[0].delta.content, none carries an `error`, and the stream ends with `data: [DONE]`;
 * anything else is an error (a few are described in error_samples). Per completion it records the time to
 * first byte (from just before fetch() to the first body chunk, not the headers) and the total time.
 *
 * Load mode: C loops, each sending its next request as soon as the last one ended. The first
 * warmupSeconds are not measured; then completions that END within the next `seconds` are counted and
 * completions_per_s = completions / seconds (requests still running at the end finish, uncounted), which
 * is the steady-state rate without a ramp-up or a tail.
 *
 * Prints one JSON line: { completions, seconds, completions_per_s, ttfb_p50_ms, ttfb_p99_ms,
 * total_p50_ms, total_p99_ms, errors, error_samples, requests_total, cpu_ms }.
 */

type Config = {
  url: string
  headers?: Record<string, string>
  body: string
  tokens: number
  resultFile?: string
  timeoutMs?: number
} & ({ mode: 'load'; connections: number; seconds: number; warmupSeconds?: number } | { mode: 'seq'; requests: number; warmupRequests?: number })

export interface ClientResult {
  completions: number
  seconds: number
  completions_per_s: number
  ttfb_p50_ms: number | null
  ttfb_p99_ms: number | null
  total_p50_ms: number | null
  total_p99_ms: number | null
  errors: number
  error_samples: string[]
  /** every request sent, warm-up and uncounted tail included: what the servers' CPU time is spread over */
  requests_total: number
  /** CPU time of this process (user + system) during the run */
  cpu_ms: number
  /** every completion's TTFB in ms, only in resultFile */
  ttfb_ms?: number[]
}

const config = JSON.parse(process.argv[2] ?? process.env.STREAM_CLIENT_CONFIG ?? 'null') as Config | null
if (!config || typeof config.url !== 'string' || (config.mode !== 'load' && config.mode !== 'seq')) {
  process.stderr.write('usage: bun bench/targets/stream-client.ts \'{"url":…,"body":…,"tokens":64,"mode":"load","connections":32,"seconds":5}\'\n')
  process.exit(2)
}

const headers = { 'content-type': 'application/json', ...config.headers }
const timeoutMs = config.timeoutMs ?? 30_000
const MAX_SAMPLES = 5

type Outcome = { ok: true; ttfb: number; total: number; end: number } | { ok: false; error: string; end: number }

/** The `data:` events of a complete SSE body checked as described above; returns why not, or undefined when the stream is good. */
function checkStream(text: string, tokens: number): string | undefined {
  let content = 0
  let done = false
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue
    if (done) return 'data after data: [DONE]'
    let data = ''
    for (const line of block.split('\n')) {
      if (line.startsWith('data:')) data += line.slice(line[5] === ' ' ? 6 : 5)
      else if (line && !line.startsWith(':') && !/^(event|id|retry):/.test(line)) return `not an SSE line: ${JSON.stringify(line.slice(0, 80))}`
    }
    if (!data) continue
    if (data === '[DONE]') {
      done = true
      continue
    }
    let event: { error?: unknown; choices?: { delta?: { content?: unknown } }[] }
    try {
      event = JSON.parse(data)
    } catch {
      return `an event is not JSON: ${JSON.stringify(data.slice(0, 80))}`
    }
    if (event.error !== undefined) return `error event: ${JSON.stringify(event.error).slice(0, 200)}`
    const piece = event.choices?.[0]?.delta?.content
    if (typeof piece === 'string' && piece !== '') content++
  }
  if (!done) return 'the stream did not end with data: [DONE]'
  if (content !== tokens) return `${content} content chunks, not ${tokens}`
  return undefined
}

const decoder = new TextDecoder()

let requestsTotal = 0

async function once(): Promise<Outcome> {
  requestsTotal++
  const start = performance.now()
  try {
    const response = await fetch(config!.url, { method: 'POST', headers, body: config!.body, signal: AbortSignal.timeout(timeoutMs) })
    if (response.status !== 200) {
      const text = await response.text().catch(() => '')
      return { ok: false, error: `status ${response.status}: ${text.slice(0, 200)}`, end: performance.now() }
    }
    const reader = response.body!.getReader()
    let ttfb = -1
    const parts: string[] = []
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      if (ttfb < 0) ttfb = performance.now() - start
      parts.push(decoder.decode(value, { stream: true }))
    }
    const end = performance.now()
    parts.push(decoder.decode())
    const problem = checkStream(parts.join(''), config!.tokens)
    if (problem) return { ok: false, error: problem, end }
    return { ok: true, ttfb: ttfb < 0 ? end - start : ttfb, total: end - start, end }
  } catch (error) {
    return { ok: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error), end: performance.now() }
  }
}

const ttfbs: number[] = []
const totals: number[] = []
let errors = 0
const samples = new Map<string, number>()

function record(outcome: Outcome): void {
  if (outcome.ok) {
    ttfbs.push(outcome.ttfb)
    totals.push(outcome.total)
  } else {
    errors++
    samples.set(outcome.error, (samples.get(outcome.error) ?? 0) + 1)
  }
}

const cpuBefore = process.cpuUsage()
let seconds: number

if (config.mode === 'seq') {
  for (let i = 0; i < (config.warmupRequests ?? 0); i++) await once()
  const started = performance.now()
  for (let i = 0; i < config.requests; i++) record(await once())
  seconds = (performance.now() - started) / 1000
} else {
  const begin = performance.now()
  const windowStart = begin + (config.warmupSeconds ?? 0) * 1000
  const windowEnd = windowStart + config.seconds * 1000
  const loop = async () => {
    while (performance.now() < windowEnd) {
      const outcome = await once()
      if (outcome.end >= windowStart && outcome.end < windowEnd) record(outcome)
    }
  }
  await Promise.all(Array.from({ length: config.connections }, loop))
  seconds = config.seconds
}

const cpu = process.cpuUsage(cpuBefore)

function percentile(values: number[], p: number): number | null {
  if (!values.length) return null
  const sorted = Float64Array.from(values).sort()
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

const round3 = (ms: number | null) => (ms === null ? null : Math.round(ms * 1000) / 1000)
const result: ClientResult = {
  completions: ttfbs.length,
  seconds: Math.round(seconds * 1000) / 1000,
  completions_per_s: Math.round((ttfbs.length / seconds) * 10) / 10,
  ttfb_p50_ms: round3(percentile(ttfbs, 50)),
  ttfb_p99_ms: round3(percentile(ttfbs, 99)),
  total_p50_ms: round3(percentile(totals, 50)),
  total_p99_ms: round3(percentile(totals, 99)),
  errors,
  error_samples: [...samples].slice(0, MAX_SAMPLES).map(([message, count]) => `${count}× ${message}`),
  requests_total: requestsTotal,
  cpu_ms: Math.round((cpu.user + cpu.system) / 100) / 10,
}
if (config.resultFile) await Bun.write(config.resultFile, JSON.stringify({ ...result, ttfb_ms: ttfbs.map((ms) => Math.round(ms * 1000) / 1000) }))
console.log(JSON.stringify(result))
process.exit(0)
