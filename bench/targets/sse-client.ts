/**
 * Idle SSE subscribers for the first part of bench/chat.ts, run as its own process (the harness starts
 * several) so no server shares its event loop. Run it with BUN_CONFIG_MAX_HTTP_REQUESTS above `count`
 * so Bun's fetch opens every connection at once instead of queueing them behind its limit (256).
 *
 *   bun bench/targets/sse-client.ts '<config JSON>'
 *
 * config: { url, headers?, count, sample, openConcurrency?, readyTimeoutMs?, maxHoldMs? }
 *
 * 1. Opens `count` GET streams to `url` (at most openConcurrency waiting for their headers at a time);
 *    each must answer 200 with text/event-stream.
 * 2. Waits until every stream has had an event with an `id:` (Hearth: the replay of the run; the
 *    baseline: its first tick), takes M = the highest id seen on any stream, then waits until every stream
 *    has had an event with an id above M: one live event each. Then prints
 *    {"type":"ready", opened, failed, not_live, open_ms, ready_ms, failures}.
 * 3. Holds every stream open until a line `stop` arrives on stdin (or maxHoldMs passes), recording the
 *    arrival of `: ping` comments on `sample` streams spread evenly over the others. A stream that ends or
 *    fails before then is a drop; an `id:` that is not the last one + 1 is an id gap. Then prints
 *    {"type":"report", …} (see Report) and exits, which closes every stream.
 */

type Config = {
  url: string
  headers?: Record<string, string>
  count: number
  sample: number
  openConcurrency?: number
  readyTimeoutMs?: number
  maxHoldMs?: number
}

export interface Ready {
  type: 'ready'
  opened: number
  failed: number
  /** streams that got no live event before readyTimeoutMs */
  not_live: number
  /** from the first connect to the last stream's headers */
  open_ms: number
  /** from the first connect to ready */
  ready_ms: number
  failures: string[]
}

export interface Report {
  type: 'report'
  connections: number
  /** streams that ended or failed while held (before `stop`) */
  dropped: number
  drop_samples: string[]
  /** events whose id was not the previous one + 1, over every stream */
  id_gaps: number
  /** events (with an id) received over every stream */
  events: number
  /** the ping-sampled streams */
  sampled: number
  /** the fewest and most pings one sampled stream got */
  pings_min: number
  pings_max: number
  /** the longest time between the stream's headers, its pings and `stop`, over the sampled streams */
  max_gap_ms: number
  /** how long the streams were held after ready */
  hold_ms: number
}

const config = JSON.parse(process.argv[2] ?? 'null') as Config | null
if (!config || typeof config.url !== 'string' || !(config.count > 0)) {
  process.stderr.write('usage: bun bench/targets/sse-client.ts \'{"url":…,"count":2500,"sample":50}\'\n')
  process.exit(2)
}

const openConcurrency = config.openConcurrency ?? 128
const readyTimeoutMs = config.readyTimeoutMs ?? 120_000
const maxHoldMs = config.maxHoldMs ?? 600_000
const headers = { accept: 'text/event-stream', ...config.headers }
const MAX_SAMPLES = 5

interface Conn {
  /** performance.now() when the headers arrived */
  openedAt: number
  lastId: number
  events: number
  gaps: number
  /** why the stream ended, once it did */
  ended?: string
  endedWhileHeld: boolean
  pings?: number[]
}

const conns: Conn[] = []
const failures = new Map<string, number>()
let holding = false
let stopping = false

function note(map: Map<string, number>, what: string) {
  map.set(what, (map.get(what) ?? 0) + 1)
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
}

function handleLine(conn: Conn, line: string) {
  if (line.startsWith('id:')) {
    const id = Number(line.slice(3).trim())
    if (conn.lastId && id !== conn.lastId + 1) conn.gaps++
    conn.lastId = id
    conn.events++
  } else if (line === ': ping') conn.pings?.push(performance.now())
  else if (line.startsWith('event: done') || line.startsWith('event: shutdown') || line.startsWith('event: error')) conn.ended ??= `got ${line.slice(7)}`
}

async function read(conn: Conn, body: ReadableStream<Uint8Array>) {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let pending = ''
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) {
        conn.ended ??= 'the server ended the stream'
        break
      }
      pending += decoder.decode(value, { stream: true })
      let newline: number
      while ((newline = pending.indexOf('\n')) !== -1) {
        handleLine(conn, pending.slice(0, newline))
        pending = pending.slice(newline + 1)
      }
    }
  } catch (error) {
    conn.ended ??= describe(error)
  }
  if (holding && !stopping) conn.endedWhileHeld = true
}

