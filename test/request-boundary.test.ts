/**
 * What any request may carry, and what every answer carries, whatever the route (docs/api.md §1): no
 * NUL character in a string of the body, in the path or in the query string (422 — Postgres cannot
 * store one, SQLite would, and `q=%00` would match everything there); numbers in the query string in
 * decimal digits only; `Cache-Control: no-store` and `X-Content-Type-Options: nosniff` on answers.
 */
import { afterAll, beforeAll, describe, expect } from 'bun:test'
import { setupCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'

interface Ctx extends CallersContext {
  memory: string
}

eachDialect('the request boundary', (dialect) => {
  let ctx: Ctx
  beforeAll(async () => {
    const t = await createTestApp(dialect)
    const callers = await setupCallers(t)
    const memory = (await t.request('POST', '/api/v1/memories', { token: callers.accounts.user.access, body: { content: 'kept' } })).body.id
    ctx = { ...callers, memory }
  })
  afterAll(() => ctx.t.close())

  describe('a NUL character (U+0000) anywhere: 422, never a 500 or a stored NUL', () => {
    /** a refused row: 422 naming the field (`paths`), and no error logged (Postgres would fail with a 500) */
    const nul = (name: string, row: Omit<Scenario<Ctx>, 'name' | 'status'>, paths: string[]): Scenario<Ctx> => ({
      name,
      ...row,
      status: row.path.toString().startsWith('/v1/') ? 400 : 422,
      code: row.path.toString().startsWith('/v1/') ? 'validation_error' : 'VALIDATION_ERROR',
      contains: ['NUL'],
      check: (res, c) => {
        if (!row.path.toString().startsWith('/v1/')) expect(res.body.errors.map((e: { path: string }) => e.path)).toEqual(paths)
        // (from the text: Bun's toMatchObject in the scenario leaves its matchers in res.body's error)
        else for (const p of paths) expect(JSON.parse(res.text).error.message).toContain(`${p} must not contain the NUL character`)
        expect(res.text).not.toContain('\u0000')
        expect(c.t.logs.filter((l) => l.level === 'error')).toEqual([])
      },
    })
    scenarios<Ctx>(() => ctx, [
      nul('in the search q', { as: 'user', method: 'GET', path: '/api/v1/conversations?q=%00' }, ['q']),
      nul('inside a search term', { as: 'user', method: 'GET', path: '/api/v1/conversations?limit=5&q=a%00b' }, ['q']),
      nul('in a parameter name', { as: 'user', method: 'GET', path: '/api/v1/memories?x%00=1' }, ['']),
      nul('in a conversation title', { as: 'user', method: 'POST', path: '/api/v1/conversations', body: { title: 'a\u0000b' } }, ['title']),
      nul('in a memory', { as: 'user', method: 'POST', path: '/api/v1/memories', body: { content: '\u0000' } }, ['content']),
      nul('in a message', { as: 'user', method: 'PATCH', path: (c) => `/api/v1/memories/${c.memory}`, body: { content: 'x\u0000' } }, ['content']),
      nul('in a display name', { as: 'user', method: 'PATCH', path: '/api/v1/users/me', body: { display_name: 'Ann\u0000' } }, ['display_name']),
      nul('in a provider name', { as: 'user', method: 'POST', path: '/api/v1/providers', body: { name: 'p\u0000', type: 'openai' } }, ['name']),
      nul('in the login name', { as: 'guest', method: 'POST', path: '/api/v1/auth/login', body: { username: 'ann\u0000', password: 'whatever-password' } }, ['username']),
      nul('in a field a route does not know', { as: 'user', method: 'POST', path: '/api/v1/memories', body: { content: 'fine', extra: { deep: ['ok', '\u0000'] } } }, ['extra.deep.1']),
      nul('in a field name', { as: 'user', method: 'POST', path: '/api/v1/memories', body: { content: 'fine', meta: { 'k\u0000': 1 } } }, ['meta']),
      nul('in a path id', { as: 'user', method: 'GET', path: '/api/v1/memories/%00' }, ['']),
      nul('inside a path id', { as: 'user', method: 'DELETE', path: '/api/v1/conversations/abc%00def' }, ['']),
      nul('in a /v1 message', { as: 'user', method: 'POST', path: '/v1/chat/completions', body: { model: 'm', messages: [{ role: 'user', content: 'hi\u0000' }] } }, ['messages.0.content']),
      nul('in a /v1 message part', { as: 'user', method: 'POST', path: '/v1/chat/completions', body: { model: 'm', messages: [{ role: 'user', content: [{ type: 'text', text: '\u0000' }] }] } }, ['messages.0.content.0.text']),
      // not NUL characters
      { name: 'an escaped backslash before u0000 is text', as: 'user', method: 'POST', path: '/api/v1/memories', raw: '{"content":"C:\\\\u0000"}', headers: { 'content-type': 'application/json' }, status: 201, check: (res) => expect(res.body.content).toBe('C:\\u0000') },
      { name: '%2500 is the text %00', as: 'user', method: 'GET', path: '/api/v1/conversations?q=%2500', status: 200, check: (res) => expect(res.body.items).toEqual([]) },
    ])
  })

  describe('numbers in the query string: decimal digits only', () => {
    const lists: [Exclude<Scenario<Ctx>['as'], 'guest'>, string][] = [
      ['user', '/api/v1/memories'],
      ['user', '/api/v1/conversations'],
      ['user', '/api/v1/providers'],
      ['user', '/api/v1/models'],
      ['user', '/api/v1/presets'],
      ['admin', '/api/v1/admin/users'],
      ['admin', '/api/v1/admin/invites'],
      ['admin', '/api/v1/admin/usage'],
      ['admin', '/api/v1/configs'],
    ]
    const refused: [string, string, string][] = [
      ['hexadecimal', 'offset=0x10', 'offset'],
      ['an exponent', 'limit=1e1', 'limit'],
      ['a leading space', 'limit=%205', 'limit'],
      ['a plus sign', 'limit=%2B5', 'limit'],
      ["a '+' (a space once decoded)", 'limit=+5', 'limit'],
      ['a decimal point', 'limit=5.0', 'limit'],
      ['a minus sign', 'offset=-1', 'offset'],
      ['empty', 'offset=', 'offset'],
      ['a trailing letter', 'limit=5a', 'limit'],
      ['over the maximum', 'limit=101', 'limit'],
      ['under the minimum', 'limit=0', 'limit'],
      ['too many digits', `offset=${'9'.repeat(16)}`, 'offset'],
    ]
    scenarios<Ctx>(() => ctx, [
      ...lists.flatMap(([as, path]) =>
        refused.map(([name, query, field]): Scenario<Ctx> => ({
          name: `${name} is refused`, as, method: 'GET', path: `${path}?${query}`, status: 422, code: 'VALIDATION_ERROR',
          check: (res) => expect(res.body.errors.map((e: { path: string }) => e.path)).toEqual([field]),
        })),
      ),
      ...lists.map(([as, path]): Scenario<Ctx> => ({ name: 'decimal digits are taken', as, method: 'GET', path: `${path}?limit=07&offset=1`, status: 200, check: (res) => expect(res.body).toMatchObject({ limit: 7, offset: 1 }) })),
      ...lists.map(([as, path]): Scenario<Ctx> => ({ name: 'left out: the defaults', as, method: 'GET', path, status: 200, check: (res) => expect(res.body).toMatchObject({ limit: 50, offset: 0 }) })),
    ])
  })

  describe('every answer: Cache-Control: no-store and X-Content-Type-Options: nosniff', () => {
    const headers = (res: TestResponse) => expect({ cache: res.headers.get('cache-control'), sniff: res.headers.get('x-content-type-options') }).toEqual({ cache: 'no-store', sniff: 'nosniff' })
    scenarios<Ctx>(() => ctx, [
      { name: 'an authenticated read (a Response of its own)', as: 'user', method: 'GET', path: '/api/v1/auth/me', status: 200, check: headers },
      { name: 'an authenticated list, with the cookie', as: 'user', via: 'cookie', method: 'GET', path: '/api/v1/memories', status: 200, check: headers },
      { name: 'an authenticated write', as: 'user', method: 'POST', path: '/api/v1/memories', body: { content: 'headers' }, status: 201, check: headers },
      { name: 'a delete without a body', as: 'user', method: 'DELETE', path: '/api/v1/api-keys/none', status: 404, check: headers },
      { name: 'the gateway', as: 'user', method: 'GET', path: '/v1/models', status: 200, check: headers },
      { name: 'a login, which carries tokens', as: 'guest', method: 'POST', path: '/api/v1/auth/login', body: (c: Ctx) => ({ username: c.accounts.other.username, password: c.accounts.other.password }), status: 200, check: headers },
      { name: 'a refusal', as: 'guest', method: 'GET', path: '/api/v1/memories', status: 401, check: headers },
      { name: 'an unknown route', as: 'user', method: 'GET', path: '/api/v1/nothing', status: 404, check: headers },
      { name: 'the health probe', as: 'guest', method: 'GET', path: '/health', status: 200, check: headers },
      { name: 'the docs script keeps its own caching', as: 'guest', method: 'GET', path: '/docs/assets/scalar.js', status: 200,
        check: (res) => expect({ cache: res.headers.get('cache-control'), sniff: res.headers.get('x-content-type-options') }).toEqual({ cache: 'public, max-age=86400', sniff: 'nosniff' }) },
    ])
  })
})
