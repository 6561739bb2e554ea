/**
 * The download client of bench/files.ts, run as its own process: `downloads` full GETs of one URL,
 * `parallel` at a time, each body read to its end and thrown away (only counted), then one JSON line
 * (DownloadResult) on stdout. A download counts when it answers 200 with exactly `bytes` bytes (and a
 * Content-Length saying so); anything else is an error. With `hash: true` each body is also hashed
 * (SHA-256), to check what a server sends; the harness does that once per server, not while timing.
 *
 *   bun bench/targets/download-client.ts '{"url":"http://127.0.0.1:8080/api/v1/files/ID/content","headers":{"authorization":"Bearer …"},"bytes":104857600,"downloads":20,"parallel":4}'
 *
 * config: { url, headers?, bytes, downloads, parallel, hash? (false), timeoutMs? (120000 per download) }
 */

export interface DownloadResult {
  downloads: number
  ok: number
  errors: number
  error_samples: string[]
  /** body bytes read over all downloads, good or not */
  bytes: number
  /** from just before the first fetch() to the end of the last body */
  wall_ms: number
  /** each good download's time, from just before its fetch() to the end of its body */
  each_ms: number[]
  /** with hash: the hex SHA-256 of each good download's body */
  sha256: string[]
  /** this process's CPU time (user + system) during the downloads */
  cpu_ms: number
}

type Config = { url: string; headers?: Record<string, string>; bytes: number; downloads: number; parallel: number; hash?: boolean; timeoutMs?: number }

const config = JSON.parse(process.argv[2] ?? 'null') as Config | null
if (!config || typeof config.url !== 'string' || !Number.isInteger(config.bytes) || !(config.downloads >= 1) || !(config.parallel >= 1)) {
  process.stderr.write('usage: bun bench/targets/download-client.ts \'{"url":…,"bytes":104857600,"downloads":20,"parallel":4}\'\n')
  process.exit(2)
}
const MAX_SAMPLES = 5

const result: DownloadResult = { downloads: config.downloads, ok: 0, errors: 0, error_samples: [], bytes: 0, wall_ms: 0, each_ms: [], sha256: [], cpu_ms: 0 }

function fail(what: string): void {
  result.errors++
  if (result.error_samples.length < MAX_SAMPLES) result.error_samples.push(what)
}

async function downloadOnce(): Promise<void> {
  const started = performance.now()
  try {
    const response = await fetch(config!.url, { headers: config!.headers, signal: AbortSignal.timeout(config!.timeoutMs ?? 120_000) })
    if (response.status !== 200) {
      fail(`status ${response.status}: ${(await response.text()).slice(0, 200)}`)
      return
    }
    const declared = response.headers.get('content-length')
    const hasher = config!.hash ? new Bun.CryptoHasher('sha256') : undefined
    let bytes = 0
    const reader = response.body!.getReader()
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      bytes += value.byteLength
      hasher?.update(value)
    }
    result.bytes += bytes
    if (bytes !== config!.bytes) fail(`${bytes} bytes read, expected ${config!.bytes}`)
    else if (declared !== String(config!.bytes)) fail(`Content-Length ${declared ?? 'missing'}, expected ${config!.bytes}`)
    else {
      result.ok++
      result.each_ms.push(performance.now() - started)
      if (hasher) result.sha256.push(hasher.digest('hex'))
    }
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error))
  }
}

const cpuBefore = process.cpuUsage()
const started = performance.now()
let next = 0
await Promise.all(
  Array.from({ length: Math.min(config.parallel, config.downloads) }, async () => {
    while (next < config!.downloads) {
      next++
      await downloadOnce()
    }
  }),
)
result.wall_ms = performance.now() - started
const cpu = process.cpuUsage(cpuBefore)
result.cpu_ms = (cpu.user + cpu.system) / 1000
console.log(JSON.stringify(result))
