/**
 * Workflows (docs/api.md §20 "Workflows and versions"): each user's own (404 to everyone else,
 * admins too), `workflow_data` a JSON object stored as given (API or UI format), filters and sorts,
 * favorites, versions (one per change of the JSON, race-free across instances) and restore, a new
 * version from an uploaded workflow file, and the lock an editing agent holds: other writers get
 * 409 naming its reason, it expires, and WORKFLOW_LOCKED / WORKFLOW_UNLOCKED go out on the bus.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { count, eq } from 'drizzle-orm'
import { workflowLockChannel, type WorkflowLockEvent } from '../src/modules/workflows/types.ts'
import { MAX_WORKFLOW_DEPTH } from '../src/modules/workflows/service.ts'
import { register, setupCallers, useCallers, type Account, type CallersContext } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'
import { eventually } from './helpers/streams.ts'
import { apiWorkflow, uiWorkflow } from './fakes/comfyui.ts'

type Json = Record<string, any>

const WORKFLOW_KEYS = ['created_at', 'current_version', 'description', 'id', 'is_favorite', 'last_used_at', 'locked', 'name', 'service_id', 'service_name', 'session_count', 'updated_at', 'version_count', 'workflow_data']

async function created(res: TestResponse): Promise<Json> {
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
  expect(res.headers.get('location')).toBe(`/api/v1/workflows/${res.body.id}`)
  return res.body
}

const createWorkflow = async (t: TestApp, token: string, body: Json = {}) => created(await t.request('POST', '/api/v1/workflows', { token, body: { name: 'txt2img', workflow_data: apiWorkflow(), ...body } }))
const names = (r: TestResponse) => (r.body.items as Json[]).map((i) => i.name as string)

async function rows(t: TestApp, table: 'workflows' | 'workflowVersions', userOrWorkflow?: string) {
  const { db, t: tables } = t.deps.database
  const where = userOrWorkflow === undefined ? undefined : table === 'workflows' ? eq(tables.workflows.userId, userOrWorkflow) : eq(tables.workflowVersions.workflowId, userOrWorkflow)
  const [row] = await db.select({ n: count() }).from(tables[table]).where(where)
  return Number(row?.n ?? 0)
}

/** A workflow file upload through the real multipart route */
function uploadWorkflowFile(t: TestApp, token: string, workflowId: string | undefined, data: BlobPart, fileName = 'flow.json') {
  const fd = new FormData()
  if (workflowId !== undefined) fd.append('workflow_id', workflowId)
  fd.append('file', new Blob([data], { type: 'application/json' }), fileName)
  return t.app.handle(new Request('http://localhost/api/v1/files/workflow', { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: fd })).then(async (res) => {
    const text = await res.text()
    return { status: res.status, headers: res.headers, text, body: text.startsWith('{') ? JSON.parse(text) : text } as TestResponse
  })
}

/** the events of the lock channel this instance hears, from now on */
async function hearLocks(t: TestApp) {
  const events: WorkflowLockEvent[] = []
  const stop = t.deps.services.bus.subscribe(workflowLockChannel, (e) => void events.push(e))
  await t.deps.services.bus.ready()
  return { events, stop }
}

// -------------------------------------------------------------------------------------------------

interface Ctx extends CallersContext {
  mine: string
  serviceId: string
}

