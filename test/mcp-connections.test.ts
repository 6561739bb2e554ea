/**
 * The MCP connection manager against the real server-everything, over stdio (spawned with node),
 * streamable HTTP and legacy SSE on loopback: sharing, the child's environment, cancellation,
 * timeouts, crashes and restarts, idle stops, process-group kills, and servers that misbehave.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger } from '../src/lib/logger.ts'
import { ConnectionFailed, createConnections, type ConnectionStatus, type ServerTarget } from '../src/modules/mcp/connections.ts'
import { alive, EVERYTHING, eventually, everythingStdio, freePort, onlyPid, RECORDER, startEverythingHttp, type HttpEverything } from './helpers/mcp.ts'

const logger = createLogger('error', () => {})
const dir = mkdtempSync(join(tmpdir(), 'hearth-mcp-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

let n = 0
function stdio(over: Partial<ServerTarget> = {}): ServerTarget {
  return { serverId: `s${n++}`, ownerId: null, transport: 'stdio', ...everythingStdio, env: { PATH: process.env.PATH! }, url: null, headers: {}, timeoutMs: 10_000, userId: null, fetch, ...over }
}

function manager(options: Partial<Parameters<typeof createConnections>[0]> = {}) {
  const statuses: ConnectionStatus[] = []
  const connections = createConnections({ logger, version: '0.0.0-test', onStatus: (s) => statuses.push(s), ...options })
  return { connections, statuses }
}

const pidOf = (c: ReturnType<typeof manager>['connections'], serverId?: string) => onlyPid(c.live(), serverId)
const text = (result: { content?: unknown }) => ((result.content as { text?: string }[])[0]?.text ?? '') as string
const echo = (c: ReturnType<typeof manager>['connections'], target: ServerTarget, message = 'hi') => c.use(target, (client) => client.callTool({ name: 'echo', arguments: { message } }))
const longCall = (c: ReturnType<typeof manager>['connections'], target: ServerTarget, signal?: AbortSignal, timeout = target.timeoutMs) =>
  c.use(target, (client) => client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 10, steps: 10 } }, { signal, timeout }))

/** Whether the process recorded in `file` (the recorder's MCP_RECORD_FILE) received a notifications/cancelled. */
const cancelledIn = (file: string) =>
  existsSync(file) &&
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .some((line) => JSON.parse(line).method === 'notifications/cancelled')

