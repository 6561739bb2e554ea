/**
 * @module `npm run bench:chat` (and the last table of `npm run bench`): Hearth's chat streams at scale.
 *
 * Part 1, idle subscribers: one Hearth process holding BENCH_SSE_SUBSCRIBERS (default 10,000) SSE
 * re-attach streams (GET /api/v1/conversations/{id}/stream) on one long, slow chat (one token a second),
 * against a bare Bun.serve holding as many SSE streams (bench/targets/sse-hold.ts), both measured the
 * same way in the same run: the server's RSS before and after the streams are open (bytes per
 * subscriber), and the arrival of `: ping` comments on a sample of streams over BENCH_SSE_HOLD seconds.
 *
 * Part 2, concurrent chats: BENCH_CHATS (default 500) chats started at once, 200 tokens each from the
 * fake upstream, against the same load sent to the upstream directly, in BENCH_CHAT_ROUNDS interleaved
 * rounds; every stored answer is then checked against what was streamed.
 *
 * Part 3, a turn with one tool round: BENCH_TOOL_CHATS (default 200) chats at once whose model first
 * calls the built-in `current_time` and then answers (two model turns, one tool call), against as many
 * plain chats, in BENCH_CHAT_ROUNDS interleaved rounds: Hearth's CPU per turn for each, and the difference.
 *
 * Every process is separate: the fake upstream (bench/targets/fake-llm.ts), Hearth (`bun src/index.ts`),
 * the baseline, and the clients (bench/targets/sse-client.ts, bench/targets/chat-client.ts). Prints one
 * table per part and the goal lines. Exit code: 0 whatever the goals say; 1 when the harness broke or
 * any request failed (a subscriber not connected or dropped, a chat with an error or stored wrong); 2 for
 * a bad setting. See bench/README.md.
 */
import { existsSync, readFileSync } from 'node:fs'
import { arch, cpus, loadavg, platform } from 'node:os'
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import { HEARTH_BENCH_ENV, envInteger, errorMessage, formatMs, renderTable, hardStop, runAsScript, samplePercentile, processCpuMs, runCommand, setupTokenIn, spawnServer, startHearthServer, tempDir, trackProcess, type RunningServer } from './lib.ts'
import type { ChatClientResult } from './targets/chat-client.ts'
import type { ProbeSample } from './targets/mem-probe.ts'
import type { Ready, Report } from './targets/sse-client.ts'

const root = join(import.meta.dir, '..')
const bun = process.execPath
const FAKE = join(import.meta.dir, 'targets/fake-llm.ts')
const SSE_HOLD = join(import.meta.dir, 'targets/sse-hold.ts')
const SSE_CLIENT = join(import.meta.dir, 'targets/sse-client.ts')
const CHAT_CLIENT = join(import.meta.dir, 'targets/chat-client.ts')
const MEM_PROBE = join(import.meta.dir, 'targets/mem-probe.ts')

const BENCH_USER = { username: 'bench_user', email: 'bench@example.com', password: 'bench-password-1' }

const TOKENS = 200
const CHAT_MODEL = `fake:tokens=${TOKENS}`
/** calls current_time once, then answers with TOKENS tokens */
const TOOL_MODEL = `fake:tokens=${TOKENS},calls=current_time`
/** one token a second for a day: the run the idle subscribers follow */
const IDLE_MODEL = 'fake:tokens=100000,delay=1000'
/** streams whose pings are timed, spread over all of them */
const PING_SAMPLE = 200
/** the most streams one client process opens */
const PER_CLIENT = 2_500
/** seconds the servers get to settle before the "before" RSS */
const SETTLE_MS = 2_000
const GOAL_BYTES_PER_SUBSCRIBER = 10 * 1024
const GOAL_PING_GAP_MS = 16_000
const KB = 1024
const MB = 1024 * 1024

const BASELINE = 'baseline: bare Bun.serve SSE'
const HEARTH_SSE = 'Hearth GET …/conversations/{id}/stream'
const DIRECT = 'direct (fake upstream)'
const HEARTH_CHAT = 'Hearth POST …/conversations/{id}/messages'
const PLAIN_TURN = 'Hearth turn, no tools'
const TOOL_TURN = 'Hearth turn with one tool round (current_time)'

