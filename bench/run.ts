/**
 * @module `npm run bench`: Hearth from source (GET /health, and GET /api/v1/auth/me with an access token
 * and with an API key) and as the compiled binary (GET /health), against a bare Bun.serve baseline
 * measured in the same run, plus the binary's size and start time. Load comes from wrk (installed with
 * apt-get when missing; autocannon with a warning when it cannot be had). Prints one table and the
 * project's goal lines. Settings: BENCH_DURATION (seconds of measured load per row, default 5),
 * BENCH_CONNECTIONS (default 50), BENCH_LOADGEN=autocannon (skip wrk). Then the gateway benchmark
 * (bench/gateway.ts): its own table and goal lines; then the chat benchmark (bench/chat.ts): 10,000 idle
 * SSE subscribers and 500 concurrent chats, two tables and their goal lines; then the files benchmark
 * (bench/files.ts): a 200 MiB upload's memory and 100 MiB downloads, one table and its goal lines. See
 * bench/README.md.
 */
import { existsSync, readFileSync, statSync } from 'node:fs'
import { arch, cpus, loadavg, platform } from 'node:os'
import { join } from 'node:path'
import {
  HEARTH_BENCH_ENV,
  autocannonGenerator,
  combineLoads,
  findLoadGenerator,
  freePort,
  hardStop,
  installExitHandlers,
  postJson,
  printTable,
  runCommand,
  runLoad,
  setupTokenIn,
  spawnServer,
  tempDir,
  type LoadGenerator,
  type LoadOptions,
  type LoadResult,
  type Row,
} from './lib.ts'
import { runGatewayBench } from './gateway.ts'
import { runChatBench } from './chat.ts'
import { runFilesBench } from './files.ts'

installExitHandlers()

const root = join(import.meta.dir, '..')
const bun = process.execPath
const BINARY = join(root, 'dist/hearth')
const BINARY_STARTS = 5
const BUILD_TIMEOUT_MS = 300_000
const WARMUP_SEC = 1
const durationSec = envNumber('BENCH_DURATION', 5, 0.5, 600)
const connections = envNumber('BENCH_CONNECTIONS', 50, 1, 10_000)

/** Every Hearth process gets these (bench/lib.ts HEARTH_BENCH_ENV). */
const HEARTH_ENV = HEARTH_BENCH_ENV
const BENCH_USER = { username: 'bench_user', email: 'bench@example.com', password: 'bench-password-1' }

const BASELINE = 'baseline: raw Bun.serve'
const ME_JWT = 'GET /api/v1/auth/me, JWT (bun src/index.ts)'
const ME_KEY = 'GET /api/v1/auth/me, API key (bun src/index.ts)'
/** The project's goals: a row's req/s as a share of the baseline's. */
const GOALS = [{ label: '/auth/me (JWT)', row: ME_JWT, share: 0.5 }]

/** A running server to put load on. */
interface Started {
  /** origin, e.g. http://127.0.0.1:40123 */
  url: string
  stop(): Promise<void>
  /** milliseconds from spawn to ready, shown in the notes */
  readyMs?: number
  /** the server process, for its CPU time per request */
  pid?: number
  /** bench_user, registered on this server when it was started with one */
  user?: BenchUser
}

/** One load row. To add a row, push one of these onto `targets`. */
interface Target {
  name: string
  /** the server; rows with the same function share one process (see `once`) */
  server: () => Promise<Started>
  path: string
  method?: string
  body?: string
  /** request headers, asked for again before every round (an access token may have been renewed) */
  headers?: (server: Started) => Promise<Record<string, string>>
  /**
   * Every response must be a 200 with this in its body: checked with one request before the warm-up and
   * after the last round, and any error status during the load makes the row an error.
   */
  expect200?: string
}

function envNumber(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min || value > max) {
    process.stderr.write(`bench: ${name}=${JSON.stringify(raw)} must be a number from ${min} to ${max}\n`)
    process.exit(2)
  }
  return value
}

