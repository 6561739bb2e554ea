/** A real WebSocket client (Bun's) for `/ws/chat` tests: frames as they come, waits for one, and how the socket closed. */
import { serveApp } from '../../src/app.ts'
import type { TestApp } from './app.ts'

export interface TestSocket {
  ws: WebSocket
  /** every frame received so far, parsed */
  frames: any[]
  /** resolves once open (rejects when the handshake fails) */
  opened: Promise<void>
  /** resolves with the close code and reason */
  closed: Promise<{ code: number; reason: string }>
  send(frame: unknown): void
  sendRaw(data: string | Uint8Array): void
  /** the next frame (after those already taken) that matches, within `ms` */
  next(match?: string | ((f: any) => boolean), ms?: number): Promise<any>
  /** frames that arrive within `ms` from now */
  quietFor(ms: number): Promise<any[]>
  close(): void
}

export interface SocketOptions {
  token?: string
  protocols?: string[]
  headers?: Record<string, string>
  query?: string
}

/** Listen on loopback with the WebSocket handlers (as src/index.ts does). */
export function listen(t: TestApp) {
  const server = serveApp(t.app, { port: 0, hostname: '127.0.0.1', idleTimeout: 30 })
  return { server, url: `ws://127.0.0.1:${server.port}/ws/chat`, http: `http://127.0.0.1:${server.port}` }
}

export function openSocket(url: string, opts: SocketOptions = {}): TestSocket {
  const q = [opts.token !== undefined ? `token=${encodeURIComponent(opts.token)}` : '', opts.query ?? ''].filter(Boolean).join('&')
  const ws = new WebSocket(q ? `${url}?${q}` : url, { headers: opts.headers, protocols: opts.protocols } as never)
  const frames: any[] = []
  let taken = 0
  const waiters = new Set<() => void>()
  ws.onmessage = (e) => {
    frames.push(typeof e.data === 'string' ? JSON.parse(e.data) : e.data)
    for (const w of [...waiters]) w()
  }
  const opened = new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve()
    ws.onerror = () => reject(new Error('websocket error'))
  })
  opened.catch(() => {})
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.onclose = (e) => {
      resolve({ code: e.code, reason: e.reason })
      for (const w of [...waiters]) w()
    }
  })
  const matches = (f: any, match?: string | ((f: any) => boolean)) => (match === undefined ? true : typeof match === 'string' ? f?.type === match : match(f))
  return {
    ws,
    frames,
    opened,
    closed,
    send: (frame) => ws.send(JSON.stringify(frame)),
    sendRaw: (data) => ws.send(data),
    next(match, ms = 3000) {
      return new Promise((resolve, reject) => {
        const look = () => {
          while (taken < frames.length) {
            const f = frames[taken++]
            if (matches(f, match)) {
              done()
              return resolve(f)
            }
          }
          if (ws.readyState === WebSocket.CLOSED) {
            done()
            reject(new Error(`socket closed while waiting for ${String(match)}; frames: ${JSON.stringify(frames)}`))
          }
        }
        const timer = setTimeout(() => {
          done()
          reject(new Error(`no ${String(match ?? 'frame')} within ${ms} ms; frames: ${JSON.stringify(frames).slice(0, 2000)}`))
        }, ms)
        const done = () => {
          clearTimeout(timer)
          waiters.delete(look)
        }
        waiters.add(look)
        look()
      })
    },
    async quietFor(ms) {
      const from = frames.length
      await Bun.sleep(ms)
      return frames.slice(from)
    },
    close: () => ws.close(),
  }
}
