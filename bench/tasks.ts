/**
 * @module `npm run bench:tasks`: the task engine on SQLite and on Postgres (BENCH_DATABASE_URL or
 * TEST_DATABASE_URL; skipped without one). Against a real Hearth process and the fake upstream
 * (8 tokens per answer), each run prints:
 *
 * - latency with idle workers: BENCH_TASK_LATENCY (default 200) agent tasks created one at a time,
 *   each waited for; create-to-`task_started` p50/p99 — measured by the client, from sending
 *   `POST /tasks` to reading `task_started` on the task's event stream, opened beforehand by the
 *   create itself (`use_stream: true`); goal p50 ≤ 20 ms;
 * - throughput: BENCH_TASKS (default 1,000) agent tasks created at once (by 10 users, per-user cap
 *   raised to 100 and HEARTH_TASK_CONCURRENCY 32), waited for until all are completed: tasks/s
 *   from the first create to the last `finished_at`.
 *
 * BENCH_TASK_PARTS (default `engine,subscribers`) picks the parts: `engine` is the two above on each
 * database; `subscribers` (SQLite only) is memory per idle subscriber: BENCH_TASK_SUBSCRIBERS (default
 * 500) SSE streams opened on one running task's `/events` (a slow answer: one token a second), then as
 * many on a chat re-attach (`GET /conversations/{id}/stream`) of an equally slow answer, each on a fresh
 * server with bench/targets/mem-probe.ts preloaded; the server's RSS and JS heap after a full GC are
 * taken before and once every stream has its first bytes, and the difference divided by the streams.
 *
 * Exit code: 0 whatever the goal says; 1 when a task failed or the harness broke; 2 for a bad setting.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import type { ProbeSample } from './targets/mem-probe.ts'
import { envInteger, errorMessage, formatMs, renderTable, runAsScript, samplePercentile, setupTokenIn, spawnServer, startHearthServer, type RunningServer } from './lib.ts'

const root = join(import.meta.dir, '..')
const FAKE = join(import.meta.dir, 'targets/fake-llm.ts')
const MEM_PROBE = join(import.meta.dir, 'targets/mem-probe.ts')
const SLOW_MODEL = 'fake:tokens=100000,delay=1000'
const MODEL = 'fake:tokens=8'
const USERS = 10
const GOAL_P50_MS = 20

const progress = (text: string) => process.stderr.write(`bench tasks: ${text}\n`)

async function api<T>(origin: string, method: string, path: string, token: string | undefined, body: unknown, status: number): Promise<T> {
  const response = await fetch(origin + path, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  })
  const text = await response.text()
  if (response.status !== status) throw new Error(`${method} ${path} answered ${response.status} (expected ${status}): ${text.slice(0, 300)}`)
  return (text ? JSON.parse(text) : undefined) as T
}

async function setUp(origin: string, upstream: string, setupToken: string, more: Record<string, string> = {}): Promise<string[]> {
  const tokens: string[] = []
  for (let i = 0; i < USERS; i++) {
    const body = { username: `bench_tasks_${i}`, email: `bench_tasks_${i}@example.com`, password: 'bench-password-1', ...(i === 0 ? { setup_token: setupToken } : {}) }
    const r = await api<{ tokens: { access_token: string } }>(origin, 'POST', '/api/v1/auth/register', undefined, body, 201)
    tokens.push(r.tokens.access_token)
  }
  const provider = await api<{ id: string }>(origin, 'POST', '/api/v1/providers', tokens[0], { name: 'fake', type: 'openai_compatible', base_url: `${upstream}/v1`, api_key: 'x', scope: 'global' }, 201)
  await api(origin, 'POST', '/api/v1/models', tokens[0], { provider_id: provider.id, name: 'bench', model_id: MODEL, is_default: true }, 201)
  for (const [name, id] of Object.entries(more)) await api(origin, 'POST', '/api/v1/models', tokens[0], { provider_id: provider.id, name, model_id: id }, 201)
  return tokens
}

/** Milliseconds from sending the create to reading `task_started` on the stream it opens. */
async function createToStarted(origin: string, token: string): Promise<number> {
  const started = performance.now()
  const res = await fetch(`${origin}/api/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ prompt: 'bench', use_stream: true }) })
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let text = ''
  let at: number | undefined
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    text += decoder.decode(value, { stream: true })
    if (at === undefined && text.includes('event: task_started')) at = performance.now() - started
    if (text.includes('event: task_completed')) break
    if (text.includes('event: error')) throw new Error(`a task failed: ${text.slice(-300)}`)
  }
  await reader.cancel().catch(() => {})
  if (at === undefined) throw new Error('no task_started')
  return at
}

interface RunResult {
  dialect: string
  p50?: number
  p99?: number
  tasksPerSecond?: number
  failure?: string
}

async function runOn(dialect: 'sqlite' | 'postgres', upstream: string, latencyCount: number, total: number, url?: string): Promise<RunResult> {
  let dbName: string | undefined
  let admin: postgres.Sql | undefined
  let env: Record<string, string> = { HEARTH_TASK_CONCURRENCY: '32', HEARTH_TASK_USER_CONCURRENCY: '100' }
  if (dialect === 'postgres') {
    admin = postgres(url!, { max: 1, onnotice: () => {} })
    dbName = `hearth_bench_tasks_${Date.now()}`
    await admin.unsafe(`CREATE DATABASE ${dbName}`)
    const u = new URL(url!)
    u.pathname = `/${dbName}`
    env = { ...env, DATABASE_URL: u.toString() }
  }
  const hearth = await startHearthServer({ root, prefix: 'hearth-bench-tasks-', command: (cmd) => ({ cmd, env }), setUp: (origin, dataDir) => setUp(origin, upstream, setupTokenIn(dataDir)) })
  try {
    const origin = hearth.server.url
    const tokens = hearth.value
    progress(`[${dialect}] latency: ${latencyCount} tasks one at a time`)
    for (let i = 0; i < 10; i++) await createToStarted(origin, tokens[0]!) // warm-up
    const latencies: number[] = []
    for (let i = 0; i < latencyCount; i++) latencies.push(await createToStarted(origin, tokens[i % USERS]!))
    progress(`[${dialect}] throughput: ${total} tasks at once`)
    const first = Date.now()
    const created: string[] = []
    await Promise.all(Array.from({ length: total }, async (_, i) => created.push((await api<{ id: string }>(origin, 'POST', '/api/v1/tasks', tokens[i % USERS], { prompt: `task ${i}` }, 202)).id)))
    let last = 0
    for (;;) {
      let done = 0
      let failed = 0
      last = 0
      for (const token of tokens) {
        for (let offset = 0; ; offset += 100) {
          const page = await api<{ items: { status: string; finished_at: string | null }[]; has_more: boolean }>(origin, 'GET', `/api/v1/tasks?limit=100&offset=${offset}`, token, undefined, 200)
          for (const t of page.items) {
            if (t.status === 'completed') done++
            if (t.status === 'failed') failed++
            if (t.finished_at) last = Math.max(last, Date.parse(t.finished_at))
          }
          if (!page.has_more) break
        }
      }
      if (failed) throw new Error(`${failed} tasks failed`)
      if (done >= total + latencyCount + 10) break
      await Bun.sleep(200)
    }
    return { dialect, p50: samplePercentile(latencies, 50), p99: samplePercentile(latencies, 99), tasksPerSecond: (total * 1000) / Math.max(1, last - first) }
  } catch (error) {
    return { dialect, failure: errorMessage(error) }
  } finally {
    await hearth.stop()
    if (admin && dbName) {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {})
      await admin.end()
    }
  }
}

// ─── part 2: idle subscribers, a task's events beside a chat re-attach ────────────────────────────

interface SubscriberRow {
  name: string
  subscribers: number
  rssBefore?: number
  rssAfter?: number
  heapBefore?: number
  heapAfter?: number
  failure?: string
}

/** Ask the preloaded probe for a sample (SIGUSR2: a full GC, then one JSON line in `file`). */
async function probeSample(pid: number, file: string): Promise<ProbeSample> {
  const lines = () => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [])
  const before = lines().length
  process.kill(pid, 'SIGUSR2')
  const deadline = performance.now() + 30_000
  while (lines().length <= before) {
    if (performance.now() > deadline) throw new Error('the memory probe did not answer within 30 s')
    await Bun.sleep(50)
  }
  return JSON.parse(lines()[before]!) as ProbeSample
}

/**
 * `count` raw HTTP/1.1 SSE requests on `path` (plain sockets: no client connection pool to raise), each
 * resolved once its first body bytes arrived; `close()` ends them all.
 */
async function openStreams(origin: string, path: string, token: string, count: number): Promise<{ close(): void }> {
  const { hostname, port } = new URL(origin)
  const request = `GET ${path} HTTP/1.1\r\nhost: ${hostname}:${port}\r\nauthorization: Bearer ${token}\r\naccept: text/event-stream\r\n\r\n`
  const sockets: { end(): void }[] = []
  const opened = Array.from({ length: count }, () => {
    const ready = Promise.withResolvers<void>()
    let head = ''
    void Bun.connect({
      hostname,
      port: Number(port),
      socket: {
        open(socket) {
          sockets.push(socket)
          socket.write(request)
        },
        data(_socket, data) {
          if (head.length > 4096) return
          head += data.toString()
          if (!head.startsWith('HTTP/1.1 200')) {
            if (head.includes('\r\n\r\n')) ready.reject(new Error(`a stream answered ${head.split('\r\n')[0]}`))
            return
          }
          if (/\r\n\r\n[\s\S]*(data|event|:)/.test(head)) ready.resolve()
        },
        close: () => ready.reject(new Error('a stream closed')),
        error: (_s, error) => ready.reject(error),
      },
    }).catch((error) => ready.reject(error))
    return ready.promise
  })
  const close = () => sockets.forEach((s) => s.end())
  try {
    await Promise.race([Promise.all(opened), Bun.sleep(60_000).then(() => Promise.reject(new Error('the streams did not open within 60 s')))])
  } catch (error) {
    close()
    throw error
  }
  return { close }
}

async function measureIdle(upstream: string, which: 'task' | 'chat', count: number): Promise<SubscriberRow> {
  const row: SubscriberRow = { name: which === 'task' ? 'GET /tasks/{id}/events (running task)' : 'GET /conversations/{id}/stream (chat re-attach)', subscribers: count }
  const probeFile = join(tmpdir(), `hearth-bench-tasks-probe-${process.pid}-${Date.now()}.jsonl`)
  const hearth = await startHearthServer({
    root,
    prefix: 'hearth-bench-tasks-subs-',
    command: (cmd) => ({ cmd: [cmd[0]!, '--preload', MEM_PROBE, ...cmd.slice(1)], env: { MEM_PROBE_FILE: probeFile } }),
    setUp: async (origin, dataDir) => (await setUp(origin, upstream, setupTokenIn(dataDir), { 'bench-slow': SLOW_MODEL }))[0]!,
  })
  const stopAnswer = new AbortController()
  let streams: { close(): void } | undefined
  try {
    const origin = hearth.server.url
    const token = hearth.value
    let path: string
    if (which === 'task') {
      const task = await api<{ id: string }>(origin, 'POST', '/api/v1/tasks', token, { prompt: 'Talk slowly.', model_id: 'bench-slow' }, 202)
      path = `/api/v1/tasks/${task.id}/events`
    } else {
      const conversation = (await api<{ id: string }>(origin, 'POST', '/api/v1/conversations', token, {}, 201)).id
      const response = await fetch(`${origin}/api/v1/conversations/${conversation}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ content: 'Talk slowly.', model_id: 'bench-slow' }),
        signal: stopAnswer.signal,
      })
      if (response.status !== 200) throw new Error(`the slow chat answered ${response.status}`)
      void response.body!.pipeTo(new WritableStream()).catch(() => {})
      path = `/api/v1/conversations/${conversation}/stream`
    }
    // one subscriber first, so that what the first one creates (the live channel) is not counted
    const first = await openStreams(origin, path, token, 1)
    await Bun.sleep(2_000)
    const before = await probeSample(hearth.server.pid, probeFile)
    progress(`[subscribers] ${row.name}: opening ${count}`)
    streams = await openStreams(origin, path, token, count)
    await Bun.sleep(2_000)
    const after = await probeSample(hearth.server.pid, probeFile)
    row.rssBefore = before.after_gc.rss
    row.rssAfter = after.after_gc.rss
    row.heapBefore = before.after_gc.heap_size
    row.heapAfter = after.after_gc.heap_size
    streams.close()
    first.close()
    if (which === 'task') {
      const tasks = await api<{ items: { id: string }[] }>(origin, 'GET', '/api/v1/tasks?status=running', token, undefined, 200)
      for (const t of tasks.items) await api(origin, 'POST', `/api/v1/tasks/${t.id}/cancel`, token, undefined, 200).catch(() => {})
    }
    return row
  } catch (error) {
    return { ...row, failure: errorMessage(error) }
  } finally {
    streams?.close()
    stopAnswer.abort()
    await hearth.stop()
    rmSync(probeFile, { force: true })
  }
}

