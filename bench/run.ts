/**
 * @module `npm run bench`: GET /health through Hearth (from source and as the compiled binary) against a
 * bare Bun.serve baseline measured in the same run, plus the binary's size and start time. Prints one
 * table. Settings: BENCH_DURATION (seconds of measured load per row, default 5), BENCH_CONNECTIONS
 * (default 50). See bench/README.md.
 */
import { existsSync, readFileSync, statSync } from 'node:fs'
import { arch, cpus, loadavg, platform } from 'node:os'
import { join } from 'node:path'
import { combineLoads, freePort, installExitHandlers, printTable, runCommand, runLoad, spawnServer, tempDir, type LoadOptions, type LoadResult, type Row } from './lib.ts'

installExitHandlers()

const root = join(import.meta.dir, '..')
const bun = process.execPath
const BINARY = join(root, 'dist/hearth')
const BINARY_STARTS = 5
const BUILD_TIMEOUT_MS = 300_000
const WARMUP_SEC = 1
const durationSec = envNumber('BENCH_DURATION', 5, 0.5, 600)
const connections = envNumber('BENCH_CONNECTIONS', 50, 1, 10_000)

/** A running server to put load on. */
interface Started {
  /** origin, e.g. http://127.0.0.1:40123 */
  url: string
  stop(): Promise<void>
  /** milliseconds from spawn to ready, shown in the notes */
  readyMs?: number
  /** the server process, for its CPU time per request */
  pid?: number
}

/** One load row. To add a row, push one of these onto `targets`. */
interface Target {
  name: string
  start(): Promise<Started>
  path: string
  method?: string
  headers?: Record<string, string>
  body?: string
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

/** Bare Bun.serve in its own process; it prints the port it got. */
async function startRawBun(): Promise<Started> {
  const server = await spawnServer([bun, join(import.meta.dir, 'targets/raw-bun.ts')], { HOST: '127.0.0.1' }, (line) =>
    /^\d+$/.test(line) ? `http://127.0.0.1:${line}/` : undefined,
  )
  return { url: server.url, readyMs: server.readyMs, pid: server.pid, stop: server.stop }
}

/** Hearth on a free loopback port with a fresh SQLite data dir, ready once GET /health answers 200. */
async function startHearth(cmd: string[]): Promise<Started> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const data = tempDir()
    try {
      const server = await spawnServer(
        cmd,
        { PORT: String(port), HOST: '127.0.0.1', HEARTH_DATA_DIR: data.path, HEARTH_LOG: 'warn' },
        `http://127.0.0.1:${port}/health`,
        { cwd: root },
      )
      return {
        url: server.url,
        readyMs: server.readyMs,
        pid: server.pid,
        stop: async () => {
          await server.stop()
          data.remove()
        },
      }
    } catch (error) {
      data.remove()
      // the free port can be taken between freePort() and the bind; then one more try with another port
      if (attempt >= 2 || !/EADDRINUSE|in use/i.test(String(error))) throw error
    }
  }
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