function progress(text: string): void {
  process.stderr.write(`bench chat: ${text}\n`)
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took longer than ${Math.round(ms / 1000)} s`)), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

// ─── processes ──────────────────────────────────────────────────────────────────────────────────

/** The chunks of a byte stream, for `for await`. */
async function* chunks(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader()
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    yield value
  }
}

/** Resident set size of a process in bytes (VmRSS), or undefined when it is gone. */
function rssBytes(pid: number): number | undefined {
  try {
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
    return kb === undefined ? undefined : Number(kb) * 1024
  } catch {
    return undefined
  }
}

/** This process's open-file limits (Bun raises the soft one to the hard one at start, in every child too). */
function openFileLimits(): { soft: number; hard: number } | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))
    const [soft, hard] = line!.slice('Max open files'.length).trim().split(/\s+/)
    const parse = (v: string | undefined) => (v === 'unlimited' ? Infinity : Number(v))
    return { soft: parse(soft), hard: parse(hard) }
  } catch {
    return undefined
  }
}

/**
 * `cmd` run so that it may open `need` files: as it is when the limits allow that, else through bash
 * with `ulimit -n need` (which needs root, or CAP_SYS_RESOURCE, above the hard limit; the child then
 * fails with a message saying so). `exec` keeps the pid, so /proc/<pid> is the command's own.
 */
function withOpenFiles(cmd: string[], need: number): string[] {
  const limits = openFileLimits()
  if (!limits || limits.soft >= need) return cmd
  return ['bash', '-c', `ulimit -n ${need} 2>/dev/null || { echo "cannot raise the open-file limit to ${need} (ulimit -n is ${limits.soft}, hard limit ${limits.hard})" >&2; exit 111; }; exec "$@"`, 'bash', ...cmd]
}

/** Why `need` open files cannot be had by a child (checked once up front, so a failure reads better than a child's exit), or undefined when they can. */
function openFilesProblem(need: number, what: string): string | undefined {
  const limits = openFileLimits()
  if (!limits || limits.soft >= need) return undefined
  const probe = Bun.spawnSync(['bash', '-c', `ulimit -n ${need}`], { stdout: 'ignore', stderr: 'ignore' })
  if (probe.exitCode === 0) return undefined
  return `${what} needs ${need.toLocaleString('en-US')} open files per process, but the limit is ${limits.soft} (hard ${limits.hard}) and ulimit -n ${need} failed (raising the hard limit needs root); lower it or raise the limit`
}

/** Hearth from source on a free port with a fresh data dir; then bench_user (admin), the fake provider and its models. */
async function startHearth(upstream: string, openFiles: number, probe?: Probe): Promise<{ server: RunningServer; token: string; stop(): Promise<void> }> {
  const { server, value, stop } = await startHearthServer({
    root,
    prefix: 'hearth-bench-chat-',
    command: (base: string[]) => {
      const { cmd, env } = probed(base, probe)
      return { cmd: withOpenFiles(cmd, openFiles), env }
    },
    setUp: (url: string, dataDir: string) => setUpHearth(url, upstream, setupTokenIn(dataDir)),
  })
  return { server, token: value, stop }
}

async function api<T>(origin: string, method: string, path: string, token: string | undefined, body: unknown, status: number): Promise<T> {
  const response = await fetch(origin + path, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  })
  const text = await response.text()
  if (response.status !== status) throw new Error(`${method} ${path} answered ${response.status} (expected ${status}): ${text.slice(0, 300)}`)
  return (text ? JSON.parse(text) : undefined) as T
}

async function setUpHearth(origin: string, upstream: string, setupToken: string): Promise<string> {
  const { tokens } = await api<{ tokens: { access_token: string } }>(origin, 'POST', '/api/v1/auth/register', undefined, { ...BENCH_USER, setup_token: setupToken }, 201)
  const token = tokens.access_token
  const provider = await api<{ id: string }>(origin, 'POST', '/api/v1/providers', token, { name: 'fake', type: 'openai_compatible', base_url: `${upstream}/v1`, api_key: 'x', scope: 'global' }, 201)
  await api(origin, 'POST', '/api/v1/models', token, { provider_id: provider.id, name: 'bench', model_id: CHAT_MODEL, is_default: true }, 201)
  await api(origin, 'POST', '/api/v1/models', token, { provider_id: provider.id, name: 'bench-idle', model_id: IDLE_MODEL }, 201)
  await api(origin, 'POST', '/api/v1/models', token, { provider_id: provider.id, name: 'bench-tool', model_id: TOOL_MODEL }, 201)
  return token
}

// ─── part 1: idle subscribers ───────────────────────────────────────────────────────────────────

interface SseRow {
  name: string
  failure?: string
  subscribers: number
  rssBefore?: number
  rssAfter?: number
  rssEnd?: number
  readyMs?: number
  holdMs?: number
  cpuHoldMs?: number
  report?: Omit<Report, 'type'>
  failed: number
  notLive: number
  failureSamples: string[]
  /** BENCH_SSE_PROBE=1: the server's memory after a full GC, before the streams and after the hold */
  probes?: ProbeSample[]
}

/** BENCH_SSE_PROBE=1: the servers of part 1 preload bench/targets/mem-probe.ts, which reports on SIGUSR2. */
interface Probe {
  file: string
}

/** The command with the memory probe preloaded, and the environment telling it where to write. */
function probed(cmd: string[], probe: Probe | undefined): { cmd: string[]; env: Record<string, string> } {
  if (!probe) return { cmd, env: {} }
  return { cmd: [cmd[0]!, '--preload', MEM_PROBE, ...cmd.slice(1)], env: { MEM_PROBE_FILE: probe.file } }
}

/** Ask the probe for a sample (SIGUSR2) and wait for its line. */
async function probeSample(pid: number, probe: Probe): Promise<ProbeSample> {
  const lines = () => (existsSync(probe.file) ? readFileSync(probe.file, 'utf8').split('\n').filter(Boolean) : [])
  const before = lines().length
  process.kill(pid, 'SIGUSR2')
  const deadline = performance.now() + 30_000
  while (lines().length <= before) {
    if (performance.now() > deadline) throw new Error('the memory probe did not answer within 30 s')
    await Bun.sleep(50)
  }
  return JSON.parse(lines()[before]!) as ProbeSample
}

/** One subscriber client process: `ready` and `report` come from its stdout, `stop()` asks it (on stdin) to report and exit. */
interface Subscribers {
  proc: Subprocess<'pipe', 'pipe', 'pipe'>
  ready: Promise<Ready>
  report: Promise<Report>
  stop(): void
}

function startSubscribers(config: { url: string; headers?: Record<string, string>; count: number; sample: number; readyTimeoutMs: number; maxHoldMs: number }): Subscribers {
  const proc = Bun.spawn(withOpenFiles([bun, SSE_CLIENT, JSON.stringify(config)], config.count + 256), {
    cwd: root,
    env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: String(Math.min(65_535, config.count + 64)) },
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  trackProcess(proc)
  const ready = Promise.withResolvers<Ready>()
  const report = Promise.withResolvers<Report>()
  ready.promise.catch(() => {})
  report.promise.catch(() => {})
  let stderr = ''
  void (async () => {
    const decoder = new TextDecoder()
    for await (const chunk of chunks(proc.stderr)) stderr = (stderr + decoder.decode(chunk, { stream: true })).slice(-2_000)
  })().catch(() => {})
  void (async () => {
    const decoder = new TextDecoder()
    let pending = ''
    for await (const chunk of chunks(proc.stdout)) {
      pending += decoder.decode(chunk, { stream: true })
      let newline: number
      while ((newline = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, newline).trim()
        pending = pending.slice(newline + 1)
        if (!line.startsWith('{')) continue
        const parsed = JSON.parse(line) as Ready | Report
        if (parsed.type === 'ready') ready.resolve(parsed)
        else if (parsed.type === 'report') report.resolve(parsed)
      }
    }
  })().catch(() => {})
  void proc.exited.then(async (code) => {
    await Bun.sleep(100) // let the stdout reader see the last line
    const error = new Error(`the subscriber process exited with code ${code}${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' / ')}` : ''}`)
    ready.reject(error)
    report.reject(error)
  })
  return {
    proc,
    ready: ready.promise,
    report: report.promise,
    stop() {
      try {
        proc.stdin.write('stop\n')
        void proc.stdin.flush()
        void proc.stdin.end()
      } catch {}
    },
  }
}