describe('MCP connections over stdio', () => {
  const { connections, statuses } = manager()
  afterAll(() => connections.close())

  test('a first use starts the server; tools list and answer; the server says who it is', async () => {
    const target = stdio()
    const { tools, info } = await connections.use(target, async (client) => ({ tools: (await client.listTools()).tools.map((t) => t.name), info: client.getServerVersion() }))
    expect(tools).toEqual(expect.arrayContaining(['echo', 'get-sum', 'get-env', 'trigger-long-running-operation']))
    expect(info?.name).toBe('mcp-servers/everything')
    expect(text(await echo(connections, target, 'hello'))).toBe('Echo: hello')
    expect(text(await connections.use(target, (c) => c.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } })))).toContain('42')
    expect(statuses.filter((s) => s.serverId === target.serverId)).toEqual([{ serverId: target.serverId, ownerId: null, userId: null, status: 'connected', error: null }])
  }, 20_000)

  test('200 concurrent calls share one process, none fails', async () => {
    const target = stdio()
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => echo(connections, target, `m${i}`)))
    expect(results.map(text)).toEqual(Array.from({ length: 200 }, (_, i) => `Echo: m${i}`))
    expect(connections.live().filter((l) => l.serverId === target.serverId)).toEqual([{ serverId: target.serverId, userId: null, connected: true, inFlight: 0, pid: expect.any(Number) }])
  }, 20_000)

  test('a 4 MB answer arrives whole', async () => {
    const big = 'x'.repeat(4 * 1024 * 1024)
    const started = performance.now()
    expect(text(await echo(connections, stdio(), big))).toBe(`Echo: ${big}`)
    expect(performance.now() - started).toBeLessThan(3000)
  }, 20_000)

  test("the child's environment is its own env and PATH only: none of Hearth's settings, not even HOME", async () => {
    process.env.HEARTH_SECRET = 'hearth-secret-must-not-leak'
    process.env.DATABASE_URL = 'postgres://leak@example/db'
    try {
      const target = stdio({ env: { PATH: process.env.PATH!, API_TOKEN: 'mine' } })
      const env = JSON.parse(text(await connections.use(target, (c) => c.callTool({ name: 'get-env', arguments: {} }))))
      expect(Object.keys(env).sort()).toEqual(['API_TOKEN', 'PATH'])
      expect(env.API_TOKEN).toBe('mine')
      expect(JSON.stringify(env)).not.toContain('leak')
    } finally {
      delete process.env.HEARTH_SECRET
      delete process.env.DATABASE_URL
    }
  }, 20_000)

  test('callers with the same server and credentials share a process; other credentials get their own', async () => {
    const base = stdio()
    const same = { ...base, env: { ...base.env } }
    const other = { ...base, env: { ...base.env, TOKEN: 'b' }, userId: 'user-b' }
    await Promise.all([echo(connections, base), echo(connections, same), echo(connections, other)])
    const pids = connections.live().filter((l) => l.serverId === base.serverId)
    expect(pids).toHaveLength(2)
    expect(new Set(pids.map((p) => p.pid)).size).toBe(2)
  }, 20_000)

  test("a call cancelled by the caller's signal ends at once, the server receives notifications/cancelled, and the connection goes on", async () => {
    const record = join(dir, 'cancel.jsonl')
    const target = stdio({ command: 'node', args: [RECORDER, 'node', EVERYTHING, 'stdio'], env: { PATH: process.env.PATH!, MCP_RECORD_FILE: record } })
    await echo(connections, target)
    const abort = new AbortController()
    const call = longCall(connections, target, abort.signal)
    await Bun.sleep(300)
    const started = performance.now()
    abort.abort(new Error('run stopped'))
    await expect(call).rejects.toBeDefined()
    expect(performance.now() - started).toBeLessThan(500)
    await eventually(() => cancelledIn(record), 3000, 'notifications/cancelled reaching the server')
    expect(text(await echo(connections, target, 'still here'))).toBe('Echo: still here')
  }, 20_000)

  test('a call past its timeout is cancelled on the server too', async () => {
    const record = join(dir, 'timeout.jsonl')
    const target = stdio({ command: 'node', args: [RECORDER, 'node', EVERYTHING, 'stdio'], env: { PATH: process.env.PATH!, MCP_RECORD_FILE: record } })
    await echo(connections, target)
    const started = performance.now()
    await expect(longCall(connections, target, undefined, 1000)).rejects.toMatchObject({ code: 'REQUEST_TIMEOUT' })
    expect(performance.now() - started).toBeLessThan(2500)
    await eventually(() => cancelledIn(record), 3000, 'notifications/cancelled reaching the server')
  }, 20_000)

  test('a server killed mid-call: the call fails at once saying so, and the next use starts it again', async () => {
    const target = stdio()
    await echo(connections, target)
    const pid = pidOf(connections, target.serverId)
    const call = longCall(connections, target)
    await Bun.sleep(300)
    const started = performance.now()
    process.kill(pid, 'SIGKILL')
    const error = await call.catch((e: unknown) => e)
    expect(performance.now() - started).toBeLessThan(1000)
    expect(error).toBeInstanceOf(ConnectionFailed)
    expect((error as ConnectionFailed).reason).toBe('the server process was killed by SIGKILL during the call')
    await eventually(() => statuses.some((s) => s.serverId === target.serverId && s.status === 'error'), 2000, 'an error status')
    expect(statuses.filter((s) => s.serverId === target.serverId).at(-1)).toMatchObject({ status: 'error', error: 'the server process was killed by SIGKILL' })
    expect(text(await echo(connections, target, 'back'))).toBe('Echo: back')
    const [again] = connections.live().filter((l) => l.serverId === target.serverId)
    expect(again!.pid).not.toBe(pid)
    expect(statuses.filter((s) => s.serverId === target.serverId).at(-1)).toMatchObject({ status: 'connected', error: null })
  }, 20_000)

  test('shell metacharacters stay literal: nothing is run through a shell', async () => {
    const marks = ['a', 'b', 'c', 'd', 'e'].map((m) => join(dir, `pwned-${m}`))
    const args = [EVERYTHING, 'stdio', `; touch ${marks[0]}`, `$(touch ${marks[1]})`, `\`touch ${marks[2]}\``, `| touch ${marks[3]}`, `&& touch ${marks[4]}`]
    const target = stdio({ args, env: { PATH: process.env.PATH!, X: `$(touch ${marks[0]})` } })
    expect(text(await echo(connections, target))).toBe('Echo: hi')
    const glued = stdio({ command: `node ${EVERYTHING} stdio; touch ${marks[0]}`, args: [] })
    const error = await echo(connections, glued).catch((e: ConnectionFailed) => e)
    expect((error as ConnectionFailed).reason).toStartWith('the server process could not be started:')
    for (const mark of marks) expect(existsSync(mark)).toBe(false)
  }, 20_000)
})

