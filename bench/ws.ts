/**
 * @module `npm run bench:ws`: Hearth's WebSocket `/ws/chat` against a bare Bun.serve WebSocket
 * (bench/targets/ws-hold.ts), both measured the same way in the same run.
 *
 * Part 1, idle sockets: BENCH_WS_SOCKETS (default 5,000) clients connect (each answers a PING, so it
 * is really admitted) and stay idle; the server's RSS before and after (bytes per socket), and also
 * after a full GC and its JS heap (bench/targets/mem-probe.ts, preloaded), then a hold of
 * BENCH_WS_HOLD seconds after which every socket must still be open. Hearth runs on SQLite with the
 * clients authenticated by `?token=` (one user; its cap on open streams is raised, as for every bench).
 *
 * Part 2, fan-out: BENCH_WS_FANOUT (default 100) sockets of one user; BENCH_WS_FRAMES (default 200)
 * MESSAGE_DELTA frames of one session, BENCH_WS_INTERVAL_MS (default 10) apart, NOTIFYed on Postgres
 * as another instance's bus sends them; each frame timed from just before its NOTIFY to its arrival
 * on every socket (p50/p99 of frames × sockets). The baseline LISTENs on the same channel and sends
 * each frame to its sockets. Needs Postgres (BENCH_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/postgres; a throw-away database is made and dropped); skipped
 * with a note without it.
 *
 * Exit code: 0 whatever the goal says; 1 when the harness broke or a socket was not admitted, was
 * dropped, or missed a frame; 2 for a bad setting. See bench/README.md.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { arch, cpus, loadavg, platform } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import type { Subprocess } from 'bun'
import { envInteger, errorMessage, hardStop, renderTable, runAsScript, setupTokenIn, spawnServer, startHearthServer, tempDir, trackProcess, type RunningServer } from './lib.ts'
import type { ProbeSample } from './targets/mem-probe.ts'

const root = join(import.meta.dir, '..')
const bun = process.execPath
const WS_HOLD = join(import.meta.dir, 'targets/ws-hold.ts')
const WS_CLIENT = join(import.meta.dir, 'targets/ws-client.ts')
const MEM_PROBE = join(import.meta.dir, 'targets/mem-probe.ts')
const BENCH_USER = { username: 'bench_user', email: 'bench@example.com', password: 'bench-password-1' }
/** the most sockets one client process opens */
const PER_CLIENT = 2_500
const SETTLE_MS = 2_000
const GOAL_BYTES_PER_SOCKET = 10 * 1024
const KB = 1024
const MB = 1024 * 1024

const BASELINE = 'baseline: bare Bun.serve WebSocket'
const HEARTH = 'Hearth /ws/chat'

const progress = (text: string) => process.stderr.write(`bench ws: ${text}\n`)

function rssBytes(pid: number): number | undefined {
  try {
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
    return kb === undefined ? undefined : Number(kb) * 1024
  } catch {
    return undefined
  }
}

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

// ─── processes ──────────────────────────────────────────────────────────────────────────────────

interface Target {
  name: string
  server: RunningServer
  /** the socket URL the clients open (with their credential) */
  socketUrl: string
  /** the user the sockets belong to (fan-out frames name it) */
  userId: string
  stop(): Promise<void>
}

async function startBaseline(env: Record<string, string>): Promise<Target> {
  const server = await spawnServer([bun, '--preload', MEM_PROBE, WS_HOLD], env, (line) => {
    const port = /"port":(\d+)/.exec(line)?.[1]
    return port ? `http://127.0.0.1:${port}/health` : undefined
  })
  return { name: BASELINE, server, socketUrl: `${server.url.replace('http', 'ws')}/ws?user=bench-user`, userId: 'bench-user', stop: () => server.stop() }
}

