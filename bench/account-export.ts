/**
 * @module `bun bench/account-export.ts`: the server's memory while it streams a large account export
 * (GET /api/v1/users/me/export). One user gets BENCH_EXPORT_CONVERSATIONS conversations (default
 * 20,000) of 2 messages of BENCH_EXPORT_MESSAGE_KB KiB each (default 10), inserted in bulk into a
 * fresh SQLite database (or Postgres: BENCH_DATABASE_URL=postgres://…). The app serves on loopback in
 * this process; a child process downloads the export at BENCH_EXPORT_MBPS MB/s (default 20, a client
 * over a network; 0: as fast as loopback goes) and checks its size and ending. Printed: the export's
 * size, the peak RSS of this process above its start while the export streams, the time, and the
 * goal line: peak growth under 128 MB while the export is at least 320 MB — memory that does not
 * follow the size of the account. (The export itself holds one page, and asks for a full collection
 * every 32 MB it writes: without that, the garbage piled up with the export at full loopback speed;
 * see bench/README.md.)
 * BENCH_GC=1 forces a full collection every 250 ms, to tell garbage from what is held.
 */
import { serveApp } from '../src/app.ts'
import { newId } from '../src/lib/ids.ts'
import { createTestApp } from '../test/helpers/app.ts'
import { register } from '../test/helpers/accounts.ts'

const CONVERSATIONS = Number(process.env.BENCH_EXPORT_CONVERSATIONS ?? 20_000)
const MESSAGE_BYTES = Number(process.env.BENCH_EXPORT_MESSAGE_KB ?? 10) * 1024
const MBPS = Number(process.env.BENCH_EXPORT_MBPS ?? 20)
const BOUND = 128 * 1024 * 1024
const MIN_EXPORT = 320 * 1024 * 1024
const mb = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MB`

async function main() {
  if (process.argv[2] === 'reader') return reader(process.argv[3]!, process.argv[4]!)
  const dialect = process.env.BENCH_DATABASE_URL ? 'postgres' : 'sqlite'
  if (process.env.BENCH_DATABASE_URL) process.env.TEST_DATABASE_URL = process.env.BENCH_DATABASE_URL
  const t = await createTestApp(dialect, { HEARTH_LOG: 'warn' })
  try {
    await register(t, 'bench_admin')
    const user = await register(t, 'bench_exporter')
    const { db, t: tables } = t.deps.database
    const t0 = performance.now()
    // one message text per conversation and position, so nothing is shared between rows
    const text = (c: number, m: number) => `${c}.${m} ` + 'lorem ipsum "quoted" \n'.repeat(Math.ceil(MESSAGE_BYTES / 22)).slice(0, MESSAGE_BYTES)
    for (let start = 0; start < CONVERSATIONS; start += 250) {
      const conversations = Array.from({ length: Math.min(250, CONVERSATIONS - start) }, (_, i) => ({ id: newId(), userId: user.id, title: `conversation ${start + i}`, messageCount: 2 }))
      await db.insert(tables.conversations).values(conversations)
      await db.insert(tables.messages).values(conversations.flatMap((c, i) => [0, 1].map((m) => ({ id: newId(), conversationId: c.id, role: m ? ('assistant' as const) : ('user' as const), content: text(start + i, m) }))))
    }
    console.log(`seeded ${CONVERSATIONS} conversations × 2 messages of ${MESSAGE_BYTES / 1024} KiB on ${dialect} in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

    const server = serveApp(t.app, { port: 0, hostname: '127.0.0.1', idleTimeout: 0 })
    Bun.gc(true)
    const base = process.memoryUsage.rss()
    let peak = base
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5)
    const gcTimer = process.env.BENCH_GC ? setInterval(() => Bun.gc(true), 250) : undefined
    const started = performance.now()
    const child = Bun.spawn([process.execPath, import.meta.path, 'reader', `http://127.0.0.1:${server.port}/api/v1/users/me/export`, user.access], { stdout: 'pipe', stderr: 'inherit' })
    const out = await new Response(child.stdout).text()
    if ((await child.exited) !== 0) throw new Error('the reader failed')
    clearInterval(timer)
    clearInterval(gcTimer)
    const seconds = (performance.now() - started) / 1000
    server.stop(true)
    const bytes = Number(out.trim())
    const growth = peak - base
    console.log(JSON.stringify({ export_bytes: bytes, peak_rss_growth_bytes: growth, seconds: Number(seconds.toFixed(2)) }))
    console.log(`export ${mb(bytes)} in ${seconds.toFixed(1)} s (${mb(bytes / seconds)}/s); peak RSS above start ${mb(growth)}`)
    const verdict = bytes < MIN_EXPORT ? 'export too small to tell (raise BENCH_EXPORT_*)' : growth < BOUND ? 'met' : 'NOT met'
    console.log(`goal: peak RSS growth < ${mb(BOUND)} while the export is ≥ ${mb(MIN_EXPORT)}: ${verdict}`)
  } finally {
    await t.close()
  }
}

/** Downloads the export (at MBPS when set), prints its size; fails unless it is a whole document. */
async function reader(url: string, token: string) {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
  if (res.status !== 200) throw new Error(`export answered ${res.status}`)
  const body = res.body!.getReader()
  let got = 0
  let tail = ''
  const t0 = performance.now()
  for (let r = await body.read(); !r.done; r = await body.read()) {
    got += r.value.byteLength
    tail = (tail + new TextDecoder().decode(r.value.subarray(-16))).slice(-16)
    if (MBPS) {
      const ahead = got / (MBPS * 1024 * 1024) - (performance.now() - t0) / 1000
      if (ahead > 0) await Bun.sleep(ahead * 1000)
    }
  }
  if (!tail.endsWith('\n]\n}\n')) throw new Error(`the export ends with ${JSON.stringify(tail)}`)
  console.log(got)
}

await main()