const KB = 1024
const perSubscriber = (after: number | undefined, before: number | undefined, n: number) => (after === undefined || before === undefined ? '' : `${((after - before) / n / KB).toFixed(1)} KB`)

export async function runTasksBench(): Promise<number> {
  const parts = (process.env.BENCH_TASK_PARTS || 'engine,subscribers').split(',').map((p) => p.trim())
  if (!parts.length || parts.some((p) => p !== 'engine' && p !== 'subscribers')) return progress(`BENCH_TASK_PARTS=${JSON.stringify(process.env.BENCH_TASK_PARTS)} must be engine, subscribers or both (comma-separated)`), 2
  const subscribers = envInteger('BENCH_TASK_SUBSCRIBERS', 500, 1, 20_000)
  if (subscribers instanceof Error) return progress(subscribers.message), 2
  let failed = false
  if (parts.includes('engine')) failed = (await runEngineBench()) !== 0 || failed
  if (parts.includes('subscribers')) {
    let fake: RunningServer | undefined
    const rows: SubscriberRow[] = []
    try {
      fake = await spawnServer([process.execPath, FAKE], {}, (line) => (/^http:\/\/127\.0\.0\.1:\d+$/.test(line) ? `${line}/v1beta/models?key=x` : undefined), { cwd: root })
      rows.push(await measureIdle(fake.url, 'task', subscribers))
      rows.push(await measureIdle(fake.url, 'chat', subscribers))
    } finally {
      await fake?.stop()
    }
    const mb = (b: number | undefined) => (b === undefined ? '' : (b / KB / KB).toFixed(1))
    const cells = rows.map((r) => [r.name, r.failure ? `failed: ${r.failure}` : String(r.subscribers), mb(r.rssBefore), mb(r.rssAfter), perSubscriber(r.rssAfter, r.rssBefore, r.subscribers), perSubscriber(r.heapAfter, r.heapBefore, r.subscribers)])
    console.log(renderTable(['idle subscribers (SQLite, after a full GC)', 'streams', 'RSS before MB', 'RSS after MB', 'RSS/subscriber', 'JS heap/subscriber'], cells, new Set([1, 2, 3, 4, 5])))
    failed = rows.some((r) => r.failure) || failed
  }
  return failed ? 1 : 0
}

