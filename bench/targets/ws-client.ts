/**
 * The clients of the WebSocket benchmark (bench/ws.ts), in their own process: `count` sockets to `url`
 * (at most `concurrency` handshakes at a time), each counted as open once it has answered a PING with
 * PONG (Hearth accepts a refused socket and then closes it, so an open handshake alone proves nothing).
 * Prints one JSON line `{"event":"ready",…}`.
 *
 * Hold mode (no `fanout`): then on each line read from stdin, prints `{"event":"check","open","closed","codes"}`.
 *
 * Fan-out mode: sends `frames` MESSAGE_DELTA frames for `user_id` as Hearth's bus carries them between
 * instances — NOTIFY on `hearth_session_frames` with the envelope `{ o, m }` (o: an origin no instance
 * has) — `interval_ms` apart, and times each one from just before its NOTIFY to its arrival on every
 * socket (one clock: this process's). Prints `{"event":"fanout","delivered","expected","p50_ms","p99_ms","max_ms"}`.
 */
import postgres from 'postgres'

interface Config {
  url: string
  count: number
  concurrency?: number
  fanout?: { database_url: string; user_id: string; frames: number; interval_ms: number }
}

const config = JSON.parse(process.argv[2] ?? '{}') as Config
const print = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`)

const sockets: WebSocket[] = []
const codes: Record<string, number> = {}
let closed = 0
const sent: number[] = []
const latencies: number[] = []

function openOne(): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(config.url)
    let settled = false
    const settle = (ok: boolean) => {
      if (settled) return
      settled = true
      resolve(ok)
    }
    ws.onopen = () => ws.send('{"type":"PING"}')
    ws.onmessage = (e) => {
      const text = String(e.data)
      if (text === '{"type":"PONG"}') return settle(true)
      const at = performance.now()
      const frame = JSON.parse(text) as { type: string; text?: string }
      if (frame.type === 'MESSAGE_DELTA') latencies.push(at - sent[Number(frame.text)]!)
    }
    ws.onclose = (e) => {
      closed++
      codes[e.code] = (codes[e.code] ?? 0) + 1
      settle(false)
    }
    ws.onerror = () => settle(false)
    sockets.push(ws)
  })
}

const started = performance.now()
let open = 0
let failed = 0
const concurrency = config.concurrency ?? 100
let next = 0
await Promise.all(
  Array.from({ length: Math.min(concurrency, config.count) }, async () => {
    while (next < config.count) {
      next++
      if (await openOne()) open++
      else failed++
    }
  }),
)
print({ event: 'ready', open, failed, ms: Math.round(performance.now() - started), codes })

if (config.fanout) {
  const { database_url, user_id, frames, interval_ms } = config.fanout
  const sql = postgres(database_url, { max: 1, onnotice: () => {} })
  await Bun.sleep(500)
  for (let i = 0; i < frames; i++) {
    const frame = { type: 'MESSAGE_DELTA', user_id, session_id: 'bench-session', message_id: 'bench-message', text: String(i) }
    sent[i] = performance.now()
    await sql.notify('hearth_session_frames', JSON.stringify({ o: 'bench-client', m: frame }))
    await Bun.sleep(interval_ms)
  }
  const expected = frames * open
  const deadline = performance.now() + 10_000
  while (latencies.length < expected && performance.now() < deadline) await Bun.sleep(20)
  const sorted = Float64Array.from(latencies).sort()
  const at = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! : null)
  print({ event: 'fanout', delivered: latencies.length, expected, p50_ms: at(50), p99_ms: at(99), max_ms: sorted.length ? sorted[sorted.length - 1] : null })
  await sql.end()
  for (const ws of sockets) ws.close()
  process.exit(0)
}

for await (const _ of console) print({ event: 'check', open: sockets.length - closed, closed, codes })
