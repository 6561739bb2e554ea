/**
 * The upload client of bench/files.ts, run as its own process: one multipart upload of a generated file
 * to POST /api/v1/files, streamed. The body is a ReadableStream that writes the form by hand — the
 * `purpose` field, then the `file` part's headers, the file's bytes as they are generated (256 KiB at a
 * time, only when fetch asks for more) and the closing boundary — so neither side ever holds the file;
 * the SHA-256 of the file is computed as its bytes are made. With a Content-Length (the exact size of
 * the form) unless `chunked` is set.
 *
 *   bun bench/targets/upload-client.ts '{"url":"http://127.0.0.1:8080/api/v1/files","token":"…","bytes":209715200}'
 *
 * config: { url, token? (sent as a Bearer token), bytes, purpose? ('attachment'), fileName? ('bench.bin'), chunked? (false), timeoutMs? (300000) }
 *
 * Prints one JSON line (UploadResult) on stdout. Exits 0 whenever it got an answer, whatever its status
 * (the harness judges it); 1 when the request itself failed.
 */

export interface UploadResult {
  status: number
  /** the answer's body, parsed when it is JSON, else its first 500 characters */
  body: unknown
  /** bytes of the file sent, and of the whole form */
  file_bytes: number
  body_bytes: number
  /** hex SHA-256 of the file's bytes, as this client generated them */
  sha256: string
  /** how the body was framed: a Content-Length of the whole form, or chunked */
  framing: 'content-length' | 'chunked'
  /** from just before fetch() to the end of the answer */
  ms: number
  /** this process's peak RSS, bytes, and its CPU time */
  max_rss: number
  cpu_ms: number
}

type Config = { url: string; token?: string; bytes: number; purpose?: string; fileName?: string; chunked?: boolean; timeoutMs?: number }

const config = JSON.parse(process.argv[2] ?? 'null') as Config | null
if (!config || typeof config.url !== 'string' || (config.token !== undefined && typeof config.token !== 'string') || !Number.isInteger(config.bytes) || config.bytes < 1) {
  process.stderr.write('usage: bun bench/targets/upload-client.ts \'{"url":"http://127.0.0.1:8080/api/v1/files","token":"…","bytes":209715200}\'\n')
  process.exit(2)
}

const CHUNK = 256 * 1024
const encoder = new TextEncoder()
const boundary = `----hearth-bench-${crypto.randomUUID().replaceAll('-', '')}`
const fileName = config.fileName ?? 'bench.bin'
const head = encoder.encode(
  `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n${config.purpose ?? 'attachment'}\r\n` +
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${fileName}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
)
const tail = encoder.encode(`\r\n--${boundary}--\r\n`)
const bodyBytes = head.byteLength + config.bytes + tail.byteLength

// 1 MiB of random bytes, cycled; each chunk also carries its index in its first 8 bytes, so no two chunks are alike.
const pattern = new Uint8Array(1024 * 1024)
for (let offset = 0; offset < pattern.byteLength; offset += 65_536) crypto.getRandomValues(pattern.subarray(offset, offset + 65_536))

const hasher = new Bun.CryptoHasher('sha256')
let made = 0
let index = 0
let headSent = false
let tailSent = false

const body = new ReadableStream<Uint8Array>({
  pull(controller) {
    if (!headSent) {
      headSent = true
      controller.enqueue(head.slice())
      return
    }
    if (made < config.bytes) {
      const size = Math.min(CHUNK, config.bytes - made)
      // a fresh buffer per chunk: fetch may still be writing the previous one
      const chunk = new Uint8Array(size)
      const start = (index * CHUNK) % pattern.byteLength
      chunk.set(pattern.subarray(start, start + size))
      new DataView(chunk.buffer).setFloat64(0, index)
      index++
      made += size
      hasher.update(chunk)
      controller.enqueue(chunk)
      return
    }
    if (!tailSent) {
      tailSent = true
      controller.enqueue(tail.slice())
      return
    }
    controller.close()
  },
})

const headers: Record<string, string> = { 'content-type': `multipart/form-data; boundary=${boundary}` }
if (config.token) headers.authorization = `Bearer ${config.token}`
if (!config.chunked) headers['content-length'] = String(bodyBytes)

const cpuBefore = process.cpuUsage()
const started = performance.now()
try {
  const response = await fetch(config.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(config.timeoutMs ?? 300_000) })
  const text = await response.text()
  const ms = performance.now() - started
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    parsed = text.slice(0, 500)
  }
  const cpu = process.cpuUsage(cpuBefore)
  const result: UploadResult = {
    status: response.status,
    body: parsed,
    file_bytes: made,
    body_bytes: bodyBytes,
    sha256: hasher.digest('hex'),
    framing: config.chunked ? 'chunked' : 'content-length',
    ms,
    max_rss: process.resourceUsage().maxRSS * 1024,
    cpu_ms: (cpu.user + cpu.system) / 1000,
  }
  console.log(JSON.stringify(result))
} catch (error) {
  process.stderr.write(`upload-client: ${error instanceof Error ? error.message : String(error)} (after ${made} of ${config.bytes} file bytes)\n`)
  process.exit(1)
}
