/**
 * The real MCP test server (@modelcontextprotocol/server-everything), run with node as TRAPS.md
 * says: its path for stdio servers, and its HTTP transports started on a free loopback port.
 */
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'

const ROOT = join(import.meta.dir, '../..')
/** the server's entry point: `node EVERYTHING stdio|streamableHttp|sse` */
export const EVERYTHING = join(ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js')
/** a stdio server that passes everything through to the command in its arguments and appends what it received on stdin to $MCP_RECORD_FILE */
export const RECORDER = join(ROOT, 'test/fakes/mcp-recorder.mjs')
export const NODE = Bun.which('node')!

/** A stdio server row's command and args for the everything server. */
export const everythingStdio = { command: 'node', args: [EVERYTHING, 'stdio'] }

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (address && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

export interface HttpEverything {
  /** http://127.0.0.1:PORT */
  origin: string
  pid: number
  stop(): Promise<void>
}

/** The everything server over streamable HTTP (`/mcp`) or legacy SSE (`/sse`), ready to answer. */
export async function startEverythingHttp(mode: 'streamableHttp' | 'sse', port?: number): Promise<HttpEverything> {
  port ??= await freePort()
  const proc = Bun.spawn([NODE, EVERYTHING, mode], { env: { PATH: process.env.PATH ?? '', PORT: String(port) }, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' })
  const origin = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 15_000
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`server-everything ${mode} exited with ${proc.exitCode}`)
    try {
      await fetch(origin, { signal: AbortSignal.timeout(500) })
      break
    } catch {
      if (Date.now() > deadline) throw new Error(`server-everything ${mode} did not listen on ${port}`)
      await Bun.sleep(50)
    }
  }
  return {
    origin,
    pid: proc.pid,
    async stop() {
      proc.kill('SIGKILL')
      await proc.exited
    },
  }
}

/** The pid of the one process open for `serverId` among the manager's live connections (or of the only one open). */
export function onlyPid(live: { serverId: string; pid?: number }[], serverId?: string): number {
  const open = live.filter((l) => serverId === undefined || l.serverId === serverId)
  if (open.length !== 1 || !open[0]!.pid) throw new Error(`expected one process, found ${open.length}`)
  return open[0]!.pid
}

/** true while a process with this pid runs (a zombie waiting to be reaped counts as gone) */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** Wait until `check` holds (polling), or fail after `ms`. */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 5000, what = 'the condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${ms} ms`)
    await Bun.sleep(20)
  }
}
