import { afterAll, beforeAll, expect, test } from 'bun:test'
import { createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { scenarios, type ScenarioContext } from './helpers/scenarios.ts'

eachDialect('service endpoints', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect, { HEARTH_CORS_ORIGINS: 'https://app.example' })
  })
  afterAll(() => t.close())

  scenarios<ScenarioContext>(() => ({ t, tokens: {} }), [
    { name: 'process is up', as: 'guest', method: 'GET', path: '/health', status: 200, check: (r) => expect(r.body).toEqual({ status: 'healthy' }) },
    { name: 'database answers', as: 'guest', method: 'GET', path: '/ready', status: 200, check: (r) => expect(r.body).toEqual({ status: 'ready', database: dialect }) },
    { name: 'wrong method', as: 'guest', method: 'PUT', path: '/health', status: 405, code: 'METHOD_NOT_ALLOWED' },
    { name: 'unknown path', as: 'guest', method: 'GET', path: '/api/v1/nothing-here', status: 404, code: 'NOT_FOUND' },
    { name: 'docs page', as: 'guest', method: 'GET', path: '/docs', status: 200, contains: ['/docs/assets/scalar.js', '/openapi.json'] },
  ])

  test('Eden: typed /health', async () => {
    const { data, status } = await t.api.health.get()
    expect(status).toBe(200)
    expect(data?.status).toBe('healthy')
  })

  test('/openapi.json is OpenAPI 3.1 with request and response schemas for every route', async () => {
    const { status, body } = await t.request('GET', '/openapi.json')
    expect(status).toBe(200)
    expect(body.openapi).toStartWith('3.1')
    expect(body.info.title).toBe('Hearth API')
    const paths = Object.keys(body.paths)
    expect(paths).toContain('/health')
    expect(paths).toContain('/ready')
    for (const [path, ops] of Object.entries<Record<string, { responses?: Record<string, unknown> }>>(body.paths))
      for (const [method, op] of Object.entries(ops)) {
        expect({ route: `${method} ${path}`, hasResponses: Object.keys(op.responses ?? {}).length > 0 }).toEqual({ route: `${method} ${path}`, hasResponses: true })
      }
    expect(body.paths['/ready'].get.responses['503']).toBeDefined()
  })

  test('/docs loads nothing from outside: every script and style is served by Hearth', async () => {
    const { text } = await t.request('GET', '/docs')
    const urls = [...text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)
    expect(urls.length).toBeGreaterThan(0)
    for (const url of urls) expect(url).toStartWith('/')
    expect(text).not.toContain('cdn.jsdelivr.net')
    // No web fonts and no "Ask AI" agent: both would call out to scalar.com.
    expect(text).toContain('"withDefaultFonts":false')
    expect(text).toContain('"agent":{"disabled":true}')
    const asset = await t.app.handle(new Request('http://localhost/docs/assets/scalar.js', { headers: { 'accept-encoding': 'gzip' } }))
    expect(asset.status).toBe(200)
    expect(asset.headers.get('content-type')).toStartWith('text/javascript')
    expect(asset.headers.get('content-encoding')).toBe('gzip')
    const body = Bun.gunzipSync(new Uint8Array(await asset.arrayBuffer()))
    expect(new TextDecoder().decode(body.slice(0, 400))).toContain('@scalar/api-reference')
  })

  test('CORS: the configured origin is allowed, others get no CORS headers', async () => {
    const ok = await t.request('OPTIONS', '/health', { headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' } })
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.example')
    const get = await t.request('GET', '/health', { headers: { origin: 'https://app.example' } })
    expect(get.headers.get('access-control-allow-origin')).toBe('https://app.example')
    expect(get.headers.get('access-control-expose-headers')).toContain('X-Request-Id')
    const evil = await t.request('GET', '/health', { headers: { origin: 'https://evil.example' } })
    expect(evil.headers.get('access-control-allow-origin')).toBeNull()
  })

  test('/ready when the database is gone: 503 problem', async () => {
    const t2 = await createTestApp(dialect)
    await t2.db.database.close()
    const res = await t2.request('GET', '/ready')
    expect(res.status).toBe(503)
    expect(res.body).toMatchObject({ code: 'SERVICE_UNAVAILABLE', status: 503 })
    await t2.db.drop().catch(() => {})
  })
})
