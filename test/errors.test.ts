/** The error mapper and request plugins, on a small app made of the real plugins and a few routes. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Elysia } from 'elysia'
import { z } from 'zod'
import { createUser } from '../src/modules/users/service.ts'
import { errorsPlugin } from '../src/plugins/errors.ts'
import { JSON_BODY_LIMIT, requestContextPlugin } from '../src/plugins/request-context.ts'
import { createRouteIndex } from '../src/plugins/route-index.ts'
import { createLogger } from '../src/lib/logger.ts'
import { forbidden } from '../src/lib/errors.ts'
import { requestApp } from './helpers/app.ts'
import { createTestDatabase, eachDialect, type TestDatabase } from './helpers/db.ts'

const lines: string[] = []
const logger = createLogger('debug', (c) => void lines.push(c))
const logged = () => (logger.flush(), lines.join(''))

const SECRET_PARAM = `hk_secret_param_${Date.now().toString(36)}`

function build(db: TestDatabase) {
  const routes = createRouteIndex()
  const a = new Elysia()
    .use(requestContextPlugin({ logger, routes }))
    .use(errorsPlugin({ logger, routes }))
    .post('/things', ({ body }) => ({ name: body.name }), {
      body: z.object({ name: z.string().min(3).max(10), password: z.string().min(8), count: z.number().int().optional() }),
    })
    .get('/things/:id', ({ params }) => ({ id: params.id }), { params: z.object({ id: z.string().uuid() }) })
    .get('/boom', () => {
      throw new Error('secret internals: SELECT * FROM users')
    })
    .get('/forbidden', () => {
      throw forbidden('Admins only')
    })
    // a route that declares a multipart body: the one kind of route a form may post to
    .post('/upload', ({ body }) => ({ name: body.file.name, note: body.note }), { parse: 'formdata', body: z.object({ file: z.instanceof(File), note: z.string() }) })
    // a query that fails in the database, with a secret among its parameters
    .post('/failing-query', async () => {
      await db.database.db.insert(db.database.t.memories).values({ userId: SECRET_PARAM, content: null as never })
    })
    .post('/users', async ({ body }) => {
      const u = await createUser(db.database, body)
      return { id: u.id }
    }, { body: z.object({ username: z.string(), email: z.string(), password: z.string() }) })
    // handlers that return a Response of their own: the request id must reach it too
    .get('/raw', ({ set }) => {
      set.headers['ratelimit-remaining'] = 7 as unknown as string
      return new Response('{"raw":true}', { headers: { 'content-type': 'application/json', 'x-own': 'kept' } })
    })
    .get('/raw-stream', () => new Response(new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode('data: 1\n\n')), c.close()) }), { headers: { 'content-type': 'text/event-stream' } }))
    .get('/raw-created', ({ set }) => {
      set.status = 201
      return new Response('made')
    })
    .get('/raw-cookie', ({ set }) => {
      set.headers['set-cookie'] = 'a=1; Path=/'
      return new Response('with cookie')
    })
    .get('/raw-redirect', () => Response.redirect('http://example.com/elsewhere', 302))
  routes.load(a.routes)
  return a
}

eachDialect('errors and request context', (dialect) => {
let db: TestDatabase
let app: ReturnType<typeof build>
beforeAll(async () => {
  db = await createTestDatabase(dialect)
  app = build(db)
})
afterAll(() => db.drop())

const req = (method: string, path: string, init?: Parameters<typeof requestApp>[3]) => requestApp(app, method, path, init)

describe('problem+json for every failure', () => {
  test('validation: 422 with field paths, never the submitted values', async () => {
    const res = await req('POST', '/things', { body: { name: 'ab', password: 'hunter2-is-my-password-but-short'.slice(0, 7), count: 'x' } })
    expect(res.status).toBe(422)
    expect(res.headers.get('content-type')).toBe('application/problem+json')
    expect(res.body).toMatchObject({ type: 'urn:hearth:problem:validation-error', title: 'Validation failed', status: 422, code: 'VALIDATION_ERROR' })
    const paths = res.body.errors.map((e: { path: string }) => e.path).sort()
    expect(paths).toEqual(['count', 'name', 'password'])
    expect(res.text).not.toContain('hunter2')
    expect(res.text).not.toContain('"ab"')
    expect(res.body.request_id).toBe(res.headers.get('x-request-id')!)
  })

  test('missing body fields are named', async () => {
    const res = await req('POST', '/things', { body: {} })
    expect(res.status).toBe(422)
    expect(res.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(['name', 'password'])
  })

  test('path parameters are validated too', async () => {
    const res = await req('GET', '/things/not-a-uuid')
    expect(res.status).toBe(422)
    expect(res.body.code).toBe('VALIDATION_ERROR')
  })

  test('unknown fields are ignored and never echoed', async () => {
    const res = await req('POST', '/things', { body: { name: 'abcd', password: 'longenough', extra: 'ECHO-ME' } })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ name: 'abcd' })
  })

  test('malformed JSON: 400 VALIDATION_ERROR', async () => {
    const res = await req('POST', '/things', { raw: '{"name": "abc", "password": "secret-pass', headers: { 'content-type': 'application/json' } })
    expect(res.status).toBe(400)
    expect(res.body.code).toBe('VALIDATION_ERROR')
    expect(res.text).not.toContain('secret-pass')
  })

  test('unknown route: 404 problem', async () => {
    const res = await req('GET', '/nowhere')
    expect(res.status).toBe(404)
    expect(res.body).toMatchObject({ code: 'NOT_FOUND', status: 404 })
  })

  test('known path, wrong method: 405 with Allow', async () => {
    const res = await req('DELETE', '/things')
    expect(res.status).toBe(405)
    expect(res.headers.get('allow')).toBe('POST')
    expect(res.body.code).toBe('METHOD_NOT_ALLOWED')
  })

  test('body over 1 MiB with Content-Length: 413', async () => {
    const big = JSON.stringify({ name: 'abc', password: 'x'.repeat(JSON_BODY_LIMIT) })
    const res = await req('POST', '/things', { raw: big, headers: { 'content-type': 'application/json', 'content-length': String(big.length) } })
    expect(res.status).toBe(413)
    expect(res.body.code).toBe('PAYLOAD_TOO_LARGE')
  })

  test('chunked body over 1 MiB: 413', async () => {
    const chunk = new TextEncoder().encode('x'.repeat(64 * 1024))
    let sent = 0
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"name":"abc","password":"'))
      },
      pull(c) {
        if (sent > JSON_BODY_LIMIT * 2) return c.close()
        sent += chunk.byteLength
        c.enqueue(chunk)
      },
    })
    const res = await req('POST', '/things', { raw: stream, headers: { 'content-type': 'application/json' } })
    expect(res.status).toBe(413)
    expect(res.body.code).toBe('PAYLOAD_TOO_LARGE')
  })

  test('a body that is not JSON: 415, except multipart to a route that declares it', async () => {
    const upload = () => {
      const form = new FormData()
      form.set('file', new File(['hello'], 'a.txt', { type: 'text/plain' }))
      form.set('note', 'n')
      return form
    }
    const send = (path: string, body: BodyInit, headers: Record<string, string> = {}) => app.handle(new Request(`http://localhost${path}`, { method: 'POST', body, headers }))
    const ok = await send('/upload', upload())
    expect({ status: ok.status, body: await ok.json() }).toEqual({ status: 200, body: { name: 'a.txt', note: 'n' } })
    for (const [path, body, headers] of [
      ['/things', upload(), {}],
      ['/things', 'name=abc&password=longenough', { 'content-type': 'application/x-www-form-urlencoded' }],
      ['/upload', 'file=x&note=n', { 'content-type': 'application/x-www-form-urlencoded' }],
      ['/upload', '{"note":"n"}', { 'content-type': 'application/json' }],
    ] as const) {
      const res = await send(path, body, headers)
      const problem = (await res.json()) as { code: string }
      expect({ path, status: res.status, code: problem.code }).toEqual({ path, status: path === '/upload' && headers['content-type'] === 'application/json' ? 422 : 415, code: path === '/upload' && headers['content-type'] === 'application/json' ? 'VALIDATION_ERROR' : 'UNSUPPORTED_MEDIA_TYPE' })
    }
  })

  test('an AppError keeps its status and code', async () => {
    const res = await req('GET', '/forbidden')
    expect(res.status).toBe(403)
    expect(res.body).toMatchObject({ code: 'FORBIDDEN', detail: 'Admins only' })
  })

  test('unique violation: 409 CONFLICT naming the field', async () => {
    const body = { username: 'dup_user', email: 'Dup@Example.com', password: 'password123' }
    expect((await req('POST', '/users', { body })).status).toBe(200)
    const sameEmail = await req('POST', '/users', { body: { ...body, username: 'other_user', email: 'dup@example.com' } })
    expect(sameEmail.status).toBe(409)
    expect(sameEmail.body).toMatchObject({ code: 'CONFLICT', detail: 'That email is already taken' })
    const sameName = await req('POST', '/users', { body: { ...body, username: 'DUP_USER', email: 'x@example.com' } })
    expect(sameName.status).toBe(409)
    expect(sameName.body.detail).toBe('That username is already taken')
  })

  test('unexpected error: 500 with a request id; details only in the log', async () => {
    const res = await req('GET', '/boom', { headers: { 'x-request-id': 'trace-123' } })
    expect(res.status).toBe(500)
    expect(res.body).toMatchObject({ code: 'INTERNAL_ERROR', request_id: 'trace-123' })
    expect(res.text).not.toContain('SELECT')
    expect(res.text).not.toContain('secret internals')
    const line = logged().split('\n').find((l) => l.includes('unhandled error'))!
    expect(JSON.parse(line)).toMatchObject({ level: 'error', request_id: 'trace-123', path: '/boom', error: { message: 'secret internals: SELECT * FROM users' } })
  })
})

describe('error logs', () => {
  test("a failed query is logged with its statement and the driver's error (the cause), never its parameters", async () => {
    const res = await req('POST', '/failing-query', { headers: { 'x-request-id': 'failed-query-1' } })
    expect(res.status).toBe(500)
    expect(res.text).not.toContain(SECRET_PARAM)
    const line = JSON.parse(logged().split('\n').find((l) => l.includes('unhandled error') && l.includes('failed-query-1'))!)
    // Postgres: Drizzle's DrizzleQueryError (statement and parameters) with the driver's error as its cause,
    // 23502 "null value in column "content" …". SQLite: the driver's error itself (Drizzle does not wrap it).
    if (dialect === 'postgres') expect(line.error.message).toStartWith('Failed query: insert into "memories"')
    const driverError = dialect === 'postgres' ? line.error.cause : line.error
    expect(driverError).toMatchObject(dialect === 'postgres' ? { message: expect.stringContaining('"content"'), code: '23502', column_name: 'content' } : { message: 'NOT NULL constraint failed: memories.content', code: 'SQLITE_CONSTRAINT_NOTNULL' })
    // not in the message, the stack, the cause, nor Postgres's detail ("Failing row contains (…)")
    expect(logged()).not.toContain(SECRET_PARAM)
  })
})

describe('request id and access log', () => {
  test('an incoming X-Request-Id is kept; a bad one is replaced', async () => {
    expect((await req('GET', '/forbidden', { headers: { 'x-request-id': 'abc-123' } })).headers.get('x-request-id')).toBe('abc-123')
    const replaced = (await req('GET', '/forbidden', { headers: { 'x-request-id': 'bad id\u0001' } })).headers.get('x-request-id')!
    expect(replaced).toMatch(/^[0-9a-f-]{23}-[0-9a-z]+$/)
  })

  test('a handler that returns its own Response gets the request id and the other set headers, its own headers kept', async () => {
    const raw = await req('GET', '/raw', { headers: { 'x-request-id': 'raw-1' } })
    expect({ status: raw.status, body: raw.body, id: raw.headers.get('x-request-id'), own: raw.headers.get('x-own'), limit: raw.headers.get('ratelimit-remaining') }).toEqual({ status: 200, body: { raw: true }, id: 'raw-1', own: 'kept', limit: '7' })
    const stream = await req('GET', '/raw-stream', { headers: { 'x-request-id': 'raw-2' } })
    expect({ text: stream.text, id: stream.headers.get('x-request-id'), type: stream.headers.get('content-type') }).toEqual({ text: 'data: 1\n\n', id: 'raw-2', type: 'text/event-stream' })
    const created = await req('GET', '/raw-created', { headers: { 'x-request-id': 'raw-3' } })
    expect({ status: created.status, text: created.text, id: created.headers.get('x-request-id') }).toEqual({ status: 201, text: 'made', id: 'raw-3' })
    const cookie = await req('GET', '/raw-cookie', { headers: { 'x-request-id': 'raw-4' } })
    expect({ text: cookie.text, id: cookie.headers.get('x-request-id'), cookie: cookie.headers.get('set-cookie') }).toEqual({ text: 'with cookie', id: 'raw-4', cookie: 'a=1; Path=/' })
    // Response.redirect's headers cannot change: Elysia merges them as before
    const moved = await req('GET', '/raw-redirect', { headers: { 'x-request-id': 'raw-5' } })
    expect({ status: moved.status, location: moved.headers.get('location'), id: moved.headers.get('x-request-id') }).toEqual({ status: 302, location: 'http://example.com/elsewhere', id: 'raw-5' })
  })

  test('one JSON line per request: method, path without query, status, duration, request id; never tokens or bodies', async () => {
    lines.length = 0
    await req('POST', '/things?token=SECRET-QUERY', { body: { name: 'abcd', password: 'SECRET-PASSWORD' }, headers: { authorization: 'Bearer SECRET-TOKEN', 'x-request-id': 'log-1' } })
    await Bun.sleep(5)
    const text = logged()
    const entry = text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.request_id === 'log-1')
    expect(entry).toMatchObject({ level: 'info', msg: 'request', method: 'POST', path: '/things', status: 200, request_id: 'log-1' })
    expect(typeof entry.duration_ms).toBe('number')
    for (const secret of ['SECRET-QUERY', 'SECRET-PASSWORD', 'SECRET-TOKEN']) expect(text).not.toContain(secret)
  })
})
})
