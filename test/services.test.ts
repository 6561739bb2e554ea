/**
 * Workflow services (docs/api.md §20 "Services") against the fake ComfyUI (test/fakes/comfyui.ts) on
 * loopback: admins register engines, everyone signed in reads them (without their URL); the test
 * calls /system_stats with no Origin and no redirect followed, and any failure — nothing listening,
 * no answer in time, a redirect, a 500, an answer that is not JSON — is `200 offline` with the
 * reason, kept on the row; the health check keeps the status, one instance per service per interval.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { register, setupCallers, useCallers, type CallersContext } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'
import { eventually } from './helpers/streams.ts'
import { apiWorkflow, startFakeComfy, type FakeComfy } from './fakes/comfyui.ts'

type Json = Record<string, any>

const SERVICE_KEYS = ['created_at', 'description', 'id', 'kind', 'last_check_time', 'name', 'response_time_ms', 'session_count', 'status', 'url', 'version', 'workflow_count']

let n = 0
const uniqueName = (base = 'comfy') => `${base} ${Date.now().toString(36)}-${n++}`

async function createService(t: TestApp, adminToken: string, body: Json): Promise<Json> {
  const res = await t.request('POST', '/api/v1/services', { token: adminToken, body: { name: uniqueName(), ...body } })
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
  expect(res.headers.get('location')).toBe(`/api/v1/services/${res.body.id}`)
  return res.body
}

/** the /system_stats requests the fake got */
const statsHits = (fake: FakeComfy) => fake.requests.filter((r) => r.path === '/system_stats')

/** a port nothing listens on: a server started and stopped */
async function deadUrl() {
  const s = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('') })
  const url = `http://127.0.0.1:${s.port}`
  await s.stop(true)
  return url
}

// -------------------------------------------------------------------------------------------------

interface Ctx extends CallersContext {
  fake: FakeComfy
  serviceId: string
  spareId: string
}

