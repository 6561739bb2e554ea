/**
 * The real server as a child process, for tests that kill it (SIGKILL, SIGTERM) and start it
 * again on the same data dir or database: `serverProcesses()` for a test file, which kills what
 * is left and removes its databases after the file.
 */
import { afterAll } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import type { Dialect } from '../../src/db/index.ts'
import { createTestDatabase } from './db.ts'

const ENTRY = join(import.meta.dir, '../../src/index.ts')

export interface ServerProcess {
  proc: Subprocess<'ignore', 'pipe', 'pipe'>
  base: string
  output(): string
}

/** Test settings: generous limits, loopback fakes usable. */
const SERVER_ENV = { PORT: '0', HOST: '127.0.0.1', HEARTH_LOG: 'info', HEARTH_RATE_LIMIT: '100000/min', HEARTH_AUTH_RATE_LIMIT: '100000/min', HEARTH_ALLOW_PRIVATE_UPSTREAMS: 'true' }

/** A JSON request to a server process: status and parsed body (text when not JSON). */
export async function callServer(base: string, method: string, path: string, token?: string, body?: unknown) {
  const headers: Record<string, string> = {}
  if (token) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  return { status: res.status, body: (res.headers.get('content-type') ?? '').includes('json') && text ? JSON.parse(text) : text }
}

export function serverProcesses() {
  const live = new Set<Subprocess>()
  const cleanups: (() => Promise<void> | void)[] = []
  afterAll(async () => {
    for (const proc of live) proc.kill('SIGKILL')
    await Promise.all([...live].map((p) => p.exited))
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => {})
  })

  return {
    /** The environment of a fresh server on `dialect` (its own data dir, and on Postgres its own database), with `extra` on top. */
    async environment(dialect: Dialect, extra: Record<string, string> = {}): Promise<Record<string, string>> {
      if (dialect === 'postgres') {
        const db = await createTestDatabase('postgres')
        cleanups.push(() => db.drop())
        return { HEARTH_DATA_DIR: db.dataDir, DATABASE_URL: db.url!, ...SERVER_ENV, ...extra }
      }
      const dataDir = mkdtempSync(join(tmpdir(), 'hearth-process-'))
      cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
      return { HEARTH_DATA_DIR: dataDir, ...SERVER_ENV, ...extra }
    },

    /** Start `hearth serve` and wait for its "listening" line; its output is drained (and kept) from then on. */
    async start(env: Record<string, string>): Promise<ServerProcess> {
      const proc = Bun.spawn([process.execPath, ENTRY], {
        env: { PATH: process.env.PATH ?? '', ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}), ...env },
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
      })
      live.add(proc)
      void proc.exited.then(() => live.delete(proc))
      let out = ''
      let err = ''
      /** every chunk of `stream`, as it comes, until it ends */
      const drain = async (stream: ReadableStream<Uint8Array>, onText: (text: string) => void) => {
        const reader = stream.getReader()
        const textDecoder = new TextDecoder()
        for (;;) {
          const { value, done } = await reader.read()
          if (done) return
          onText(textDecoder.decode(value, { stream: true }))
        }
      }
      void drain(proc.stderr, (text) => (err += text)).catch(() => {})
      const { promise: listening, resolve, reject } = Promise.withResolvers<string>()
      void drain(proc.stdout, (text) => {
        out += text
        const port = /"msg":"listening","url":"http:\/\/[^"]*:(\d+)"/.exec(out)?.[1]
        if (port) resolve(port)
      })
        .then(() => reject(new Error(`the server exited before listening:\n${out}\n${err}`)))
        .catch(reject)
      const timer = setTimeout(() => reject(new Error(`the server did not listen within 20 s:\n${out}\n${err}`)), 20_000)
      try {
        const port = await listening
        return { proc, base: `http://127.0.0.1:${port}`, output: () => out + err }
      } catch (error) {
        proc.kill('SIGKILL')
        throw error
      } finally {
        clearTimeout(timer)
      }
    },
  }
}