function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`)
}

/** The hard stop of main(); cleared once main() is done, so it cannot end the gateway benchmark that follows. */
let budgetTimer: ReturnType<typeof setTimeout> | undefined

/** Servers started so far, for the stop at the end. */
const startedServers: Promise<Started>[] = []

/** `start` run at most once; every caller gets the same server. */
function once(start: () => Promise<Started>): () => Promise<Started> {
  let server: Promise<Started> | undefined
  return () => {
    if (!server) startedServers.push((server = start()))
    return server
  }
}

/** Bare Bun.serve in its own process; it prints the port it got. */
async function startRawBun(): Promise<Started> {
  const server = await spawnServer([bun, join(import.meta.dir, 'targets/raw-bun.ts')], { HOST: '127.0.0.1' }, (line) =>
    /^\d+$/.test(line) ? `http://127.0.0.1:${line}/` : undefined,
  )
  return { url: server.url, readyMs: server.readyMs, pid: server.pid, stop: server.stop }
}

/** Hearth on a free loopback port with a fresh SQLite data dir, ready once GET /health answers 200. */
async function startHearth(cmd: string[], options: { withUser?: boolean } = {}): Promise<Started> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const data = tempDir()
    let server: Awaited<ReturnType<typeof spawnServer>> | undefined
    try {
      server = await spawnServer(cmd, { PORT: String(port), HOST: '127.0.0.1', HEARTH_DATA_DIR: data.path, ...HEARTH_ENV }, `http://127.0.0.1:${port}/health`, { cwd: root })
      const stop = async () => {
        await server!.stop()
        data.remove()
      }
      let user: BenchUser | undefined
      if (options.withUser) {
        try {
          user = await registerBenchUser(server.url, setupTokenIn(data.path))
        } catch (error) {
          await stop()
          throw new Error(`could not set up bench_user: ${error instanceof Error ? error.message : String(error)}`)
        }
      }
      return { url: server.url, readyMs: server.readyMs, pid: server.pid, stop, user }
    } catch (error) {
      if (!server) data.remove()
      // the free port can be taken between freePort() and the bind; then one more try with another port
      if (server || attempt >= 2 || !/EADDRINUSE|in use/i.test(String(error))) throw error
    }
  }
}

/** bench_user on one server: its API key, and an access token renewed (by logging in again) once it is half its lifetime old. */
interface BenchUser {
  apiKey: string
  accessToken(): Promise<string>
}

/**
 * POST /api/v1/auth/register (the first user becomes admin, with the setup token from the data dir),
 * then POST /api/v1/api-keys with the access token it returns.
 */
async function registerBenchUser(origin: string, setupToken: string): Promise<BenchUser> {
  const post = <T>(path: string, body: unknown, status: number, token?: string) => postJson<T>(origin, path, body, status, token)
  type Tokens = { tokens: { access_token: string; expires_in: number } }
  let tokens = (await post<Tokens>('/api/v1/auth/register', { ...BENCH_USER, setup_token: setupToken }, 201)).tokens
  let issuedAt = Date.now()
  const { key } = await post<{ key: string }>('/api/v1/api-keys', { name: 'bench' }, 201, tokens.access_token)
  if (!key?.startsWith('hk_')) throw new Error(`POST /api/v1/api-keys returned no hk_ key`)
  return {
    apiKey: key,
    async accessToken() {
      if (Date.now() - issuedAt > tokens.expires_in * 500) {
        tokens = (await post<Tokens>('/api/v1/auth/login', { username: BENCH_USER.username, password: BENCH_USER.password }, 200)).tokens
        issuedAt = Date.now()
      }
      return tokens.access_token
    },
  }
}

/** One request as the load will send it; throws unless it is a 200 whose body contains `expected`. */
async function expect200(url: string, target: Target, headers: Record<string, string> | undefined, expected: string): Promise<void> {
  const response = await fetch(url, { method: target.method ?? 'GET', headers, body: target.body, redirect: 'manual', signal: AbortSignal.timeout(10_000) })
  const text = await response.text()
  if (response.status !== 200) throw new Error(`${target.method ?? 'GET'} ${target.path} answered ${response.status}, not 200: ${text.slice(0, 200)}`)
  if (!text.includes(expected)) throw new Error(`${target.method ?? 'GET'} ${target.path} answered 200 without ${JSON.stringify(expected)} in the body: ${text.slice(0, 200)}`)
}

type BinaryState = { ok: true; built: boolean } | { ok: false; reason: string }