eachDialect('services: who may do what', (dialect) => {
  let ctx: Ctx
  beforeAll(async () => {
    const fake = await startFakeComfy()
    const t = await createTestApp(dialect)
    const callers = await setupCallers(t)
    const admin = callers.accounts.admin.access
    const service = await createService(t, admin, { name: 'Main ComfyUI', url: `${fake.url}/`, description: 'the GPU box' })
    const spare = await createService(t, admin, { url: fake.url })
    ctx = { ...callers, fake, serviceId: service.id, spareId: spare.id }
  })
  afterAll(async () => {
    await ctx.t.close()
    await ctx.fake.stop()
  })

  const one = (c: Ctx) => `/api/v1/services/${c.serviceId}`
  const guestRows: [string, (c: Ctx) => string, unknown?][] = [
    ['GET', () => '/api/v1/services'],
    ['POST', () => '/api/v1/services', { name: 'x', url: 'http://127.0.0.1:1' }],
    ['GET', one],
    ['PUT', one, { name: 'x' }],
    ['DELETE', one],
    ['POST', (c) => `${one(c)}/test`],
  ]
  const adminOnly: [string, (c: Ctx) => string, unknown?][] = [
    ['POST', () => '/api/v1/services', { name: 'by a user', url: 'http://127.0.0.1:1' }],
    ['PUT', one, { name: 'renamed by a user' }],
    ['DELETE', one],
    ['POST', (c) => `${one(c)}/test`],
  ]

  scenarios<Ctx>(() => ctx, [
    ...guestRows.map(([method, path, body]): Scenario<Ctx> => ({ name: 'needs credentials', as: 'guest', method, path, body, status: 401, code: 'UNAUTHORIZED' })),
    ...(['user', 'other'] as const).flatMap((as) =>
      adminOnly.map(([method, path, body]): Scenario<Ctx> => ({ name: 'is for admins', as, method, path, body, status: 403, code: 'FORBIDDEN', notContains: (c) => [c.fake.url] })),
    ),
    ...(['user', 'other'] as const).flatMap((as): Scenario<Ctx>[] => [
      {
        name: 'everyone signed in sees the services, without their URL',
        as,
        method: 'GET',
        path: '/api/v1/services',
        status: 200,
        notContains: (c) => [c.fake.url, '127.0.0.1'],
        check: (r, c) => {
          const item = (r.body.items as Json[]).find((s) => s.id === c.serviceId)!
          expect(Object.keys(item).sort()).toEqual(SERVICE_KEYS)
          expect(item).toMatchObject({ name: 'Main ComfyUI', kind: 'comfyui', url: null, description: 'the GPU box', status: 'unknown', workflow_count: 0, session_count: 0, last_check_time: null })
        },
      },
      { name: 'one service, without its URL', as, method: 'GET', path: one, status: 200, notContains: (c) => [c.fake.url], check: (r) => expect(r.body.url).toBeNull() },
    ]),
    { name: 'admins see the URL (trailing slash dropped)', as: 'admin', method: 'GET', path: one, status: 200, check: (r, c) => expect(r.body.url).toBe(c.fake.url) },
    { name: 'an unknown service', as: 'user', method: 'GET', path: '/api/v1/services/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'an unknown service: PUT', as: 'admin', method: 'PUT', path: '/api/v1/services/nope', body: { name: 'x' }, status: 404, code: 'NOT_FOUND' },
    { name: 'an unknown service: DELETE', as: 'admin', method: 'DELETE', path: '/api/v1/services/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'an unknown service: test', as: 'admin', method: 'POST', path: '/api/v1/services/nope/test', status: 404, code: 'NOT_FOUND' },
    {
      name: 'an admin tests it: online, with the version and the devices',
      as: 'admin',
      method: 'POST',
      path: (c) => `${one(c)}/test`,
      status: 200,
      check: (r) => {
        expect(r.body).toEqual({ status: 'online', response_time_ms: expect.any(Number), version: '0.3.40', devices: [{ name: 'cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync', type: 'cuda', index: 0, vram_total: 24 * 1024 ** 3, vram_free: 22 * 1024 ** 3 }] })
      },
    },
    { name: 'an admin renames it', as: 'admin', method: 'PUT', path: one, body: { name: 'Renamed ComfyUI' }, status: 200, check: (r, c) => expect(r.body).toMatchObject({ id: c.serviceId, name: 'Renamed ComfyUI', url: c.fake.url, status: 'online' }) },
    { name: 'an admin removes one', as: 'admin', method: 'DELETE', path: (c) => `/api/v1/services/${c.spareId}`, status: 204 },
    { name: 'gone once removed', as: 'user', method: 'GET', path: (c) => `/api/v1/services/${c.spareId}`, status: 404, code: 'NOT_FOUND' },
  ])
})

// -------------------------------------------------------------------------------------------------

eachDialect('services', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let admin: string
  let fake: FakeComfy
  beforeAll(async () => {
    fake = await startFakeComfy({ version: '0.3.44' })
  })
  afterAll(() => fake.stop())
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers), (admin = callers.accounts.admin.access)), {}, { workflowServices: { checkTimeoutMs: 400 } })

  const test_ = (id: string) => t.request('POST', `/api/v1/services/${id}/test`, { token: admin })
  const read = async (id: string) => (await t.request('GET', `/api/v1/services/${id}`, { token: admin })).body as Json

  test('POST → 201 + Location: kind comfyui by default, unknown until checked; unknown fields ignored', async () => {
    const res = await t.request('POST', '/api/v1/services', { token: admin, body: { name: uniqueName('fresh'), url: `${fake.url}/comfy/`, description: ' desc ', status: 'online', surprise: 'boo-field' } })
    expect(res.status).toBe(201)
    expect(res.body).toEqual({
      id: expect.any(String),
      name: expect.any(String),
      kind: 'comfyui',
      url: `${fake.url}/comfy`,
      description: 'desc',
      status: 'unknown',
      response_time_ms: null,
      version: null,
      workflow_count: 0,
      session_count: 0,
      last_check_time: null,
      created_at: expect.any(String),
    })
    expect(res.text).not.toContain('boo-field')
    expect(await read(res.body.id)).toEqual(res.body)
  })

  const badUrls: [string, string][] = [
    ['not a URL', 'comfy box'],
    ['ftp', 'ftp://127.0.0.1/'],
    ['file', 'file:///etc/passwd'],
    ['a user name and password', 'http://admin:secret@127.0.0.1:8188'],
    ['a user name', 'http://admin@127.0.0.1:8188'],
    ['a query string', 'http://127.0.0.1:8188/?token=1'],
    ['a fragment', 'http://127.0.0.1:8188/#x'],
    ['too long', `http://127.0.0.1:8188/${'a'.repeat(2100)}`],
  ]
  for (const [what, url] of badUrls)
    test(`a URL with ${what} → 422 naming url, nothing stored`, async () => {
      const name = uniqueName('bad')
      const res = await t.request('POST', '/api/v1/services', { token: admin, body: { name, url } })
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect((res.body.errors as Json[]).map((e) => e.path)).toContain('url')
      expect(res.text).not.toContain('secret')
      expect(((await t.request('GET', '/api/v1/services?limit=100', { token: admin })).body.items as Json[]).map((s) => s.name)).not.toContain(name)
    })

  test('bad bodies → 422; names are unique ignoring case (409), on create and on rename', async () => {
    for (const body of [{}, { name: '', url: fake.url }, { name: 'x' }, { name: 'x', url: fake.url, kind: 'automatic1111' }, { name: 'x'.repeat(101), url: fake.url }, { name: 'x', url: 42 }])
      expectProblem(await t.request('POST', '/api/v1/services', { token: admin, body }), 422, 'VALIDATION_ERROR')
    const a = await createService(t, admin, { name: 'Studio Box', url: fake.url })
    expectProblem(await t.request('POST', '/api/v1/services', { token: admin, body: { name: 'studio BOX', url: fake.url } }), 409, 'CONFLICT')
    const b = await createService(t, admin, { name: 'Other Box', url: fake.url })
    expectProblem(await t.request('PUT', `/api/v1/services/${b.id}`, { token: admin, body: { name: 'STUDIO box' } }), 409, 'CONFLICT')
    expectProblem(await t.request('PUT', `/api/v1/services/${b.id}`, { token: admin, body: { url: 'http://u:p@127.0.0.1:1' } }), 422, 'VALIDATION_ERROR')
    expect((await read(a.id)).name).toBe('Studio Box')
    expect((await read(b.id)).name).toBe('Other Box')
  })

  test('test online: GET /system_stats with no Origin header; the row keeps status, response time, version and check time', async () => {
    const s = await createService(t, admin, { url: fake.url })
    const before = statsHits(fake).length
    const res = await test_(s.id)
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ status: 'online', version: '0.3.44' })
    expect(res.body.devices).toHaveLength(1)
    expect(res.body.error).toBeUndefined()
    const hits = statsHits(fake).slice(before)
    expect(hits).toHaveLength(1)
    expect(hits[0]!.method).toBe('GET')
    expect(hits[0]!.headers.origin).toBeUndefined()
    const row = await read(s.id)
    expect(row).toMatchObject({ status: 'online', version: '0.3.44', response_time_ms: res.body.response_time_ms })
    expect(Date.now() - Date.parse(row.last_check_time)).toBeLessThan(10_000)
  })

  test('a path prefix is kept: /system_stats is asked under it', async () => {
    const s = await createService(t, admin, { url: `${fake.url}/api` })
    const before = fake.requests.length
    expect((await test_(s.id)).body.status).toBe('online')
    expect(fake.requests.slice(before).map((r) => r.path)).toEqual(['/api/system_stats'])
  })

  test('nothing listening: 200 offline "connection refused"; the row goes offline, response time null, version kept', async () => {
    const other = await startFakeComfy({ version: '0.2.0' })
    const s = await createService(t, admin, { url: other.url })
    expect((await test_(s.id)).body.status).toBe('online')
    await other.stop()
    const res = await test_(s.id)
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ status: 'offline', response_time_ms: expect.any(Number), error: expect.stringContaining('connection refused') })
    expect(await read(s.id)).toMatchObject({ status: 'offline', response_time_ms: null, version: '0.2.0' })
    const dead = await createService(t, admin, { url: await deadUrl() })
    expect((await test_(dead.id)).body).toMatchObject({ status: 'offline', error: expect.stringContaining('connection refused') })
  })

  test('a server that never answers: offline within the timeout (a seam: 400 ms here, 5 s by default)', async () => {
    const hang = await startFakeComfy({ behaviour: 'hang' })
    try {
      const s = await createService(t, admin, { url: hang.url })
      const started = Date.now()
      const res = await test_(s.id)
      expect(Date.now() - started).toBeLessThan(3000)
      expect(res.status).toBe(200)
      expect(res.body).toMatchObject({ status: 'offline', error: 'no answer within 400 ms' })
      expect(res.body.response_time_ms).toBeGreaterThanOrEqual(350)
      expect((await read(s.id)).status).toBe('offline')
    } finally {
      await hang.stop()
    }
  })

  test('a redirect is reported, not followed; a 500 and a non-JSON answer are offline with the reason', async () => {
    const redirect = await startFakeComfy({ behaviour: 'redirect' })
    const broken = await startFakeComfy({ behaviour: 'error' })
    const html = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('<html>nginx welcome</html>', { headers: { 'content-type': 'text/html' } }) })
    const notComfy = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => Response.json({ hello: 'world' }) })
    try {
      const r = await createService(t, admin, { url: redirect.url })
      const res = await test_(r.id)
      expect(res.body).toMatchObject({ status: 'offline' })
      expect(res.body.error).toContain('302')
      expect(res.body.error).toContain('redirects are not followed')
      expect(res.body.error).toContain('127.0.0.1:9/system_stats')
      expect(redirect.requests).toHaveLength(1)

      const b = await createService(t, admin, { url: broken.url })
      expect((await test_(b.id)).body).toMatchObject({ status: 'offline', error: 'answered HTTP 500 to GET /system_stats' })

      const h = await createService(t, admin, { url: `http://127.0.0.1:${html.port}` })
      expect((await test_(h.id)).body).toMatchObject({ status: 'offline', error: expect.stringContaining('not JSON') })
      const j = await createService(t, admin, { url: `http://127.0.0.1:${notComfy.port}` })
      expect((await test_(j.id)).body).toMatchObject({ status: 'offline', error: expect.stringContaining('no "system" object') })
      for (const id of [r.id, b.id, h.id, j.id]) expect((await read(id)).status).toBe('offline')
    } finally {
      await Promise.all([redirect.stop(), broken.stop(), html.stop(true), notComfy.stop(true)])
    }
  })

  test('the same engine online, then offline, then online again', async () => {
    const flaky = await startFakeComfy()
    try {
      const s = await createService(t, admin, { url: flaky.url })
      expect((await test_(s.id)).body.status).toBe('online')
      flaky.behaviour = 'error'
      expect((await test_(s.id)).body.status).toBe('offline')
      expect((await read(s.id)).status).toBe('offline')
      flaky.behaviour = 'normal'
      expect((await test_(s.id)).body.status).toBe('online')
      expect((await read(s.id)).status).toBe('online')
    } finally {
      await flaky.stop()
    }
  })

  test('a new URL makes the status unknown until checked; other changes keep it', async () => {
    const s = await createService(t, admin, { url: fake.url })
    await test_(s.id)
    expect((await t.request('PUT', `/api/v1/services/${s.id}`, { token: admin, body: { description: 'moved soon', url: `${fake.url}/` } })).body).toMatchObject({ status: 'online', description: 'moved soon' })
    const moved = await t.request('PUT', `/api/v1/services/${s.id}`, { token: admin, body: { url: await deadUrl() } })
    expect(moved.status).toBe(200)
    expect(moved.body).toMatchObject({ status: 'unknown', version: null, response_time_ms: null, last_check_time: null, description: 'moved soon' })
    expect((await t.request('PUT', `/api/v1/services/${s.id}`, { token: admin, body: { description: null } })).body.description).toBeNull()
  })

  test('workflow_count and session_count: every user\'s workflows and their sessions, per service; a removed service leaves its workflows without one', async () => {
    const s = await createService(t, admin, { url: fake.url })
    const other = await createService(t, admin, { url: fake.url })
    const make = async (token: string, serviceId: string | null) => {
      const res = await t.request('POST', '/api/v1/workflows', { token, body: { name: 'wf', service_id: serviceId, workflow_data: apiWorkflow() } })
      expect(res.status).toBe(201)
      return res.body.id as string
    }
    const w1 = await make(ctx.accounts.user.access, s.id)
    const w2 = await make(ctx.accounts.other.access, s.id)
    await make(ctx.accounts.user.access, other.id)
    await make(ctx.accounts.user.access, null)
    const { db, t: tables } = t.deps.database
    await db.insert(tables.workflowSessions).values([
      { userId: ctx.accounts.user.id, workflowId: w1 },
      { userId: ctx.accounts.user.id, workflowId: w1 },
      { userId: ctx.accounts.other.id, workflowId: w2 },
    ])
    expect(await read(s.id)).toMatchObject({ workflow_count: 2, session_count: 3 })
    expect(await read(other.id)).toMatchObject({ workflow_count: 1, session_count: 0 })
    const listed = ((await t.request('GET', '/api/v1/services?limit=100', { token: ctx.accounts.user.access })).body.items as Json[]).find((x) => x.id === s.id)
    expect(listed).toMatchObject({ workflow_count: 2, session_count: 3 })

    expect((await t.request('DELETE', `/api/v1/services/${s.id}`, { token: admin })).status).toBe(204)
    const wf = await t.request('GET', `/api/v1/workflows/${w1}`, { token: ctx.accounts.user.access })
    expect(wf.body).toMatchObject({ service_id: null, service_name: null, session_count: 2 })
  })

  test('GET /services is a §1 page, by name', async () => {
    const res = await t.request('GET', '/api/v1/services?limit=2', { token: ctx.accounts.user.access })
    expect(res.body).toMatchObject({ limit: 2, offset: 0, has_more: true })
    expect(res.body.items).toHaveLength(2)
    const all = (await t.request('GET', '/api/v1/services?limit=100', { token: ctx.accounts.user.access })).body
    const names = (all.items as Json[]).map((s) => s.name.toLowerCase())
    expect(names).toEqual([...names].sort())
    expect(all.total).toBe(all.items.length)
    for (const q of ['limit=0', 'limit=101', 'offset=-1']) expectProblem(await t.request('GET', `/api/v1/services?${q}`, { token: admin }), 422, 'VALIDATION_ERROR')
  })

  test('the health check: due services are checked once per interval (checkDue claims them)', async () => {
    const fresh = await startFakeComfy({ version: '1.0.0' })
    try {
      const s = await createService(t, admin, { url: fresh.url })
      const checks = t.deps.services.workflowServices
      // everything unchecked or checked over a minute ago is due; this one was never checked
      expect(await checks.checkDue()).toBeGreaterThanOrEqual(1)
      expect(statsHits(fresh)).toHaveLength(1)
      expect(await read(s.id)).toMatchObject({ status: 'online', version: '1.0.0' })
      // just checked: not due again within the interval
      expect(await checks.checkDue()).toBe(0)
      expect(statsHits(fresh)).toHaveLength(1)
      // a minute later it is
      expect(await checks.checkDue(new Date(Date.now() + 61_000))).toBeGreaterThanOrEqual(1)
      expect(statsHits(fresh)).toHaveLength(2)
    } finally {
      await fresh.stop()
    }
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('services: the periodic health check', (dialect) => {
  test('runs on its own timer and keeps the status: online, then offline when the engine stops', async () => {
    const fake = await startFakeComfy()
    const t = await createTestApp(dialect, {}, { workflowServices: { healthIntervalMs: 150, checkTimeoutMs: 300 } })
    try {
      const admin = await register(t, 'admin')
      const s = await createService(t, admin.access, { url: fake.url })
      const read = async () => (await t.request('GET', `/api/v1/services/${s.id}`, { token: admin.access })).body as Json
      await eventually(async () => (await read()).status === 'online', 3000, 'the check to find it online')
      const first = await read()
      expect(first.version).toBe('0.3.40')
      await fake.stop()
      await eventually(async () => (await read()).status === 'offline', 3000, 'the check to find it offline')
      expect(Date.parse((await read()).last_check_time)).toBeGreaterThan(Date.parse(first.last_check_time))
    } finally {
      await t.close()
      await fake.stop()
    }
  }, 15_000)

  test('stops on shutdown: no check after close', async () => {
    const fake = await startFakeComfy()
    const t = await createTestApp(dialect, {}, { workflowServices: { healthIntervalMs: 100 } })
    try {
      const admin = await register(t, 'admin')
      await createService(t, admin.access, { url: fake.url })
      await eventually(() => statsHits(fake).length > 0, 3000, 'a first check')
    } finally {
      await t.close()
    }
    const after = statsHits(fake).length
    await Bun.sleep(350)
    expect(statsHits(fake).length).toBe(after)
    await fake.stop()
  }, 15_000)
})

if (process.env.TEST_DATABASE_URL)
  test('two instances on one Postgres: each service is checked by one of them per interval', async () => {
    const fake = await startFakeComfy()
    const a = await createTestApp('postgres')
    const b = await createSecondInstance(a)
    try {
      const admin = await register(a, 'admin')
      for (let i = 0; i < 5; i++) await createService(a, admin.access, { url: fake.url })
      // both cycles at once: the five are claimed once between them
      const [onA, onB] = await Promise.all([a.deps.services.workflowServices.checkDue(), b.deps.services.workflowServices.checkDue()])
      expect(onA + onB).toBe(5)
      expect(statsHits(fake)).toHaveLength(5)
      // and again a minute later, from either side
      const later = new Date(Date.now() + 61_000)
      const [againA, againB] = await Promise.all([a.deps.services.workflowServices.checkDue(later), b.deps.services.workflowServices.checkDue(later)])
      expect(againA + againB).toBe(5)
      expect(statsHits(fake)).toHaveLength(10)
      const { db, t: tables } = a.deps.database
      const rows = await db.select({ status: tables.services.status }).from(tables.services).where(eq(tables.services.kind, 'comfyui'))
      expect(rows.map((r) => r.status)).toEqual(Array(5).fill('online'))
    } finally {
      await b.close()
      await a.close()
      await fake.stop()
    }
  }, 20_000)

if (process.env.TEST_DATABASE_URL)
  test('two instances on one Postgres with their timers running: no service is checked more often than the interval', async () => {
    const fake = await startFakeComfy()
    const interval = 300
    const a = await createTestApp('postgres', {}, { workflowServices: { healthIntervalMs: interval } })
    const b = await createSecondInstance(a, {}, { workflowServices: { healthIntervalMs: interval } })
    try {
      const admin = await register(a, 'admin')
      const started = Date.now()
      for (let i = 0; i < 3; i++) await createService(a, admin.access, { url: fake.url })
      await Bun.sleep(1600)
      const elapsed = Date.now() - started
      const hits = statsHits(fake).length
      // one instance alone would make ~elapsed/interval checks per service; two without the claim twice that
      const most = 3 * (Math.floor(elapsed / (interval * 0.9)) + 1)
      expect(hits).toBeGreaterThanOrEqual(3)
      expect(hits).toBeLessThanOrEqual(most)
    } finally {
      await b.close()
      await a.close()
      await fake.stop()
    }
  }, 20_000)