eachDialect('workflows: who may do what', (dialect) => {
  let ctx: Ctx
  beforeAll(async () => {
    const t = await createTestApp(dialect)
    const callers = await setupCallers(t)
    const service = await t.request('POST', '/api/v1/services', { token: callers.accounts.admin.access, body: { name: 'ComfyUI', url: 'http://127.0.0.1:8188' } })
    const mine = await createWorkflow(t, callers.accounts.user.access, { name: 'SECRET-portrait-flow', description: 'SECRET-desc', service_id: service.body.id, note: 'first' })
    ctx = { ...callers, mine: mine.id, serviceId: service.body.id }
  })
  afterAll(() => ctx.t.close())

  const one = (suffix = '') => (c: Ctx) => `/api/v1/workflows/${c.mine}${suffix}`
  const endpoints: [string, (c: Ctx) => string, unknown?][] = [
    ['GET', one()],
    ['PUT', one(), { name: 'overwritten' }],
    ['POST', one('/favorite'), { favorite: true }],
    ['GET', one('/versions')],
    ['GET', one('/versions/1')],
    ['POST', one('/versions/1/restore')],
    ['DELETE', one()],
  ]
  const secret = ['SECRET-portrait-flow', 'SECRET-desc']

  scenarios<Ctx>(() => ctx, [
    { name: 'needs credentials', as: 'guest', method: 'GET', path: '/api/v1/workflows', status: 401, code: 'UNAUTHORIZED' },
    { name: 'needs credentials', as: 'guest', method: 'POST', path: '/api/v1/workflows', body: { name: 'x', workflow_data: {} }, status: 401, code: 'UNAUTHORIZED' },
    ...endpoints.map(([method, path, body]): Scenario<Ctx> => ({ name: 'needs credentials', as: 'guest', method, path, body, status: 401, code: 'UNAUTHORIZED', notContains: secret })),
    ...(['other', 'admin'] as const).flatMap((as): Scenario<Ctx>[] => [
      ...endpoints.map(([method, path, body]): Scenario<Ctx> => ({ name: "another user's workflow is invisible (admins too)", as, method, path, body, status: 404, code: 'NOT_FOUND', notContains: secret })),
      { name: "the list has none of another user's workflows", as, method: 'GET', path: '/api/v1/workflows', status: 200, notContains: secret, check: (r, c) => expect((r.body.items as Json[]).map((i) => i.id)).not.toContain(c.mine) },
      { name: "filtering by the service shows none of another user's", as, method: 'GET', path: (c) => `/api/v1/workflows?service_id=${c.serviceId}`, status: 200, notContains: secret, check: (r) => expect(r.body.total).toBe(0) },
      { name: 'a workflow of their own', as, method: 'POST', path: '/api/v1/workflows', body: { name: `${as}'s flow`, workflow_data: { a: 1 } }, status: 201 },
    ]),
    {
      name: 'the owner reads it, unchanged by the others',
      as: 'user',
      method: 'GET',
      path: one(),
      status: 200,
      check: (r, c) => {
        expect(Object.keys(r.body).sort()).toEqual(WORKFLOW_KEYS)
        expect(r.body).toMatchObject({ id: c.mine, name: secret[0], description: secret[1], service_id: c.serviceId, service_name: 'ComfyUI', workflow_data: apiWorkflow(), is_favorite: false, current_version: 1, version_count: 1, session_count: 0, locked: null, last_used_at: null })
      },
    },
    { name: "the owner's list is the owner's alone", as: 'user', method: 'GET', path: '/api/v1/workflows', status: 200, check: (r, c) => expect({ ids: (r.body.items as Json[]).map((i) => i.id), total: r.body.total }).toEqual({ ids: [c.mine], total: 1 }) },
    { name: 'the owner lists the versions', as: 'user', method: 'GET', path: one('/versions'), status: 200, check: (r) => expect(r.body).toEqual([{ version: 1, created_at: expect.any(String), note: 'first' }]) },
    { name: 'the owner reads version 1', as: 'user', method: 'GET', path: one('/versions/1'), status: 200, check: (r) => expect(r.body).toEqual({ version: 1, workflow_data: apiWorkflow(), created_at: expect.any(String), note: 'first' }) },
    { name: 'an unknown version', as: 'user', method: 'GET', path: one('/versions/9'), status: 404, code: 'NOT_FOUND' },
    { name: 'an unknown version: restore', as: 'user', method: 'POST', path: one('/versions/9/restore'), status: 404, code: 'NOT_FOUND' },
    ...['0', 'abc', '1.5', '-1'].map((v): Scenario<Ctx> => ({ name: `version ${v} is not a version number`, as: 'user', method: 'GET', path: one(`/versions/${v}`), status: 422, code: 'VALIDATION_ERROR' })),
    { name: 'unknown id', as: 'user', method: 'GET', path: '/api/v1/workflows/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: PUT', as: 'user', method: 'PUT', path: '/api/v1/workflows/nope', body: { name: 'x' }, status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: DELETE', as: 'user', method: 'DELETE', path: '/api/v1/workflows/nope', status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: favorite', as: 'user', method: 'POST', path: '/api/v1/workflows/nope/favorite', body: { favorite: true }, status: 404, code: 'NOT_FOUND' },
    { name: 'unknown id: versions', as: 'user', method: 'GET', path: '/api/v1/workflows/nope/versions', status: 404, code: 'NOT_FOUND' },
    { name: 'the owner marks it a favorite', as: 'user', method: 'POST', path: one('/favorite'), body: { favorite: true }, status: 200, check: (r) => expect(r.body).toEqual({ is_favorite: true }) },
    { name: 'the owner deletes it', as: 'user', method: 'DELETE', path: one(), status: 204 },
    { name: 'then it is gone', as: 'user', method: 'GET', path: one(), status: 404, code: 'NOT_FOUND' },
  ])
})

// -------------------------------------------------------------------------------------------------