function machineInfo(): string {
  const cpuList = cpus()
  const model = cpuList[0]?.model.trim()
  const git = Bun.spawnSync(['git', 'rev-parse', '--short', 'HEAD'], { cwd: root, stderr: 'ignore' })
  const commit = git.exitCode === 0 ? git.stdout.toString().trim() : 'unknown'
  const pkg = JSON.parse(readFileSync(Bun.resolveSync('autocannon/package.json', import.meta.dir), 'utf8')) as { version: string }
  return (
    `machine: ${cpuList.length} CPUs${model ? ` (${model})` : ''}, ${platform()} ${arch()}, bun ${Bun.version}, load average ${loadavg()[0]!.toFixed(2)} at start; ` +
    `load: autocannon ${pkg.version} in the harness process, ${connections} connections, ${durationSec} s per row in interleaved rounds after ${WARMUP_SEC} s warm-up; commit ${commit}`
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

async function main(): Promise<number> {
  let exitCode = 0
  const rows: Row[] = []
  const skipped: string[] = []
  const info = machineInfo()
  let loadGenBusy = 0

  // Built before any load so the compile does not compete with a measurement.
  const binary = await ensureBinary()
  if (!binary.ok) skipped.push(`binary rows skipped: ${binary.reason}`)

  const BASELINE = 'baseline: raw Bun.serve'
  const targets: Target[] = [
    { name: BASELINE, start: startRawBun, path: '/health' },
    { name: 'GET /health (bun src/index.ts)', start: () => startHearth([bun, 'src/index.ts']), path: '/health' },
  ]
  if (binary.ok) targets.push({ name: 'GET /health (dist/hearth)', start: () => startHearth([BINARY]), path: '/health' })

  // A hard stop, whatever hangs (the build above has its own timeout): every row's load, starts and stops, with room to spare.
  const budgetMs = targets.length * ((durationSec + WARMUP_SEC) * 1000 + 60_000) + BINARY_STARTS * 30_000 + 60_000
  setTimeout(() => {
    process.stderr.write(`bench: still running after ${Math.round(budgetMs / 1000)} s; giving up\n`)
    process.exit(1)
  }, budgetMs).unref()

  // Every target is started and warmed up first; the measured load then runs in interleaved rounds of
  // about a second (A B C, B C A, C A B, …), so a busy moment on the machine is shared by all rows
  // instead of landing on one of them and skewing its ratio.
  const states = targets.map((target) => ({ target, started: undefined as Started | undefined, runs: [] as LoadResult[], failure: undefined as string | undefined }))
  const fail = (state: (typeof states)[number], error: unknown) => {
    exitCode = 1
    state.failure = firstLine(error)
    process.stderr.write(`bench: ${state.target.name} failed: ${error instanceof Error ? error.message : String(error)}\n`)
  }
  const loadOptions = (target: Target, started: Started, seconds: number): LoadOptions => ({
    serverPid: started.pid,
    connections,
    durationSec: seconds,
    warmupSec: 0,
    method: target.method,
    headers: target.headers,
    body: target.body,
  })
  try {
    for (const state of states) {
      progress(`${state.target.name}: starting, then ${WARMUP_SEC} s warm-up`)
      try {
        state.started = await state.target.start()
        await runLoad(state.started.url + state.target.path, loadOptions(state.target, state.started, WARMUP_SEC))
      } catch (error) {
        fail(state, error)
      }
    }
    const rounds = Math.max(1, Math.round(durationSec))
    progress(`${rounds} interleaved round(s) of ${+(durationSec / rounds).toFixed(2)} s per target`)
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < states.length; i++) {
        const state = states[(round + i) % states.length]!
        if (!state.started || state.failure) continue
        try {
          state.runs.push(await runLoad(state.started.url + state.target.path, loadOptions(state.target, state.started, durationSec / rounds)))
        } catch (error) {
          fail(state, error)
        }
      }
    }
  } finally {
    await Promise.all(states.map((state) => state.started?.stop()))
  }

  for (const { target, started, runs, failure } of states) {
    if (failure || !runs.length) {
      rows.push({ name: target.name, note: `FAILED: ${failure ?? 'no load was measured'}` })
      continue
    }
    const load = combineLoads(runs)
    const perRound = runs.map((run) => run.rps)
    const mean = perRound.reduce((a, b) => a + b, 0) / perRound.length
    const notes = started?.readyMs === undefined ? [] : [`ready in ${Math.round(started.readyMs)} ms`]
    if (runs.length > 1) notes.push(`req/s ±${Math.round(((Math.max(...perRound) - Math.min(...perRound)) / 2 / mean) * 100)}% across ${runs.length} rounds`)
    if (load.non2xx) notes.push(`WARNING ${load.non2xx} non-2xx responses`)
    if (load.errors) notes.push(`WARNING ${load.errors} connection errors`)
    rows.push({ name: target.name, rps: load.rps, p50: load.p50, p99: load.p99, cpuUsPerRequest: load.cpuUsPerRequest, note: notes.join('; ') })
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
  printTable(rows, { baseline: BASELINE })
  for (const line of skipped) console.log(line)
  if (loadGenBusy > 0)
    console.log(
      `load generator: up to ${Math.round(loadGenBusy * 100)}% of one core busy` +
        (loadGenBusy > 0.85
          ? ', so req/s is capped by autocannon rather than the servers; CPU µs/req (the server CPU per request) shows what each request costs.'
          : '; near 100% req/s would be capped by autocannon, not the servers.'),
    )
  return exitCode
}

try {
  process.exit(await main())
} catch (error) {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exit(1)
}
