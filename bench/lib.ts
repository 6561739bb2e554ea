/**
 * @module Reusable pieces for benchmarks: free ports, child servers that are always cleaned up,
 * load runs with sub-millisecond percentiles (wrk, installed on demand, or autocannon as the fallback),
 * and one results table.
 *
 * Everything here listens on and talks to 127.0.0.1 only.
 */
import autocannon from 'autocannon'
import type { Subprocess } from 'bun'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// ─── cleanup ────────────────────────────────────────────────────────────────────────────────────

const liveProcesses = new Set<Subprocess>()
const liveTempDirs = new Set<string>()
let handlersInstalled = false

/** SIGKILL every child still running and delete every temp dir still present. Synchronous, so it is safe in an exit handler. */
export function cleanupNow(): void {
  for (const proc of liveProcesses) {
    try {
      proc.kill('SIGKILL')
    } catch {}
  }
  liveProcesses.clear()
  for (const dir of liveTempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true })
    } catch {}
  }
  liveTempDirs.clear()
}

/**
 * A child started with Bun.spawn outside this module (e.g. one the benchmark talks to over stdin and
 * stdout), SIGKILLed by cleanupNow() like the servers; it leaves the set by itself when it exits.
 */
export function trackProcess(proc: Subprocess): void {
  liveProcesses.add(proc)
  void proc.exited.then(() => liveProcesses.delete(proc))
}

/**
 * Make sure no child outlives the benchmark: cleanup on normal exit, on SIGINT/SIGTERM/SIGHUP and on an
 * uncaught error. Call once at the top of a benchmark script.
 */
export function installExitHandlers(): void {
  if (handlersInstalled) return
  handlersInstalled = true
  process.on('exit', cleanupNow)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping child processes\n`)
      cleanupNow()
      process.exit(130)
    })
  }
  process.on('uncaughtException', (error) => {
    process.stderr.write(`bench: uncaught ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    cleanupNow()
    process.exit(1)
  })
}

