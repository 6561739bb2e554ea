/**
 * /api/v1/mcp: MCP servers, their connections and tools, import and install, the catalogue, the
 * user document and per-user credentials, with the real server-everything over stdio (node) and
 * streamable HTTP / SSE on loopback. The tools layer's view (McpToolSource) is called as the tools
 * module calls it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CATALOG } from '../src/modules/mcp/catalog.ts'
import type { McpStatusEvent } from '../src/modules/mcp/service.ts'
import type { Principal } from '../src/modules/auth/service.ts'
import { register, setupCallers, useCallers, type Account, type CallersContext } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { DIALECTS, eachDialect } from './helpers/db.ts'
import { alive, EVERYTHING, eventually, everythingStdio, onlyPid, startEverythingHttp, type HttpEverything } from './helpers/mcp.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'
import { readEvents } from './helpers/sse.ts'

type Json = Record<string, any>

const SERVERS = '/api/v1/mcp/servers'
const SECRET = 'SECRET-env-value-1234'
const HEADER_SECRET = 'SECRET-header-value-5678'
/** a test app's MCP connections: idle ones close fast, a failing server is retried at once */
const MCP_TEST = { mcp: { idleMs: 60_000, backoffMs: () => 0 } }

async function created(res: TestResponse): Promise<Json> {
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
  expect(res.headers.get('location')).toBe(`${SERVERS}/${res.body.id}`)
  return res.body
}

const principalOf = (t: TestApp, a: Account): Promise<Principal> => t.deps.services.auth.authenticate(a.access)
const textOf = (r: { content: unknown[] }) => (r.content[0] as { text: string }).text
const never = () => new AbortController().signal

// -------------------------------------------------------------------------------------------------

interface Ctx extends CallersContext {
  global: string
  mine: string
}