describe('MCP servers that misbehave', () => {
  const { connections, statuses } = manager({ backoffMs: (failures) => (failures <= 1 ? 0 : 60_000) })
  afterAll(() => connections.close())
  const script = (code: string, timeoutMs = 1000) => stdio({ command: 'node', args: ['-e', code], timeoutMs })

  test('one that exits at once: a clear error; one more try at once, then it waits out its backoff (a fresh connect does not)', async () => {
    const target = script('process.exit(3)')
    const first = await echo(connections, target).catch((e: ConnectionFailed) => e)
    expect((first as ConnectionFailed).reason).toBe('the server process exited with code 3 before it answered')
    const second = await echo(connections, target).catch((e: ConnectionFailed) => e)
    expect((second as ConnectionFailed).reason).toBe('the server process exited with code 3 before it answered')
    const started = performance.now()
    const third = await echo(connections, target).catch((e: ConnectionFailed) => e)
    expect(performance.now() - started).toBeLessThan(50)
    expect((third as ConnectionFailed).reason).toMatch(/^the server process exited with code 3 before it answered; it failed 2 times in a row, next attempt in \d+ s$/)
    const fresh = await connections.use(target, async () => 'ran', { fresh: true }).catch((e: ConnectionFailed) => e)
    expect((fresh as ConnectionFailed).reason).toBe('the server process exited with code 3 before it answered')
    expect(statuses.filter((s) => s.serverId === target.serverId).every((s) => s.status === 'error')).toBe(true)
  }, 20_000)

  test('one that prints garbage and never answers: it is given up after its timeout and stopped', async () => {
    const target = script('console.log("hello, I am not JSON-RPC"); console.log("{\\"neither\\": 1}"); setInterval(() => {}, 1000)')
    const started = performance.now()
    const error = await echo(connections, target).catch((e: ConnectionFailed) => e)
    expect(performance.now() - started).toBeLessThan(3000)
    expect((error as ConnectionFailed).reason).toBe('the server did not answer the MCP handshake within 1000 ms (it wrote 2 lines to stdout that are not JSON-RPC)')
    expect(connections.live().find((l) => l.serverId === target.serverId)?.connected).toBe(false)
  }, 20_000)

  test('one that never answers: given up after its timeout, its process killed', async () => {
    const pidFile = join(dir, 'silent.pid')
    const target = script(`require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setInterval(() => {}, 1000)`)
    const error = await echo(connections, target).catch((e: ConnectionFailed) => e)
    expect((error as ConnectionFailed).reason).toBe('the server did not answer the MCP handshake within 1000 ms')
    await eventually(() => !alive(Number(readFileSync(pidFile, 'utf8'))), 4000, 'the silent server to be killed')
  }, 20_000)

  test('a command that does not exist', async () => {
    const error = await echo(connections, stdio({ command: 'no-such-mcp-server-here', args: [] })).catch((e: ConnectionFailed) => e)
    expect((error as ConnectionFailed).reason).toStartWith('the server process could not be started:')
  })
})

describe('MCP connection lifetimes', () => {
  test('a connection idle for idleMs stops its process; the next use starts one again', async () => {
    const { connections } = manager({ idleMs: 200 })
    try {
      const target = stdio()
      await echo(connections, target)
      const pid = pidOf(connections)
      await eventually(() => !alive(pid) && connections.live().length === 0, 3000, 'the idle process to stop')
      expect(text(await echo(connections, target, 'again'))).toBe('Echo: again')
      expect(connections.live()[0]!.pid).not.toBe(pid)
    } finally {
      await connections.close()
    }
  }, 20_000)

  test('close() kills the whole process group: what the server started goes too', async () => {
    const { connections } = manager()
    const pidFile = join(dir, 'grandchild.pid')
    const target = stdio({ command: 'node', args: [RECORDER, 'node', EVERYTHING, 'stdio'], env: { PATH: process.env.PATH!, MCP_PID_FILE: pidFile } })
    await echo(connections, target)
    const pid = pidOf(connections)
    const grandchild = Number(readFileSync(pidFile, 'utf8'))
    expect([alive(pid), alive(grandchild)]).toEqual([true, true])
    await connections.close()
    await eventually(() => !alive(pid) && !alive(grandchild), 4000, 'the process group to be gone')
    expect(connections.live()).toEqual([])
  }, 20_000)

  test('drop(serverId) closes that server’s connections only', async () => {
    const { connections } = manager()
    try {
      const a = stdio()
      const b = stdio()
      await Promise.all([echo(connections, a), echo(connections, b)])
      await connections.drop(a.serverId)
      expect(connections.live().map((l) => l.serverId)).toEqual([b.serverId])
    } finally {
      await connections.close()
    }
  }, 20_000)
})