/** A benchmark script's entry point: exit handlers, then exit with what `run` returns, or 1 (with the stack) when it throws. */
export async function runAsScript(name: string, run: () => Promise<number>): Promise<never> {
  installExitHandlers()
  try {
    process.exit(await run())
  } catch (error) {
    process.stderr.write(`${name}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exit(1)
  }
}

/** A hard stop for a benchmark that hangs: after `ms` it says so and exits 1 (the exit handlers stop the children). Clear it to disarm. */
export function hardStop(name: string, ms: number): ReturnType<typeof setTimeout> {
  const timer = setTimeout(() => {
    process.stderr.write(`${name}: still running after ${Math.round(ms / 1000)} s; giving up\n`)
    process.exit(1)
  }, ms)
  timer.unref()
  return timer
}

/** A fresh directory under the OS temp dir, deleted by `remove()` or at exit at the latest. */
export function tempDir(prefix = 'hearth-bench-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  liveTempDirs.add(path)
  return {
    path,
    remove() {
      liveTempDirs.delete(path)
      rmSync(path, { recursive: true, force: true })
    },
  }
}

// ─── ports and servers ──────────────────────────────────────────────────────────────────────────

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it; there is a small race until the server binds). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      if (address === null || typeof address === 'string') {
        server.close()
        reject(new Error('freePort: no TCP address'))
        return
      }
      server.close(() => resolve(address.port))
    })
  })
}

export interface SpawnOptions {
  /** how long the server gets to answer 200 on the ready URL; default 20 s */
  timeoutMs?: number
  cwd?: string
  /** pass the whole parent environment through; by default only PATH, HOME, TMPDIR and LANG are, so a stray DATABASE_URL cannot change what is measured */
  inheritEnv?: boolean
  /** how long stop() waits after SIGTERM before SIGKILL; default 5 s */
  stopGraceMs?: number
}

export interface RunningServer {
  /** origin, e.g. http://127.0.0.1:40123 */
  url: string
  pid: number
  /** milliseconds from spawn to the first 200 on the ready URL */
  readyMs: number
  /** SIGTERM, then SIGKILL after the grace period; resolves once the process is gone. Safe to call twice. */
  stop(): Promise<void>
  /** the last few KB the process wrote to stdout and stderr */
  output(): string
}

/**
 * The ready URL: either known up front, or read from the child's stdout — the function sees each
 * stdout line and returns the URL once a line tells it (e.g. a script that prints the port it got).
 */
export type ReadyUrl = string | ((stdoutLine: string) => string | undefined)

const BASE_ENV_KEYS = ['PATH', 'HOME', 'TMPDIR', 'LANG']
const OUTPUT_TAIL = 8 * 1024

/**
 * Start `cmd` and resolve once GET readyUrl answers 200. Rejects (after killing the child) on a timeout
 * or when the child exits first; the error carries the tail of its output.
 */
export async function spawnServer(cmd: string[], env: Record<string, string>, readyUrl: ReadyUrl, options: SpawnOptions = {}): Promise<RunningServer> {
  const timeoutMs = options.timeoutMs ?? 20_000
  const baseEnv: Record<string, string | undefined> = options.inheritEnv
    ? { ...process.env }
    : Object.fromEntries(BASE_ENV_KEYS.filter((key) => process.env[key] !== undefined).map((key) => [key, process.env[key]]))

  let tail = ''
  const remember = (text: string) => {
    tail = (tail + text).slice(-OUTPUT_TAIL)
  }
  let url = typeof readyUrl === 'string' ? readyUrl : undefined
  const onStdoutLine = typeof readyUrl === 'function' ? (line: string) => void (url ??= readyUrl(line)) : () => {}

  const started = performance.now()
  const proc = Bun.spawn(cmd, {
    cwd: options.cwd,
    env: { ...baseEnv, ...env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  liveProcesses.add(proc)
  void pumpLines(proc.stdout, onStdoutLine, remember)
  void pumpLines(proc.stderr, () => {}, remember)

  let exitCode: number | undefined
  const exited = proc.exited.then((code) => {
    exitCode = code
    liveProcesses.delete(proc)
    return code
  })

  let stopping: Promise<void> | undefined
  const stop = () =>
    (stopping ??= (async () => {
      if (exitCode === undefined) proc.kill('SIGTERM')
      const gone = await Promise.race([exited.then(() => true), Bun.sleep(options.stopGraceMs ?? 5_000).then(() => false)])
      if (!gone) {
        proc.kill('SIGKILL')
        await exited
      }
    })())

  const name = cmd.join(' ')
  let readyMs: number | undefined
  try {
    while (readyMs === undefined) {
      if (exitCode !== undefined) throw new Error(`${name} exited with code ${exitCode} before it was ready`)
      if (performance.now() - started > timeoutMs) throw new Error(`${name} did not answer 200 on ${url ?? 'its ready URL'} within ${timeoutMs} ms`)
      if (url !== undefined && (await answers200(url))) readyMs = performance.now() - started
      else await Bun.sleep(2)
    }
  } catch (error) {
    await stop()
    const message = error instanceof Error ? error.message : String(error)
    throw new Error(tail.trim() ? `${message}\n  its output ended with:\n${indent(tail.trim())}` : message)
  }

  return { url: new URL(url!).origin, pid: proc.pid, readyMs, stop, output: () => tail }
}

async function answers200(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1_000) })
    await response.arrayBuffer()
    return response.status === 200
  } catch {
    return false
  }
}

async function pumpLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void, remember: (text: string) => void): Promise<void> {
  const decoder = new TextDecoder()
  let pending = ''
  const reader = stream.getReader()
  try {
    for (;;) {
      const { done, value: chunk } = await reader.read()
      if (done) break
      const text = decoder.decode(chunk, { stream: true })
      remember(text)
      pending += text
      let newline: number
      while ((newline = pending.indexOf('\n')) !== -1) {
        onLine(pending.slice(0, newline).trimEnd())
        pending = pending.slice(newline + 1)
      }
      if (pending.length > OUTPUT_TAIL) pending = pending.slice(-OUTPUT_TAIL)
    }
  } catch {
    // the child went away mid-read; nothing left to collect
  }
}

function indent(text: string): string {
  return text.replace(/^/gm, '    ')
}

// ─── load ───────────────────────────────────────────────────────────────────────────────────────

/** What puts the load on: wrk (a separate C process, one thread) or, as a fallback, autocannon in this process. */
export type LoadGenerator = { kind: 'wrk'; path: string; version: string } | { kind: 'autocannon'; version: string }

const WRK_SCRIPT = join(import.meta.dir, 'wrk-report.lua')

/**
 * wrk from PATH; when it is missing, `apt-get install -y wrk` (and once more after `apt-get update` if
 * that fails). Resolves to autocannon, with `warning` saying why, when wrk cannot be had.
 */
export async function findLoadGenerator(options: { log?: (message: string) => void; timeoutMs?: number } = {}): Promise<{ generator: LoadGenerator; warning?: string }> {
  const log = options.log ?? (() => {})
  const fallback = (reason: string) => ({ generator: autocannonGenerator(), warning: reason })

  const which = (name: string) => Bun.which(name, { PATH: process.env.PATH ?? '' })
  let path = which('wrk')
  if (!path) {
    const aptGet = which('apt-get')
    if (!aptGet) return fallback('wrk is not installed and there is no apt-get to install it with')
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    const timeoutMs = options.timeoutMs ?? 300_000
    const install = () => runCommand([aptGet, 'install', '-y', 'wrk'], { env, timeoutMs })
    try {
      log('wrk is missing; running apt-get install -y wrk')
      let result = await install()
      if (result.code !== 0) {
        log('apt-get install -y wrk failed; running apt-get update and trying again')
        await runCommand([aptGet, 'update'], { env, timeoutMs })
        result = await install()
      }
      path = which('wrk')
      if (!path) {
        const last = result.output.trim().split('\n').filter(Boolean).slice(-1)[0]?.trim()
        return fallback(`wrk is not installed and apt-get install -y wrk failed (exit ${result.code}${last ? `: ${last}` : ''})`)
      }
    } catch (error) {
      return fallback(`wrk is not installed and apt-get could not be run (${error instanceof Error ? error.message : String(error)})`)
    }
  }
  // `wrk -v` prints "wrk <version> [epoll] …" and the usage, and exits 1
  const probe = Bun.spawnSync([path, '-v'], { stdout: 'pipe', stderr: 'pipe' })
  const version = /^wrk\s+(\S+)/m.exec(probe.stdout.toString() + probe.stderr.toString())?.[1]
  if (!version) return fallback(`${path} -v did not print a wrk version`)
  return { generator: { kind: 'wrk', path, version } }
}

/** autocannon, from the project's devDependencies */
export function autocannonGenerator(): LoadGenerator {
  const pkg = JSON.parse(readFileSync(Bun.resolveSync('autocannon/package.json', import.meta.dir), 'utf8')) as { version: string }
  return { kind: 'autocannon', version: pkg.version }
}

export interface LoadOptions {
  /** default: autocannon */
  generator?: LoadGenerator
  /** default 50 */
  connections?: number
  /** seconds of measured load; default 5. wrk takes whole seconds only: rounded, at least 1. */
  durationSec?: number
  /** seconds of load before the measured run, whose results are thrown away; default 1, 0 for none */
  warmupSec?: number
  method?: string
  headers?: Record<string, string>
  body?: string
  /** the server's pid, to measure its CPU time during the run (Linux only) */
  serverPid?: number
}

/** A latency distribution: values in milliseconds, ascending, each standing for `weight` responses. */
export interface Latencies {
  ms: Float64Array
  weight: Float64Array
}

export interface LoadResult {
  /** completed responses per second over the measured run (all status codes) */
  rps: number
  /** median latency, milliseconds (wrk: of all responses, to the microsecond; autocannon: of 2xx responses) */
  p50: number
  /** 99th percentile latency, milliseconds */
  p99: number
  requests: number
  /** responses with an error status: wrk counts status ≥ 400 (not 3xx), autocannon anything but 2xx */
  non2xx: number
  /** connection errors, including timeouts */
  errors: number
  durationSec: number
  /** what combineLoads merges. wrk: its percentiles at 0.5 % steps (finer above p98), each weighted by its share of responses */
  latencies: Latencies
  /** CPU the server process used during the run (user + system, all threads); undefined without serverPid or /proc */
  serverCpuMs: number | undefined
  /** CPU the load generator used during the run (the wrk process, or this process for autocannon) */
  loadGenCpuMs: number
  /** server CPU microseconds per completed request: its cost, whether or not the load generator is the bottleneck */
  cpuUsPerRequest: number | undefined
  /** loadGenCpuMs over wall time: near 1 (one core) means req/s is capped by the load generator, not the server */
  loadGenBusy: number
}

/** Put load on `url` with options.generator (autocannon when not given) and measure it. */
export async function runLoad(url: string, options: LoadOptions = {}): Promise<LoadResult> {
  const generator = options.generator
  const warmupSec = options.warmupSec ?? 1
  if (generator?.kind === 'wrk') {
    if (warmupSec > 0) await runWrk(generator.path, url, options, warmupSec)
    return runWrk(generator.path, url, options, options.durationSec ?? 5)
  }
  if (warmupSec > 0) await runAutocannon(url, options, warmupSec)
  return runAutocannon(url, options, options.durationSec ?? 5)
}

/** One wrk run: one thread (the server needs the other core), `connections` keep-alive connections. */
async function runWrk(wrk: string, url: string, options: LoadOptions, durationSec: number): Promise<LoadResult> {
  const seconds = Math.max(1, Math.round(durationSec))
  const connections = options.connections ?? 50
  const cmd = [wrk, '-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', '-s', WRK_SCRIPT]
  for (const [name, value] of Object.entries(options.headers ?? {})) cmd.push('-H', `${name}: ${value}`)
  cmd.push(url)

  const serverCpuBefore = options.serverPid === undefined ? undefined : processCpuMs(options.serverPid)
  const proc = Bun.spawn(cmd, {
    env: { PATH: process.env.PATH, BENCH_METHOD: options.method ?? 'GET', BENCH_BODY: options.body ?? '' },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  liveProcesses.add(proc)
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  liveProcesses.delete(proc)
  const serverCpuAfter = options.serverPid === undefined ? undefined : processCpuMs(options.serverPid)
  const usage = proc.resourceUsage()

  const summary = /^bench-summary((?: \d+){7})$/m.exec(stdout)?.[1]?.trim().split(' ').map(Number)
  if (code !== 0 || !summary) {
    const output = (stdout + stderr).trim().split('\n').filter((line) => !line.startsWith('bench-latency')).slice(-4).join(' / ')
    throw new Error(`wrk exited with code ${code} on ${url}${output ? `: ${output}` : ''}`)
  }
  const [durationUs, requests, connect, read, write, status, timeout] = summary as [number, number, number, number, number, number, number]

  // bench-latency lines: percentile in basis points → µs; each point weighs the share of responses since the previous one
  const ms: number[] = []
  const weight: number[] = []
  let previous = 0
  for (const match of stdout.matchAll(/^bench-latency (\d+) (\d+)$/gm)) {
    const bp = Number(match[1])
    ms.push(Number(match[2]) / 1000)
    weight.push(((bp - previous) / 10_000) * requests)
    previous = bp
  }
  return summarize({
    requests,
    non2xx: status,
    errors: connect + read + write + timeout,
    durationSec: durationUs / 1e6,
    latencies: sortLatencies(Float64Array.from(ms), Float64Array.from(weight)),
    serverCpuMs: serverCpuBefore !== undefined && serverCpuAfter !== undefined ? serverCpuAfter - serverCpuBefore : undefined,
    loadGenCpuMs: usage ? Number(usage.cpuTime.total) / 1000 : 0,
  })
}

/**
 * One autocannon run in this process. Percentiles come from each response's own timing (autocannon's
 * histogram only has whole milliseconds, too coarse on loopback).
 */
async function runAutocannon(url: string, options: LoadOptions, durationSec: number): Promise<LoadResult> {
  const latencies = new LatencyRecorder()
  const serverCpuBefore = options.serverPid === undefined ? undefined : processCpuMs(options.serverPid)
  const ownCpuBefore = process.cpuUsage()
  const instance = autocannon({
    url,
    connections: options.connections ?? 50,
    method: options.method ?? 'GET',
    headers: options.headers,
    body: options.body,
    timeout: 10,
    duration: durationSec,
  })
  instance.on('response', (_client, statusCode, _bytes, responseTime) => {
    if (statusCode >= 200 && statusCode < 300) latencies.add(responseTime)
  })
  const result = await instance
  const ownCpu = process.cpuUsage(ownCpuBefore)
  const serverCpuAfter = options.serverPid === undefined ? undefined : processCpuMs(options.serverPid)
  const sorted = latencies.sorted()
  return summarize({
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    durationSec: result.duration,
    latencies: { ms: sorted, weight: new Float64Array(sorted.length).fill(1) },
    serverCpuMs: serverCpuBefore !== undefined && serverCpuAfter !== undefined ? serverCpuAfter - serverCpuBefore : undefined,
    loadGenCpuMs: (ownCpu.user + ownCpu.system) / 1000,
  })
}

type Totals = Pick<LoadResult, 'requests' | 'non2xx' | 'errors' | 'durationSec' | 'latencies' | 'serverCpuMs' | 'loadGenCpuMs'>

function summarize(totals: Totals): LoadResult {
  const { requests, durationSec, serverCpuMs, loadGenCpuMs, latencies } = totals
  return {
    ...totals,
    rps: durationSec > 0 ? requests / durationSec : 0,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    cpuUsPerRequest: serverCpuMs !== undefined && requests > 0 ? (serverCpuMs * 1000) / requests : undefined,
    loadGenBusy: durationSec > 0 ? loadGenCpuMs / 1000 / durationSec : 0,
  }
}

let clockTicks: number | undefined

/** user + system CPU milliseconds of a process and all its threads, from /proc; undefined where there is none (macOS) or the process is gone */
export function processCpuMs(pid: number): number | undefined {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // fields after "pid (comm) ": state is the 1st, utime the 12th, stime the 13th
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(fields[11]) + Number(fields[12])
  if (!Number.isFinite(ticks)) return undefined
  if (clockTicks === undefined) {
    const getconf = Bun.spawnSync(['getconf', 'CLK_TCK'], { stderr: 'ignore' })
    clockTicks = Number(getconf.stdout.toString().trim()) || 100
  }
  return (ticks * 1000) / clockTicks
}

/**
 * Several runs against the same target as one: req/s over the summed time, percentiles over all the
 * latencies. For interleaved rounds (A B C A B C …), which keep a slow minute from landing on one row only.
 */
export function combineLoads(runs: LoadResult[]): LoadResult {
  const total = runs.reduce((sum, run) => sum + run.latencies.ms.length, 0)
  const ms = new Float64Array(total)
  const weight = new Float64Array(total)
  let offset = 0
  for (const run of runs) {
    ms.set(run.latencies.ms, offset)
    weight.set(run.latencies.weight, offset)
    offset += run.latencies.ms.length
  }
  const sum = (pick: (run: LoadResult) => number) => runs.reduce((total, run) => total + pick(run), 0)
  return summarize({
    requests: sum((run) => run.requests),
    non2xx: sum((run) => run.non2xx),
    errors: sum((run) => run.errors),
    durationSec: sum((run) => run.durationSec),
    latencies: sortLatencies(ms, weight),
    serverCpuMs: runs.every((run) => run.serverCpuMs !== undefined) ? sum((run) => run.serverCpuMs!) : undefined,
    loadGenCpuMs: sum((run) => run.loadGenCpuMs),
  })
}

function sortLatencies(ms: Float64Array, weight: Float64Array): Latencies {
  const order = Array.from(ms.keys()).sort((a, b) => ms[a]! - ms[b]!)
  return { ms: Float64Array.from(order, (i) => ms[i]!), weight: Float64Array.from(order, (i) => weight[i]!) }
}

/** weighted nearest-rank percentile: the smallest value with at least p % of the weight at or below it; NaN when there is none */
export function percentile(latencies: Latencies, p: number): number {
  const { ms, weight } = latencies
  const total = weight.reduce((a, b) => a + b, 0)
  if (ms.length === 0 || total <= 0) return Number.NaN
  const target = (p / 100) * total * (1 - 1e-9)
  let cumulative = 0
  for (let i = 0; i < ms.length; i++) {
    cumulative += weight[i]!
    if (cumulative >= target) return ms[i]!
  }
  return ms[ms.length - 1]!
}

class LatencyRecorder {
  private values = new Float64Array(1 << 16)
  private count = 0

  add(ms: number): void {
    if (this.count === this.values.length) {
      const grown = new Float64Array(this.values.length * 2)
      grown.set(this.values)
      this.values = grown
    }
    this.values[this.count++] = ms
  }

  /** a sorted copy of what was recorded */
  sorted(): Float64Array {
    return this.values.slice(0, this.count).sort()
  }
}

// ─── output ─────────────────────────────────────────────────────────────────────────────────────

export interface Row {
  name: string
  rps?: number
  /** milliseconds */
  p50?: number
  /** milliseconds */
  p99?: number
  /** server CPU microseconds per request */
  cpuUsPerRequest?: number
  /** free text: sizes, start times, warnings, why a row was skipped */
  note?: string
}

/**
 * Render rows as one aligned table and print it. "vs baseline" is each row's req/s divided by the
 * baseline row's req/s (the row named `baseline`, else the first row with req/s) from the same run;
 * "CPU µs/req" is the server's CPU time per request ("-" where unknown).
 * Returns the text as printed.
 */
export function printTable(rows: Row[], options: { baseline?: string; print?: (text: string) => void } = {}): string {
  const baselineRow = options.baseline !== undefined ? rows.find((row) => row.name === options.baseline) : rows.find((row) => row.rps !== undefined)
  const baseRps = baselineRow?.rps
  const header = ['target', 'req/s', 'p50 ms', 'p99 ms', 'vs baseline', 'CPU µs/req', 'notes']
  const cells = rows.map((row) => [
    row.name,
    row.rps === undefined ? '-' : Math.round(row.rps).toLocaleString('en-US'),
    formatMs(row.p50),
    formatMs(row.p99),
    row.rps === undefined || !baseRps ? '-' : `${(row.rps / baseRps).toFixed(2)}x`,
    row.cpuUsPerRequest === undefined ? '-' : row.cpuUsPerRequest.toFixed(1),
    row.note ?? '',
  ])
  const text = renderTable(header, cells, new Set([1, 2, 3, 4, 5]))
  ;(options.print ?? console.log)(text)
  return text
}

/** Milliseconds for a table cell: two decimals under 10, one above, `-` when not measured. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined || Number.isNaN(ms)) return '-'
  return ms < 10 ? ms.toFixed(2) : ms.toFixed(1)
}

// ─── commands ───────────────────────────────────────────────────────────────────────────────────

/**
 * Run a command to completion (e.g. a build), killed after `timeoutMs`, and cleaned up at exit like the
 * servers. `output` is the tail of stdout and stderr together.
 */
export async function runCommand(cmd: string[], options: { cwd?: string; timeoutMs?: number; env?: Record<string, string | undefined> } = {}): Promise<{ code: number; timedOut: boolean; output: string }> {
  let tail = ''
  const remember = (text: string) => {
    tail = (tail + text).slice(-OUTPUT_TAIL)
  }
  const proc = Bun.spawn(cmd, { cwd: options.cwd, env: options.env ?? { ...process.env }, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
  liveProcesses.add(proc)
  const pumped = Promise.all([pumpLines(proc.stdout, () => {}, remember), pumpLines(proc.stderr, () => {}, remember)])
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    proc.kill('SIGKILL')
  }, options.timeoutMs ?? 300_000)
  const code = await proc.exited
  clearTimeout(timer)
  liveProcesses.delete(proc)
  // a grandchild may still hold the pipes open; do not wait on it for long
  await Promise.race([pumped, Bun.sleep(1_000)])
  return { code, timedOut, output: tail }
}

/** The setup token a fresh Hearth wrote to its data dir: the first account (the admin) registers with it. */
export const setupTokenIn = (dataDir: string) => readFileSync(join(dataDir, 'setup-token'), 'utf8').trim()

/**
 * What every benchmarked Hearth runs with: quiet logs, and the per-user limits raised so the load
 * never meets a 429 — the request rate (the limiter still counts every authenticated request;
 * 9999999/min is the most the setting accepts), and the caps on one user's open streams and running
 * answers (the load is one user's: 32 concurrent /v1 streams, 10,000 chat subscribers).
 */
export const HEARTH_BENCH_ENV = { HEARTH_LOG: 'warn', HEARTH_RATE_LIMIT: '9999999/min', HEARTH_AUTH_RATE_LIMIT: '1000/min', HEARTH_MAX_STREAMS_PER_USER: '100000', HEARTH_MAX_RUNS_PER_USER: '100000' }

/**
 * Hearth from source on a free port with a fresh data dir (one more try if the port was taken
 * meanwhile), then `setUp(url, dataDir)` against it; `stop()` ends it and removes the data dir.
 */
export async function startHearthServer<T>(opts: {
  root: string
  prefix: string
  setUp: (url: string, dataDir: string) => Promise<T>
  /** wraps the command and adds env (memory probes, open-file limits) */
  command?: (cmd: string[]) => { cmd: string[]; env?: Record<string, string> }
}): Promise<{ server: RunningServer; value: T; stop(): Promise<void> }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const data = tempDir(opts.prefix)
    let server: RunningServer
    try {
      const { cmd, env } = opts.command?.([process.execPath, 'src/index.ts']) ?? { cmd: [process.execPath, 'src/index.ts'] }
      server = await spawnServer(cmd, { PORT: String(port), HOST: '127.0.0.1', HEARTH_DATA_DIR: data.path, ...HEARTH_BENCH_ENV, ...env }, `http://127.0.0.1:${port}/health`, { cwd: opts.root })
    } catch (error) {
      data.remove()
      if (attempt < 2 && /EADDRINUSE|in use/i.test(String(error))) continue
      throw error
    }
    const running = server
    const stop = async () => {
      await running.stop()
      data.remove()
    }
    try {
      return { server: running, value: await opts.setUp(running.url, data.path), stop }
    } catch (error) {
      await stop()
      throw new Error(`could not set up Hearth: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
}

/** POST a JSON body to a Hearth under test and return the parsed answer; any status but `status` is an error. */
export async function postJson<T>(origin: string, path: string, body: unknown, status: number, token?: string): Promise<T> {
  const response = await fetch(origin + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  })
  const text = await response.text()
  if (response.status !== status) throw new Error(`POST ${path} answered ${response.status} (expected ${status}): ${text.slice(0, 300)}`)
  return JSON.parse(text) as T
}

/** Nearest-rank percentile of raw samples; undefined when there are none. */
export function samplePercentile(values: number[], p: number): number | undefined {
  if (!values.length) return undefined
  const sorted = Float64Array.from(values).sort()
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

/** A plain-text table: columns padded to their widest cell, `numeric` columns right-aligned. */
export function renderTable(header: string[], cells: string[][], numeric: Set<number>): string {
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((line) => line[column]!.length)))
  const render = (line: string[]) =>
    line
      .map((cell, column) => (numeric.has(column) ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!)))
      .join(' │ ')
      .trimEnd()
  return [render(header), widths.map((width) => '─'.repeat(width)).join('─┼─'), ...cells.map(render)].join('\n')
}

/** A whole-number setting from the environment (BENCH_*), `fallback` when unset; an Error naming it when out of range. */
export function envInteger(name: string, fallback: number, min: number, max: number): number | Error {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < min || value > max) return new Error(`${name}=${JSON.stringify(raw)} must be a whole number from ${min} to ${max}`)
  return value
}

export const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error))