/**
 * Open `count` streams on `url` from client processes of at most PER_CLIENT streams each, measure the
 * server's RSS before and once every stream has had its replay and one live event, hold them for
 * `holdSec`, and collect the clients' reports.
 */
async function measureSubscribers(row: SseRow, pid: number, url: string, headers: Record<string, string> | undefined, count: number, holdSec: number, probe: Probe | undefined): Promise<void> {
  const processes = Math.ceil(count / PER_CLIENT)
  const readyTimeoutMs = 60_000 + count * 10
  await Bun.sleep(SETTLE_MS)
  row.rssBefore = rssBytes(pid)
  if (probe) row.probes = [await probeSample(pid, probe)]
  const clients: Subscribers[] = []
  try {
    progress(`${row.name}: opening ${count.toLocaleString('en-US')} streams from ${processes} client process(es)`)
    const started = performance.now()
    for (let i = 0; i < processes; i++) {
      const share = Math.floor(count / processes) + (i < count % processes ? 1 : 0)
      const sample = Math.floor(PING_SAMPLE / processes) + (i < PING_SAMPLE % processes ? 1 : 0)
      clients.push(startSubscribers({ url, headers, count: share, sample, readyTimeoutMs, maxHoldMs: (holdSec + 120) * 1000 }))
    }
    const readies = await withTimeout(Promise.all(clients.map((c) => c.ready)), readyTimeoutMs + 30_000, 'opening the streams')
    row.readyMs = performance.now() - started
    row.rssAfter = rssBytes(pid)
    row.failed = readies.reduce((n, r) => n + r.failed, 0)
    row.notLive = readies.reduce((n, r) => n + r.not_live, 0)
    for (const r of readies) row.failureSamples.push(...r.failures)
    row.subscribers = count - row.failed
    progress(`${row.name}: ${row.subscribers.toLocaleString('en-US')} streams open and live after ${(row.readyMs / 1000).toFixed(1)} s; holding them ${holdSec} s`)

    const cpuBefore = processCpuMs(pid)
    const holdStart = performance.now()
    await Bun.sleep(holdSec * 1000)
    row.rssEnd = rssBytes(pid)
    const cpuAfter = processCpuMs(pid)
    row.holdMs = performance.now() - holdStart
    if (cpuBefore !== undefined && cpuAfter !== undefined) row.cpuHoldMs = cpuAfter - cpuBefore
    if (probe) row.probes!.push(await probeSample(pid, probe))

    for (const client of clients) client.stop()
    const reports = await withTimeout(Promise.all(clients.map((c) => c.report)), 60_000, 'the subscribers’ reports')
    const sum = (pick: (r: Report) => number) => reports.reduce((n, r) => n + pick(r), 0)
    const sampled = reports.filter((r) => r.sampled > 0)
    row.report = {
      connections: sum((r) => r.connections),
      dropped: sum((r) => r.dropped),
      drop_samples: reports.flatMap((r) => r.drop_samples).slice(0, 5),
      id_gaps: sum((r) => r.id_gaps),
      events: sum((r) => r.events),
      sampled: sum((r) => r.sampled),
      pings_min: sampled.length ? Math.min(...sampled.map((r) => r.pings_min)) : 0,
      pings_max: Math.max(0, ...reports.map((r) => r.pings_max)),
      max_gap_ms: Math.max(0, ...reports.map((r) => r.max_gap_ms)),
      hold_ms: Math.max(0, ...reports.map((r) => r.hold_ms)),
    }
  } finally {
    for (const client of clients) client.proc.kill('SIGKILL')
    await withTimeout(Promise.all(clients.map((c) => c.proc.exited)), 10_000, 'stopping the subscriber processes').catch(() => {})
  }
}

async function runBaselineSse(count: number, holdSec: number, probe: Probe | undefined): Promise<SseRow> {
  const row: SseRow = { name: BASELINE, subscribers: 0, failed: 0, notLive: 0, failureSamples: [] }
  let server: RunningServer | undefined
  try {
    const { cmd, env } = probed([bun, SSE_HOLD], probe)
    server = await spawnServer(withOpenFiles(cmd, count + 1_024), { HOST: '127.0.0.1', ...env }, (line) => (/^\d+$/.test(line) ? `http://127.0.0.1:${line}/health` : undefined), { cwd: root })
    await measureSubscribers(row, server.pid, `${server.url}/stream`, undefined, count, holdSec, probe)
  } catch (error) {
    row.failure = errorMessage(error).split('\n')[0]
    progress(`${row.name} failed: ${errorMessage(error)}`)
  } finally {
    await server?.stop()
  }
  return row
}

