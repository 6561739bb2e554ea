import { createTestApp } from './test/helpers/app.ts'
import { register } from './test/helpers/accounts.ts'
const t = await createTestApp('sqlite', { HEARTH_UPLOAD_MAX_BYTES: '300MiB', HEARTH_LOG: 'warn' })
const a = await register(t, 'big')
const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: t.app.fetch, idleTimeout: 60, maxRequestBodySize: 1024 ** 3 })
Bun.gc(true)
const base = process.memoryUsage().rss
let peak = base
const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss) }, 20)
const size = 200 * 1024 * 1024
const chunk = new Uint8Array(1024 * 1024).fill(7)
let sent = 0
const head = new TextEncoder().encode('--B\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nattachment\r\n--B\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n')
const body = new ReadableStream({ start(c) { c.enqueue(head) }, pull(c) { if (sent >= size) { c.enqueue(new TextEncoder().encode('\r\n--B--\r\n')); return c.close() } sent += chunk.byteLength; c.enqueue(chunk) } })
const started = performance.now()
const r = await fetch(`http://127.0.0.1:${server.port}/api/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${a.access}`, 'content-type': 'multipart/form-data; boundary=B' }, body, duplex: 'half' } as RequestInit)
const ms = performance.now() - started
clearInterval(timer)
console.log(r.status, (await r.json()).file_size, `base ${(base / 2 ** 20).toFixed(0)} MiB, peak ${(peak / 2 ** 20).toFixed(0)} MiB, +${((peak - base) / 2 ** 20).toFixed(0)} MiB, ${(ms / 1000).toFixed(1)} s`)
server.stop(true); await t.close()