eachDialect('mcp: who may do what', (dialect) => {
  let ctx: Ctx
  beforeAll(async () => {
    const t = await createTestApp(dialect, {}, MCP_TEST)
    const callers = await setupCallers(t)
    const global = await created(await t.request('POST', SERVERS, { token: callers.accounts.admin.access, body: { name: 'everything', ...everythingStdio, env: { TOKEN: SECRET } } }))
    const mine = await created(await t.request('POST', SERVERS, { token: callers.accounts.user.access, body: { name: 'mine', url: 'https://mcp.example.com/mcp', headers: { Authorization: HEADER_SECRET }, user_vars: ['MY_VAR'] } }))
    ctx = { ...callers, global: global.id, mine: mine.id }
  })
  afterAll(() => ctx.t.close())

  const endpoints: [string, (c: Ctx) => string, unknown?][] = [
    ['GET', () => SERVERS],
    ['POST', () => SERVERS, { name: 'x', url: 'https://x.example.com/mcp' }],
    ['GET', (c) => `${SERVERS}/${c.mine}`],
    ['PATCH', (c) => `${SERVERS}/${c.mine}`, { description: 'x' }],
    ['DELETE', (c) => `${SERVERS}/${c.mine}`],
    ['POST', (c) => `${SERVERS}/${c.mine}/connect`],
    ['GET', (c) => `${SERVERS}/${c.mine}/tools`],
    ['PUT', (c) => `${SERVERS}/${c.mine}/user-vars`, { MY_VAR: 'v' }],
    ['GET', (c) => `${SERVERS}/${c.mine}/user-vars`],
    ['POST', () => '/api/v1/mcp/import', { mcpServers: {} }],
    ['POST', () => '/api/v1/mcp/install', { name: 'x', command: 'node' }],
    ['GET', () => '/api/v1/mcp/catalog'],
    ['GET', () => '/api/v1/mcp/categories'],
    ['GET', () => '/api/v1/mcp/user'],
  ]
  const strangers = ['other', 'admin'] as const
  const secrets = [SECRET, HEADER_SECRET]

  scenarios<Ctx>(() => ctx, [
    ...endpoints.map(([method, path, body]): Scenario<Ctx> => ({ name: 'needs credentials', as: 'guest', method, path, body, status: 401, code: 'UNAUTHORIZED' })),
    ...strangers.flatMap((as): Scenario<Ctx>[] => [
      { name: "another user's server is invisible", as, method: 'GET', path: (c) => `${SERVERS}/${c.mine}`, status: 404, code: 'NOT_FOUND', notContains: secrets },
      { name: "another user's server cannot be changed", as, method: 'PATCH', path: (c) => `${SERVERS}/${c.mine}`, body: { description: 'mine now' }, status: 404, code: 'NOT_FOUND' },
      { name: "another user's server cannot be deleted", as, method: 'DELETE', path: (c) => `${SERVERS}/${c.mine}`, status: 404, code: 'NOT_FOUND' },
      { name: "another user's server cannot be connected", as, method: 'POST', path: (c) => `${SERVERS}/${c.mine}/connect`, status: 404, code: 'NOT_FOUND' },
      { name: "another user's server's tools are invisible", as, method: 'GET', path: (c) => `${SERVERS}/${c.mine}/tools`, status: 404, code: 'NOT_FOUND' },
      { name: "another user's server takes no user_vars", as, method: 'PUT', path: (c) => `${SERVERS}/${c.mine}/user-vars`, body: { MY_VAR: 'v' }, status: 404, code: 'NOT_FOUND' },
      { name: "another user's server's user_vars are invisible", as, method: 'GET', path: (c) => `${SERVERS}/${c.mine}/user-vars`, status: 404, code: 'NOT_FOUND' },
      { name: "the list has none of another user's servers", as, method: 'GET', path: SERVERS, status: 200, notContains: secrets, check: (r, c) => expect(r.body.items.map((i: Json) => i.id)).not.toContain(c.mine) },
      { name: "the user document has none of another user's servers", as, method: 'GET', path: '/api/v1/mcp/user', status: 200, notContains: [...secrets, 'mcp.example.com'] },
    ]),
    { name: 'a user may not add a stdio server', as: 'user', method: 'POST', path: SERVERS, body: { name: 'shell', command: 'bash', args: ['-c', 'id'] }, status: 403, code: 'FORBIDDEN' },
    { name: 'a user may not add a stdio server, even naming the transport', as: 'user', method: 'POST', path: SERVERS, body: { name: 'shell', transport: 'stdio', command: 'bash' }, status: 403, code: 'FORBIDDEN' },
    { name: 'a user may not add a global server', as: 'user', method: 'POST', path: SERVERS, body: { name: 'shared', url: 'https://x.example.com/mcp', scope: 'global' }, status: 403, code: 'FORBIDDEN' },
    { name: 'a user may not change a global server', as: 'user', method: 'PATCH', path: (c) => `${SERVERS}/${c.global}`, body: { args: ['x'] }, status: 403, code: 'FORBIDDEN' },
    { name: 'a user may not delete a global server', as: 'user', method: 'DELETE', path: (c) => `${SERVERS}/${c.global}`, status: 403, code: 'FORBIDDEN' },
    { name: 'a user may not turn their server into a stdio one', as: 'user', method: 'PATCH', path: (c) => `${SERVERS}/${c.mine}`, body: { transport: 'stdio', command: 'bash' }, status: 403, code: 'FORBIDDEN' },
    { name: 'a user may not install', as: 'user', method: 'POST', path: '/api/v1/mcp/install', body: { name: 'x', command: 'node' }, status: 403, code: 'FORBIDDEN' },
    { name: 'a user may not import into the global scope', as: 'user', method: 'POST', path: '/api/v1/mcp/import', body: { mcpServers: {}, scope: 'global' }, status: 403, code: 'FORBIDDEN' },
    { name: "a personal name may not be a global server's", as: 'user', method: 'POST', path: SERVERS, body: { name: 'EveryThing', url: 'https://x.example.com/mcp' }, status: 409, code: 'CONFLICT' },
    { name: 'a user sees the global server, without its env values', as: 'user', method: 'GET', path: (c) => `${SERVERS}/${c.global}`, status: 200, notContains: [SECRET], check: (r) => expect(r.body).toMatchObject({ scope: 'global', transport: 'stdio', env_keys: ['TOKEN'] }) },
    { name: 'the owner sees theirs, header names only', as: 'user', method: 'GET', path: (c) => `${SERVERS}/${c.mine}`, status: 200, notContains: [HEADER_SECRET], check: (r) => expect(r.body).toMatchObject({ scope: 'personal', header_keys: ['Authorization'], user_vars: ['MY_VAR'] }) },
    { name: 'unknown id', as: 'user', method: 'GET', path: `${SERVERS}/nope`, status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: connect', as: 'admin', method: 'POST', path: `${SERVERS}/nope/connect`, status: 404, code: 'NOT_FOUND' },
    { name: 'anyone signed in reads the catalogue', as: 'user', method: 'GET', path: '/api/v1/mcp/catalog', status: 200 },
  ])
})

// -------------------------------------------------------------------------------------------------

eachDialect('mcp servers', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let admin: string
  let user: string
  const events: McpStatusEvent[] = []
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers), (admin = callers.accounts.admin.access), (user = callers.accounts.user.access)), {}, { mcp: { ...MCP_TEST.mcp, onStatus: (e) => events.push(e) } })

  const post = (body: unknown, token = admin) => t.request('POST', SERVERS, { token, body })
  const connect = (id: string, token = admin) => t.request('POST', `${SERVERS}/${id}/connect`, { token })
  const mcp = () => t.deps.services.mcp

  test('an admin adds a stdio server: global by default, env write-only; connect lists its tools and the row says connected', async () => {
    const s = await created(await post({ name: 'everything', ...everythingStdio, env: { API_KEY: SECRET }, description: 'the reference server', category: 'developer' }))
    expect(s).toEqual({
      id: expect.any(String), name: 'everything', transport: 'stdio', command: 'node', args: everythingStdio.args, env_keys: ['API_KEY'], url: null, header_keys: [], user_vars: [], enabled: true, scope: 'global',
      category: 'developer', description: 'the reference server', timeout_ms: 60000, requires_approval: false, status: 'unknown', last_error: null, tools_count: 0, created_at: expect.any(String), updated_at: expect.any(String),
    })
    const res = await connect(s.id)
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ ok: true, latency_ms: expect.any(Number), server_info: { name: 'mcp-servers/everything', version: expect.any(String) }, tools_count: expect.any(Number) })
    expect(res.body.tools_count).toBeGreaterThan(5)
    const row = (await t.request('GET', `${SERVERS}/${s.id}`, { token: user })).body
    expect(row).toMatchObject({ status: 'connected', last_error: null, tools_count: res.body.tools_count })
    expect(JSON.stringify(row)).not.toContain(SECRET)
    expect(events).toContainEqual({ serverId: s.id, ownerId: null, status: 'connected', error: null })

    const tools = await t.request('GET', `${SERVERS}/${s.id}/tools`, { token: user })
    expect(tools.status).toBe(200)
    const echo = tools.body.items.find((i: Json) => i.name === 'echo')
    expect(echo).toEqual({ name: 'echo', description: 'Echoes back the input string', input_schema: expect.objectContaining({ type: 'object', properties: expect.objectContaining({ message: expect.any(Object) }) }) })
    const refreshed = await t.request('GET', `${SERVERS}/${s.id}/tools?refresh=true`, { token: user })
    expect(refreshed.body.items.map((i: Json) => i.name)).toEqual(tools.body.items.map((i: Json) => i.name))
    expectProblem(await t.request('GET', `${SERVERS}/${s.id}/tools?refresh=yes`, { token: user }), 422, 'VALIDATION_ERROR')
  }, 30_000)

  test('the tools layer: servers(p) with their tools, call(p) of echo and get-sum, a refused call is is_error', async () => {
    const s = await created(await post({ name: 'tools-src', ...everythingStdio, requires_approval: true, timeout_ms: 30_000 }))
    const p = await principalOf(t, ctx.accounts.user)
    const listed = (await mcp().toolSource.servers(p)).find((x) => x.id === s.id)!
    expect(listed).toMatchObject({ id: s.id, name: 'tools-src', requiresApproval: true, timeoutMs: 30_000 })
    expect(listed.tools.map((x) => x.name)).toEqual(expect.arrayContaining(['echo', 'get-sum']))
    expect(listed.tools.find((x) => x.name === 'get-sum')!.inputSchema).toMatchObject({ type: 'object', required: ['a', 'b'] })
    const result = await mcp().toolSource.call(p, s.id, 'echo', { message: 'through hearth' }, never())
    expect(result).toEqual({ content: [{ type: 'text', text: 'Echo: through hearth' }], structuredContent: undefined, isError: false })
    expect(textOf(await mcp().call(p, s.id, 'get-sum', { a: 20, b: 22 }, never()))).toContain('42')
    const refused = await mcp().call(p, s.id, 'no-such-tool', {}, never())
    expect(refused.isError).toBe(true)
    expect(textOf(refused)).toContain('no-such-tool')
    // a disabled server is not offered, and not called
    expect((await t.request('PATCH', `${SERVERS}/${s.id}`, { token: admin, body: { enabled: false } })).status).toBe(200)
    expect((await mcp().servers(p)).map((x) => x.id)).not.toContain(s.id)
    await expect(mcp().call(p, s.id, 'echo', { message: 'x' }, never())).rejects.toMatchObject({ status: 404 })
  }, 30_000)

  test("the child's environment: its env, the caller's user_vars and PATH — none of Hearth's", async () => {
    process.env.HEARTH_SECRET = 'hearth-secret-never-in-a-child'
    process.env.DATABASE_URL = 'postgres://never-in-a-child@db/hearth'
    try {
      const s = await created(await post({ name: 'envcheck', ...everythingStdio, env: { CONFIGURED: 'yes' } }))
      const p = await principalOf(t, ctx.accounts.user)
      const env = JSON.parse(textOf(await mcp().call(p, s.id, 'get-env', {}, never())))
      expect(Object.keys(env).sort()).toEqual(['CONFIGURED', 'PATH'])
      const hearth = Object.keys(process.env).filter((k) => k.startsWith('HEARTH_') || k === 'DATABASE_URL' || k === 'TEST_DATABASE_URL' || k === 'HOME')
      for (const k of hearth) expect(env[k]).toBeUndefined()
    } finally {
      delete process.env.HEARTH_SECRET
      delete process.env.DATABASE_URL
    }
  }, 30_000)

  test("per-user credentials: each user's calls run with their own user_vars only, in their own process", async () => {
    const s = await created(await post({ name: 'per-user', ...everythingStdio, env: { SHARED: 'for-all' }, user_vars: ['USER_TOKEN'] }))
    const [a, b, c] = await Promise.all([register(t, 'vars_a'), register(t, 'vars_b'), register(t, 'vars_c')])
    const put = (who: Account, body: unknown) => t.request('PUT', `${SERVERS}/${s.id}/user-vars`, { token: who.access, body })
    const setA = await put(a, { USER_TOKEN: 'token-of-a' })
    expect(setA.body).toEqual({ keys: ['USER_TOKEN'], missing: [] })
    expect(setA.text).not.toContain('token-of-a')
    expect((await put(b, { USER_TOKEN: 'token-of-b' })).status).toBe(200)
    expect((await t.request('GET', `${SERVERS}/${s.id}/user-vars`, { token: c.access })).body).toEqual({ keys: [], missing: ['USER_TOKEN'] })

    const envOf = async (who: Account) => JSON.parse(textOf(await mcp().call(await principalOf(t, who), s.id, 'get-env', {}, never())))
    const [envA, envB] = await Promise.all([envOf(a), envOf(b)])
    expect(envA).toMatchObject({ USER_TOKEN: 'token-of-a', SHARED: 'for-all' })
    expect(envB).toMatchObject({ USER_TOKEN: 'token-of-b', SHARED: 'for-all' })
    expect(JSON.stringify(envA)).not.toContain('token-of-b')
    const processes = mcp().connections().filter((l) => l.serverId === s.id)
    expect(processes.map((l) => l.userId).sort()).toEqual([a.id, b.id].sort())
    expect(new Set(processes.map((l) => l.pid)).size).toBe(2)

    // one without a value is told to set it; connect says so too
    const missing = await mcp().call(await principalOf(t, c), s.id, 'get-env', {}, never()).catch((e) => e)
    expect(missing).toMatchObject({ status: 422, code: 'VALIDATION_ERROR', errors: [{ path: 'USER_TOKEN', message: 'not set' }] })
    expect((await connect(s.id, c.access)).body).toMatchObject({ ok: false, error: expect.stringContaining('USER_TOKEN') })

    // another name is refused; null removes a value; the GET tells names only
    const wrong = await put(a, { SHARED: 'hijack' })
    expectProblem(wrong, 422, 'VALIDATION_ERROR')
    expect(wrong.body.errors).toEqual([{ path: 'SHARED', message: "not one of the server's user_vars" }])
    expectProblem(await put(a, { 'bad name': 'x' }), 422, 'VALIDATION_ERROR')
    expectProblem(await put(a, { USER_TOKEN: 42 }), 422, 'VALIDATION_ERROR')
    expect((await put(a, { USER_TOKEN: 'token-of-a-2' })).status).toBe(200)
    expect((await envOf(a)).USER_TOKEN).toBe('token-of-a-2')
    expect((await put(a, { USER_TOKEN: null })).body).toEqual({ keys: [], missing: ['USER_TOKEN'] })
    await expect(envOf(a)).rejects.toMatchObject({ status: 422 })
    expect((await envOf(b)).USER_TOKEN).toBe('token-of-b')
    // the user document shows the names, masked
    const doc = await t.request('GET', '/api/v1/mcp/user', { token: b.access })
    expect(doc.body.mcpServers['per-user']).toEqual({ command: 'node', args: everythingStdio.args, env: { SHARED: '********', USER_TOKEN: '********' } })
    expect(doc.text).not.toContain('token-of-b')
    expect(doc.text).not.toContain('for-all')
  }, 40_000)

  test('a call cancelled by its signal ends at once; a call past timeout_ms is a 502; a server killed mid-call is a 502, then starts again', async () => {
    const s = await created(await post({ name: 'crashy', ...everythingStdio, timeout_ms: 2500 }))
    const p = await principalOf(t, ctx.accounts.admin)
    await mcp().call(p, s.id, 'echo', { message: 'warm' }, never())

    const abort = new AbortController()
    const cancelled = mcp().call(p, s.id, 'trigger-long-running-operation', { duration: 10, steps: 10 }, abort.signal)
    await Bun.sleep(200)
    let started = performance.now()
    abort.abort(new Error('the run was stopped'))
    await expect(cancelled).rejects.toThrow('the run was stopped')
    expect(performance.now() - started).toBeLessThan(500)

    started = performance.now()
    const late = await mcp().call(p, s.id, 'trigger-long-running-operation', { duration: 10, steps: 10 }, never()).catch((e) => e)
    expect(late).toMatchObject({ status: 502, code: 'UPSTREAM_ERROR', detail: 'MCP server "crashy": trigger-long-running-operation did not answer within 2500 ms; the call was cancelled' })
    expect(performance.now() - started).toBeLessThan(4000)

    const pid = onlyPid(mcp().connections(), s.id)
    const killed = mcp().call(p, s.id, 'trigger-long-running-operation', { duration: 10, steps: 10 }, never()).catch((e) => e)
    await Bun.sleep(200)
    process.kill(pid, 'SIGKILL')
    expect(await killed).toMatchObject({ status: 502, code: 'UPSTREAM_ERROR', detail: 'MCP server "crashy": the server process was killed by SIGKILL during the call' })
    await eventually(async () => (await t.request('GET', `${SERVERS}/${s.id}`, { token: admin })).body.status === 'error', 3000, 'the row to say error')
    expect((await t.request('GET', `${SERVERS}/${s.id}`, { token: admin })).body.last_error).toBe('the server process was killed by SIGKILL')
    expect(textOf(await mcp().call(p, s.id, 'echo', { message: 'again' }, never()))).toBe('Echo: again')
    await eventually(async () => (await t.request('GET', `${SERVERS}/${s.id}`, { token: admin })).body.status === 'connected', 3000, 'the row to say connected')
  }, 30_000)

  const failing: [string, Json, RegExp][] = [
    ['exits at once', { command: 'node', args: ['-e', 'process.exit(7)'] }, /^the server process exited with code 7 before it answered$/],
    ['prints garbage and never answers', { command: 'node', args: ['-e', 'console.log("<html>not json</html>"); setInterval(() => {}, 1000)'], timeout_ms: 1000 }, /^the server did not answer the MCP handshake within 1000 ms \(it wrote 1 line to stdout that is not JSON-RPC\)$/],
    ['never answers', { command: 'node', args: ['-e', 'setInterval(() => {}, 1000)'], timeout_ms: 1000 }, /^the server did not answer the MCP handshake within 1000 ms$/],
    ['is not a program', { command: 'no-such-program-for-mcp' }, /^the server process could not be started: /],
  ]
  for (const [name, body, error] of failing) {
    test(`a server that ${name}: connect is ok: false with a clear error, never a 5xx or a hang; the tools route is a 502`, async () => {
      const s = await created(await post({ name: `bad-${name.replace(/\W+/g, '-')}`.slice(0, 32), ...body }))
      const started = performance.now()
      const res = await connect(s.id)
      expect(performance.now() - started).toBeLessThan(4000)
      expect(res.status).toBe(200)
      expect(res.body).toEqual({ ok: false, latency_ms: expect.any(Number), server_info: null, tools_count: 0, error: expect.stringMatching(error) })
      expect((await t.request('GET', `${SERVERS}/${s.id}`, { token: admin })).body).toMatchObject({ status: 'error', last_error: res.body.error })
      expectProblem(await t.request('GET', `${SERVERS}/${s.id}/tools`, { token: admin }), 502, 'UPSTREAM_ERROR')
      const p = await principalOf(t, ctx.accounts.admin)
      await expect(mcp().call(p, s.id, 'echo', {}, never())).rejects.toMatchObject({ status: 502, code: 'UPSTREAM_ERROR' })
      // the tools layer does not wait on it
      expect((await mcp().servers(p)).find((x) => x.id === s.id)?.tools).toEqual([])
    }, 20_000)
  }

  test('shell metacharacters in a command or its args are never run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-mcp-shell-'))
    try {
      const mark = join(dir, 'pwned')
      const glued = await created(await post({ name: 'glued', command: `node ${EVERYTHING} stdio; touch ${mark}` }))
      expect((await connect(glued.id)).body).toMatchObject({ ok: false, error: expect.stringContaining('could not be started') })
      const literal = await created(await post({ name: 'literal', command: 'node', args: [EVERYTHING, 'stdio', `$(touch ${mark})`, `; touch ${mark}`, `| touch ${mark}`] }))
      expect((await connect(literal.id)).body.ok).toBe(true)
      expect(existsSync(mark)).toBe(false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 20_000)

  test('PATCH: env write-only (null removes it), a changed command resets status and tools and stops the process; DELETE stops it too', async () => {
    const s = await created(await post({ name: 'patchme', ...everythingStdio, env: { A: SECRET } }))
    expect((await connect(s.id)).body.ok).toBe(true)
    const pid = onlyPid(mcp().connections(), s.id)
    const res = await t.request('PATCH', `${SERVERS}/${s.id}`, { token: admin, body: { args: [EVERYTHING, 'stdio', 'extra'], description: 'changed' } })
    expect(res.body).toMatchObject({ args: [EVERYTHING, 'stdio', 'extra'], description: 'changed', status: 'unknown', tools_count: 0, env_keys: ['A'] })
    await eventually(() => !alive(pid), 4000, 'the old process to stop')
    expect((await t.request('PATCH', `${SERVERS}/${s.id}`, { token: admin, body: { env: null } })).body.env_keys).toEqual([])
    expect((await t.request('PATCH', `${SERVERS}/${s.id}`, { token: admin, body: { url: 'https://x.example.com' } })).status).toBe(422)
    // to HTTP: the command goes unless sent again
    const http = await t.request('PATCH', `${SERVERS}/${s.id}`, { token: admin, body: { transport: 'http', url: 'https://mcp.example.com/mcp' } })
    expect(http.body).toMatchObject({ transport: 'http', command: null, url: 'https://mcp.example.com/mcp' })
    expect((await t.request('PATCH', `${SERVERS}/${s.id}`, { token: admin, body: { transport: 'stdio', ...everythingStdio } })).body).toMatchObject({ transport: 'stdio', url: null })
    expect((await connect(s.id)).body.ok).toBe(true)
    const second = onlyPid(mcp().connections(), s.id)
    expect((await t.request('DELETE', `${SERVERS}/${s.id}`, { token: admin })).status).toBe(204)
    await eventually(() => !alive(second), 4000, 'the process to stop')
    expectProblem(await t.request('GET', `${SERVERS}/${s.id}`, { token: admin }), 404, 'NOT_FOUND')
  }, 30_000)

  const invalid: [string, Json, string][] = [
    ['a name with a space', { name: 'my server', url: 'https://x.example.com' }, 'name'],
    ['a name over 32 characters', { name: 'a'.repeat(33), url: 'https://x.example.com' }, 'name'],
    ['a name with "__"', { name: 'a__b', url: 'https://x.example.com' }, 'name'],
    ['no command and no url', { name: 'empty' }, 'url'],
    ['a stdio server with a url', { name: 'both', command: 'node', url: 'https://x.example.com' }, 'url'],
    ['an http server with a command', { name: 'both2', transport: 'http', command: 'node', url: 'https://x.example.com' }, 'command'],
    ['an ftp url', { name: 'ftp', url: 'ftp://x.example.com' }, 'url'],
    ['a bad env name', { name: 'env', command: 'node', env: { 'NOT-A-NAME': 'x' } }, 'env.NOT-A-NAME'],
    ['an env value that is not a string', { name: 'env2', command: 'node', env: { A: 1 } }, 'env.A'],
    ['args not an array', { name: 'args', command: 'node', args: '--flag' }, 'args'],
    ['a header with a line break', { name: 'hdr', url: 'https://x.example.com', headers: { 'X-A': 'a\r\nX-B: b' } }, 'headers.X-A'],
    ['a timeout under 1 s', { name: 'fast', url: 'https://x.example.com', timeout_ms: 10 }, 'timeout_ms'],
    ['user_vars twice the same', { name: 'uv', url: 'https://x.example.com', user_vars: ['A', 'A'] }, 'user_vars'],
  ]
  for (const [name, body, path] of invalid) {
    test(`POST: ${name} → 422 naming ${path}`, async () => {
      const res = await post(body)
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect((res.body.errors as { path: string }[]).map((e) => e.path)).toContain(path)
    })
  }

  test('names are unique case-insensitively in their scope (409); a user may reuse another user’s name', async () => {
    await created(await post({ name: 'dup', url: 'https://x.example.com' }))
    expectProblem(await post({ name: 'DUP', url: 'https://y.example.com' }), 409, 'CONFLICT')
    const mine = await created(await post({ name: 'samename', url: 'https://x.example.com' }, user))
    expectProblem(await post({ name: 'SameName', url: 'https://x.example.com' }, user), 409, 'CONFLICT')
    await created(await post({ name: 'samename', url: 'https://x.example.com' }, ctx.accounts.other.access))
    // renaming onto a taken name
    const other = await created(await post({ name: 'other-one', url: 'https://x.example.com' }, user))
    expectProblem(await t.request('PATCH', `${SERVERS}/${other.id}`, { token: user, body: { name: 'SAMENAME' } }), 409, 'CONFLICT')
    expectProblem(await t.request('PATCH', `${SERVERS}/${mine.id}`, { token: user, body: { name: 'dup' } }), 409, 'CONFLICT')
  })

  test('GET /mcp/servers is a §1 list page: scope, category and q filter', async () => {
    const a = await register(t, 'lister')
    for (const [name, category, description] of [['alpha', 'web', 'fetches pages'], ['beta', 'data', 'queries'], ['gamma', 'web', null]] as const)
      await created(await post({ name, category, description, url: 'https://x.example.com' }, a.access))
    const q = (qs: string) => t.request('GET', `${SERVERS}?${qs}`, { token: a.access })
    const names = (r: TestResponse) => r.body.items.map((i: Json) => i.name)
    const personal = await q('scope=personal')
    expect({ names: names(personal), total: personal.body.total, has_more: personal.body.has_more }).toEqual({ names: ['alpha', 'beta', 'gamma'], total: 3, has_more: false })
    expect(names(await q('scope=personal&category=WEB'))).toEqual(['alpha', 'gamma'])
    expect(names(await q('scope=personal&q=PAGES'))).toEqual(['alpha'])
    expect(names(await q('scope=personal&limit=1&offset=1'))).toEqual(['beta'])
    const all = await q('limit=100')
    expect(names(all)).toEqual(expect.arrayContaining(['alpha', 'everything']))
    for (const bad of ['scope=mine', 'limit=0', 'limit=101']) expectProblem(await q(bad), 422, 'VALIDATION_ERROR')
  })

  test('install: a command, or a catalogue entry whose required env is set or left to each user', async () => {
    const cmd = await t.request('POST', '/api/v1/mcp/install', { token: admin, body: { name: 'installed', ...everythingStdio, env: { K: SECRET } } })
    expect(await created(cmd)).toMatchObject({ name: 'installed', transport: 'stdio', scope: 'global', env_keys: ['K'] })
    expect(cmd.text).not.toContain(SECRET)
    expect((await connect(cmd.body.id)).body.ok).toBe(true)

    const time = await created(await t.request('POST', '/api/v1/mcp/install', { token: admin, body: { catalog_id: 'time' } }))
    expect(time).toMatchObject({ name: 'time', command: 'uvx', args: ['mcp-server-time'], category: 'utilities', description: expect.any(String) })
    const missing = await t.request('POST', '/api/v1/mcp/install', { token: admin, body: { catalog_id: 'github' } })
    expectProblem(missing, 422, 'VALIDATION_ERROR')
    expect(missing.body.errors).toEqual([{ path: 'env.GITHUB_PERSONAL_ACCESS_TOKEN', message: 'required' }])
    const perUser = await created(await t.request('POST', '/api/v1/mcp/install', { token: admin, body: { catalog_id: 'github', user_vars: ['GITHUB_PERSONAL_ACCESS_TOKEN'] } }))
    expect(perUser).toMatchObject({ name: 'github', command: 'docker', user_vars: ['GITHUB_PERSONAL_ACCESS_TOKEN'] })
    const pg = await created(await t.request('POST', '/api/v1/mcp/install', { token: admin, body: { catalog_id: 'postgres', name: 'warehouse', env: { POSTGRES_URL: 'postgres://secret@db/x' }, scope: 'personal' } }))
    expect(pg).toMatchObject({ name: 'warehouse', scope: 'personal', args: ['-y', '@modelcontextprotocol/server-postgres', '${POSTGRES_URL}'] })
    expectProblem(await t.request('POST', '/api/v1/mcp/install', { token: admin, body: { catalog_id: 'nope' } }), 422, 'VALIDATION_ERROR')
    expectProblem(await t.request('POST', '/api/v1/mcp/install', { token: admin, body: { catalog_id: 'time' } }), 409, 'CONFLICT')
    expectProblem(await t.request('POST', '/api/v1/mcp/install', { token: admin, body: { name: 'x' } }), 422, 'VALIDATION_ERROR')
  }, 20_000)

  test('`${NAME}` in args is replaced by the value of NAME: from env, or from the caller’s own user_vars', async () => {
    // a node script that keeps its argument where get-env shows it, then runs the everything server
    const script = `process.env.SEEN_ARG = process.argv[1]; process.argv = [process.argv[0], ${JSON.stringify(EVERYTHING)}, 'stdio']; import(${JSON.stringify(EVERYTHING)})`
    const s = await created(await post({ name: 'subst', command: 'node', args: ['-e', script, '${GREETING}'], env: { GREETING: 'from-env' }, user_vars: ['GREETING'] }))
    expect(s.args[2]).toBe('${GREETING}')
    const seen = async (who: Account) => JSON.parse(textOf(await mcp().call(await principalOf(t, who), s.id, 'get-env', {}, never()))).SEEN_ARG
    expect(await seen(ctx.accounts.other)).toBe('from-env')
    expect((await t.request('PUT', `${SERVERS}/${s.id}/user-vars`, { token: user, body: { GREETING: 'from-user' } })).status).toBe(200)
    expect(await seen(ctx.accounts.user)).toBe('from-user')
  }, 20_000)

  test('catalogue and categories: well-known servers with what they need; every category has servers', async () => {
    const catalog = (await t.request('GET', '/api/v1/mcp/catalog', { token: user })).body
    const ids = catalog.categories.flatMap((c: Json) => c.servers.map((s: Json) => s.id))
    expect(ids).toEqual(expect.arrayContaining(['filesystem', 'git', 'fetch', 'memory', 'github', 'slack', 'postgres', 'brave-search', 'puppeteer', 'playwright', 'notion', 'sentry', 'time', 'sequential-thinking', 'everything']))
    expect(ids).toHaveLength(CATALOG.length)
    const github = catalog.categories.flatMap((c: Json) => c.servers).find((s: Json) => s.id === 'github')
    expect(github).toEqual({ id: 'github', name: 'GitHub', description: expect.any(String), transport: 'stdio', command: 'docker', args: expect.any(Array), env_required: ['GITHUB_PERSONAL_ACCESS_TOKEN'], homepage: 'https://github.com/github/github-mcp-server' })
    const categories = (await t.request('GET', '/api/v1/mcp/categories', { token: user })).body.categories
    expect(categories.map((c: Json) => c.id)).toEqual(catalog.categories.map((c: Json) => c.id))
    for (const c of categories) expect(c.servers_count).toBeGreaterThan(0)
  })

  test('/openapi.json documents the MCP routes under their tag', async () => {
    const { body } = await t.request('GET', '/openapi.json')
    for (const [path, methods] of Object.entries({ '/api/v1/mcp/servers': ['get', 'post'], '/api/v1/mcp/servers/{id}': ['get', 'patch', 'delete'], '/api/v1/mcp/servers/{id}/connect': ['post'], '/api/v1/mcp/servers/{id}/tools': ['get'], '/api/v1/mcp/servers/{id}/user-vars': ['get', 'put'], '/api/v1/mcp/import': ['post'], '/api/v1/mcp/install': ['post'], '/api/v1/mcp/catalog': ['get'], '/api/v1/mcp/categories': ['get'], '/api/v1/mcp/user': ['get'] }))
      for (const m of methods) expect({ path, m, tags: body.paths[path]?.[m]?.tags }).toEqual({ path, m, tags: ['Tools and MCP'] })
    expect(Object.keys(body.paths['/api/v1/mcp/servers/{id}/tools'].get.responses)).toContain('502')
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('mcp import', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let streamable: HttpEverything
  let sse: HttpEverything
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)), {}, MCP_TEST)
  beforeAll(async () => {
    ;[streamable, sse] = await Promise.all([startEverythingHttp('streamableHttp'), startEverythingHttp('sse')])
  })
  afterAll(async () => {
    await Promise.all([streamable?.stop(), sse?.stop()])
  })
  const importDoc = (body: unknown, token = ctx.accounts.admin.access) => t.request('POST', '/api/v1/mcp/import', { token, body })

  test('a Claude Desktop / Cursor file as is: stdio, streamable HTTP and SSE servers created, then updated; each connects and answers', async () => {
    const file = {
      mcpServers: {
        'everything-stdio': { command: 'node', args: everythingStdio.args, env: { SOME_KEY: SECRET } },
        'everything-http': { url: `${streamable.origin}/mcp`, headers: { Authorization: `Bearer ${HEADER_SECRET}` } },
        'everything-sse': { type: 'sse', url: `${sse.origin}/sse` },
        'sse-fallback': { url: `${sse.origin}/sse` },
      },
      globalShortcut: 'Ctrl+Space',
    }
    const res = await importDoc(file)
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ created: ['everything-stdio', 'everything-http', 'everything-sse', 'sse-fallback'], updated: [], skipped: [] })
    const list = (await t.request('GET', `${SERVERS}?limit=100`, { token: ctx.accounts.admin.access })).body.items as Json[]
    const byName = Object.fromEntries(list.map((s) => [s.name, s]))
    expect(byName['everything-stdio']).toMatchObject({ transport: 'stdio', scope: 'global', env_keys: ['SOME_KEY'] })
    expect(byName['everything-http']).toMatchObject({ transport: 'http', header_keys: ['Authorization'] })
    expect(byName['everything-sse']).toMatchObject({ transport: 'sse' })
    const p = await principalOf(t, ctx.accounts.user)
    for (const name of Object.keys(file.mcpServers)) {
      const connected = await t.request('POST', `${SERVERS}/${byName[name]!.id}/connect`, { token: ctx.accounts.admin.access })
      expect({ name, ok: connected.body.ok, error: connected.body.error }).toEqual({ name, ok: true, error: undefined })
      expect(textOf(await t.deps.services.mcp.call(p, byName[name]!.id, 'echo', { message: name }, never()))).toBe(`Echo: ${name}`)
    }
    expect(JSON.stringify(list)).not.toContain(SECRET)

    const again = await importDoc({ mcpServers: { 'EVERYTHING-STDIO': { command: 'node', args: [...everythingStdio.args, 'v2'] }, brand_new: { url: `${streamable.origin}/mcp` } } })
    expect(again.body).toEqual({ created: ['brand_new'], updated: ['EVERYTHING-STDIO'], skipped: [] })
    const updated = (await t.request('GET', `${SERVERS}/${byName['everything-stdio']!.id}`, { token: ctx.accounts.admin.access })).body
    expect(updated).toMatchObject({ name: 'everything-stdio', args: [...everythingStdio.args, 'v2'], env_keys: [] })
  }, 40_000)

  test("a user's import: stdio entries skipped with the reason, HTTP ones become personal servers; bad names and refused names skipped", async () => {
    const res = await importDoc(
      {
        mcpServers: {
          local: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', '/'] },
          remote: { url: `${streamable.origin}/mcp` },
          'has space': { url: 'https://x.example.com/mcp' },
          'everything-stdio': { url: 'https://x.example.com/mcp' },
          Remote: { url: 'https://y.example.com/mcp' },
        },
      },
      ctx.accounts.user.access,
    )
    expect(res.status).toBe(200)
    expect(res.body.created).toEqual(['remote'])
    expect(res.body.skipped).toEqual([
      { name: 'local', reason: 'stdio servers run programs on the host: only admins add them' },
      { name: 'has space', reason: expect.stringContaining('letters, digits') },
      { name: 'everything-stdio', reason: expect.stringContaining('global MCP server') },
      { name: 'Remote', reason: expect.stringContaining('twice') },
    ])
    const mine = (await t.request('GET', `${SERVERS}?scope=personal`, { token: ctx.accounts.user.access })).body.items
    expect(mine.map((s: Json) => [s.name, s.scope, s.transport])).toEqual([['remote', 'personal', 'http']])
  }, 20_000)

  const malformed: [string, unknown, string][] = [
    ['no mcpServers', { servers: {} }, 'mcpServers'],
    ['mcpServers an array', { mcpServers: [{ command: 'node' }] }, 'mcpServers'],
    ['an entry that is a string', { mcpServers: { a: 'node server.js' } }, 'mcpServers.a'],
    ['an entry with neither command nor url', { mcpServers: { a: { args: ['x'] } } }, 'mcpServers.a.command'],
    ['an entry with both', { mcpServers: { a: { command: 'node', url: 'https://x.example.com' } } }, 'mcpServers.a.url'],
    ['args that are not strings', { mcpServers: { a: { command: 'node', args: [1, 2] } } }, 'mcpServers.a.args.0'],
    ['env values that are numbers', { mcpServers: { a: { command: 'node', env: { PORT: 8080 } } } }, 'mcpServers.a.env.PORT'],
    ['a url that is not one', { mcpServers: { a: { url: 'not a url' } } }, 'mcpServers.a.url'],
    ['an unknown type', { mcpServers: { a: { url: 'https://x.example.com', type: 'websocket' } } }, 'mcpServers.a.type'],
    ['more than 100 entries', { mcpServers: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`s${i}`, { url: 'https://x.example.com' }])) }, 'mcpServers'],
  ]
  for (const [name, body, path] of malformed) {
    test(`a malformed file: ${name} → 422 naming ${path}, nothing imported`, async () => {
      const before = (await t.request('GET', SERVERS, { token: ctx.accounts.admin.access })).body.total
      const res = await importDoc(body)
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect((res.body.errors as { path: string }[]).map((e) => e.path)).toContain(path)
      expect((await t.request('GET', SERVERS, { token: ctx.accounts.admin.access })).body.total).toBe(before)
    })
  }

  test('a file of 1 MB of entries → 413, nothing imported; not valid JSON → 400', async () => {
    const entries = Object.fromEntries(Array.from({ length: 12_000 }, (_, i) => [`server_${i}`, { command: 'node', args: ['x'.repeat(60)] }]))
    const raw = JSON.stringify({ mcpServers: entries })
    expect(raw.length).toBeGreaterThan(1024 * 1024)
    expectProblem(await t.request('POST', '/api/v1/mcp/import', { token: ctx.accounts.admin.access, raw, headers: { 'content-type': 'application/json' } }), 413, 'PAYLOAD_TOO_LARGE')
    expectProblem(await t.request('POST', '/api/v1/mcp/import', { token: ctx.accounts.admin.access, raw: '{"mcpServers": {', headers: { 'content-type': 'application/json' } }), 400, 'VALIDATION_ERROR')
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('mcp: private addresses', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)), { HEARTH_ALLOW_PRIVATE_UPSTREAMS: 'false' }, MCP_TEST)

  test("a user's server may not point at loopback or private addresses (422 naming url); an admin's may", async () => {
    for (const url of ['http://127.0.0.1:3001/mcp', 'http://localhost:8080/mcp', 'http://10.0.0.5/mcp', 'http://[::1]/mcp', 'http://169.254.169.254/latest']) {
      const res = await t.request('POST', SERVERS, { token: ctx.accounts.user.access, body: { name: 'sneaky', url } })
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect(res.body.errors.map((e: Json) => e.path)).toEqual(['url'])
    }
    const imported = await t.request('POST', '/api/v1/mcp/import', { token: ctx.accounts.user.access, body: { mcpServers: { sneaky: { url: 'http://127.0.0.1:3001/mcp' } } } })
    expect(imported.body).toMatchObject({ created: [], skipped: [{ name: 'sneaky', reason: expect.stringContaining('loopback') }] })
    expect((await t.request('POST', SERVERS, { token: ctx.accounts.admin.access, body: { name: 'internal', url: 'http://127.0.0.1:3001/mcp', scope: 'personal' } })).status).toBe(201)
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('mcp tools through the tools layer', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)), {}, MCP_TEST)
  const call = (token: string, tool: string, args: unknown) => t.request('POST', '/api/v1/tools/call', { token, body: { tool, arguments: args } })

  test('GET /tools lists <server>__<tool>; POST /tools/call runs echo and get-sum, checks arguments against the schema, logs the call', async () => {
    await created(await t.request('POST', SERVERS, { token: ctx.accounts.admin.access, body: { name: 'everything', ...everythingStdio } }))
    const tools = await t.request('GET', '/api/v1/tools', { token: ctx.accounts.user.access })
    const echo = tools.body.items.find((i: Json) => i.name === 'everything__echo')
    expect(echo).toMatchObject({ source: 'mcp', server_name: 'everything', description: 'Echoes back the input string', requires_approval: false })
    const res = await call(ctx.accounts.user.access, 'everything__echo', { message: 'via /tools/call' })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ result: { content: [{ type: 'text', text: 'Echo: via /tools/call' }] }, is_error: false, log_id: expect.any(String) })
    expect((await call(ctx.accounts.user.access, 'everything__get-sum', { a: 1, b: 41 })).body.result.content[0].text).toContain('42')
    const bad = await call(ctx.accounts.user.access, 'everything__get-sum', { a: 'one' })
    expectProblem(bad, 422, 'VALIDATION_ERROR')
    expect(bad.body.errors.map((e: Json) => e.path)).toEqual(expect.arrayContaining(['arguments.a', 'arguments.b']))
    const logs = await t.request('GET', '/api/v1/tools/logs?tool=everything__echo', { token: ctx.accounts.user.access })
    expect(logs.body.items[0]).toMatchObject({ tool: 'everything__echo', server_id: echo.server_id, is_error: false, source: 'api' })
  }, 30_000)

  test("another user's personal server's tools are not the caller's (404); a server that cannot start is a 502, and its status reaches the events stream", async () => {
    const mine = await created(await t.request('POST', SERVERS, { token: ctx.accounts.admin.access, body: { name: 'private', ...everythingStdio, scope: 'personal' } }))
    expect((await t.request('GET', `${SERVERS}/${mine.id}/tools?refresh=true`, { token: ctx.accounts.admin.access })).status).toBe(200)
    expectProblem(await call(ctx.accounts.user.access, 'private__echo', { message: 'x' }), 404, 'NOT_FOUND')

    const broken = await created(await t.request('POST', SERVERS, { token: ctx.accounts.admin.access, body: { name: 'broken', ...everythingStdio } }))
    expect((await t.request('GET', `${SERVERS}/${broken.id}/tools`, { token: ctx.accounts.admin.access })).status).toBe(200)
    // its program changes under it (in the table, so the tools it listed stay offered): the call reaches a server that exits
    const controller = new AbortController()
    const stream = await t.app.handle(new Request('http://localhost/api/v1/tools/events', { headers: { authorization: `Bearer ${ctx.accounts.user.access}` }, signal: controller.signal }))
    const heard = readEvents(stream, (e) => e.event === 'server_status')
    await t.deps.database.db.update(t.deps.database.t.mcpServers).set({ args: ['-e', 'process.exit(9)'], updatedAt: new Date() }).where(eq(t.deps.database.t.mcpServers.id, broken.id))
    const res = await call(ctx.accounts.user.access, 'broken__echo', { message: 'x' })
    expectProblem(res, 502, 'UPSTREAM_ERROR')
    expect(res.body.detail).toBe('MCP server "broken": the server process exited with code 9 before it answered')
    const [status] = (await heard).filter((e) => e.event === 'server_status')
    expect(status!.data).toEqual({ server_id: broken.id, status: 'error', error: 'the server process exited with code 9 before it answered' })
    controller.abort()
  }, 30_000)
})

