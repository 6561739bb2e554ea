/**
 * The floor for any gateway written on Bun: a bare Bun.serve that forwards every POST body to
 * UPSTREAM (an OpenAI-compatible base URL, e.g. http://127.0.0.1:1234/v1) + /chat/completions with
 * Bun's fetch and streams the upstream's body back — no auth, no validation, no usage, no database.
 * Run as its own process; listens on 127.0.0.1:$PORT (default: a port the OS picks), prints its
 * origin on stdout once it listens, and answers any GET with 200 (its ready check).
 *
 * The body is passed on by a pull-based ReadableStream, as Hearth's relay does: measured here, that
 * costs less CPU per streamed completion (~110 µs) than handing Bun the fetch body itself
 * (`new Response(res.body)`, ~170 µs), so this is the cheaper of the two, i.e. the floor.
 */
export {}

const upstream = `${process.env.UPSTREAM}/chat/completions`

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: Number(process.env.PORT || 0),
  async fetch(req) {
    if (req.method === 'GET') return new Response('ok')
    const res = await fetch(upstream, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: req.headers.get('authorization') ?? '' },
      body: await req.text(),
      signal: req.signal,
    })
    const reader = res.body!.getReader()
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { value, done } = await reader.read()
        if (done) controller.close()
        else controller.enqueue(value)
      },
      cancel: (reason) => reader.cancel(reason),
    })
    return new Response(body, { status: res.status, headers: { 'content-type': res.headers.get('content-type') ?? 'text/event-stream' } })
  },
})
console.log(`http://127.0.0.1:${server.port}`)

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    void server.stop(true).then(() => process.exit(0))
  })
}
