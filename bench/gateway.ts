/**
 * @module `npm run bench:gateway` (and the second table of `npm run bench`): streamed chat completions
 * through Hearth's OpenAI-compatible gateway, through a bare Bun relay (bench/targets/bare-relay.ts, the
 * floor for any gateway on Bun) and through Portkey's gateway (@portkey-ai/gateway), against the same
 * fake OpenAI upstream called directly, all measured in one run.
 *
 * Every process is separate: the fake upstream (bench/targets/fake-llm.ts, test/fakes/llm.ts streaming
 * 64 tokens with no delay), the bare relay, Hearth (`bun src/index.ts`), Portkey (its
 * build/start-server.js under Bun) and the load driver (bench/targets/stream-client.ts, one process per
 * run). Throughput is measured with BENCH_GATEWAY_CONNECTIONS concurrent streams in two CPU layouts —
 * every process on every CPU, then each gateway pinned to a CPU of its own (taskset) — and time to first
 * byte at concurrency 1 (no queueing), all in interleaved rounds (direct, bare, Hearth, Portkey; then
 * bare, Hearth, Portkey, direct; …) so a noisy moment hits every target alike. Prints one table and the
 * goal lines. See bench/README.md.
 *
 * Settings: BENCH_DURATION (seconds of measured load per target and layout, default 5),
 * BENCH_GATEWAY_CONNECTIONS (default 32), BENCH_TTFB_REQUESTS (sequential requests per target for the
 * c=1 columns, default 300).
 */
import { existsSync, readFileSync } from 'node:fs'
import { arch, cpus, loadavg, platform } from 'node:os'
import { join } from 'node:path'
import { freePort, formatMs, renderTable, hardStop, runAsScript, samplePercentile, postJson, processCpuMs, runCommand, setupTokenIn, spawnServer, startHearthServer, tempDir, type RunningServer } from './lib.ts'
import type { ClientResult } from './targets/stream-client.ts'

const root = join(import.meta.dir, '..')
const bun = process.execPath
const CLIENT = join(import.meta.dir, 'targets/stream-client.ts')
const FAKE = join(import.meta.dir, 'targets/fake-llm.ts')
const BARE = join(import.meta.dir, 'targets/bare-relay.ts')
const PORTKEY = join(root, 'node_modules/@portkey-ai/gateway/build/start-server.js')

const TOKENS = 64
const UPSTREAM_MODEL = `fake:tokens=${TOKENS}`
const HEARTH_MODEL = 'bench-model'
const MESSAGES = [{ role: 'user', content: 'hi' }]
const WARMUP_SEC = 1
/** unmeasured seconds at the start of every load round (the driver is a fresh process: connections, JIT) */
const ROUND_WARMUP_SEC = 0.25
const TTFB_WARMUP = 50
const TTFB_ROUND_WARMUP = 20
const CLIENT_ENV = { BUN_CONFIG_MAX_HTTP_REQUESTS: '1024' }

const BENCH_USER = { username: 'bench_user', email: 'bench@example.com', password: 'bench-password-1' }

const DIRECT = 'direct (fake upstream)'
const BARE_NAME = 'bare Bun relay (floor)'
const HEARTH = 'Hearth (bun src/index.ts)'
const PORTKEY_NAME = 'Portkey (@portkey-ai/gateway)'

const GOAL_ADDED_TTFB_MS = 1
const GOAL_SHARE_OF_DIRECT = 0.8

function envNumber(name: string, fallback: number, min: number, max: number): number | Error {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min || value > max) return new Error(`${name}=${JSON.stringify(raw)} must be a number from ${min} to ${max}`)
  return value
}