/** dist/hearth as it is, or built with `npm run build` when it is missing. */
async function ensureBinary(): Promise<BinaryState> {
  if (existsSync(BINARY)) return { ok: true, built: false }
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }
  if (!pkg.scripts?.build) return { ok: false, reason: 'dist/hearth is missing and package.json has no "build" script' }
  progress('dist/hearth is missing; running npm run build')
  const result = await runCommand(['npm', 'run', 'build'], { cwd: root, timeoutMs: BUILD_TIMEOUT_MS })
  const lastLines = result.output
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('>') && !line.startsWith('npm warn'))
    .slice(-3)
    .join(' / ')
  if (result.timedOut) return { ok: false, reason: `npm run build took longer than ${BUILD_TIMEOUT_MS / 1000} s` }
  if (result.code !== 0) return { ok: false, reason: `npm run build failed (exit ${result.code}): ${lastLines}` }
  if (!existsSync(BINARY)) return { ok: false, reason: `npm run build succeeded but wrote no dist/hearth: ${lastLines}` }
  return { ok: true, built: true }
}

function machineInfo(generator: LoadGenerator, rounds: number, roundSec: number): string {
  const cpuList = cpus()
  const model = cpuList[0]?.model.trim()
  const git = Bun.spawnSync(['git', 'rev-parse', '--short', 'HEAD'], { cwd: root, stderr: 'ignore' })
  const commit = git.exitCode === 0 ? git.stdout.toString().trim() : 'unknown'
  const load =
    generator.kind === 'wrk'
      ? `wrk ${generator.version} (1 thread, its own process)`
      : `autocannon ${generator.version} in the harness process`
  const measured = +(rounds * roundSec).toFixed(2)
  return (
    `machine: ${cpuList.length} CPUs${model ? ` (${model})` : ''}, ${platform()} ${arch()}, bun ${Bun.version}, load average ${loadavg()[0]!.toFixed(2)} at start; ` +
    `load: ${load}, ${connections} connections, ${measured} s per row in ${rounds} interleaved round(s) of ${+roundSec.toFixed(2)} s after ${WARMUP_SEC} s warm-up` +
    (measured !== durationSec ? ` (BENCH_DURATION=${durationSec} rounded to whole seconds for wrk)` : '') +
    `; commit ${commit}`
  )
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!
}

/** How the table's ratio of `row` to the baseline compares with a goal; `invalid` says why the row's req/s does not count. */
interface Measured {
  rps: number
  invalid?: string
}

function goalLine(goal: (typeof GOALS)[number], measured: Map<string, Measured>): string {
  const base = measured.get(BASELINE)
  const row = measured.get(goal.row)
  const title = `goal: ${goal.label} ≥ ${Math.round(goal.share * 100)}% of baseline`
  if (!base || !base.rps) return `${title}: FAIL (not measured: the baseline has no req/s)`
  if (!row) return `${title}: FAIL (not measured: its row failed)`
  if (row.invalid) return `${title}: FAIL (not valid: ${row.invalid})`
  const share = row.rps / base.rps
  const pass = share >= goal.share
  // never print "50%" next to a FAIL (or "49%" next to a PASS) because of rounding
  const pct = Math.round(share * 100)
  const shown = pass !== pct >= goal.share * 100 ? (share * 100).toFixed(1) : String(pct)
  return `${title}: ${pass ? 'PASS' : 'FAIL'} (${shown}%)`
}

