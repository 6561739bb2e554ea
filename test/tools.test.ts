/**
 * The tools layer: the built-ins listed and called, arguments checked against the tool's JSON
 * Schema (422 with `arguments.…` paths), unknown tools 404, every call logged for its caller only
 * and announced live on GET /tools/events — on Postgres, to a stream on another instance too.
 * (MCP tools: test/mcp*.test.ts; web_search and http_fetch: test/search-tools.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { setupCallers, useCallers, type CallersContext } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp } from './helpers/app.ts'
import { DIALECTS, eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios } from './helpers/scenarios.ts'
import { readEvents } from './helpers/sse.ts'

type Json = Record<string, any>

const call = (t: TestApp, token: string, tool: string, args?: unknown) => t.request('POST', '/api/v1/tools/call', { token, body: { tool, ...(args === undefined ? {} : { arguments: args }) } })

/** The tool events stream of `token` on `t`, opened (its `: connected` line read, so it is listening). */
async function openEvents(t: TestApp, token: string, signal: AbortSignal) {
  const res = await t.app.handle(new Request('http://localhost/api/v1/tools/events', { headers: { authorization: `Bearer ${token}` }, signal }))
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toContain('text/event-stream')
  return res
}

eachDialect('tools: who may do what', (dialect) => {
  let ctx: CallersContext
  useCallers(dialect, (_t, c) => (ctx = c))

  scenarios<CallersContext>(() => ctx, [
    { name: 'needs credentials', as: 'guest', method: 'GET', path: '/api/v1/tools', status: 401, code: 'UNAUTHORIZED' },
    { name: 'needs credentials', as: 'guest', method: 'POST', path: '/api/v1/tools/call', body: { tool: 'current_time' }, status: 401, code: 'UNAUTHORIZED' },
    { name: 'needs credentials', as: 'guest', method: 'GET', path: '/api/v1/tools/logs', status: 401, code: 'UNAUTHORIZED' },
    { name: 'needs credentials', as: 'guest', method: 'GET', path: '/api/v1/tools/events', status: 401, code: 'UNAUTHORIZED' },
    ...(['user', 'admin'] as const).map((as) => ({
      name: 'lists the built-ins',
      as,
      method: 'GET',
      path: '/api/v1/tools',
      status: 200,
      check: (r: { body: Json }) => {
        const builtins = (r.body.items as Json[]).filter((i) => i.source === 'builtin')
        expect(builtins.map((i) => i.name)).toEqual(['web_search', 'http_fetch', 'sql_query', 'current_time'])
        for (const b of builtins) expect(b).toMatchObject({ server_id: null, server_name: null, enabled: true, requires_approval: false, input_schema: { type: 'object' } })
      },
    })),
    { name: "a user may not read another user's logs", as: 'user', method: 'GET', path: (c) => `/api/v1/tools/logs?user_id=${c.accounts.other.id}`, status: 403, code: 'FORBIDDEN' },
    { name: 'reading one’s own logs by id is fine', as: 'user', method: 'GET', path: (c) => `/api/v1/tools/logs?user_id=${c.accounts.user.id}`, status: 200 },
  ])
})