async function runHearthSse(upstream: string, count: number, holdSec: number, probe: Probe | undefined): Promise<SseRow> {
  const row: SseRow = { name: HEARTH_SSE, subscribers: 0, failed: 0, notLive: 0, failureSamples: [] }
  let hearth: Awaited<ReturnType<typeof startHearth>> | undefined
  const chatAbort = new AbortController()
  let conversation: string | undefined
  try {
    hearth = await startHearth(upstream, count + 1_024, probe)
    const { server, token } = hearth
    conversation = (await api<{ id: string }>(server.url, 'POST', '/api/v1/conversations', token, {}, 201)).id
    // The one long chat the subscribers follow: sent as SSE and read here until part 1 is over.
    const response = await fetch(`${server.url}/api/v1/conversations/${conversation}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ content: 'Talk slowly.', model_id: 'bench-idle' }),
      signal: chatAbort.signal,
    })
    if (response.status !== 200) throw new Error(`the long chat answered ${response.status}: ${(await response.text()).slice(0, 200)}`)
    const firstDelta = Promise.withResolvers<void>()
    void (async () => {
      const decoder = new TextDecoder()
      let text = ''
      for await (const chunk of chunks(response.body!)) {
        if (text.length < 100_000) text += decoder.decode(chunk, { stream: true })
        if (text.includes('event: delta')) firstDelta.resolve()
      }
      firstDelta.reject(new Error(`the long chat ended: ${text.slice(-300)}`))
    })().catch((error) => firstDelta.reject(error))
    await withTimeout(firstDelta.promise, 15_000, 'the first token of the long chat')
    await measureSubscribers(row, server.pid, `${server.url}/api/v1/conversations/${conversation}/stream`, { authorization: `Bearer ${token}` }, count, holdSec, probe)
  } catch (error) {
    row.failure = errorMessage(error).split('\n')[0]
    progress(`${row.name} failed: ${errorMessage(error)}`)
  } finally {
    if (hearth && conversation) await api(hearth.server.url, 'POST', `/api/v1/conversations/${conversation}/stop`, hearth.token, undefined, 200).catch(() => {})
    chatAbort.abort()
    await hearth?.stop()
  }
  return row
}

// ─── part 2: concurrent chats ───────────────────────────────────────────────────────────────────

interface ChatRow {
  name: string
  failure?: string
  runs: ChatClientResult[]
  errors: number
  errorSamples: string[]
  ttfd: number[]
  /** CPU ms of the gateway (Hearth) and of the upstream over the measured rounds */
  serverCpuMs: number
  upstreamCpuMs: number
  /** stored answers checked, and how many matched */
  verified: number
  storedComplete: number
}

function noteError(row: ChatRow, what: string, n = 1) {
  row.errors += n
  if (row.errorSamples.length < 5) row.errorSamples.push(what)
}

async function pool<T>(items: T[], concurrency: number, each: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await each(items[next++]!)
  }))
}

async function driveChats(config: Record<string, unknown>, dir: string, chats: number): Promise<ChatClientResult> {
  const resultFile = join(dir, `chats-${crypto.randomUUID()}.json`)
  const timeoutMs = 180_000
  const run = await runCommand(withOpenFiles([bun, CHAT_CLIENT, JSON.stringify({ ...config, tokens: TOKENS, resultFile, timeoutMs: 120_000 })], chats + 256), {
    cwd: root,
    timeoutMs,
    env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: String(Math.min(65_535, chats + 64)) },
  })
  if (run.timedOut) throw new Error(`the chat client did not finish within ${timeoutMs / 1000} s`)
  if (run.code !== 0 || !existsSync(resultFile)) throw new Error(`the chat client failed (exit ${run.code}): ${run.output.trim().split('\n').slice(-3).join(' / ')}`)
  return JSON.parse(readFileSync(resultFile, 'utf8')) as ChatClientResult
}

/** Every answer as stored: the last message of the conversation is the streamed answer, complete, with the streamed text. */
async function verifyStored(row: ChatRow, origin: string, token: string, result: ChatClientResult): Promise<void> {
  type Message = { id: string; role: string; status: string; content: string }
  await pool(result.outcomes, 32, async (outcome) => {
    row.verified++
    try {
      const conversation = await api<{ messages: Message[] }>(origin, 'GET', `/api/v1/conversations/${outcome.conversation}`, token, undefined, 200)
      const last = conversation.messages.at(-1)
      let problem: string | undefined
      if (!last) problem = 'no messages stored'
      else if (last.role !== 'assistant') problem = `the last message is ${last.role}, not assistant`
      else if (outcome.message && last.id !== outcome.message) problem = `the last message is ${last.id}, not the streamed ${outcome.message}`
      else if (last.status !== 'complete') problem = `stored with status ${last.status}`
      else if (last.content !== outcome.text) problem = `stored content (${last.content.length} chars) differs from the ${outcome.deltas} streamed deltas (${outcome.text.length} chars)`
      if (problem) noteError(row, `stored answer: ${problem}`)
      else if (outcome.ok) row.storedComplete++
    } catch (error) {
      noteError(row, `stored answer: ${errorMessage(error)}`)
    }
  })
}

async function runChats(upstream: { url: string; pid: number }, chats: number, rounds: number, dir: string): Promise<{ rows: ChatRow[]; readyMs?: number }> {
  const direct: ChatRow = { name: DIRECT, runs: [], errors: 0, errorSamples: [], ttfd: [], serverCpuMs: 0, upstreamCpuMs: 0, verified: 0, storedComplete: 0 }
  const hearthRow: ChatRow = { name: HEARTH_CHAT, runs: [], errors: 0, errorSamples: [], ttfd: [], serverCpuMs: 0, upstreamCpuMs: 0, verified: 0, storedComplete: 0 }
  const rows = [direct, hearthRow]
  let hearth: Awaited<ReturnType<typeof startHearth>> | undefined
  try {
    hearth = await startHearth(upstream.url, chats * 2 + 1_024)
  } catch (error) {
    hearthRow.failure = errorMessage(error).split('\n')[0]
    progress(`${HEARTH_CHAT} failed: ${errorMessage(error)}`)
  }
  try {
    const warmup = Math.min(chats, 50)
    let conversations: string[] = []
    if (hearth) {
      const { server, token } = hearth
      progress(`creating ${(warmup + rounds * chats).toLocaleString('en-US')} conversations`)
      conversations = new Array<string>(warmup + rounds * chats)
      await pool([...conversations.keys()], 16, async (i) => {
        conversations[i] = (await api<{ id: string }>(server.url, 'POST', '/api/v1/conversations', token, {}, 201)).id
      })
    }
    const run = async (row: ChatRow, n: number, ids: string[] | undefined, measured: boolean) => {
      if (row.failure) return
      try {
        const config = row === direct ? { mode: 'direct', url: `${upstream.url}/v1/chat/completions`, model: CHAT_MODEL, chats: n } : { mode: 'hearth', origin: hearth!.server.url, token: hearth!.token, conversations: ids }
        const serverBefore = row === hearthRow ? processCpuMs(hearth!.server.pid) : undefined
        const upstreamBefore = processCpuMs(upstream.pid)
        const result = await driveChats(config, dir, n)
        const serverAfter = row === hearthRow ? processCpuMs(hearth!.server.pid) : undefined
        const upstreamAfter = processCpuMs(upstream.pid)
        if (result.errors) noteError(row, result.error_samples.join('; '), result.errors)
        if (row === hearthRow) await verifyStored(row, hearth!.server.url, hearth!.token, result)
        if (!measured) return
        row.runs.push(result)
        for (const o of result.outcomes) if (o.ok) row.ttfd.push(o.ttfd_ms)
        if (serverBefore !== undefined && serverAfter !== undefined) row.serverCpuMs += serverAfter - serverBefore
        if (upstreamBefore !== undefined && upstreamAfter !== undefined) row.upstreamCpuMs += upstreamAfter - upstreamBefore
      } catch (error) {
        row.failure = errorMessage(error).split('\n')[0]
        progress(`${row.name} failed: ${errorMessage(error)}`)
      }
    }
    progress(`warm-up: ${warmup} concurrent chats per target`)
    await run(direct, warmup, undefined, false)
    await run(hearthRow, warmup, conversations.slice(0, warmup), false)
    progress(`${rounds} interleaved round(s) of ${chats} concurrent chats per target`)
    for (let round = 0; round < rounds; round++) {
      // the answers' titles are asked for after `done`; let them finish between rounds
      await Bun.sleep(1_000)
      const ids = conversations.slice(warmup + round * chats, warmup + (round + 1) * chats)
      const order = round % 2 === 0 ? [direct, hearthRow] : [hearthRow, direct]
      for (const row of order) await run(row, chats, ids, true)
    }
  } finally {
    await hearth?.stop()
  }
  return { rows, readyMs: hearth?.server.readyMs }
}

// ─── part 3: a turn with one tool round ─────────────────────────────────────────────────────────

/**
 * Plain chats and chats with one tool round, BENCH_TOOL_CHATS at once per round, on one Hearth: a
 * warm-up round each, then `rounds` interleaved rounds. The tool conversations name `current_time`
 * and use `bench-tool`, whose first turn calls it; the driver checks both kinds alike (200 deltas,
 * usage, done `stop`) and every answer is read back.
 */
async function runToolTurns(upstream: { url: string; pid: number }, chats: number, rounds: number, dir: string): Promise<ChatRow[]> {
  const row = (name: string): ChatRow => ({ name, runs: [], errors: 0, errorSamples: [], ttfd: [], serverCpuMs: 0, upstreamCpuMs: 0, verified: 0, storedComplete: 0 })
  const plain = row(PLAIN_TURN)
  const tooled = row(TOOL_TURN)
  const rows = [plain, tooled]
  let hearth: Awaited<ReturnType<typeof startHearth>> | undefined
  try {
    hearth = await startHearth(upstream.url, chats * 2 + 1_024)
    const { server, token } = hearth
    const warmup = Math.min(chats, 50)
    const total = warmup + rounds * chats
    progress(`creating ${(total * 2).toLocaleString('en-US')} conversations for the tool turns`)
    const conversations = new Map<ChatRow, string[]>([[plain, new Array<string>(total)], [tooled, new Array<string>(total)]])
    for (const [r, ids] of conversations) {
      const body = r === tooled ? { model_id: 'bench-tool', tools: ['current_time'] } : {}
      await pool([...ids.keys()], 16, async (i) => {
        ids[i] = (await api<{ id: string }>(server.url, 'POST', '/api/v1/conversations', token, body, 201)).id
      })
    }
    const run = async (r: ChatRow, ids: string[], measured: boolean) => {
      if (r.failure) return
      try {
        const serverBefore = processCpuMs(server.pid)
        const upstreamBefore = processCpuMs(upstream.pid)
        const result = await driveChats({ mode: 'hearth', origin: server.url, token, conversations: ids }, dir, ids.length)
        const serverAfter = processCpuMs(server.pid)
        const upstreamAfter = processCpuMs(upstream.pid)
        if (result.errors) noteError(r, result.error_samples.join('; '), result.errors)
        await verifyStored(r, server.url, token, result)
        if (!measured) return
        r.runs.push(result)
        for (const o of result.outcomes) if (o.ok) r.ttfd.push(o.ttfd_ms)
        if (serverBefore !== undefined && serverAfter !== undefined) r.serverCpuMs += serverAfter - serverBefore
        if (upstreamBefore !== undefined && upstreamAfter !== undefined) r.upstreamCpuMs += upstreamAfter - upstreamBefore
      } catch (error) {
        r.failure = errorMessage(error).split('\n')[0]
        progress(`${r.name} failed: ${errorMessage(error)}`)
      }
    }
    progress(`tool turns: warm-up of ${warmup} concurrent chats per target`)
    for (const r of rows) await run(r, conversations.get(r)!.slice(0, warmup), false)
    progress(`tool turns: ${rounds} interleaved round(s) of ${chats} concurrent chats per target`)
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? [plain, tooled] : [tooled, plain]
      for (const r of order) {
        await Bun.sleep(1_000) // the titles asked for after `done` finish between rounds
        await run(r, conversations.get(r)!.slice(warmup + round * chats, warmup + (round + 1) * chats), true)
      }
    }
  } catch (error) {
    for (const r of rows) r.failure ??= errorMessage(error).split('\n')[0]
    progress(`tool turns failed: ${errorMessage(error)}`)
  } finally {
    await hearth?.stop()
  }
  return rows
}

/** Hearth's CPU per measured turn of a row (undefined when it was not measured). */
function cpuPerTurn(row: ChatRow, pick: (r: ChatRow) => number = (r) => r.serverCpuMs): number | undefined {
  const chats = row.runs.reduce((n, r) => n + r.chats, 0)
  return row.failure || !chats ? undefined : pick(row) / chats
}

function toolTable(rows: ChatRow[]): string {
  const cells = rows.map((row) => {
    const s = summarizeChats(row)
    const notes: string[] = []
    if (row.failure) notes.push(`FAILED: ${row.failure}`)
    if (row.errorSamples.length) notes.push(`ERRORS: ${row.errorSamples.join('; ')}`)
    if (row.verified) notes.push(`stored complete: ${count(row.storedComplete)} of ${count(row.verified)} (warm-up included)`)
    const cpu = cpuPerTurn(row)
    const up = cpuPerTurn(row, (r) => r.upstreamCpuMs)
    return [row.name, count(row.runs.reduce((n, r) => n + r.chats, 0)), cpu === undefined ? '-' : cpu.toFixed(2), up === undefined ? '-' : up.toFixed(2), s.rate === undefined ? '-' : s.rate.toFixed(1), formatMs(s.p50), count(row.errors), notes.join('; ')]
  })
  return renderTable(['target', 'turns', 'Hearth CPU ms/turn', 'upstream CPU ms/turn', 'turns/s', 'first delta p50 ms', 'errors', 'notes'], cells, new Set([1, 2, 3, 4, 5, 6]))
}

// ─── output ─────────────────────────────────────────────────────────────────────────────────────

const mb = (bytes: number | undefined) => (bytes === undefined ? '-' : (bytes / MB).toFixed(1))
const count = (n: number) => n.toLocaleString('en-US')

function perSubscriber(row: SseRow): number | undefined {
  if (row.failure || row.rssBefore === undefined || row.rssAfter === undefined || row.subscribers <= 0) return undefined
  return (row.rssAfter - row.rssBefore) / row.subscribers
}

function sseTable(rows: SseRow[]): string {
  const base = perSubscriber(rows.find((r) => r.name === BASELINE)!)
  const cells = rows.map((row) => {
    const per = perSubscriber(row)
    const notes: string[] = []
    if (row.failure) notes.push(`FAILED: ${row.failure}`)
    if (row.failed) notes.push(`ERRORS: ${count(row.failed)} streams not open: ${row.failureSamples.join('; ')}`)
    if (row.notLive) notes.push(`WARNING ${count(row.notLive)} streams got no live event in time`)
    if (row.readyMs !== undefined) notes.push(`all open and live in ${(row.readyMs / 1000).toFixed(1)} s`)
    if (row.rssEnd !== undefined && row.rssBefore !== undefined && row.subscribers > 0)
      notes.push(`after ${Math.round((row.holdMs ?? 0) / 1000)} s held: RSS ${mb(row.rssEnd)} MB, ${((row.rssEnd - row.rssBefore) / row.subscribers / KB).toFixed(1)} KB/subscriber`)
    if (row.cpuHoldMs !== undefined && row.holdMs) notes.push(`CPU while held ${((row.cpuHoldMs / row.holdMs) * 100).toFixed(1)}% of a core`)
    if (row.report) {
      notes.push(`pings ${row.report.pings_min}–${row.report.pings_max} per sampled stream (${row.report.sampled})`)
      if (row.report.id_gaps) notes.push(`ERRORS: ${count(row.report.id_gaps)} events missing or out of order`)
      if (row.report.dropped) notes.push(`dropped: ${row.report.drop_samples.join('; ')}`)
    }
    return [
      row.name,
      count(row.subscribers),
      mb(row.rssBefore),
      mb(row.rssAfter),
      per === undefined ? '-' : (per / KB).toFixed(1),
      per === undefined || !base ? '-' : `${(per / base).toFixed(2)}x`,
      row.report ? (row.report.max_gap_ms / 1000).toFixed(1) : '-',
      row.report ? count(row.report.dropped) : '-',
      notes.join('; '),
    ]
  })
  return renderTable(['target', 'subscribers', 'RSS before MB', 'RSS after MB', 'KB/subscriber', 'vs baseline', 'max ping gap s', 'dropped', 'notes'], cells, new Set([1, 2, 3, 4, 5, 6, 7]))
}

/** BENCH_SSE_PROBE=1: what one stream keeps alive, from the probe's samples after a full GC before the streams and after the hold. */
function probeLine(row: SseRow): string | undefined {
  const [before, after] = row.probes ?? []
  if (!before || !after || row.subscribers <= 0) return undefined
  const n = row.subscribers
  const per = (a: number, b: number) => `${((a - b) / n / KB).toFixed(2)} KB`
  const added: [string, number][] = []
  const types = after.after_gc.types ?? {}
  const old = before.after_gc.types ?? {}
  for (const [type, value] of Object.entries(types)) {
    const diff = value - (old[type] ?? 0)
    if (diff / n >= 0.5) added.push([type, diff / n])
  }
  added.sort((a, b) => b[1] - a[1])
  return (
    `probe ${row.name}, per subscriber after a full GC: RSS ${per(after.after_gc.rss, before.after_gc.rss)} ` +
    `(before that GC ${per(after.before_gc.rss, before.before_gc.rss)}), JS heap ${per(after.after_gc.heap_size, before.after_gc.heap_size)} ` +
    `(capacity ${per(after.after_gc.heap_capacity, before.after_gc.heap_capacity)}, extra memory ${per(after.after_gc.extra_memory, before.after_gc.extra_memory)}), ` +
    `${((after.after_gc.object_count - before.after_gc.object_count) / n).toFixed(1)} objects: ${added.map(([type, k]) => `${type} ${k.toFixed(1)}`).join(', ')}`
  )
}

interface ChatSummary {
  rate?: number
  wallMedian?: number
  p50?: number
  p99?: number
}

function summarizeChats(row: ChatRow): ChatSummary {
  const chats = row.runs.reduce((n, r) => n + r.chats, 0)
  const wall = row.runs.reduce((n, r) => n + r.wall_ms, 0)
  const walls = row.runs.map((r) => r.wall_ms).sort((a, b) => a - b)
  return {
    rate: wall > 0 && !row.failure ? chats / (wall / 1000) : undefined,
    wallMedian: walls.length ? walls[Math.floor((walls.length - 1) / 2)] : undefined,
    p50: samplePercentile(row.ttfd, 50),
    p99: samplePercentile(row.ttfd, 99),
  }
}

function chatTable(rows: ChatRow[], readyMs: number | undefined): string {
  const directRate = summarizeChats(rows.find((r) => r.name === DIRECT)!).rate
  const cells = rows.map((row) => {
    const s = summarizeChats(row)
    const chats = row.runs.reduce((n, r) => n + r.chats, 0)
    const notes: string[] = []
    if (row.failure) notes.push(`FAILED: ${row.failure}`)
    if (row.errorSamples.length) notes.push(`ERRORS: ${row.errorSamples.join('; ')}`)
    if (row.name === HEARTH_CHAT && row.verified) notes.push(`stored complete: ${count(row.storedComplete)} of ${count(row.verified)} (warm-up included)`)
    if (chats > 0) {
      const per = (cpuMs: number) => `${(cpuMs / chats).toFixed(2)} ms`
      notes.push(row.name === DIRECT ? `upstream CPU ${per(row.upstreamCpuMs)}/chat` : `Hearth CPU ${per(row.serverCpuMs)}/chat (upstream ${per(row.upstreamCpuMs)})`)
    }
    const rates = row.runs.map((r) => r.chats / (r.wall_ms / 1000))
    const clientCpu = row.runs.reduce((n, r) => n + r.cpu_ms, 0)
    const wall = row.runs.reduce((n, r) => n + r.wall_ms, 0)
    if (wall > 0) notes.push(`client CPU ${Math.round((clientCpu / wall) * 100)}% of a core`)
    if (rates.length > 1) {
      const mean = rates.reduce((a, b) => a + b, 0) / rates.length
      notes.push(`±${Math.round(((Math.max(...rates) - Math.min(...rates)) / 2 / mean) * 100)}% across ${rates.length} rounds`)
    }
    if (row.name === HEARTH_CHAT && readyMs !== undefined) notes.push(`ready in ${Math.round(readyMs)} ms`)
    return [
      row.name,
      s.rate === undefined ? '-' : s.rate.toFixed(1),
      s.rate === undefined || !directRate ? '-' : `${(s.rate / directRate).toFixed(2)}x`,
      formatMs(s.p50),
      formatMs(s.p99),
      s.wallMedian === undefined ? '-' : (s.wallMedian / 1000).toFixed(2),
      count(row.errors),
      notes.join('; '),
    ]
  })
  return renderTable(['target', 'chats/s', 'vs direct', 'first delta p50 ms', 'first delta p99 ms', 'wall s (median round)', 'errors', 'notes'], cells, new Set([1, 2, 3, 4, 5, 6]))
}

// ─── the run ────────────────────────────────────────────────────────────────────────────────────

/** The whole chat benchmark; prints its tables and goal lines and returns the exit code. */
export async function runChatBench(): Promise<number> {
  const settings = [
    envInteger('BENCH_SSE_SUBSCRIBERS', 10_000, 1, 200_000),
    envInteger('BENCH_SSE_HOLD', 35, 1, 600),
    envInteger('BENCH_CHATS', 500, 1, 20_000),
    envInteger('BENCH_CHAT_ROUNDS', 3, 1, 50),
    envInteger('BENCH_TOOL_CHATS', 200, 1, 20_000),
  ]
  const bad = settings.find((value): value is Error => value instanceof Error)
  const parts = (process.env.BENCH_CHAT_PARTS || 'sse,chats,tools').split(',').map((p) => p.trim())
  if (bad || parts.some((p) => p !== 'sse' && p !== 'chats' && p !== 'tools')) {
    process.stderr.write(`bench chat: ${bad ? bad.message : `BENCH_CHAT_PARTS=${JSON.stringify(process.env.BENCH_CHAT_PARTS)} must be sse, chats, tools or several (comma-separated)`}\n`)
    return 2
  }
  const [subscribers, holdSec, chats, rounds, toolChats] = settings as number[]
  const doSse = parts.includes('sse')
  const doChats = parts.includes('chats')
  const doTools = parts.includes('tools')

  // A hard stop whatever hangs: two rows of part 1 (start, open, hold, reports, stop) and part 2's rounds, with room to spare.
  const sseBudget = doSse ? 2 * (30_000 + SETTLE_MS + 60_000 + subscribers! * 10 + 30_000 + holdSec! * 1000 + 60_000 + 20_000) : 0
  const chatBudget = doChats ? 60_000 + chats! * (rounds! + 1) * 100 + (rounds! * 2 + 2) * 200_000 : 0
  const toolBudget = doTools ? 60_000 + toolChats! * 2 * (rounds! + 1) * 100 + (rounds! * 2 + 2) * 200_000 : 0
  const budgetMs = 30_000 + sseBudget + chatBudget + toolBudget
  const budget = hardStop('bench chat', budgetMs)

  const work = tempDir('hearth-bench-chat-results-')
  let exitCode = 0
  let fake: RunningServer | undefined
  const sseRows: SseRow[] = []
  let chatResult: { rows: ChatRow[]; readyMs?: number } | undefined
  let toolRows: ChatRow[] | undefined
  try {
    progress('starting the fake upstream')
    fake = await spawnServer([bun, FAKE], {}, (line) => (/^http:\/\/127\.0\.0\.1:\d+$/.test(line) ? `${line}/v1beta/models?key=x` : undefined), { cwd: root })
    const sseProblem = doSse ? openFilesProblem(subscribers! + 1_024, `BENCH_SSE_SUBSCRIBERS=${subscribers}`) : undefined
    if (sseProblem) {
      progress(sseProblem)
      for (const name of [BASELINE, HEARTH_SSE]) sseRows.push({ name, failure: sseProblem, subscribers: 0, failed: 0, notLive: 0, failureSamples: [] })
    } else if (doSse) {
      const probe = (name: string): Probe | undefined => (process.env.BENCH_SSE_PROBE === '1' ? { file: join(work.path, `probe-${name}.jsonl`) } : undefined)
      sseRows.push(await runBaselineSse(subscribers!, holdSec!, probe('baseline')))
      sseRows.push(await runHearthSse(fake.url, subscribers!, holdSec!, probe('hearth')))
    }
    if (doChats) chatResult = await runChats({ url: fake.url, pid: fake.pid }, chats!, rounds!, work.path)
    if (doTools) toolRows = await runToolTurns({ url: fake.url, pid: fake.pid }, toolChats!, rounds!, work.path)
  } catch (error) {
    exitCode = 1
    progress(`failed: ${errorMessage(error)}`)
  } finally {
    await fake?.stop()
    work.remove()
    clearTimeout(budget)
  }

  const cpuList = cpus()
  const git = Bun.spawnSync(['git', 'rev-parse', '--short', 'HEAD'], { cwd: root, stderr: 'ignore' })
  const limits = openFileLimits()
  console.log('')
  console.log(
    `chat: ${cpuList.length} CPUs, ${platform()} ${arch()}, bun ${Bun.version}, load average ${loadavg()[0]!.toFixed(2)} now, commit ${git.exitCode === 0 ? git.stdout.toString().trim() : 'unknown'}; ` +
      `open-file limit ${limits ? `${limits.soft}/${limits.hard}` : 'unknown'}; every Hearth process is bun src/index.ts with a fresh SQLite data dir and HEARTH_RATE_LIMIT=${HEARTH_BENCH_ENV.HEARTH_RATE_LIMIT}`,
  )

  if (doSse) {
    console.log(
      `idle subscribers: ${count(subscribers!)} SSE streams on one server from ${Math.ceil(subscribers! / PER_CLIENT)} client process(es) (bench/targets/sse-client.ts); ` +
        `Hearth's follow one chat (${IDLE_MODEL}, one token a second) through GET /api/v1/conversations/{id}/stream, the baseline's get a tick a second from bench/targets/sse-hold.ts; ` +
        `RSS (VmRSS) ${SETTLE_MS / 1000} s after start and once every stream had its replay and one live event; KB/subscriber = (after − before) / subscribers; ` +
        `pings timed on ${PING_SAMPLE} streams for ${holdSec} s`,
    )
    console.log(sseTable(sseRows))
    const baseRow = sseRows.find((r) => r.name === BASELINE)!
    const hearthRow = sseRows.find((r) => r.name === HEARTH_SSE)!
    const per = perSubscriber(hearthRow)
    const basePer = perSubscriber(baseRow)
    const baseText = `bare Bun.serve ${basePer === undefined ? 'not measured' : `${(basePer / KB).toFixed(1)} KB`}`
    if (per === undefined) console.log(`goal: idle SSE subscriber ≤ ${GOAL_BYTES_PER_SUBSCRIBER / KB} KB: FAIL (not measured: ${hearthRow.failure ?? 'no streams'}; ${baseText})`)
    else console.log(`goal: idle SSE subscriber ≤ ${GOAL_BYTES_PER_SUBSCRIBER / KB} KB: ${per <= GOAL_BYTES_PER_SUBSCRIBER ? 'PASS' : 'FAIL'} (${(per / KB).toFixed(1)} KB, ${baseText})`)
    const report = hearthRow.report
    if (!report || hearthRow.failure) console.log(`goal: pings on time at ${subscribers} subscribers: FAIL (not measured: ${hearthRow.failure ?? 'no report'})`)
    else {
      const pass = report.max_gap_ms <= GOAL_PING_GAP_MS && report.dropped === 0 && hearthRow.failed === 0 && report.sampled > 0
      const extra = [report.dropped ? `${count(report.dropped)} dropped` : '', hearthRow.failed ? `${count(hearthRow.failed)} not connected` : ''].filter(Boolean)
      console.log(`goal: pings on time at ${subscribers} subscribers: ${pass ? 'PASS' : 'FAIL'} (max gap ${(report.max_gap_ms / 1000).toFixed(1)} s${extra.length ? `, ${extra.join(', ')}` : ''})`)
    }
    for (const row of sseRows) {
      const line = probeLine(row)
      if (line) console.log(line)
    }
    if (holdSec! < 31) console.log(`note: BENCH_SSE_HOLD=${holdSec} is shorter than two ping intervals, so a late ping may not show`)
    for (const row of sseRows) if (row.failure || row.failed || row.notLive || row.report?.dropped || row.report?.id_gaps) exitCode = 1
  }

  if (doChats && chatResult) {
    console.log('')
    console.log(
      `concurrent chats: ${count(chats!)} chats started at once, ${TOKENS} tokens each (${CHAT_MODEL}, no delay), from bench/targets/chat-client.ts (its own process); ` +
        `${rounds} interleaved round(s) per target after a warm-up of ${Math.min(chats!, 50)}; Hearth's chats are SSE sends on fresh conversations (each also asks the model for a title after done), ` +
        `the direct row streams the same completions from the upstream; first delta = from just before fetch() to the first delta`,
    )
    console.log(chatTable(chatResult.rows, chatResult.readyMs))
    const hearthRow = chatResult.rows.find((r) => r.name === HEARTH_CHAT)!
    const complete = !hearthRow.failure && hearthRow.verified > 0 && hearthRow.storedComplete === hearthRow.verified
    console.log(`goal: every chat stored complete: ${complete ? 'PASS' : 'FAIL'} (${hearthRow.failure ? `not measured: ${hearthRow.failure}` : `${count(hearthRow.storedComplete)} of ${count(hearthRow.verified)}`})`)
    for (const row of chatResult.rows) if (row.failure || row.errors) exitCode = 1
  } else if (doChats) exitCode = 1

  if (doTools && toolRows) {
    console.log('')
    console.log(
      `tool turns: ${count(toolChats!)} chats started at once per round and target, ${rounds} interleaved round(s) after a warm-up of ${Math.min(toolChats!, 50)}, on one Hearth; ` +
        `plain: ${CHAT_MODEL}; with a tool round: conversations naming tools ["current_time"] on ${TOOL_MODEL} — a turn that calls current_time, the call, then a turn of ${TOKENS} tokens; ` +
        `CPU per turn = the process's CPU over the measured rounds / chats (each first exchange also asks the model for a title, in both rows)`,
    )
    console.log(toolTable(toolRows))
    const [plainCpu, toolCpu] = toolRows.map((r) => cpuPerTurn(r))
    if (plainCpu === undefined || toolCpu === undefined) console.log('tools: the added server CPU of a tool round: not measured')
    else console.log(`tools: one tool round adds ${(toolCpu - plainCpu).toFixed(2)} ms of Hearth CPU per turn (${plainCpu.toFixed(2)} ms plain, ${toolCpu.toFixed(2)} ms with the round, ${(toolCpu / plainCpu).toFixed(2)}x)`)
    for (const row of toolRows) if (row.failure || row.errors) exitCode = 1
  } else if (doTools) exitCode = 1

  return exitCode
}

if (import.meta.main) await runAsScript('bench chat', runChatBench)
