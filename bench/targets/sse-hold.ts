/**
 * The baseline of the idle-subscriber benchmark (bench/chat.ts): a bare Bun.serve that holds any number
 * of server-sent-event streams, as cheaply as Bun allows, with the traffic Hearth's idle subscribers get.
 *
 *   GET /stream   text/event-stream: `: connected` at once, `: ping` every 15 s (a setInterval per
 *                 stream, the plainest way), and one shared event `id: N / event: tick / data: {}`
 *                 a second to every open stream (Hearth's subscribers get one delta a second from the run)
 *   GET /health   200, for the harness to know it is up
 *
 * Each stream is a plain ReadableStream; nothing else is kept per connection but its controller in a
 * Set. idleTimeout is 120 s, as in src/index.ts. Listens on 127.0.0.1:$PORT (default: a port the OS
 * picks) and prints the port on stdout.
 */
export {}

const encoder = new TextEncoder()
const CONNECTED = encoder.encode(': connected\n\n')
const PING = encoder.encode(': ping\n\n')
const PING_MS = Number(process.env.PING_MS || 15_000)

const open = new Set<ReadableStreamDefaultController<Uint8Array>>()
let tick = 0
setInterval(() => {
  tick++
  const event = encoder.encode(`id: ${tick}\nevent: tick\ndata: {}\n\n`)
  for (const controller of open) controller.enqueue(event)
}, 1_000)

const headers = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' }

const server = Bun.serve({
  hostname: process.env.HOST || '127.0.0.1',
  port: Number(process.env.PORT || 0),
  idleTimeout: 120,
  fetch(request) {
    if (new URL(request.url).pathname !== '/stream') return new Response('ok')
    let ping: Timer | undefined
    let self: ReadableStreamDefaultController<Uint8Array> | undefined
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        self = controller
        controller.enqueue(CONNECTED)
        open.add(controller)
        ping = setInterval(() => controller.enqueue(PING), PING_MS)
      },
      cancel() {
        clearInterval(ping)
        if (self) open.delete(self)
      },
    })
    return new Response(stream, { headers })
  },
})
console.log(server.port)

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    void server.stop(true).then(() => process.exit(0))
  })
}