// -------------------------------------------------------------------------------------------------

for (const dialect of DIALECTS.filter((d) => d === 'postgres')) {
  describe(`mcp on two instances [${dialect}]`, () => {
    let a: TestApp
    let b: TestApp
    let ctx: CallersContext
    beforeAll(async () => {
      a = await createTestApp(dialect, {}, MCP_TEST)
      b = await createSecondInstance(a, {}, MCP_TEST)
      ctx = await setupCallers(a)
    })
    afterAll(async () => {
      await b.close()
      await a.close()
    })

    test('what B keeps of the servers is dropped when A changes one: a server disabled or a user_var set on A is seen on B at once', async () => {
      const s = await created(await a.request('POST', SERVERS, { token: ctx.accounts.admin.access, body: { name: 'shared', ...everythingStdio, user_vars: ['TOKEN'], env: { TOKEN: 'default' } } }))
      const p = await principalOf(b, ctx.accounts.user)
      expect((await b.deps.services.mcp.servers(p)).map((x) => x.name)).toEqual(['shared'])
      const envOnB = async () => JSON.parse(textOf(await b.deps.services.mcp.call(p, s.id, 'get-env', {}, never()))).TOKEN
      expect(await envOnB()).toBe('default')
      expect((await a.request('PUT', `${SERVERS}/${s.id}/user-vars`, { token: ctx.accounts.user.access, body: { TOKEN: 'set-on-a' } })).status).toBe(200)
      await eventually(async () => (await envOnB()) === 'set-on-a', 3000, 'B to use the value set on A')
      expect((await a.request('PATCH', `${SERVERS}/${s.id}`, { token: ctx.accounts.admin.access, body: { enabled: false } })).status).toBe(200)
      await eventually(async () => (await b.deps.services.mcp.servers(p)).length === 0, 3000, 'B to stop offering the disabled server')
      await expect(b.deps.services.mcp.call(p, s.id, 'echo', { message: 'x' }, never())).rejects.toMatchObject({ status: 404 })
    }, 30_000)
  })
}

// -------------------------------------------------------------------------------------------------

describe('mcp: shutdown', () => {
  test("closing the server kills every MCP process it started", async () => {
    const t = await createTestApp('sqlite', {}, MCP_TEST)
    const admin = (await setupCallers(t)).accounts.admin
    const s = await created(await t.request('POST', SERVERS, { token: admin.access, body: { name: 'short-lived', ...everythingStdio } }))
    expect((await t.request('POST', `${SERVERS}/${s.id}/connect`, { token: admin.access })).body.ok).toBe(true)
    const pid = onlyPid(t.deps.services.mcp.connections())
    expect(alive(pid)).toBe(true)
    await t.close()
    await eventually(() => !alive(pid), 4000, 'the MCP process to be killed at shutdown')
  }, 20_000)
})
