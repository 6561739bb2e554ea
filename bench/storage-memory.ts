/**
 * @module `bun bench/storage-memory.ts`: memory of a 100 MB upload and download through the S3 store,
 * against s3rver (test/helpers/s3.ts) behind a proxy that delays every request (BENCH_S3_DELAY_MS,
 * default 250) as a remote store would. Each case runs in its own process and prints the peak RSS
 * above its start. Uploads: the store (Bun's upload fed from a ReadableStream, 2 and 5 parts in flight)
 * and, to compare, Bun's `S3File.writer()` written as fast as chunks come and with a `flush()` per
 * part. Download: `new Response(storage.file(key).stream())` from Bun.serve to a client reading 5 MB/s.
 * BENCH_S3_MB sets the size (default 100).
 */
import { S3Client } from 'bun'
import type { S3Settings } from '../src/config.ts'
import { createS3Storage } from '../src/storage/s3.ts'
import { startS3 } from '../test/helpers/s3.ts'

const MB = Number(process.env.BENCH_S3_MB ?? 100)
const TOTAL = MB * 1024 * 1024
const CHUNK = 64 * 1024
const PART = 5 * 1024 * 1024
const mb = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MB`

/** Peak RSS above the start while `run` goes (sampled every 5 ms). */
async function peakRss(run: () => Promise<void>): Promise<{ peak: number; seconds: number }> {
  Bun.gc(true)
  const base = process.memoryUsage.rss()
  let peak = base
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5)
  const t0 = performance.now()
  await run()
  clearInterval(timer)
  return { peak: Math.max(peak, process.memoryUsage.rss()) - base, seconds: (performance.now() - t0) / 1000 }
}

/** One fresh 64 KiB chunk per write, as a request body delivers them. */
const chunk = () => new Uint8Array(CHUNK).fill(CHUNK & 0xff)

async function caseMain(name: string, settings: S3Settings) {
  const key = `bench/${name}`
  let result
  if (name === 'store-q2' || name === 'store-q5') {
    const storage = createS3Storage({ ...settings, queueSize: name === 'store-q2' ? 2 : 5 })
    result = await peakRss(async () => {
      const u = await storage.begin(key, 'application/octet-stream')
      for (let n = 0; n < TOTAL; n += CHUNK) await u.write(chunk())
      await u.commit()
    })
  } else if (name === 'writer' || name === 'writer-flush') {
    const client = new S3Client({ ...settings })
    result = await peakRss(async () => {
      const w = client.file(key).writer()
      for (let n = 0, since = 0; n < TOTAL; n += CHUNK) {
        w.write(chunk())
        since += CHUNK
        if (name === 'writer-flush' && since >= PART) {
          since = 0
          await w.flush()
        } else await Promise.resolve()
      }
      await w.end()
    })
  } else if (name === 'download') {
    const storage = createS3Storage(settings)
    const u = await storage.begin(key, 'application/octet-stream')
    for (let n = 0; n < TOTAL; n += CHUNK) await u.write(chunk())
    await u.commit()
    const server = Bun.serve({ port: 0, hostname: '127.0.0.1', idleTimeout: 0, fetch: () => new Response(storage.file(key).stream()) })
    result = await peakRss(async () => {
      const reader = Bun.spawn([process.execPath, import.meta.path, 'slow-reader', `http://127.0.0.1:${server.port}/`], { stdout: 'inherit', stderr: 'inherit' })
      if ((await reader.exited) !== 0) throw new Error('the slow reader failed')
    })
    server.stop(true)
  } else throw new Error(`unknown case ${name}`)
  const size = (await new S3Client({ ...settings }).stat(key)).size
  if (size !== TOTAL) throw new Error(`${name}: stored ${size} bytes, not ${TOTAL}`)
  console.log(JSON.stringify({ name, ...result }))
}

/** Reads a response at about 5 MB/s. */
async function slowReader(url: string) {
  const response = await fetch(url)
  const reader = response.body!.getReader()
  let got = 0
  const t0 = performance.now()
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    got += r.value.byteLength
    const ahead = got / (5 * 1024 * 1024) - (performance.now() - t0) / 1000
    if (ahead > 0) await Bun.sleep(ahead * 1000)
  }
  if (got !== TOTAL) throw new Error(`read ${got} bytes, not ${TOTAL}`)
}

/** Forwards to the store after a delay, streaming bodies both ways. */
function startDelayProxy(target: string, delayMs: number) {
  return Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    async fetch(req) {
      await Bun.sleep(delayMs)
      const url = new URL(req.url)
      return fetch(target + url.pathname + url.search, { method: req.method, headers: req.headers, body: req.body, redirect: 'manual', decompress: false })
    },
  })
}

async function main() {
  const s3 = await startS3('bench')
  const proxy = startDelayProxy(s3.settings.endpoint, Number(process.env.BENCH_S3_DELAY_MS ?? 250))
  const settings = { ...s3.settings, endpoint: `http://127.0.0.1:${proxy.port}` }
  try {
    console.log(`${MB} MB in 64 KiB chunks; every store request delayed ${process.env.BENCH_S3_DELAY_MS ?? 250} ms\n`)
    console.log('case'.padEnd(40), 'peak RSS above start'.padEnd(22), 'time')
    const labels: Record<string, string> = {
      'store-q2': 'upload: the store (2 parts in flight)',
      'store-q5': 'upload: the store (5 parts in flight)',
      writer: 'upload: writer(), no flush',
      'writer-flush': 'upload: writer(), flush() per part',
      download: 'download to a 5 MB/s reader',
    }
    for (const name of Object.keys(labels)) {
      const child = Bun.spawn([process.execPath, import.meta.path, 'case', name, JSON.stringify(settings)], { stdout: 'pipe', stderr: 'inherit' })
      const out = await new Response(child.stdout).text()
      if ((await child.exited) !== 0) throw new Error(`${name} failed`)
      const { peak, seconds } = JSON.parse(out.trim().split('\n').pop()!)
      console.log(labels[name]!.padEnd(40), mb(peak).padEnd(22), `${seconds.toFixed(1)} s`)
    }
  } finally {
    proxy.stop(true)
    await s3.stop()
  }
}

const [mode, ...args] = process.argv.slice(2)
if (mode === 'case') await caseMain(args[0]!, JSON.parse(args[1]!))
else if (mode === 'slow-reader') await slowReader(args[0]!)
else await main()