async function runEngineBench(): Promise<number> {
  const latencyCount = envInteger('BENCH_TASK_LATENCY', 200, 1, 100_000)
  const total = envInteger('BENCH_TASKS', 1000, 1, 1_000_000)
  for (const v of [latencyCount, total]) if (v instanceof Error) return progress(v.message), 2
  const url = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL
  let fake: RunningServer | undefined
  const results: RunResult[] = []
  try {
    fake = await spawnServer([process.execPath, FAKE], {}, (line) => (/^http:\/\/127\.0\.0\.1:\d+$/.test(line) ? `${line}/v1beta/models?key=x` : undefined), { cwd: root })
    results.push(await runOn('sqlite', fake.url, latencyCount as number, total as number))
    if (url) results.push(await runOn('postgres', fake.url, latencyCount as number, total as number, url))
    else progress('no BENCH_DATABASE_URL or TEST_DATABASE_URL: Postgres skipped')
  } finally {
    await fake?.stop()
  }
  const cells = results.map((r) => [r.dialect, r.failure ? `failed: ${r.failure}` : formatMs(r.p50), formatMs(r.p99), r.tasksPerSecond === undefined ? '' : r.tasksPerSecond.toFixed(0)])
  console.log(renderTable(['database', 'create → task_started p50', 'p99', `tasks/s (${total} at once)`], cells, new Set([1, 2, 3])))
  for (const r of results) if (r.p50 !== undefined) console.log(`goal [${r.dialect}]: create → task_started p50 ≤ ${GOAL_P50_MS} ms: ${r.p50 <= GOAL_P50_MS ? 'met' : 'missed'} (${formatMs(r.p50)})`)
  return results.some((r) => r.failure) ? 1 : 0
}

if (import.meta.main) await runAsScript('bench tasks', runTasksBench)