async function startHearth(env: Record<string, string>): Promise<Target> {
  const { server, value, stop } = await startHearthServer({
    root,
    prefix: 'hearth-bench-ws-',
    command: (base) => ({ cmd: [base[0]!, '--preload', MEM_PROBE, ...base.slice(1)], env }),
    setUp: async (url, dataDir) => {
      const res = await fetch(`${url}/api/v1/auth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...BENCH_USER, setup_token: setupTokenIn(dataDir) }),
      })
      if (res.status !== 201) throw new Error(`register answered ${res.status}: ${(await res.text()).slice(0, 300)}`)
      const body = (await res.json()) as { user: { id: string }; tokens: { access_token: string } }
      return { token: body.tokens.access_token, userId: body.user.id }
    },
  })
  return { name: HEARTH, server, socketUrl: `${server.url.replace('http', 'ws')}/ws/chat?token=${value.token}`, userId: value.userId, stop }
}

interface Clients {
  proc: Subprocess<'pipe', 'pipe', 'pipe'>
  /** the JSON lines it printed, in order */
  next(event: string, ms: number): Promise<Record<string, any>>
  check(): void
}

function startClients(config: Record<string, unknown>): Clients {
  const proc = Bun.spawn([bun, WS_CLIENT, JSON.stringify(config)], { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', cwd: root })
  trackProcess(proc)
  const lines: Record<string, any>[] = []
  let err = ''
  void (async () => {
    const decoder = new TextDecoder()
    let pending = ''
    for await (const chunk of proc.stdout as unknown as AsyncIterable<Uint8Array>) {
      pending += decoder.decode(chunk, { stream: true })
      let nl: number
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl).trim()
        pending = pending.slice(nl + 1)
        if (line.startsWith('{')) lines.push(JSON.parse(line))
      }
    }
  })()
  void (async () => {
    for await (const chunk of proc.stderr as unknown as AsyncIterable<Uint8Array>) err = (err + new TextDecoder().decode(chunk)).slice(-4000)
  })()
  let taken = 0
  return {
    proc,
    async next(event, ms) {
      const deadline = performance.now() + ms
      for (;;) {
        const i = lines.findIndex((l, n) => n >= taken && l.event === event)
        if (i !== -1) {
          taken = i + 1
          return lines[i]!
        }
        if (proc.exitCode !== null) throw new Error(`the client process exited (${proc.exitCode}) before "${event}": ${err.trim().slice(-1000)}`)
        if (performance.now() > deadline) throw new Error(`no "${event}" from the client process within ${ms} ms: ${err.trim().slice(-1000)}`)
        await Bun.sleep(20)
      }
    },
    check() {
      proc.stdin.write('check\n')
      proc.stdin.flush()
    },
  }
}

// ─── part 1: idle sockets ───────────────────────────────────────────────────────────────────────

interface IdleRow {
  name: string
  failure?: string
  sockets: number
  admitted?: number
  connectMs?: number
  rssBefore?: number
  rssAfter?: number
  probes?: [ProbeSample, ProbeSample]
  stillOpen?: number
}

async function idle(start: () => Promise<Target>, n: number, holdS: number, probeFile: string): Promise<IdleRow> {
  const row: IdleRow = { name: '', sockets: n }
  let target: Target | undefined
  const clients: Clients[] = []
  try {
    target = await start()
    row.name = target.name
    progress(`${target.name}: settling`)
    await Bun.sleep(SETTLE_MS)
    const probeBefore = await probeSample(target.server.pid, probeFile)
    row.rssBefore = rssBytes(target.server.pid)
    progress(`${target.name}: ${n} sockets connecting`)
    const started = performance.now()
    for (let left = n; left > 0; left -= PER_CLIENT) clients.push(startClients({ url: target.socketUrl, count: Math.min(PER_CLIENT, left) }))
    const ready = await Promise.all(clients.map((c) => c.next('ready', 120_000)))
    row.connectMs = performance.now() - started
    row.admitted = ready.reduce((s, r) => s + r.open, 0)
    if (row.admitted !== n) throw new Error(`${n - row.admitted} sockets were not admitted (close codes ${JSON.stringify(ready.map((r) => r.codes))})`)
    await Bun.sleep(SETTLE_MS)
    row.rssAfter = rssBytes(target.server.pid)
    row.probes = [probeBefore, await probeSample(target.server.pid, probeFile)]
    progress(`${target.name}: holding ${holdS} s`)
    await Bun.sleep(holdS * 1000)
    for (const c of clients) c.check()
    const checks = await Promise.all(clients.map((c) => c.next('check', 10_000)))
    row.stillOpen = checks.reduce((s, r) => s + r.open, 0)
    if (row.stillOpen !== n) throw new Error(`${n - row.stillOpen} sockets were dropped during the hold (${JSON.stringify(checks.map((c) => c.codes))})`)
  } catch (error) {
    row.failure = errorMessage(error)
  } finally {
    for (const c of clients) c.proc.kill()
    await Promise.all(clients.map((c) => c.proc.exited))
    await target?.stop()
    rmSync(probeFile, { force: true })
  }
  return row
}

const perSocket = (after: number | undefined, before: number | undefined, n: number) => (after === undefined || before === undefined ? undefined : (after - before) / n)
const kb = (bytes: number | undefined) => (bytes === undefined ? '-' : (bytes / KB).toFixed(2))

function idleTable(rows: IdleRow[]): string {
  const base = rows.find((r) => r.name === BASELINE)
  const baseRss = base && perSocket(base.rssAfter, base.rssBefore, base.sockets)
  const cells = rows.map((r) => {
    const rss = perSocket(r.rssAfter, r.rssBefore, r.sockets)
    const gc = r.probes && perSocket(r.probes[1].after_gc.rss, r.probes[0].after_gc.rss, r.sockets)
    const heap = r.probes && perSocket(r.probes[1].after_gc.heap_size, r.probes[0].after_gc.heap_size, r.sockets)
    const notes = r.failure ? `FAILED: ${r.failure}` : `connected in ${((r.connectMs ?? 0) / 1000).toFixed(1)} s; all ${r.stillOpen} still open after the hold`
    return [
      r.name || '(did not start)',
      r.sockets.toLocaleString('en-US'),
      r.rssBefore === undefined ? '-' : (r.rssBefore / MB).toFixed(1),
      r.rssAfter === undefined ? '-' : (r.rssAfter / MB).toFixed(1),
      kb(rss),
      kb(gc),
      kb(heap),
      rss !== undefined && baseRss ? `${(rss / baseRss).toFixed(2)}x` : '-',
      notes,
    ]
  })
  return renderTable(['target', 'sockets', 'RSS before MB', 'RSS after MB', 'KB/socket', 'KB/socket after GC', 'JS heap KB/socket', 'vs baseline', 'notes'], cells, new Set([1, 2, 3, 4, 5, 6, 7]))
}

// ─── part 2: fan-out ────────────────────────────────────────────────────────────────────────────

interface FanoutRow {
  name: string
  failure?: string
  delivered?: number
  expected?: number
  p50?: number
  p99?: number
  max?: number
}

async function fanout(start: () => Promise<Target>, databaseUrl: string, sockets: number, frames: number, intervalMs: number): Promise<FanoutRow> {
  const row: FanoutRow = { name: '' }
  let target: Target | undefined
  let clients: Clients | undefined
  try {
    target = await start()
    row.name = target.name
    progress(`${target.name}: fan-out of ${frames} frames to ${sockets} sockets`)
    clients = startClients({ url: target.socketUrl, count: sockets, fanout: { database_url: databaseUrl, user_id: target.userId, frames, interval_ms: intervalMs } })
    const ready = await clients.next('ready', 60_000)
    if (ready.open !== sockets) throw new Error(`${sockets - ready.open} sockets were not admitted`)
    const r = await clients.next('fanout', 60_000 + frames * intervalMs)
    Object.assign(row, { delivered: r.delivered, expected: r.expected, p50: r.p50_ms, p99: r.p99_ms, max: r.max_ms })
    if (r.delivered !== r.expected) throw new Error(`${r.expected - r.delivered} of ${r.expected} deliveries missing`)
  } catch (error) {
    row.failure = errorMessage(error)
  } finally {
    clients?.proc.kill()
    await clients?.proc.exited
    await target?.stop()
  }
  return row
}

function fanoutTable(rows: FanoutRow[]): string {
  const base = rows.find((r) => r.name === BASELINE)
  const ms = (v: number | undefined) => (v === undefined || v === null ? '-' : v.toFixed(2))
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b ? `${(a / b).toFixed(2)}x` : '-')
  const cells = rows.map((r) => [
    r.name || '(did not start)',
    r.expected === undefined ? '-' : `${r.delivered}/${r.expected}`,
    ms(r.p50),
    ms(r.p99),
    ms(r.max),
    ratio(r.p50, base?.p50),
    ratio(r.p99, base?.p99),
    r.failure ? `FAILED: ${r.failure}` : '',
  ])
  return renderTable(['target', 'delivered', 'p50 ms', 'p99 ms', 'max ms', 'p50 vs baseline', 'p99 vs baseline', 'notes'], cells, new Set([1, 2, 3, 4, 5, 6]))
}

/** A throw-away database next to `url`, or why there is none. */
async function throwAwayDatabase(url: string): Promise<{ url: string; drop(): Promise<void> } | string> {
  const admin = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 })
  const name = `hearth_bench_ws_${Date.now().toString(36)}`
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`)
  } catch (error) {
    await admin.end({ timeout: 1 }).catch(() => {})
    return `no Postgres at ${url.replace(/\/\/[^@]*@/, '//…@')}: ${errorMessage(error)}`
  }
  const dbUrl = new URL(url)
  dbUrl.pathname = `/${name}`
  return {
    url: dbUrl.toString(),
    async drop() {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {})
      await admin.end({ timeout: 1 })
    },
  }
}

// ─── main ───────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<number> {
  const settings = {
    sockets: envInteger('BENCH_WS_SOCKETS', 5_000, 1, 15_000),
    hold: envInteger('BENCH_WS_HOLD', 5, 0, 600),
    fanout: envInteger('BENCH_WS_FANOUT', 100, 1, 5_000),
    frames: envInteger('BENCH_WS_FRAMES', 200, 1, 100_000),
    interval: envInteger('BENCH_WS_INTERVAL_MS', 10, 0, 10_000),
  }
  for (const value of Object.values(settings))
    if (value instanceof Error) {
      process.stderr.write(`bench ws: ${value.message}\n`)
      return 2
    }
  const { sockets, hold, fanout: fanoutSockets, frames, interval } = settings as Record<keyof typeof settings, number>
  const stop = hardStop('bench ws', 15 * 60_000)
  const cpu = cpus()[0]?.model ?? 'unknown CPU'
  console.log(`machine: ${platform()} ${arch()}, ${cpus().length} × ${cpu}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}; Bun ${Bun.version}`)

  const probeDir = tempDir('hearth-bench-ws-probe-')
  const probeFile = (name: string) => join(probeDir.path, `${name}.jsonl`)
  const idleRows = [
    await idle(() => startBaseline({ MEM_PROBE_FILE: probeFile('baseline') }), sockets, hold, probeFile('baseline')),
    await idle(() => startHearth({ MEM_PROBE_FILE: probeFile('hearth') }), sockets, hold, probeFile('hearth')),
  ]
  probeDir.remove()
  console.log(`\nidle sockets: ${sockets.toLocaleString('en-US')} clients (in processes of ${PER_CLIENT}), each admitted (PING → PONG), then idle; RSS (VmRSS) ${SETTLE_MS / 1000} s after start and ${SETTLE_MS / 1000} s after the last connected; KB/socket = (after − before) / sockets; "after GC" and the JS heap from a full GC (bench/targets/mem-probe.ts); held ${hold} s`)
  console.log(idleTable(idleRows))

  const database = await throwAwayDatabase(process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres')
  let fanoutRows: FanoutRow[] = []
  if (typeof database === 'string') console.log(`\nfan-out: skipped (${database})`)
  else {
    try {
      fanoutRows = [
        await fanout(() => startBaseline({ DATABASE_URL: database.url }), database.url, fanoutSockets, frames, interval),
        await fanout(() => startHearth({ DATABASE_URL: database.url }), database.url, fanoutSockets, frames, interval),
      ]
    } finally {
      await database.drop()
    }
    console.log(`\nfan-out: ${frames} MESSAGE_DELTA frames of one session, ${interval} ms apart, to ${fanoutSockets} sockets of its user; each NOTIFYed on Postgres as another instance's bus sends it, and timed from just before the NOTIFY to its arrival on each socket`)
    console.log(fanoutTable(fanoutRows))
  }

  const hearth = idleRows.find((r) => r.name === HEARTH)
  const per = hearth && !hearth.failure ? perSocket(hearth.rssAfter, hearth.rssBefore, hearth.sockets) : undefined
  console.log(`\ngoal: idle socket ≤ ${GOAL_BYTES_PER_SOCKET / KB} KB of RSS: ${per === undefined ? 'not measured' : `${per <= GOAL_BYTES_PER_SOCKET ? 'PASS' : 'FAIL'} (${kb(per)} KB)`}`)
  clearTimeout(stop)
  return [...idleRows, ...fanoutRows].some((r) => r.failure) ? 1 : 0
}

if (import.meta.main) await runAsScript('bench ws', main)