eachDialect('workflows', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let user: string
  let serviceId: string
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers), (user = callers.accounts.user.access)))
  beforeAll(async () => {
    serviceId = (await t.request('POST', '/api/v1/services', { token: ctx.accounts.admin.access, body: { name: 'Box', url: 'http://127.0.0.1:8188' } })).body.id
  })

  test('POST → 201 + Location, version 1; the API and the UI format are both stored as given; unknown fields ignored', async () => {
    const res = await t.request('POST', '/api/v1/workflows', { token: user, body: { name: '  Portrait  ', description: 'faces', service_id: serviceId, workflow_data: apiWorkflow(), user_id: ctx.accounts.other.id, current_version: 7, surprise: 'boo-field' } })
    const w = await created(res)
    expect(w).toEqual({
      id: expect.any(String),
      name: 'Portrait',
      description: 'faces',
      service_id: serviceId,
      service_name: 'Box',
      workflow_data: apiWorkflow(),
      is_favorite: false,
      session_count: 0,
      version_count: 1,
      current_version: 1,
      last_used_at: null,
      locked: null,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    })
    expect(res.text).not.toContain('boo-field')
    expect((await t.request('GET', `/api/v1/workflows/${w.id}`, { token: user })).body).toEqual(w)
    expectProblem(await t.request('GET', `/api/v1/workflows/${w.id}`, { token: ctx.accounts.other.access }), 404, 'NOT_FOUND')
    const ui = await createWorkflow(t, user, { name: 'ui', workflow_data: uiWorkflow() })
    expect(ui.workflow_data).toEqual(uiWorkflow())
    expect(ui.service_id).toBeNull()
    expect((await t.request('GET', `/api/v1/workflows/${ui.id}/versions/1`, { token: user })).body.workflow_data).toEqual(uiWorkflow())
  })

  const badBodies: [string, unknown, string][] = [
    ['workflow_data an array', { name: 'x', workflow_data: [1, 2] }, 'workflow_data'],
    ['workflow_data a string', { name: 'x', workflow_data: '{"3":{}}' }, 'workflow_data'],
    ['workflow_data null', { name: 'x', workflow_data: null }, 'workflow_data'],
    ['workflow_data a number', { name: 'x', workflow_data: 3 }, 'workflow_data'],
    ['no workflow_data', { name: 'x' }, 'workflow_data'],
    ['no name', { workflow_data: {} }, 'name'],
    ['a blank name', { name: '   ', workflow_data: {} }, 'name'],
    ['a name over 200 characters', { name: 'n'.repeat(201), workflow_data: {} }, 'name'],
    ['an unknown service', { name: 'x', workflow_data: {}, service_id: 'no-such-service' }, 'service_id'],
    ['nesting deeper than the limit', { name: 'x', workflow_data: JSON.parse('{"a":'.repeat(MAX_WORKFLOW_DEPTH + 1) + '1' + '}'.repeat(MAX_WORKFLOW_DEPTH + 1)) }, 'workflow_data'],
  ]
  for (const [what, body, path] of badBodies)
    test(`POST with ${what} → 422 naming ${path}, nothing stored`, async () => {
      const before = await rows(t, 'workflows')
      const res = await t.request('POST', '/api/v1/workflows', { token: user, body })
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect((res.body.errors as Json[]).map((e) => e.path)).toContain(path)
      expect(await rows(t, 'workflows')).toBe(before)
    })

  test('a 10 MB workflow → 413 (POST and PUT), nothing stored or changed; malformed JSON → 400', async () => {
    const big = { '1': { class_type: 'Note', inputs: { text: 'x'.repeat(10 * 1024 * 1024) } } }
    const before = await rows(t, 'workflows')
    expectProblem(await t.request('POST', '/api/v1/workflows', { token: user, body: { name: 'huge', workflow_data: big } }), 413, 'PAYLOAD_TOO_LARGE')
    expect(await rows(t, 'workflows')).toBe(before)
    const w = await createWorkflow(t, user)
    expectProblem(await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body: { workflow_data: big } }), 413, 'PAYLOAD_TOO_LARGE')
    // chunked, without a Content-Length: the limit holds all the same
    const chunked = new Blob([JSON.stringify({ name: 'huge', workflow_data: big })]).stream()
    expectProblem(await t.request('POST', '/api/v1/workflows', { token: user, raw: chunked, headers: { 'content-type': 'application/json' } }), 413, 'PAYLOAD_TOO_LARGE')
    expect(await rows(t, 'workflows')).toBe(before + 1)
    expect(await rows(t, 'workflowVersions', w.id)).toBe(1)
    expect((await t.request('GET', `/api/v1/workflows/${w.id}`, { token: user })).body).toMatchObject({ current_version: 1, workflow_data: apiWorkflow() })
    expectProblem(await t.request('POST', '/api/v1/workflows', { token: user, raw: '{"name":"x","workflow_data":{', headers: { 'content-type': 'application/json' } }), 400, 'VALIDATION_ERROR')
  })

  test('PUT: a change of workflow_data adds a version with its note; the same JSON (keys in another order) or other fields add none', async () => {
    const w = await createWorkflow(t, user, { note: 'v1' })
    await Bun.sleep(5)
    const renamed = await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body: { name: 'renamed', description: 'now described', note: 'ignored without a change' } })
    expect(renamed.status).toBe(200)
    expect(renamed.body).toMatchObject({ name: 'renamed', description: 'now described', current_version: 1, version_count: 1 })
    expect(Date.parse(renamed.body.updated_at)).toBeGreaterThan(Date.parse(w.updated_at))

    const reordered = Object.fromEntries(Object.entries(apiWorkflow()).reverse().map(([k, v]) => [k, Object.fromEntries(Object.entries(v as Json).reverse())]))
    const same = await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body: { workflow_data: reordered, note: 'nothing changed' } })
    expect(same.body).toMatchObject({ current_version: 1, version_count: 1 })

    const changed = apiWorkflow()
    changed['3'].inputs.steps = 30
    const v2 = await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body: { workflow_data: changed, note: 'more steps' } })
    expect(v2.body).toMatchObject({ current_version: 2, version_count: 2, workflow_data: changed, name: 'renamed' })
    const v3 = await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body: { workflow_data: uiWorkflow() } })
    expect(v3.body).toMatchObject({ current_version: 3, version_count: 3, workflow_data: uiWorkflow() })

    const versions = await t.request('GET', `/api/v1/workflows/${w.id}/versions`, { token: user })
    expect(versions.body.map((v: Json) => [v.version, v.note])).toEqual([[3, null], [2, 'more steps'], [1, 'v1']])
    expect((await t.request('GET', `/api/v1/workflows/${w.id}/versions/2`, { token: user })).body).toMatchObject({ version: 2, workflow_data: changed, note: 'more steps' })
    expect((await t.request('GET', `/api/v1/workflows/${w.id}/versions/1`, { token: user })).body.workflow_data).toEqual(apiWorkflow())
  })

  test('PUT: bad input → 422 and nothing changes; service_id may be set and cleared', async () => {
    const w = await createWorkflow(t, user)
    for (const body of [{ workflow_data: [1] }, { workflow_data: 'x' }, { workflow_data: null }, { name: '' }, { service_id: 'no-such-service' }, { note: 'n'.repeat(501), workflow_data: { a: 1 } }])
      expectProblem(await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body }), 422, 'VALIDATION_ERROR')
    expect((await t.request('GET', `/api/v1/workflows/${w.id}`, { token: user })).body).toMatchObject({ current_version: 1, workflow_data: apiWorkflow(), name: 'txt2img' })
    expect((await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body: { service_id: serviceId } })).body).toMatchObject({ service_id: serviceId, service_name: 'Box' })
    expect((await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body: { service_id: null } })).body).toMatchObject({ service_id: null, service_name: null })
  })

  test('restore adds a version equal to the old one (always, even when it equals the current), and answers the workflow', async () => {
    const w = await createWorkflow(t, user)
    await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body: { workflow_data: { edited: true } } })
    const restored = await t.request('POST', `/api/v1/workflows/${w.id}/versions/1/restore`, { token: user })
    expect(restored.status).toBe(200)
    expect(restored.body).toMatchObject({ id: w.id, current_version: 3, version_count: 3, workflow_data: apiWorkflow() })
    expect((await t.request('GET', `/api/v1/workflows/${w.id}/versions/3`, { token: user })).body).toMatchObject({ workflow_data: apiWorkflow(), note: 'restored from version 1' })
    const again = await t.request('POST', `/api/v1/workflows/${w.id}/versions/3/restore`, { token: user })
    expect(again.body).toMatchObject({ current_version: 4 })
    expect((await t.request('GET', `/api/v1/workflows/${w.id}/versions`, { token: user })).body.map((v: Json) => v.version)).toEqual([4, 3, 2, 1])
  })

  test('favorite: set and cleared, updated_at stays; a bad body → 422', async () => {
    const w = await createWorkflow(t, user)
    expect((await t.request('POST', `/api/v1/workflows/${w.id}/favorite`, { token: user, body: { favorite: true } })).body).toEqual({ is_favorite: true })
    const got = (await t.request('GET', `/api/v1/workflows/${w.id}`, { token: user })).body
    expect(got).toMatchObject({ is_favorite: true, updated_at: w.updated_at })
    expect((await t.request('POST', `/api/v1/workflows/${w.id}/favorite`, { token: user, body: { favorite: false } })).body).toEqual({ is_favorite: false })
    for (const body of [{}, { favorite: 'yes' }, { favorite: null }]) expectProblem(await t.request('POST', `/api/v1/workflows/${w.id}/favorite`, { token: user, body }), 422, 'VALIDATION_ERROR')
  })

  test('DELETE → 204: its versions go with it', async () => {
    const w = await createWorkflow(t, user)
    await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body: { workflow_data: { b: 2 } } })
    expect(await rows(t, 'workflowVersions', w.id)).toBe(2)
    const res = await t.request('DELETE', `/api/v1/workflows/${w.id}`, { token: user })
    expect({ status: res.status, text: res.text }).toEqual({ status: 204, text: '' })
    expect(await rows(t, 'workflowVersions', w.id)).toBe(0)
    expectProblem(await t.request('DELETE', `/api/v1/workflows/${w.id}`, { token: user }), 404, 'NOT_FOUND')
  })

  test('touch sets last_used_at; get and serviceOf (WorkflowsApi) read the row and its service', async () => {
    const w = await createWorkflow(t, user, { service_id: serviceId })
    const api = t.deps.services.workflows
    await api.touch(w.id)
    const got = (await t.request('GET', `/api/v1/workflows/${w.id}`, { token: user })).body
    expect(Date.now() - Date.parse(got.last_used_at)).toBeLessThan(10_000)
    expect(got.updated_at).toBe(w.updated_at)
    const row = await api.get(ctx.accounts.user.id, w.id)
    expect(row.workflowData).toEqual(apiWorkflow())
    expect((await api.serviceOf(row))?.name).toBe('Box')
    await expect(api.get(ctx.accounts.other.id, w.id)).rejects.toMatchObject({ status: 404, code: 'NOT_FOUND' })
    const bare = await api.get(ctx.accounts.user.id, (await createWorkflow(t, user)).id)
    expect(await api.serviceOf(bare)).toBeNull()
  })

  test('the service checks workflow_data for its other callers too (an agent edit): an object, no NUL, not too deep', async () => {
    const w = await createWorkflow(t, user)
    const api = t.deps.services.workflows
    const uid = ctx.accounts.user.id
    const deep = JSON.parse('['.repeat(80) + ']'.repeat(80))
    for (const bad of [[1, 2], 'text', null, { a: 'nul\u0000here' }, { ['k\u0000']: 1 }, { deep }])
      await expect(api.update(uid, w.id, { workflowData: bad as never })).rejects.toMatchObject({ status: 422, code: 'VALIDATION_ERROR' })
    expect((await api.update(uid, w.id, { workflowData: { fine: true }, note: 'by the agent' })).currentVersion).toBe(2)
    // exactly the limit is fine
    const deepest = JSON.parse('{"a":'.repeat(MAX_WORKFLOW_DEPTH - 1) + '{}' + '}'.repeat(MAX_WORKFLOW_DEPTH - 1))
    expect((await api.update(uid, w.id, { workflowData: deepest })).currentVersion).toBe(3)
    expect((await api.get(uid, w.id)).workflowData).toEqual(deepest)
  })

  test('versions stay numbered 1…n when PUTs race: twelve at once, each a new JSON', async () => {
    const w = await createWorkflow(t, user)
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body: { workflow_data: { n: i }, note: `edit ${i}` } })))
    expect(results.map((r) => r.status)).toEqual(Array(12).fill(200))
    const versions = (await t.request('GET', `/api/v1/workflows/${w.id}/versions`, { token: user })).body as Json[]
    expect(versions.map((v) => v.version)).toEqual(Array.from({ length: 13 }, (_, i) => 13 - i))
    const final = (await t.request('GET', `/api/v1/workflows/${w.id}`, { token: user })).body
    expect(final).toMatchObject({ current_version: 13, version_count: 13 })
    // the current JSON is the newest version's
    expect((await t.request('GET', `/api/v1/workflows/${w.id}/versions/13`, { token: user })).body.workflow_data).toEqual(final.workflow_data)
  })

  test('/openapi.json documents the workflow and service routes', async () => {
    const { body } = await t.request('GET', '/openapi.json')
    expect(body.paths['/api/v1/workflows'].get.tags).toContain('Workflows')
    expect(Object.keys(body.paths['/api/v1/workflows/{id}'].put.responses)).toEqual(['200', '401', '403', '404', '409', '422', '429'])
    expect(Object.keys(body.paths['/api/v1/workflows/{id}/versions/{version}/restore'].post.responses)).toEqual(['200', '401', '403', '404', '409', '422', '429'])
    expect(Object.keys(body.paths['/api/v1/services/{id}/test'].post.responses)).toEqual(['200', '401', '403', '404', '422', '429'])
    expect(body.paths['/api/v1/workflows/{id}/versions'].get.responses['200'].content['application/json'].schema.type).toBe('array')
    expect(Object.keys(body.paths['/api/v1/files/workflow'].post.responses)).toEqual(['201', '401', '403', '404', '409', '413', '415', '422', '429'])
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('workflows: filters and sorts', (dialect) => {
  let t: TestApp
  let a: Account
  let ids: Record<string, string>
  let services: { s1: string; s2: string }
  beforeAll(async () => {
    t = await createTestApp(dialect)
    const admin = await register(t, 'admin')
    a = await register(t, 'sorter')
    const svc = async (name: string) => (await t.request('POST', '/api/v1/services', { token: admin.access, body: { name, url: 'http://127.0.0.1:8188' } })).body.id as string
    services = { s1: await svc('one'), s2: await svc('two') }
    // straight into the table, with chosen times: names, created, updated, last used (minutes), favorite, service
    const base = Date.now() - 3_600_000
    const at = (m: number | null) => (m === null ? null : new Date(base + m * 60_000))
    const spec: [string, string | null, number, number, number | null, boolean, 's1' | 's2' | null][] = [
      ['beta', 'Upscaler for 100% crops', 1, 50, 10, true, 's1'],
      ['Alpha', 'portrait faces', 2, 40, null, false, 's1'],
      ['gamma', null, 3, 30, 30, true, 's2'],
      ['delta_x', 'landscape', 4, 20, null, false, null],
      ['Epsilon', 'another PORTRAIT', 5, 10, 20, false, 's2'],
    ]
    const { db, t: tables } = t.deps.database
    ids = {}
    for (const [name, description, c, u, l, fav, s] of spec) {
      const [row] = await db
        .insert(tables.workflows)
        .values({ userId: a.id, name, description, createdAt: at(c)!, updatedAt: at(u)!, lastUsedAt: at(l), isFavorite: fav, serviceId: s ? services[s] : null, workflowData: { name } })
        .returning({ id: tables.workflows.id })
      ids[name] = row!.id
    }
    // another user's, matching every filter: never listed
    const b = await register(t, 'bystander')
    await createWorkflow(t, b.access, { name: 'alpha portrait', description: 'portrait', service_id: services.s1 })
  })
  afterAll(() => t.close())

  const list = (q: string) => t.request('GET', `/api/v1/workflows?${q}`, { token: a.access })

  const cases: [string, string, string[]][] = [
    ['the default: updated_at, newest first', '', ['beta', 'Alpha', 'gamma', 'delta_x', 'Epsilon']],
    ['name ascending, ignoring case', 'sort_by=name&sort_order=asc', ['Alpha', 'beta', 'delta_x', 'Epsilon', 'gamma']],
    ['name descending', 'sort_by=name', ['gamma', 'Epsilon', 'delta_x', 'beta', 'Alpha']],
    ['created_at ascending', 'sort_by=created_at&sort_order=asc', ['beta', 'Alpha', 'gamma', 'delta_x', 'Epsilon']],
    ['created_at descending', 'sort_by=created_at&sort_order=desc', ['Epsilon', 'delta_x', 'gamma', 'Alpha', 'beta']],
    ['updated_at ascending', 'sort_by=updated_at&sort_order=asc', ['Epsilon', 'delta_x', 'gamma', 'Alpha', 'beta']],
    ['last_used_at descending, never used last', 'sort_by=last_used_at', ['gamma', 'Epsilon', 'beta', ...[] as string[]]],
    ['last_used_at ascending, never used last', 'sort_by=last_used_at&sort_order=asc', ['beta', 'Epsilon', 'gamma']],
    ['favorites', 'favorite=true', ['beta', 'gamma']],
    ['not favorites', 'favorite=false&sort_by=name&sort_order=asc', ['Alpha', 'delta_x', 'Epsilon']],
    ['one service', 'service_id=S1&sort_by=name&sort_order=asc', ['Alpha', 'beta']],
    ['a service and favorites', 'service_id=S2&favorite=true', ['gamma']],
    ['an unknown service: none', 'service_id=nope', []],
    ['q in the description, ignoring case', 'q=portrait&sort_by=name&sort_order=asc', ['Alpha', 'Epsilon']],
    ['q in the name', 'q=ALPH', ['Alpha']],
    ['q takes % literally', 'q=100%25', ['beta']],
    ['q takes _ literally', 'q=a_x', ['delta_x']],
    ['q and a filter', 'q=portrait&service_id=S2', ['Epsilon']],
  ]
  for (const [what, q, expected] of cases)
    test(what, async () => {
      const res = await list(q.replace('S1', services.s1).replace('S2', services.s2))
      expect(res.status).toBe(200)
      const got = names(res)
      // the never-used ones follow, in their own order: check the used ones lead
      if (q.includes('last_used_at')) {
        expect(got.slice(0, expected.length)).toEqual(expected)
        expect(got.slice(expected.length).sort()).toEqual(['Alpha', 'delta_x'])
      } else expect(got).toEqual(expected)
      expect(res.body.total).toBe(q.includes('last_used_at') ? 5 : expected.length)
    })

  test('ties break by id, the same way on every page', async () => {
    const { db, t: tables } = t.deps.database
    const c = await register(t, 'ties')
    const same = new Date(Date.now() - 1000)
    for (let i = 0; i < 6; i++) await db.insert(tables.workflows).values({ userId: c.id, name: 'same', createdAt: same, updatedAt: same, workflowData: {} })
    for (const order of ['asc', 'desc'] as const)
      for (const by of ['name', 'created_at', 'updated_at', 'last_used_at']) {
        const all = (await t.request('GET', `/api/v1/workflows?sort_by=${by}&sort_order=${order}`, { token: c.access })).body.items.map((i: Json) => i.id)
        const sorted = [...all].sort()
        expect(all).toEqual(order === 'asc' ? sorted : sorted.reverse())
        const paged: string[] = []
        for (let off = 0; off < 6; off += 4) paged.push(...(await t.request('GET', `/api/v1/workflows?sort_by=${by}&sort_order=${order}&limit=4&offset=${off}`, { token: c.access })).body.items.map((i: Json) => i.id))
        expect(paged).toEqual(all)
      }
  })

  test('a §1 page: limit, offset, total, has_more', async () => {
    const first = await list('limit=2&sort_by=name&sort_order=asc')
    expect({ names: names(first), total: first.body.total, limit: first.body.limit, offset: first.body.offset, has_more: first.body.has_more }).toEqual({ names: ['Alpha', 'beta'], total: 5, limit: 2, offset: 0, has_more: true })
    const last = await list('limit=2&offset=4&sort_by=name&sort_order=asc')
    expect({ names: names(last), has_more: last.body.has_more }).toEqual({ names: ['gamma'], has_more: false })
  })

  const badQueries = ['sort_by=popularity', 'sort_by=NAME', 'sort_order=up', 'favorite=yes', 'favorite=1', 'limit=0', 'limit=101', 'offset=-1', `q=${'q'.repeat(201)}`]
  for (const q of badQueries) test(`?${q.slice(0, 30)} → 422`, async () => expectProblem(await list(q), 422, 'VALIDATION_ERROR'))
})

// -------------------------------------------------------------------------------------------------

eachDialect('workflows: the lock', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let user: string
  let uid: string
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers), (user = callers.accounts.user.access), (uid = callers.accounts.user.id)))
  const api = () => t.deps.services.workflows

  test('while an agent holds it: shown as locked, PUT / DELETE / restore / a workflow file by anyone else → 409 naming the reason; favorite and reads pass; the holder writes', async () => {
    const w = await createWorkflow(t, user)
    const heard = await hearLocks(t)
    try {
      await api().lock(uid, w.id, 'session:s1', 'the assistant is editing this workflow')
      await eventually(() => heard.events.length === 1, 2000, 'the lock event')
      expect(heard.events).toEqual([{ type: 'WORKFLOW_LOCKED', user_id: uid, workflow_id: w.id, reason: 'the assistant is editing this workflow' }])
      const got = (await t.request('GET', `/api/v1/workflows/${w.id}`, { token: user })).body
      expect(got.locked).toEqual({ reason: 'the assistant is editing this workflow', since: expect.any(String) })

      const refused = [
        await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body: { workflow_data: { mine: true } } }),
        await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body: { name: 'just a rename' } }),
        await t.request('DELETE', `/api/v1/workflows/${w.id}`, { token: user }),
        await t.request('POST', `/api/v1/workflows/${w.id}/versions/1/restore`, { token: user }),
        await uploadWorkflowFile(t, user, w.id, JSON.stringify({ from: 'file' })),
      ]
      for (const r of refused) {
        expectProblem(r, 409, 'CONFLICT')
        expect(r.body.detail).toContain('the assistant is editing this workflow')
      }
      // the upload kept nothing
      const files = (await t.request('GET', '/api/v1/files?purpose=workflow', { token: user })).body
      expect(files.total).toBe(0)
      // another user still sees nothing of it
      expectProblem(await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: ctx.accounts.other.access, body: { name: 'x' } }), 404, 'NOT_FOUND')
      expect((await t.request('POST', `/api/v1/workflows/${w.id}/favorite`, { token: user, body: { favorite: true } })).status).toBe(200)
      expect((await t.request('GET', `/api/v1/workflows/${w.id}/versions`, { token: user })).status).toBe(200)

      // the user's own call through the service without the holder is refused as well; another holder too
      await expect(api().update(uid, w.id, { name: 'no holder' })).rejects.toMatchObject({ status: 409 })
      await expect(api().update(uid, w.id, { name: 'wrong holder' }, { holder: 'session:s2' })).rejects.toMatchObject({ status: 409 })
      await expect(api().lock(uid, w.id, 'session:s2', 'me too')).rejects.toMatchObject({ status: 409, code: 'CONFLICT' })
      const edited = await api().update(uid, w.id, { workflowData: { by: 'agent' }, note: 'agent edit' }, { holder: 'session:s1' })
      expect(edited.currentVersion).toBe(2)

      // renewing keeps its start and announces nothing new
      await api().lock(uid, w.id, 'session:s1', 'still editing')
      const renewed = (await t.request('GET', `/api/v1/workflows/${w.id}`, { token: user })).body.locked
      expect(renewed).toEqual({ reason: 'still editing', since: got.locked.since })
      // unlocking by someone who does not hold it does nothing
      await api().unlock(uid, w.id, 'session:s2')
      expect((await t.request('GET', `/api/v1/workflows/${w.id}`, { token: user })).body.locked).not.toBeNull()
      await api().unlock(uid, w.id, 'session:s1')
      await eventually(() => heard.events.length === 2, 2000, 'the unlock event')
      expect(heard.events[1]).toEqual({ type: 'WORKFLOW_UNLOCKED', user_id: uid, workflow_id: w.id })
      expect((await t.request('GET', `/api/v1/workflows/${w.id}`, { token: user })).body).toMatchObject({ locked: null, current_version: 2, workflow_data: { by: 'agent' } })
      expect((await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body: { name: 'mine again' } })).status).toBe(200)
      // locking a workflow that is not the user's: 404
      await expect(api().lock(ctx.accounts.other.id, w.id, 'session:x', 'nope')).rejects.toMatchObject({ status: 404 })
    } finally {
      heard.stop()
    }
  })

  test('an expired lock is free: locked null, writes pass, another holder takes it; the sweep frees it and announces it', async () => {
    const w = await createWorkflow(t, user)
    const heard = await hearLocks(t)
    try {
      await api().lock(uid, w.id, 'session:dead', 'an instance that died', 80)
      expectProblem(await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body: { name: 'too soon' } }), 409, 'CONFLICT')
      await Bun.sleep(120)
      expect((await t.request('GET', `/api/v1/workflows/${w.id}`, { token: user })).body.locked).toBeNull()
      expect((await t.request('PUT', `/api/v1/workflows/${w.id}`, { token: user, body: { name: 'after expiry' } })).status).toBe(200)
      // the dead holder's "renewal" comes too late: it is a new lock, announced again
      await api().lock(uid, w.id, 'session:next', 'a new editor', 60)
      await Bun.sleep(100)
      expect(await api().sweepExpiredLocks()).toBeGreaterThanOrEqual(1)
      await eventually(() => heard.events.filter((e) => e.workflow_id === w.id).length === 3, 2000, 'three lock events')
      expect(heard.events.filter((e) => e.workflow_id === w.id).map((e) => e.type)).toEqual(['WORKFLOW_LOCKED', 'WORKFLOW_LOCKED', 'WORKFLOW_UNLOCKED'])
      const { db, t: tables } = t.deps.database
      const [row] = await db.select().from(tables.workflows).where(eq(tables.workflows.id, w.id))
      expect({ by: row!.lockedBy, until: row!.lockedUntil }).toEqual({ by: null, until: null })
      expect(await api().sweepExpiredLocks()).toBe(0)
    } finally {
      heard.stop()
    }
  })

  test('two holders racing for the lock: exactly one gets it', async () => {
    const w = await createWorkflow(t, user)
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => api().lock(uid, w.id, `session:${i}`, `editor ${i}`)))
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ status: 409 })
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('workflows: POST /files/workflow', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let user: string
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers), (user = callers.accounts.user.access)))

  const workflowFiles = async (token = user) => (await t.request('GET', '/api/v1/files?purpose=workflow&limit=100', { token })).body.total as number

  test('the uploaded JSON becomes the next version; the same JSON again answers the current version', async () => {
    const w = await createWorkflow(t, user)
    const next = { ...apiWorkflow(), '10': { class_type: 'PreviewImage', inputs: { images: ['8', 0] } } }
    const res = await uploadWorkflowFile(t, user, w.id, JSON.stringify(next), 'flow v2.json')
    expect(res.status).toBe(201)
    expect(res.body).toEqual({ file_id: expect.any(String), file_name: 'flow v2.json', file_size: JSON.stringify(next).length, workflow_id: w.id, version: 2 })
    expect(res.headers.get('location')).toBe(`/api/v1/files/${res.body.file_id}`)
    expect((await t.request('GET', `/api/v1/workflows/${w.id}`, { token: user })).body).toMatchObject({ current_version: 2, workflow_data: next })
    expect((await t.request('GET', `/api/v1/workflows/${w.id}/versions/2`, { token: user })).body).toMatchObject({ note: 'uploaded as flow v2.json', workflow_data: next })
    expect((await t.request('GET', `/api/v1/files/${res.body.file_id}`, { token: user })).body).toMatchObject({ purpose: 'workflow', workflow_id: w.id, content_type: 'application/json' })
    const again = await uploadWorkflowFile(t, user, w.id, JSON.stringify(next))
    expect(again.body.version).toBe(2)
    // a UI-format file is stored as given too
    expect((await uploadWorkflowFile(t, user, w.id, JSON.stringify(uiWorkflow()))).body.version).toBe(3)
  })

  test("another user's workflow, or none: 404, and the file is not kept", async () => {
    const w = await createWorkflow(t, user)
    const before = await workflowFiles(ctx.accounts.other.access)
    for (const id of [w.id, 'no-such-workflow']) expectProblem(await uploadWorkflowFile(t, ctx.accounts.other.access, id, JSON.stringify({ stolen: true })), 404, 'NOT_FOUND')
    expectProblem(await uploadWorkflowFile(t, ctx.accounts.admin.access, w.id, JSON.stringify({ stolen: true })), 404, 'NOT_FOUND')
    expect(await workflowFiles(ctx.accounts.other.access)).toBe(before)
    expect((await t.request('GET', `/api/v1/workflows/${w.id}`, { token: user })).body.current_version).toBe(1)
  })

  const badFiles: [string, BlobPart, number][] = [
    ['an array', '[1,2,3]', 422],
    ['a string', '"workflow"', 422],
    ['null', 'null', 422],
    ['broken JSON', '{"3":', 422],
    ['a NUL character', '{"a":"x\\u0000y"}', 422],
    ['nesting deeper than the limit', '{"a":'.repeat(MAX_WORKFLOW_DEPTH + 1) + '1' + '}'.repeat(MAX_WORKFLOW_DEPTH + 1), 422],
    ['10 MB', JSON.stringify({ '1': { class_type: 'Note', inputs: { text: 'x'.repeat(10 * 1024 * 1024) } } }), 413],
  ]
  for (const [what, data, status] of badFiles)
    test(`a workflow file that is ${what} → ${status}, nothing kept, no version`, async () => {
      const w = await createWorkflow(t, user)
      const before = await workflowFiles()
      const res = await uploadWorkflowFile(t, user, w.id, data)
      expectProblem(res, status, status === 413 ? 'PAYLOAD_TOO_LARGE' : 'VALIDATION_ERROR')
      if (status === 422) expect((res.body.errors as Json[]).map((e) => e.path)).toContain('file')
      expect(await workflowFiles()).toBe(before)
      expect((await t.request('GET', `/api/v1/workflows/${w.id}`, { token: user })).body.current_version).toBe(1)
      expect((await t.request('GET', '/api/v1/users/me/storage', { token: user })).body.files).toBe(before)
    }, 15_000)

  test('no workflow_id → 422', async () => {
    expectProblem(await uploadWorkflowFile(t, user, undefined, '{}'), 422, 'VALIDATION_ERROR')
  })
})

