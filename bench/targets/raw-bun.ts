/**
 * The baseline: a bare Bun.serve answering every request with a constant {"status":"healthy"}, the same
 * body Hearth's GET /health returns. Run as its own process so it does not share the load generator's
 * event loop. Listens on 127.0.0.1:$PORT (default: a port the OS picks) and prints the port on stdout.
 */
const server = Bun.serve({
  hostname: process.env.HOST || '127.0.0.1',
  port: Number(process.env.PORT || 0),
  fetch: () => Response.json({ status: 'healthy' }),
})
console.log(server.port)

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    void server.stop(true).then(() => process.exit(0))
  })
}
