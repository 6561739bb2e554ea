/**
 * CORS (docs/api.md §1): the configured origins get CORS headers; a preflight from any other origin
 * is a 403 problem naming HEARTH_CORS_ORIGINS (not a bare 405, nor a 204 without CORS headers), and
 * the server logs a hint once per origin, never a flood. No database is involved: SQLite only.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, type TestApp } from './helpers/app.ts'
import { scenarios, type ScenarioContext } from './helpers/scenarios.ts'

const preflight = (origin: string, method = 'POST') => ({ origin, 'access-control-request-method': method, 'access-control-request-headers': 'content-type' })
const noCorsHeaders = (r: { headers: Headers }) => expect(r.headers.get('access-control-allow-origin')).toBeNull()
const hints = (t: TestApp) => t.logs.filter((l) => l.msg === 'CORS preflight refused: the origin is not in HEARTH_CORS_ORIGINS')

function useApp(env: Record<string, string>) {
  const state = {} as ScenarioContext
  beforeAll(async () => {
    state.t = await createTestApp('sqlite', env)
    state.tokens = {}
  })
  afterAll(() => state.t.close())
  return state
}

describe('CORS with origins configured', () => {
  const ctx = useApp({ HEARTH_CORS_ORIGINS: 'https://app.example.com,https://admin.example.com' })
  scenarios<ScenarioContext>(() => ctx, [
    {
      name: 'a listed origin: 204 with its CORS headers', as: 'guest', method: 'OPTIONS', path: '/api/v1/auth/login', headers: preflight('https://app.example.com'), status: 204,
      check: (r) => {
        expect(r.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
        expect(r.headers.get('access-control-allow-credentials')).toBe('true')
        expect(r.headers.get('access-control-allow-methods')).toBe('POST')
      },
    },
    {
      name: 'an unlisted origin: 403 problem naming HEARTH_CORS_ORIGINS, no CORS headers', as: 'guest', method: 'OPTIONS', path: '/api/v1/auth/login', headers: preflight('https://elsewhere.example.com'), status: 403, code: 'FORBIDDEN',
      contains: ['HEARTH_CORS_ORIGINS', 'https://elsewhere.example.com'], check: noCorsHeaders,
    },
    {
      name: 'a look-alike of a listed origin is another origin', as: 'guest', method: 'OPTIONS', path: '/api/v1/conversations', headers: preflight('https://app.example.com.evil.test', 'GET'), status: 403, code: 'FORBIDDEN', check: noCorsHeaders,
    },
  ])

  test('the hint is logged once per origin, and for at most 20 origins per 10 minutes', async () => {
    const { t } = ctx
    const before = hints(t).length
    for (let i = 0; i < 5; i++) await t.request('OPTIONS', '/api/v1/auth/me', { headers: preflight('https://again.example.com', 'GET') })
    let logged = hints(t).slice(before)
    expect(logged).toHaveLength(1)
    expect(logged[0]).toMatchObject({ level: 'warn', origin: 'https://again.example.com', path: '/api/v1/auth/me', hint: expect.stringContaining('HEARTH_CORS_ORIGINS') })
    for (let i = 0; i < 40; i++) await t.request('OPTIONS', '/health', { headers: preflight(`https://n${i}.example.com`, 'GET') })
    expect(hints(t).length).toBe(20)
  })
})

describe('CORS with no origins configured', () => {
  const ctx = useApp({})
  scenarios<ScenarioContext>(() => ctx, [
    {
      name: 'a preflight: 403 problem saying HEARTH_CORS_ORIGINS is not set', as: 'guest', method: 'OPTIONS', path: '/api/v1/auth/login', headers: preflight('http://localhost:5173'), status: 403, code: 'FORBIDDEN',
      contains: ['HEARTH_CORS_ORIGINS is not set', 'http://localhost:5173'], check: noCorsHeaders,
    },
    { name: 'an OPTIONS that is no preflight: still 405 with Allow', as: 'guest', method: 'OPTIONS', path: '/api/v1/auth/login', status: 405, code: 'METHOD_NOT_ALLOWED', check: (r) => expect(r.headers.get('allow')).toBe('POST') },
    { name: 'a simple GET with an Origin (no preflight) is served as ever (the browser withholds it from the script)', as: 'guest', method: 'GET', path: '/health', headers: { origin: 'http://localhost:5173' }, status: 200, check: noCorsHeaders },
  ])

  test('the log names the variable to set', () => {
    expect(hints(ctx.t)).toEqual([expect.objectContaining({ origin: 'http://localhost:5173', hint: expect.stringContaining('HEARTH_CORS_ORIGINS is not set') })])
  })
})

describe('CORS with HEARTH_CORS_ORIGINS=*', () => {
  const ctx = useApp({ HEARTH_CORS_ORIGINS: '*' })
  scenarios<ScenarioContext>(() => ctx, [
    {
      name: 'any origin: 204, without credentials', as: 'guest', method: 'OPTIONS', path: '/api/v1/auth/login', headers: preflight('https://anyone.example.com'), status: 204,
      check: (r) => {
        expect(r.headers.get('access-control-allow-origin')).toBe('*')
        expect(r.headers.get('access-control-allow-credentials')).toBeNull()
      },
    },
  ])
})