function progress(message: string): void {
  process.stderr.write(`bench gateway: ${message}\n`)
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** A target: where the driver sends its streaming POSTs, and which process (besides the upstream) serves them. */
interface Target {
  name: string
  url: string
  headers: Record<string, string>
  body: string
  /** the gateway process, for its CPU time; none for direct */
  pid?: number
  /** why the target could not be measured */
  failure?: string
  /** failed requests over every run (warm-up included), and a few of their descriptions */
  errorCount: number
  errorSamples: string[]
  load: ClientResult[]
  ttfb: ClientResult[]
  loadSamples: number[]
  ttfbSamples: number[]
  /** CPU ms of the gateway and of the upstream during the load rounds, and the requests they served */
  gatewayCpuMs: number
  upstreamCpuMs: number
  requestsServed: number
  driverCpuMs: number
  driverSeconds: number
  /** the load rounds with the gateway on a CPU of its own (see CPU layouts in bench/README.md) */
  own: ClientResult[]
  /** in the own-CPU layout: the upstream's and the driver's CPU ms (what the other CPU spent) and the requests */
  ownOthersCpuMs: number
  ownRequests: number
}

/** CPU layouts: `shared` lets every process use every CPU; `own` gives the gateway the last CPU and the upstream and driver the others. */
type Layout = 'shared' | 'own'

/** Pin every thread of a running process to a CPU list such as "0" or "0-1" (taskset from util-linux). */
function pin(pid: number, cpuList: string): void {
  const run = Bun.spawnSync(['taskset', '-a', '-p', '-c', cpuList, String(pid)], { stdout: 'ignore', stderr: 'pipe' })
  if (run.exitCode !== 0) throw new Error(`taskset -a -p -c ${cpuList} ${pid} failed: ${run.stderr.toString().trim()}`)
}

/** One run of the driver; its full result (with every TTFB) comes back through a temp file. `cpuList` pins it. */
async function drive(target: Target, config: Record<string, unknown>, dir: string, timeoutMs: number, cpuList?: string): Promise<ClientResult> {
  const resultFile = join(dir, `result-${crypto.randomUUID()}.json`)
  const full = { url: target.url, headers: target.headers, body: target.body, tokens: TOKENS, resultFile, ...config }
  const command = [bun, CLIENT, JSON.stringify(full)]
  const run = await runCommand(cpuList === undefined ? command : ['taskset', '-c', cpuList, ...command], { cwd: root, timeoutMs, env: { ...process.env, ...CLIENT_ENV } })
  if (run.timedOut) throw new Error(`the load driver did not finish within ${Math.round(timeoutMs / 1000)} s`)
  if (run.code !== 0 || !existsSync(resultFile)) throw new Error(`the load driver failed (exit ${run.code}): ${run.output.trim().split('\n').slice(-3).join(' / ')}`)
  return JSON.parse(readFileSync(resultFile, 'utf8')) as ClientResult
}

/** Hearth on a free port with a fresh data dir; then an admin, a global provider for the fake upstream, a model and an API key. */
async function startHearth(upstream: string): Promise<{ server: RunningServer; apiKey: string; stop(): Promise<void> }> {
  const { server, value, stop } = await startHearthServer({ root, prefix: 'hearth-bench-gateway-', setUp: (url: string, dataDir: string) => setUpHearth(url, upstream, setupTokenIn(dataDir)) })
  return { server, apiKey: value, stop }
}

async function setUpHearth(origin: string, upstream: string, setupToken: string): Promise<string> {
  const post = <T>(path: string, body: unknown, token?: string) => postJson<T>(origin, path, body, 201, token)
  const { tokens } = await post<{ tokens: { access_token: string } }>('/api/v1/auth/register', { ...BENCH_USER, setup_token: setupToken })
  const token = tokens.access_token
  const provider = await post<{ id: string }>('/api/v1/providers', { name: 'fake', type: 'openai_compatible', base_url: `${upstream}/v1`, api_key: 'x', scope: 'global' }, token)
  await post('/api/v1/models', { provider_id: provider.id, name: HEARTH_MODEL, model_id: UPSTREAM_MODEL }, token)
  const { key } = await post<{ key: string }>('/api/v1/api-keys', { name: 'bench' }, token)
  if (!key) throw new Error('POST /api/v1/api-keys returned no key')
  return key
}

// ─── statistics and output ──────────────────────────────────────────────────────────────────────

interface Summary {
  rps?: number
  ownRps?: number
  ttfbP50?: number
  ttfbP99?: number
  loadTtfbP50?: number
  errors: number
}

/** completions per second over a set of load rounds */
function rateOf(runs: ClientResult[]): number | undefined {
  const completions = runs.reduce((sum, run) => sum + run.completions, 0)
  const seconds = runs.reduce((sum, run) => sum + run.seconds, 0)
  return seconds > 0 ? completions / seconds : undefined
}

function summarize(target: Target): Summary {
  return {
    rps: target.failure ? undefined : rateOf(target.load),
    ownRps: target.failure ? undefined : rateOf(target.own),
    ttfbP50: samplePercentile(target.ttfbSamples, 50),
    ttfbP99: samplePercentile(target.ttfbSamples, 99),
    loadTtfbP50: samplePercentile(target.loadSamples, 50),
    errors: target.errorCount,
  }
}

/** PASS/FAIL with the number, never a rounded number that seems to contradict the verdict. */
function goal(title: string, pass: boolean | undefined, shown: string): string {
  if (pass === undefined) return `goal: ${title}: FAIL (${shown})`
  return `goal: ${title}: ${pass ? 'PASS' : 'FAIL'} (${shown})`
}

// ─── the run ────────────────────────────────────────────────────────────────────────────────────

/** The whole gateway benchmark; prints its table and goal lines and returns the exit code (0, or 1 when the harness broke or a target answered with errors). */
export async function runGatewayBench(): Promise<number> {
  const settings = [envNumber('BENCH_DURATION', 5, 0.5, 600), envNumber('BENCH_GATEWAY_CONNECTIONS', 32, 1, 1000), envNumber('BENCH_TTFB_REQUESTS', 300, 10, 100_000)]
  const bad = settings.find((value): value is Error => value instanceof Error)
  if (bad) {
    process.stderr.write(`bench gateway: ${bad.message}\n`)
    return 2
  }
  const [durationSec, connections, ttfbRequests] = settings as number[]
  const rounds = Math.max(1, Math.round(durationSec!))
  const roundSec = durationSec! / rounds
  const perRoundTtfb = Math.ceil(ttfbRequests! / rounds)

  // A hard stop whatever hangs: starts, setup, every driver run with its warm-ups, and the stops, with room to spare.
  const budgetMs = 4 * 20_000 + 4 * (WARMUP_SEC + 2 * rounds * (roundSec + ROUND_WARMUP_SEC + 2) + rounds * 10) * 1000 + 60_000
  const budget = hardStop('bench gateway', budgetMs)

  const work = tempDir('hearth-bench-gateway-results-')
  const stops: (() => Promise<void>)[] = []
  let exitCode = 0
  const targets: Target[] = []
  const newTarget = (name: string, url: string, headers: Record<string, string>, model: string, pid?: number): Target => ({
    name,
    url,
    headers,
    body: JSON.stringify({ model, messages: MESSAGES, stream: true }),
    pid,
    errorCount: 0,
    errorSamples: [],
    load: [],
    ttfb: [],
    loadSamples: [],
    ttfbSamples: [],
    gatewayCpuMs: 0,
    upstreamCpuMs: 0,
    requestsServed: 0,
    driverCpuMs: 0,
    driverSeconds: 0,
    own: [],
    ownOthersCpuMs: 0,
    ownRequests: 0,
  })
  const fail = (target: Target, error: unknown) => {
    exitCode = 1
    target.failure ??= message(error).split('\n')[0]
    progress(`${target.name} failed: ${message(error)}`)
  }

  let upstreamPid: number | undefined
  const cpuCount = cpus().length
  const hasTaskset = Bun.which('taskset') !== null
  const ownLayout = cpuCount >= 2 && hasTaskset ? { gateway: String(cpuCount - 1), others: cpuCount === 2 ? '0' : `0-${cpuCount - 2}` } : undefined
  let ownSkipped = ownLayout ? undefined : cpuCount < 2 ? 'one CPU only' : 'taskset (util-linux) is not installed'
  let hearthReadyMs: number | undefined
  let portkeyReadyMs: number | undefined
  let portkeyVersion = 'unknown'
  try {
    // The upstream first: both gateways point at it.
    progress('starting the fake upstream, Hearth and Portkey')
    const fake = await spawnServer([bun, FAKE], {}, (line) => (/^http:\/\/127\.0\.0\.1:\d+$/.test(line) ? `${line}/v1beta/models?key=x` : undefined), { cwd: root })
    stops.push(fake.stop)
    upstreamPid = fake.pid
    const direct = newTarget(DIRECT, `${fake.url}/v1/chat/completions`, { authorization: 'Bearer x' }, UPSTREAM_MODEL)
    const hearth = newTarget(HEARTH, '', {}, HEARTH_MODEL)
    const bare = newTarget(BARE_NAME, '', { authorization: 'Bearer x' }, UPSTREAM_MODEL)
    const portkey = newTarget(PORTKEY_NAME, '', { authorization: 'Bearer x', 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${fake.url}/v1` }, UPSTREAM_MODEL)
    targets.push(direct, bare, hearth, portkey)

    await Promise.all([
      (async () => {
        try {
          const server = await spawnServer([bun, BARE], { UPSTREAM: `${fake.url}/v1` }, (line) => (/^http:\/\/127\.0\.0\.1:\d+$/.test(line) ? `${line}/health` : undefined), { cwd: root })
          stops.push(server.stop)
          bare.url = `${server.url}/chat/completions`
          bare.pid = server.pid
        } catch (error) {
          fail(bare, error)
        }
      })(),
      (async () => {
        try {
          const started = await startHearth(fake.url)
          stops.push(started.stop)
          hearth.url = `${started.server.url}/v1/chat/completions`
          hearth.headers = { authorization: `Bearer ${started.apiKey}` }
          hearth.pid = started.server.pid
          hearthReadyMs = started.server.readyMs
        } catch (error) {
          fail(hearth, error)
        }
      })(),
      (async () => {
        try {
          if (!existsSync(PORTKEY)) throw new Error(`${PORTKEY} is missing; run npm install (@portkey-ai/gateway is a devDependency)`)
          portkeyVersion = (JSON.parse(readFileSync(join(PORTKEY, '../../package.json'), 'utf8')) as { version: string }).version
          for (let attempt = 1; ; attempt++) {
            const port = await freePort()
            try {
              // Portkey's server takes no host: it listens on every interface of this machine while it runs.
              const server = await spawnServer([bun, PORTKEY, `--port=${port}`, '--headless'], {}, `http://127.0.0.1:${port}/`, { cwd: root, timeoutMs: 30_000 })
              stops.push(server.stop)
              portkey.url = `${server.url}/v1/chat/completions`
              portkey.pid = server.pid
              portkeyReadyMs = server.readyMs
              break
            } catch (error) {
              if (attempt < 2 && /EADDRINUSE|in use/i.test(String(error))) continue
              throw error
            }
          }
        } catch (error) {
          fail(portkey, error)
        }
      })(),
    ])

    // One request each, checked like every other, before any load.
    for (const target of targets) {
      if (target.failure) continue
      try {
        const check = await drive(target, { mode: 'seq', requests: 1 }, work.path, 30_000)
        if (check.errors) throw new Error(`its first request failed: ${check.error_samples.join('; ')}`)
      } catch (error) {
        fail(target, error)
      }
    }
    const live = () => targets.filter((target) => !target.failure)

    const noteErrors = (target: Target, run: ClientResult) => {
      if (!run.errors) return
      exitCode = 1
      target.errorCount += run.errors
      for (const sample of run.error_samples) if (target.errorSamples.length < 5) target.errorSamples.push(sample)
    }

    progress(`${WARMUP_SEC} s warm-up per target at ${connections} concurrent streams`)
    for (const target of live()) {
      try {
        noteErrors(target, await drive(target, { mode: 'load', connections, seconds: WARMUP_SEC, warmupSeconds: 0 }, work.path, 60_000))
      } catch (error) {
        fail(target, error)
      }
    }

    // Throughput under load, interleaved: A B C, B C A, C A B, …; in each CPU layout.
    const loadRounds = async (layout: Layout) => {
      const driverCpus = layout === 'own' ? ownLayout!.others : undefined
      for (let round = 0; round < rounds; round++) {
        for (let i = 0; i < targets.length; i++) {
          const target = targets[(round + i) % targets.length]!
          if (target.failure) continue
          try {
            const gatewayBefore = target.pid === undefined ? undefined : processCpuMs(target.pid)
            const upstreamBefore = upstreamPid === undefined ? undefined : processCpuMs(upstreamPid)
            const run = await drive(target, { mode: 'load', connections, seconds: roundSec, warmupSeconds: ROUND_WARMUP_SEC }, work.path, (roundSec + ROUND_WARMUP_SEC + 60) * 1000, driverCpus)
            noteErrors(target, run)
            const gatewayAfter = target.pid === undefined ? undefined : processCpuMs(target.pid)
            const upstreamAfter = upstreamPid === undefined ? undefined : processCpuMs(upstreamPid)
            if (layout === 'own') {
              target.own.push(run)
              if (upstreamBefore !== undefined && upstreamAfter !== undefined) target.ownOthersCpuMs += upstreamAfter - upstreamBefore + run.cpu_ms
              target.ownRequests += run.requests_total
              continue
            }
            if (gatewayBefore !== undefined && gatewayAfter !== undefined) target.gatewayCpuMs += gatewayAfter - gatewayBefore
            if (upstreamBefore !== undefined && upstreamAfter !== undefined) target.upstreamCpuMs += upstreamAfter - upstreamBefore
            target.requestsServed += run.requests_total
            target.driverCpuMs += run.cpu_ms
            target.driverSeconds += run.seconds + ROUND_WARMUP_SEC
            target.load.push(run)
            target.loadSamples.push(...(run.ttfb_ms ?? []))
          } catch (error) {
            fail(target, error)
          }
        }
      }
    }
    progress(`${rounds} interleaved round(s) of ${+roundSec.toFixed(2)} s per target at ${connections} concurrent streams, every process on every CPU`)
    await loadRounds('shared')
    if (ownLayout) {
      progress(`the same with each gateway on CPU ${ownLayout.gateway} and the upstream and the driver on CPU ${ownLayout.others}`)
      const everyCpu = `0-${cpuCount - 1}`
      const gatewayPids = targets.flatMap((t) => (t.pid === undefined || t.failure ? [] : [t.pid]))
      try {
        pin(upstreamPid!, ownLayout.others)
        for (const pid of gatewayPids) pin(pid, ownLayout.gateway)
        await loadRounds('own')
      } catch (error) {
        ownSkipped = message(error)
        progress(`own-CPU layout not measured: ${ownSkipped}`)
      } finally {
        for (const pid of [upstreamPid!, ...gatewayPids]) {
          try {
            pin(pid, everyCpu)
          } catch {}
        }
      }
    }

    // Time to first byte without queueing: one request at a time, interleaved the same way.
    progress(`${perRoundTtfb * rounds} sequential requests per target (c=1) in ${rounds} interleaved round(s)`)
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < targets.length; i++) {
        const target = targets[(round + i) % targets.length]!
        if (target.failure) continue
        try {
          const warmupRequests = round === 0 ? TTFB_WARMUP : TTFB_ROUND_WARMUP
          const run = await drive(target, { mode: 'seq', requests: perRoundTtfb, warmupRequests }, work.path, 120_000)
          target.ttfb.push(run)
          target.ttfbSamples.push(...(run.ttfb_ms ?? []))
          noteErrors(target, run)
        } catch (error) {
          fail(target, error)
        }
      }
    }
  } catch (error) {
    exitCode = 1
    progress(`failed: ${message(error)}`)
  } finally {
    await Promise.allSettled(stops.map((stop) => stop()))
    work.remove()
    clearTimeout(budget)
  }

  // ─── report ───
  const summaries = new Map(targets.map((target) => [target.name, summarize(target)]))
  const directRps = summaries.get(DIRECT)?.rps
  const directOwnRps = summaries.get(DIRECT)?.ownRps
  const cells = targets.map((target) => {
    const s = summaries.get(target.name)!
    const notes: string[] = []
    if (target.failure) notes.push(`FAILED: ${target.failure}`)
    if (target.errorSamples.length) notes.push(`ERRORS: ${target.errorSamples.join('; ')}`)
    if (target.requestsServed > 0) {
      const per = (cpuMs: number) => `${Math.round((cpuMs * 1000) / target.requestsServed)} µs`
      notes.push(target.pid === undefined ? `upstream CPU ${per(target.upstreamCpuMs)}/completion` : `gateway CPU ${per(target.gatewayCpuMs)}/completion (upstream ${per(target.upstreamCpuMs)})`)
    }
    if (target.ownRequests > 0) notes.push(`own CPU: upstream + driver ${Math.round((target.ownOthersCpuMs * 1000) / target.ownRequests)} µs/completion`)
    const perRound = target.load.map((run) => run.completions_per_s)
    if (perRound.length > 1) {
      const mean = perRound.reduce((a, b) => a + b, 0) / perRound.length
      if (mean > 0) notes.push(`±${Math.round(((Math.max(...perRound) - Math.min(...perRound)) / 2 / mean) * 100)}% across ${perRound.length} rounds`)
    }
    if (target.name === HEARTH && hearthReadyMs !== undefined) notes.push(`ready in ${Math.round(hearthReadyMs)} ms`)
    if (target.name === PORTKEY_NAME && portkeyReadyMs !== undefined) notes.push(`v${portkeyVersion}, ready in ${Math.round(portkeyReadyMs)} ms`)
    return [
      target.name,
      s.rps === undefined ? '-' : Math.round(s.rps).toLocaleString('en-US'),
      s.rps === undefined || !directRps ? '-' : `${(s.rps / directRps).toFixed(2)}x`,
      s.ownRps === undefined ? '-' : Math.round(s.ownRps).toLocaleString('en-US'),
      s.ownRps === undefined || !directOwnRps ? '-' : `${(s.ownRps / directOwnRps).toFixed(2)}x`,
      formatMs(s.ttfbP50),
      formatMs(s.ttfbP99),
      formatMs(s.loadTtfbP50),
      String(s.errors),
      notes.join('; '),
    ]
  })

  const cpuList = cpus()
  const git = Bun.spawnSync(['git', 'rev-parse', '--short', 'HEAD'], { cwd: root, stderr: 'ignore' })
  const driverBusy = Math.max(0, ...targets.map((t) => (t.driverSeconds > 0 ? t.driverCpuMs / 1000 / t.driverSeconds : 0)))
  console.log('')
  console.log(
    `gateway: streamed chat completions, ${TOKENS} content chunks each from a fake OpenAI upstream with no delay (bench/targets/fake-llm.ts); ` +
      `${cpuList.length} CPUs, ${platform()} ${arch()}, bun ${Bun.version}, load average ${loadavg()[0]!.toFixed(2)} now, commit ${git.exitCode === 0 ? git.stdout.toString().trim() : 'unknown'}; ` +
      `load: bench/targets/stream-client.ts (its own process), ${connections} concurrent streams, ${+(rounds * roundSec).toFixed(2)} s per target in ${rounds} interleaved round(s) after ${WARMUP_SEC} s warm-up; ` +
      `c=1: ${perRoundTtfb * rounds} sequential requests per target in ${rounds} round(s) after ${TTFB_WARMUP} warm-up`,
  )
  console.log(
    renderTable(
      ['target', 'completions/s', 'vs direct', 'own CPU: completions/s', 'vs direct', 'TTFB p50 ms (c=1)', 'TTFB p99 ms (c=1)', `TTFB p50 ms (c=${connections})`, 'errors', 'notes'],
      cells,
      new Set([1, 2, 3, 4, 5, 6, 7, 8]),
    ),
  )
  console.log(
    ownLayout && !ownSkipped
      ? `CPU layouts: the first two columns with every process free to use every CPU; "own CPU" with each gateway pinned to CPU ${ownLayout.gateway} and the upstream and the driver to CPU ${ownLayout.others} (taskset), the direct row included.`
      : `CPU layouts: every process free to use every CPU; the "own CPU" layout was not measured: ${ownSkipped}.`,
  )

  const h = summaries.get(HEARTH)
  const d = summaries.get(DIRECT)
  const p = summaries.get(PORTKEY_NAME)
  const hearthInvalid = targets.find((t) => t.name === HEARTH && (t.failure || t.errorSamples.length))
  const why = hearthInvalid ? (hearthInvalid.failure ? 'not measured: Hearth failed' : 'not valid: Hearth answered with errors') : undefined

  const added = h?.ttfbP50 !== undefined && d?.ttfbP50 !== undefined ? h.ttfbP50 - d.ttfbP50 : undefined
  console.log(goal(`gateway added TTFB ≤ ${GOAL_ADDED_TTFB_MS} ms at the median`, why || added === undefined ? undefined : added <= GOAL_ADDED_TTFB_MS, why ?? (added === undefined ? 'not measured' : `${added.toFixed(2)} ms`)))

  const pct = (share: number) =>
    Math.round(share * 100) >= GOAL_SHARE_OF_DIRECT * 100 !== share >= GOAL_SHARE_OF_DIRECT ? (share * 100).toFixed(1) : String(Math.round(share * 100))
  // The goal is judged with the gateway on a CPU of its own, as it runs in production (bench/README.md,
  // "Which layout the goal is judged in"); the shared layout is reported after the goals, not judged.
  const floor = summaries.get(BARE_NAME)
  const share = h?.ownRps !== undefined && directOwnRps ? h.ownRps / directOwnRps : undefined
  const floorShare = floor?.ownRps !== undefined && directOwnRps ? `; the bare Bun relay: ${pct(floor.ownRps / directOwnRps)}%` : ''
  console.log(
    goal(
      `gateway streamed completions ≥ ${Math.round(GOAL_SHARE_OF_DIRECT * 100)}% of direct, the gateway on its own CPU`,
      why || share === undefined ? undefined : share >= GOAL_SHARE_OF_DIRECT,
      why ?? (share === undefined ? `not measured${ownSkipped ? `: ${ownSkipped}` : ''}` : `${pct(share)}%${floorShare}`),
    ),
  )

  const portkeyInvalid = targets.find((t) => t.name === PORTKEY_NAME && (t.failure || t.errorSamples.length))
  const versus = h?.rps !== undefined && p?.rps ? h.rps / p.rps : undefined
  const versusWhy = why ?? (portkeyInvalid ? 'not measured: Portkey failed or answered with errors' : undefined)
  console.log(goal('Hearth ahead of Portkey', versusWhy || versus === undefined ? undefined : versus > 1, versusWhy ?? (versus === undefined ? 'not measured' : `hearth/portkey = ${versus.toFixed(2)}`)))
  if (h?.rps !== undefined && directRps) {
    const cpu = (target: Target | undefined) => (target?.requestsServed ? `${Math.round((target.gatewayCpuMs * 1000) / target.requestsServed)} µs` : '-')
    const byName = (name: string) => targets.find((target) => target.name === name)
    console.log(
      `not judged: all processes sharing ${cpuCount} CPUs, where the gateway's CPU is taken from the upstream and the driver: Hearth ${pct(h.rps / directRps)}% of direct` +
        (floor?.rps !== undefined ? `, the bare Bun relay ${pct(floor.rps / directRps)}%` : '') +
        `; gateway CPU per completion: Hearth ${cpu(byName(HEARTH))}, the bare Bun relay ${cpu(byName(BARE_NAME))}`,
    )
  }

  if (driverBusy > 0)
    console.log(
      `load driver: up to ${Math.round(driverBusy * 100)}% of one core. The driver, the upstream and the gateway share this machine's ${cpuList.length} CPUs: ` +
        'the direct row runs two busy processes, the gateway rows three, so on a small machine a gateway also pays for the CPU it takes from the other two.',
    )
  const broken = targets.filter((t) => t.failure || t.errorSamples.length)
  if (broken.length) console.log(`gateway benchmark errors: ${broken.map((t) => `${t.name}: ${t.failure ?? t.errorSamples.join('; ')}`).join(' | ')}`)
  return exitCode
}

if (import.meta.main) await runAsScript('bench gateway', runGatewayBench)