eachDialect('tools: calling', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  useCallers(dialect, (app, c) => ((t = app), (ctx = c)))

  test('current_time answers with the time, in MCP’s result shape, and is logged', async () => {
    const before = Date.now()
    const res = await call(t, ctx.accounts.user.access, 'current_time', { timezone: 'Europe/Paris' })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ is_error: false, result: { content: [{ type: 'text' }], structured_content: { timezone: 'Europe/Paris' } } })
    const iso = res.body.result.structured_content.iso as string
    expect(Date.parse(iso)).toBeGreaterThanOrEqual(before - 1000)
    expect(res.body.result.content[0].text).toStartWith(iso)
    expect(res.body.log_id).toBeString()
    const logs = await t.request('GET', '/api/v1/tools/logs', { token: ctx.accounts.user.access })
    expect(logs.body.items[0]).toMatchObject({ id: res.body.log_id, tool: 'current_time', server_id: null, source: 'api', is_error: false, arguments: { timezone: 'Europe/Paris' }, conversation_id: null, task_id: null })
    expect(logs.body.items[0].result_preview).toStartWith(iso)
  })

  test('arguments are optional when the schema needs none; a tool that reports failure is 200 with is_error', async () => {
    expect((await call(t, ctx.accounts.user.access, 'current_time')).body.is_error).toBe(false)
    const bad = await call(t, ctx.accounts.user.access, 'current_time', { timezone: 'Mars/Olympus' })
    expect(bad.status).toBe(200)
    expect(bad.body).toMatchObject({ is_error: true, result: { content: [{ type: 'text', text: 'Unknown time zone: Mars/Olympus' }] } })
  })

  test('arguments failing the input schema: 422 with a problem per field, nothing called or logged', async () => {
    const logsBefore = (await t.request('GET', '/api/v1/tools/logs', { token: ctx.accounts.other.access })).body.total
    const res = await call(t, ctx.accounts.other.access, 'current_time', { timezone: 42, extra: true })
    expectProblem(res, 422, 'VALIDATION_ERROR')
    expect(res.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'arguments.timezone' }), expect.objectContaining({ path: 'arguments.extra' })]))
    const missing = await call(t, ctx.accounts.other.access, 'sql_query', { connection_id: 'c1' })
    expectProblem(missing, 422, 'VALIDATION_ERROR')
    expect(missing.body.errors).toContainEqual(expect.objectContaining({ path: 'arguments.query' }))
    expect((await t.request('GET', '/api/v1/tools/logs', { token: ctx.accounts.other.access })).body.total).toBe(logsBefore)
  })

  test.each([
    ['no such tool', { tool: 'nope' }, 404, 'NOT_FOUND'],
    ['a server prefix that matches nothing', { tool: 'ghost__echo' }, 404, 'NOT_FOUND'],
    ['arguments not an object', { tool: 'current_time', arguments: [1, 2] }, 422, 'VALIDATION_ERROR'],
    ['no tool named', { arguments: {} }, 422, 'VALIDATION_ERROR'],
    ['an empty name', { tool: '' }, 422, 'VALIDATION_ERROR'],
  ])('%s → %d', async (_name, body, status, code) => {
    expectProblem(await t.request('POST', '/api/v1/tools/call', { token: ctx.accounts.user.access, body }), status, code)
  })

  test('sql_query on a connection the caller cannot use is 404, and without one (and no default) 422; the failed calls are logged (more in chat-sql.test.ts)', async () => {
    const res = await call(t, ctx.accounts.user.access, 'sql_query', { connection_id: 'c1', query: 'select 1' })
    expectProblem(res, 404, 'NOT_FOUND')
    const none = await call(t, ctx.accounts.user.access, 'sql_query', { query: 'select 1' })
    expectProblem(none, 422, 'VALIDATION_ERROR')
    expect(none.body.errors).toEqual([{ path: 'arguments.connection_id', message: 'not configured' }])
    const logs = await t.request('GET', '/api/v1/tools/logs?tool=sql_query', { token: ctx.accounts.user.access })
    expect(logs.body.items.map((l: { is_error: boolean }) => l.is_error)).toEqual([true, true])
    expect(logs.body.items[0].result_preview).toContain('no default data connection')
  })

  test('logs: the caller’s own, newest first, filtered; admins may read anyone’s', async () => {
    const u = ctx.accounts.other.access
    for (let i = 0; i < 3; i++) expect((await call(t, u, 'current_time')).status).toBe(200)
    await call(t, u, 'current_time', { timezone: 'Nowhere/Nothing' })
    const all = await t.request('GET', '/api/v1/tools/logs?limit=100', { token: u })
    expect(all.body.items.every((l: Json) => l.tool === 'current_time' || l.tool === 'sql_query')).toBe(true)
    const times = all.body.items.map((l: Json) => Date.parse(l.created_at))
    expect(times).toEqual([...times].sort((a, b) => b - a))
    const errors = await t.request('GET', '/api/v1/tools/logs?is_error=true', { token: u })
    expect(errors.body.items.length).toBeGreaterThanOrEqual(1)
    expect(errors.body.items.every((l: Json) => l.is_error)).toBe(true)
    const ok = await t.request('GET', '/api/v1/tools/logs?is_error=false&tool=current_time&source=api&limit=2', { token: u })
    expect(ok.body).toMatchObject({ limit: 2, has_more: true })
    expect(ok.body.items.every((l: Json) => !l.is_error)).toBe(true)
    const future = await t.request('GET', `/api/v1/tools/logs?from=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`, { token: u })
    expect(future.body.total).toBe(0)
    const past = await t.request('GET', `/api/v1/tools/logs?to=${encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())}`, { token: u })
    expect(past.body.total).toBe(0)
    // nobody else sees them, but an admin asking for them does
    const mine = await t.request('GET', '/api/v1/tools/logs?limit=100', { token: ctx.accounts.user.access })
    const otherIds = new Set(all.body.items.map((l: Json) => l.id))
    expect(mine.body.items.some((l: Json) => otherIds.has(l.id))).toBe(false)
    const asAdmin = await t.request('GET', `/api/v1/tools/logs?user_id=${ctx.accounts.other.id}&limit=100`, { token: ctx.accounts.admin.access })
    expect(asAdmin.body.items.map((l: Json) => l.id)).toEqual(all.body.items.map((l: Json) => l.id))
  })

  test.each([['is_error=maybe'], ['source=cron'], ['from=yesterday'], ['limit=0']])('a bad log filter (%s) is 422', async (q) => {
    expectProblem(await t.request('GET', `/api/v1/tools/logs?${q}`, { token: ctx.accounts.user.access }), 422, 'VALIDATION_ERROR')
  })

  test('tool events: the caller hears their own calls start and finish, and nobody else’s', async () => {
    const controller = new AbortController()
    const mine = await openEvents(t, ctx.accounts.user.access, controller.signal)
    const theirs = await openEvents(t, ctx.accounts.other.access, controller.signal)
    const heard = readEvents(mine, (_e, all) => all.length === 2)
    const overheard: string[] = []
    void readEvents(theirs, (e) => (overheard.push(e.event), false)).catch(() => {})
    const res = await call(t, ctx.accounts.user.access, 'current_time')
    const events = await heard
    expect(events.map((e) => [e.id, e.event])).toEqual([
      [1, 'tool_started'],
      [2, 'tool_finished'],
    ])
    expect(events[0]!.data).toEqual({ log_id: res.body.log_id, tool: 'current_time' })
    expect(events[1]!.data).toMatchObject({ log_id: res.body.log_id, tool: 'current_time', is_error: false })
    await Bun.sleep(50)
    expect(overheard).toEqual([])
    controller.abort()
  })
})

for (const dialect of DIALECTS.filter((d) => d === 'postgres')) {
  describe(`tools on two instances [${dialect}]`, () => {
    let a: TestApp
    let b: TestApp
    let token: string
    beforeAll(async () => {
      a = await createTestApp(dialect)
      b = await createSecondInstance(a)
      token = (await setupCallers(a)).accounts.user.access
      await b.deps.database // both up
    })
    afterAll(async () => {
      await b.close()
      await a.close()
    })

    test('a call on B reaches the events stream open on A', async () => {
      const controller = new AbortController()
      const stream = await openEvents(a, token, controller.signal)
      const heard = readEvents(stream, (_e, all) => all.length === 2)
      const res = await call(b, token, 'current_time')
      expect(res.status).toBe(200)
      const events = await heard
      expect(events.map((e) => e.event)).toEqual(['tool_started', 'tool_finished'])
      expect(events[1]!.data.log_id).toBe(res.body.log_id)
      controller.abort()
    })
  })
}