async function open(sampled: boolean): Promise<void> {
  const abort = new AbortController()
  const timer = setTimeout(() => abort.abort(new Error('no headers within 30 s')), 30_000)
  try {
    const response = await fetch(config!.url, { headers, signal: abort.signal })
    clearTimeout(timer)
    if (response.status !== 200 || !response.headers.get('content-type')?.startsWith('text/event-stream')) {
      const text = await response.text().catch(() => '')
      note(failures, `status ${response.status} ${response.headers.get('content-type') ?? ''}: ${text.slice(0, 120)}`)
      return
    }
    const conn: Conn = { openedAt: performance.now(), lastId: 0, events: 0, gaps: 0, endedWhileHeld: false, pings: sampled ? [] : undefined }
    conns.push(conn)
    void read(conn, response.body!)
  } catch (error) {
    clearTimeout(timer)
    note(failures, describe(error))
  }
}

const started = performance.now()
const deadline = started + readyTimeoutMs
const every = config.sample > 0 ? Math.max(1, Math.floor(config.count / config.sample)) : Infinity
let nextIndex = 0
let sampledSoFar = 0
await Promise.all(
  Array.from({ length: Math.min(openConcurrency, config.count) }, async () => {
    while (nextIndex < config.count && performance.now() < deadline) {
      const index = nextIndex++
      const sampled = index % every === 0 && sampledSoFar < config.sample
      if (sampled) sampledSoFar++
      await open(sampled)
    }
  }),
)
const openMs = performance.now() - started

async function until(condition: () => boolean): Promise<boolean> {
  while (!condition()) {
    if (performance.now() > deadline) return false
    await Bun.sleep(20)
  }
  return true
}

const alive = () => conns.filter((c) => !c.ended)
await until(() => alive().every((c) => c.lastId > 0))
const replayed = Math.max(0, ...conns.map((c) => c.lastId))
await until(() => alive().every((c) => c.lastId > replayed))

let notLive = 0
for (const conn of conns) {
  if (conn.ended) note(failures, `ended before ready: ${conn.ended}`)
  else if (conn.lastId <= replayed) notLive++
}
const ready: Ready = {
  type: 'ready',
  opened: conns.length,
  failed: config.count - conns.filter((c) => !c.ended).length,
  not_live: notLive,
  open_ms: Math.round(openMs),
  ready_ms: Math.round(performance.now() - started),
  failures: [...failures].slice(0, MAX_SAMPLES).map(([what, n]) => `${n}× ${what}`),
}
holding = true
const holdStart = performance.now()
console.log(JSON.stringify(ready))

// Hold until `stop` on stdin (or maxHoldMs).
await new Promise<void>((resolve) => {
  const timer = setTimeout(resolve, maxHoldMs)
  let input = ''
  process.stdin.on('data', (chunk: Buffer) => {
    input += chunk.toString()
    if (input.includes('stop')) {
      clearTimeout(timer)
      resolve()
    }
  })
  process.stdin.on('end', () => {
    clearTimeout(timer)
    resolve()
  })
})
stopping = true
const stopAt = performance.now()

const drops = new Map<string, number>()
let dropped = 0
let idGaps = 0
let events = 0
let pingsMin = Infinity
let pingsMax = 0
let maxGap = 0
let sampled = 0
for (const conn of conns) {
  idGaps += conn.gaps
  events += conn.events
  if (conn.endedWhileHeld) {
    dropped++
    note(drops, conn.ended ?? 'ended')
  }
  if (conn.pings && !conn.ended) {
    sampled++
    pingsMin = Math.min(pingsMin, conn.pings.length)
    pingsMax = Math.max(pingsMax, conn.pings.length)
    const times = [conn.openedAt, ...conn.pings, stopAt]
    for (let i = 1; i < times.length; i++) maxGap = Math.max(maxGap, times[i]! - times[i - 1]!)
  }
}
const report: Report = {
  type: 'report',
  connections: conns.length,
  dropped,
  drop_samples: [...drops].slice(0, MAX_SAMPLES).map(([what, n]) => `${n}× ${what}`),
  id_gaps: idGaps,
  events,
  sampled,
  pings_min: sampled ? pingsMin : 0,
  pings_max: pingsMax,
  max_gap_ms: Math.round(maxGap),
  hold_ms: Math.round(stopAt - holdStart),
}
console.log(JSON.stringify(report))
process.exit(0)
