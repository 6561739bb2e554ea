/**
 * The baseline of the download part of bench/files.ts: a bare Bun.serve sending one file from disk with
 * `new Response(Bun.file(path))` (Bun sends it with sendfile), the least any Bun server can do to serve a
 * stored file. Run as its own process.
 *
 *   GET /file     the file at $FILE, 200, Content-Length, application/octet-stream
 *   GET /health   200, for the harness to know it is up
 *
 * Listens on 127.0.0.1:$PORT (default: a port the OS picks) and prints the port on stdout.
 */
export {}

const path = process.env.FILE
if (!path) {
  process.stderr.write('static-file: set FILE to the file to serve\n')
  process.exit(2)
}

const server = Bun.serve({
  hostname: process.env.HOST || '127.0.0.1',
  port: Number(process.env.PORT || 0),
  fetch(request) {
    if (new URL(request.url).pathname !== '/file') return new Response('ok')
    return new Response(Bun.file(path, { type: 'application/octet-stream' }))
  },
})
console.log(server.port)

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    void server.stop(true).then(() => process.exit(0))
  })
}
