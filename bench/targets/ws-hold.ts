/**
 * The baseline of the WebSocket benchmark (bench/ws.ts): a bare Bun.serve WebSocket server, as cheap
 * as Bun allows, with the settings Hearth's `/ws/chat` uses (pings after 30 s of silence, 1 MiB frames).
 *
 *   GET /ws       upgrades; each socket's data is `{ user }` (from `?user=`, default "u"), kept in a Set per user
 *   GET /health   200, for the harness to know it is up
 *
 * With DATABASE_URL set it also LISTENs on `hearth_session_frames` (the channel Hearth's bus uses for
 * session frames, envelope `{ o, m }`) and sends each message's frame, without `user_id`, to that
 * user's sockets — what Hearth's hub does, minus everything else. Listens on 127.0.0.1:$PORT (default:
 * a port the OS picks) and prints `{"port":N}` on stdout once ready.
 */
import postgres from 'postgres'
import type { ServerWebSocket } from 'bun'

type Data = { user: string }
const byUser = new Map<string, Set<ServerWebSocket<Data>>>()

const server = Bun.serve<Data>({
  hostname: process.env.HOST || '127.0.0.1',
  port: Number(process.env.PORT || 0),
  fetch(request, server) {
    const url = new URL(request.url)
    if (url.pathname !== '/ws') return new Response('ok')
    if (server.upgrade(request, { data: { user: url.searchParams.get('user') ?? 'u' } })) return undefined
    return new Response('expected a websocket', { status: 400 })
  },
  websocket: {
    idleTimeout: 30,
    sendPings: true,
    maxPayloadLength: 1024 * 1024,
    perMessageDeflate: false,
    open(ws) {
      let set = byUser.get(ws.data.user)
      if (!set) byUser.set(ws.data.user, (set = new Set()))
      set.add(ws)
    },
    message(ws, message) {
      if (message === '{"type":"PING"}') ws.send('{"type":"PONG"}')
    },
    close(ws) {
      byUser.get(ws.data.user)?.delete(ws)
    },
  },
})

if (process.env.DATABASE_URL) {
  const sql = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} })
  await sql.listen('hearth_session_frames', (raw) => {
    const { m } = JSON.parse(raw) as { m: { user_id: string } }
    const sockets = byUser.get(m.user_id)
    if (!sockets) return
    const { user_id: _, ...frame } = m
    const text = JSON.stringify(frame)
    for (const ws of sockets) ws.send(text)
  })
}

process.stdout.write(`${JSON.stringify({ port: server.port })}\n`)