async function main(): Promise<number> {
  let exitCode = 0
  const rows: Row[] = []
  const notesBelow: string[] = []
  let loadGenBusy = 0

  // Both before any load, so neither an install nor a compile competes with a measurement.
  const choice = process.env.BENCH_LOADGEN || 'wrk'
  if (choice !== 'wrk' && choice !== 'autocannon') {
    process.stderr.write(`bench: BENCH_LOADGEN=${JSON.stringify(choice)} must be wrk or autocannon\n`)
    return 2
  }
  const { generator, warning } = choice === 'autocannon' ? { generator: autocannonGenerator(), warning: 'BENCH_LOADGEN=autocannon' } : await findLoadGenerator({ log: progress })
  if (warning) progress(`WARNING: ${warning}; the load comes from autocannon instead of wrk`)
  const binary = await ensureBinary()
  if (!binary.ok) notesBelow.push(`binary rows skipped: ${binary.reason}`)

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
  const ME_BODY = `"username":"${BENCH_USER.username}"`
  const rawBun = once(startRawBun)
  const hearthSource = once(() => startHearth([bun, 'src/index.ts'], { withUser: true }))
  const targets: Target[] = [
    { name: BASELINE, server: rawBun, path: '/health' },
    { name: 'GET /health (bun src/index.ts)', server: hearthSource, path: '/health' },
    { name: ME_JWT, server: hearthSource, path: '/api/v1/auth/me', headers: async (s) => bearer(await s.user!.accessToken()), expect200: ME_BODY },
    { name: ME_KEY, server: hearthSource, path: '/api/v1/auth/me', headers: async (s) => bearer(s.user!.apiKey), expect200: ME_BODY },
  ]
  if (binary.ok) targets.push({ name: 'GET /health (dist/hearth)', server: once(() => startHearth([BINARY])), path: '/health' })

  // Rounds of about a second; wrk only takes whole seconds.
  const rounds = Math.max(1, Math.round(durationSec))
  const roundSec = generator.kind === 'wrk' ? 1 : durationSec / rounds
  const info = machineInfo(generator, rounds, roundSec)

  // A hard stop, whatever hangs (the install and build above have their own timeouts): every row's load, starts and stops, with room to spare.
  const budgetMs = targets.length * ((rounds * roundSec + WARMUP_SEC) * 1000 + 60_000) + BINARY_STARTS * 30_000 + 60_000
  budgetTimer = hardStop('bench', budgetMs)

  // Every target is started and warmed up first; the measured load then runs in interleaved rounds of
  // about a second (A B C, B C A, C A B, …), so a busy moment on the machine is shared by all rows
  // instead of landing on one of them and skewing its ratio.
  const states = targets.map((target) => ({ target, started: undefined as Started | undefined, runs: [] as LoadResult[], failure: undefined as string | undefined }))
  type State = (typeof states)[number]
  const fail = (state: State, error: unknown) => {
    exitCode = 1
    state.failure = firstLine(error)
    process.stderr.write(`bench: ${state.target.name} failed: ${error instanceof Error ? error.message : String(error)}\n`)
  }
  const urlOf = (state: State) => state.started!.url + state.target.path
  const loadOptions = async (state: State, seconds: number): Promise<LoadOptions> => ({
    generator,
    serverPid: state.started!.pid,
    connections,
    durationSec: seconds,
    warmupSec: 0,
    method: state.target.method,
    headers: await state.target.headers?.(state.started!),
    body: state.target.body,
  })
  const check200 = async (state: State, options: LoadOptions) => {
    if (state.target.expect200 !== undefined) await expect200(urlOf(state), state.target, options.headers, state.target.expect200)
  }
  try {
    for (const state of states) {
      progress(`${state.target.name}: ${WARMUP_SEC} s warm-up`)
      try {
        state.started = await state.target.server()
        const options = await loadOptions(state, WARMUP_SEC)
        await check200(state, options)
        await runLoad(urlOf(state), options)
      } catch (error) {
        fail(state, error)
      }
    }
    progress(`${rounds} interleaved round(s) of ${+roundSec.toFixed(2)} s per target`)
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < states.length; i++) {
        const state = states[(round + i) % states.length]!
        if (!state.started || state.failure) continue
        try {
          const options = await loadOptions(state, roundSec)
          state.runs.push(await runLoad(urlOf(state), options))
          if (round === rounds - 1) await check200(state, options)
        } catch (error) {
          fail(state, error)
        }
      }
    }
  } finally {
    await Promise.allSettled(startedServers.map((server) => server.then((s) => s.stop())))
  }

  const measured = new Map<string, Measured>()
  const readyNoted = new Set<Started>()
  for (const { target, started, runs, failure } of states) {
    if (failure || !runs.length) {
      rows.push({ name: target.name, note: `FAILED: ${failure ?? 'no load was measured'}` })
      continue
    }
    const load = combineLoads(runs)
    const perRound = runs.map((run) => run.rps)
    const mean = perRound.reduce((a, b) => a + b, 0) / perRound.length
    const notes: string[] = []
    let invalid: string | undefined
    if (load.non2xx) {
      const what = `${load.non2xx.toLocaleString('en-US')} of ${load.requests.toLocaleString('en-US')} responses ${generator.kind === 'wrk' ? 'had status ≥ 400' : 'were not 2xx'}`
      if (target.expect200 !== undefined) {
        // a flood of 401s or 429s must not pass for speed
        exitCode = 1
        invalid = what
        notes.push(`ERROR: ${what}, so its req/s is not valid`)
      } else notes.push(`WARNING ${what}`)
    }
    if (started?.readyMs !== undefined && !readyNoted.has(started)) {
      readyNoted.add(started)
      notes.push(`ready in ${Math.round(started.readyMs)} ms`)
    }
    if (runs.length > 1) notes.push(`req/s ±${Math.round(((Math.max(...perRound) - Math.min(...perRound)) / 2 / mean) * 100)}% across ${runs.length} rounds`)
    if (load.errors) notes.push(`WARNING ${load.errors} connection errors`)
    rows.push({ name: target.name, rps: load.rps, p50: load.p50, p99: load.p99, cpuUsPerRequest: load.cpuUsPerRequest, note: notes.join('; ') })
    measured.set(target.name, { rps: load.rps, invalid })
    loadGenBusy = Math.max(loadGenBusy, load.loadGenBusy)
  }

  if (binary.ok) {
    const stat = statSync(BINARY)
    rows.push({
      name: 'dist/hearth: size',
      note: `${(stat.size / 1024 / 1024).toFixed(1)} MB (${binary.built ? 'built by this run' : `built ${stat.mtime.toISOString().slice(0, 16).replace('T', ' ')} UTC`})`,
    })
    progress(`dist/hearth: ${BINARY_STARTS} starts to the first /health 200`)
    try {
      const times: number[] = []
      for (let i = 0; i < BINARY_STARTS; i++) {
        const server = await startHearth([BINARY])
        times.push(server.readyMs!)
        await server.stop()
      }
      rows.push({
        name: 'dist/hearth: start to /health 200',
        note: `median ${Math.round(median(times))} ms of ${BINARY_STARTS} (${Math.round(Math.min(...times))}–${Math.round(Math.max(...times))} ms), fresh data dir each`,
      })
    } catch (error) {
      exitCode = 1
      process.stderr.write(`bench: dist/hearth start failed: ${error instanceof Error ? error.message : String(error)}\n`)
      rows.push({ name: 'dist/hearth: start to /health 200', note: `FAILED: ${firstLine(error)}` })
    }
  } else {
    rows.push({ name: 'dist/hearth', note: 'skipped (see below)' })
  }

  console.log(info)
  if (warning)
    console.log(
      `WARNING: load from autocannon, not wrk (${warning}). autocannon runs on one core in the harness process and, on a 2-CPU machine, ` +
        'caps every row near the same req/s, so the ratios and goal lines say little; compare CPU µs/req instead.',
    )
  console.log(
    `hearth: every Hearth process runs with HEARTH_RATE_LIMIT=${HEARTH_ENV.HEARTH_RATE_LIMIT} (the per-user limit, 60/min by default, raised for the benchmark; ` +
      `the limiter still counts every authenticated request) and HEARTH_AUTH_RATE_LIMIT=${HEARTH_ENV.HEARTH_AUTH_RATE_LIMIT}; /auth/me rows load as ${BENCH_USER.username} (admin, registered by the run)`,
  )
  printTable(rows, { baseline: BASELINE })
  for (const goal of GOALS) console.log(goalLine(goal, measured))
  for (const line of notesBelow) console.log(line)
  if (loadGenBusy > 0) {
    const name = generator.kind === 'wrk' ? 'wrk (1 thread)' : 'autocannon'
    console.log(
      `load generator: ${name} used up to ${Math.round(loadGenBusy * 100)}% of one core` +
        (loadGenBusy > 0.85
          ? `, so req/s of the fastest rows may be capped by ${generator.kind} rather than the servers; CPU µs/req (the server CPU per request) shows what each request costs.`
          : `; near 100% req/s would be capped by ${generator.kind}, not the servers.`),
    )
  }
  return exitCode
}

try {
  const code = await main()
  clearTimeout(budgetTimer)
  // Then the gateway table (bench/gateway.ts, also `npm run bench:gateway`), the chat tables
  // (bench/chat.ts, also `npm run bench:chat`) and the files table (bench/files.ts, also
  // `npm run bench:files`), unless a setting was bad.
  const gatewayCode = code === 2 ? 0 : await runGatewayBench()
  const chatCode = code === 2 ? 0 : await runChatBench()
  const filesCode = code === 2 ? 0 : await runFilesBench()
  process.exit(code || gatewayCode || chatCode || filesCode)
} catch (error) {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exit(1)
}