// -------------------------------------------------------------------------------------------------

if (process.env.TEST_DATABASE_URL)
  describe('workflows: two instances on one Postgres', () => {
    let a: TestApp
    let b: TestApp
    let owner: Account
    beforeAll(async () => {
      a = await createTestApp('postgres')
      b = await createSecondInstance(a)
      await register(a, 'admin')
      owner = await register(a, 'owner')
    })
    afterAll(async () => {
      await b.close()
      await a.close()
    })

    test('a lock taken on A blocks a PUT on B (409 naming the reason); B hears WORKFLOW_LOCKED and WORKFLOW_UNLOCKED', async () => {
      const w = await createWorkflow(a, owner.access)
      const heard = await hearLocks(b)
      try {
        await a.deps.services.workflows.lock(owner.id, w.id, 'session:on-a', 'editing on A')
        const refused = await b.request('PUT', `/api/v1/workflows/${w.id}`, { token: owner.access, body: { workflow_data: { from: 'B' } } })
        expectProblem(refused, 409, 'CONFLICT')
        expect(refused.body.detail).toContain('editing on A')
        expectProblem(await b.request('DELETE', `/api/v1/workflows/${w.id}`, { token: owner.access }), 409, 'CONFLICT')
        expect((await b.request('GET', `/api/v1/workflows/${w.id}`, { token: owner.access })).body.locked).toMatchObject({ reason: 'editing on A' })
        await expect(b.deps.services.workflows.lock(owner.id, w.id, 'session:on-b', 'editing on B')).rejects.toMatchObject({ status: 409 })
        await a.deps.services.workflows.unlock(owner.id, w.id, 'session:on-a')
        await eventually(() => heard.events.length === 2, 3000, 'both events on B')
        expect(heard.events.map((e) => e.type)).toEqual(['WORKFLOW_LOCKED', 'WORKFLOW_UNLOCKED'])
        expect((await b.request('PUT', `/api/v1/workflows/${w.id}`, { token: owner.access, body: { workflow_data: { from: 'B' } } })).body.current_version).toBe(2)
      } finally {
        heard.stop()
      }
    })

    test('an expired lock taken on A is free on B', async () => {
      const w = await createWorkflow(a, owner.access)
      await a.deps.services.workflows.lock(owner.id, w.id, 'session:dying', 'about to die', 100)
      expectProblem(await b.request('PUT', `/api/v1/workflows/${w.id}`, { token: owner.access, body: { name: 'x' } }), 409, 'CONFLICT')
      await Bun.sleep(150)
      expect((await b.request('PUT', `/api/v1/workflows/${w.id}`, { token: owner.access, body: { name: 'x' } })).status).toBe(200)
    })

    test('locks raced from both instances: one holder wins', async () => {
      const w = await createWorkflow(a, owner.access)
      const tries = Array.from({ length: 10 }, (_, i) => (i % 2 ? b : a).deps.services.workflows.lock(owner.id, w.id, `session:${i}`, `editor ${i}`))
      const results = await Promise.allSettled(tries)
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    })

    test('PUTs racing on both instances: versions 1…n with no gap or repeat', async () => {
      const w = await createWorkflow(a, owner.access)
      const puts = Array.from({ length: 16 }, (_, i) => (i % 2 ? b : a).request('PUT', `/api/v1/workflows/${w.id}`, { token: owner.access, body: { workflow_data: { n: i } } }))
      expect((await Promise.all(puts)).map((r) => r.status)).toEqual(Array(16).fill(200))
      const versions = (await a.request('GET', `/api/v1/workflows/${w.id}/versions`, { token: owner.access })).body as Json[]
      expect(versions.map((v) => v.version)).toEqual(Array.from({ length: 17 }, (_, i) => 17 - i))
      expect((await b.request('GET', `/api/v1/workflows/${w.id}`, { token: owner.access })).body).toMatchObject({ current_version: 17, version_count: 17 })
    }, 15_000)
  })
