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
 * Exit code: 0 whatever the goal says; 1 when a task failed or the harness broke; 2 for a bad setting.
 */
import { join } from 'node:path'
import postgres from 'postgres'
import { envInteger, errorMessage, formatMs, renderTable, runAsScript, samplePercentile, setupTokenIn, spawnServer, startHearthServer, type RunningServer } from './lib.ts'

const root = join(import.meta.dir, '..')
const FAKE = join(import.meta.dir, 'targets/fake-llm.ts')
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

async function setUp(origin: string, upstream: string, setupToken: string): Promise<string[]> {
  const tokens: string[] = []
  for (let i = 0; i < USERS; i++) {
    const body = { username: `bench_tasks_${i}`, email: `bench_tasks_${i}@example.com`, password: 'bench-password-1', ...(i === 0 ? { setup_token: setupToken } : {}) }
    const r = await api<{ tokens: { access_token: string } }>(origin, 'POST', '/api/v1/auth/register', undefined, body, 201)
    tokens.push(r.tokens.access_token)
  }
  const provider = await api<{ id: string }>(origin, 'POST', '/api/v1/providers', tokens[0], { name: 'fake', type: 'openai_compatible', base_url: `${upstream}/v1`, api_key: 'x', scope: 'global' }, 201)
  await api(origin, 'POST', '/api/v1/models', tokens[0], { provider_id: provider.id, name: 'bench', model_id: MODEL, is_default: true }, 201)
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

export async function runTasksBench(): Promise<number> {
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