describe('MCP connections over HTTP', () => {
  let streamable: HttpEverything
  let sse: HttpEverything
  const { connections, statuses } = manager()
  /** every request the transports sent, with its init: each must turn Bun's idle timeout off */
  const sent: { url: string; timeout: unknown }[] = []
  const recording = ((input: string | URL | Request, init?: BunFetchRequestInit) => {
    sent.push({ url: String(input instanceof Request ? input.url : input), timeout: init?.timeout })
    return fetch(input, init)
  }) as typeof fetch
  const http = (url: string, over: Partial<ServerTarget> = {}): ServerTarget => ({ ...stdio(), transport: 'http', command: null, args: [], env: {}, url, fetch: recording, ...over })

  beforeAll(async () => {
    ;[streamable, sse] = await Promise.all([startEverythingHttp('streamableHttp'), startEverythingHttp('sse')])
  })
  afterAll(async () => {
    await connections.close()
    await Promise.all([streamable?.stop(), sse?.stop()])
  })

  test('streamable HTTP: list, echo, get-sum; every request is sent without Bun’s idle timeout', async () => {
    const target = http(`${streamable.origin}/mcp`)
    const names = await connections.use(target, async (c) => (await c.listTools()).tools.map((t) => t.name))
    expect(names).toContain('echo')
    expect(text(await echo(connections, target, 'over http'))).toBe('Echo: over http')
    expect(text(await connections.use(target, (c) => c.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } })))).toContain('3')
    expect(sent.length).toBeGreaterThan(2)
    expect(sent.filter((s) => s.timeout !== false)).toEqual([])
  }, 20_000)

  test('streamable HTTP: a cancelled call ends at once and the connection goes on', async () => {
    const target = http(`${streamable.origin}/mcp`)
    const abort = new AbortController()
    const call = longCall(connections, target, abort.signal)
    await Bun.sleep(300)
    const started = performance.now()
    abort.abort(new Error('run stopped'))
    await expect(call).rejects.toBeDefined()
    expect(performance.now() - started).toBeLessThan(500)
    expect(text(await echo(connections, target, 'after'))).toBe('Echo: after')
  }, 20_000)

  test('legacy SSE: as transport sse, and as the fallback of an http server whose streamable endpoint answers 4xx', async () => {
    expect(text(await echo(connections, http(`${sse.origin}/sse`, { transport: 'sse' }), 'sse'))).toBe('Echo: sse')
    sent.length = 0
    expect(text(await echo(connections, http(`${sse.origin}/sse`), 'fallback'))).toBe('Echo: fallback')
    expect(sent.some((s) => s.url === `${sse.origin}/sse`)).toBe(true)
    expect(sent.filter((s) => s.timeout !== false)).toEqual([])
  }, 20_000)

  test('a server that went away: a clear failure, and the next use connects again once it is back', async () => {
    const port = await freePort()
    let server = await startEverythingHttp('streamableHttp', port)
    const target = http(`http://127.0.0.1:${port}/mcp`)
    try {
      expect(text(await echo(connections, target))).toBe('Echo: hi')
      await server.stop()
      await expect(echo(connections, target)).rejects.toBeDefined()
      server = await startEverythingHttp('streamableHttp', port)
      expect(text(await echo(connections, target, 'reborn'))).toBe('Echo: reborn')
    } finally {
      await server.stop()
    }
  }, 30_000)

  test('nothing listening: the connection fails at once with a readable reason', async () => {
    const target = http(`http://127.0.0.1:${await freePort()}/mcp`)
    const started = performance.now()
    const error = await echo(connections, target).catch((e: ConnectionFailed) => e)
    expect(performance.now() - started).toBeLessThan(3000)
    expect(error).toBeInstanceOf(ConnectionFailed)
    expect((error as ConnectionFailed).reason.length).toBeGreaterThan(5)
    expect(statuses.filter((s) => s.serverId === target.serverId).map((s) => s.status)).toEqual(['error'])
  }, 20_000)
})
