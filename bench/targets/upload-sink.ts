/**
 * The baseline of the upload part of bench/files.ts: a bare Bun.serve that streams a request body to
 * disk the way Hearth's local storage writes a file — each chunk hashed (SHA-256) and written with
 * `await handle.write(chunk)` (node:fs/promises) before the next is read — with no multipart parsing,
 * auth, quota or database. The floor for storing an upload on Bun: what Hearth's route costs on top is
 * the distance between the two rows. Run as its own process.
 *
 *   POST /upload  stores the body under $DIR (a new file per request, deleted once answered) and answers
 *                 200 {"bytes": n, "sha256": "<hex of the whole body>"}
 *   GET /health   200, for the harness to know it is up
 *
 * maxRequestBodySize is $MAX_BYTES (default 1 GiB). Listens on 127.0.0.1:$PORT (default: a port the OS
 * picks) and prints the port on stdout.
 */
import { open, rm } from 'node:fs/promises'
import { join } from 'node:path'

const dir = process.env.DIR
if (!dir) {
  process.stderr.write('upload-sink: set DIR to the directory to write to\n')
  process.exit(2)
}

const server = Bun.serve({
  hostname: process.env.HOST || '127.0.0.1',
  port: Number(process.env.PORT || 0),
  maxRequestBodySize: Number(process.env.MAX_BYTES || 1024 ** 3),
  async fetch(request) {
    if (new URL(request.url).pathname !== '/upload' || request.method !== 'POST' || !request.body) return new Response('ok')
    const path = join(dir, crypto.randomUUID())
    const handle = await open(path, 'wx', 0o600)
    const hasher = new Bun.CryptoHasher('sha256')
    let bytes = 0
    try {
      const reader = request.body.getReader()
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        hasher.update(value)
        bytes += value.byteLength
        let offset = 0
        while (offset < value.byteLength) offset += (await handle.write(value, offset)).bytesWritten
      }
    } finally {
      await handle.close()
      await rm(path, { force: true })
    }
    return Response.json({ bytes, sha256: hasher.digest('hex') })
  },
})
console.log(server.port)

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    void server.stop(true).then(() => process.exit(0))
  })
}
