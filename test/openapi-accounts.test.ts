/**
 * Each accounts route (auth, API keys, users, admin) documents exactly the statuses it can answer
 * with in /openapi.json: the success, and the problems (401/403/429 for signed-in routes — 403 for an
 * API key whose scopes do not reach the route, or a non-admin on an admin one — 429 for anonymous
 * ones, 422 with a body, query or path schema, 404 where something is looked up, 403/409 where the
 * service refuses). 400 and 413 are documented once in docs/api.md §2.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, type TestApp } from './helpers/app.ts'

const ROUTES: [method: string, path: string, statuses: number[]][] = [
  ['post', '/api/v1/auth/register', [201, 403, 409, 422, 429]],
  ['post', '/api/v1/auth/login', [200, 401, 403, 422, 429]],
  ['post', '/api/v1/auth/refresh', [200, 401, 422, 429]],
  ['post', '/api/v1/auth/logout', [204, 401, 403, 429]],
  // 404: the user can be deleted between the credential check and the lookup
  ['get', '/api/v1/auth/me', [200, 401, 403, 404, 429]],
  ['put', '/api/v1/auth/password', [204, 401, 403, 404, 422, 429]],
  ['get', '/api/v1/auth/sessions', [200, 401, 403, 429]],
  ['delete', '/api/v1/auth/sessions/{id}', [204, 401, 403, 404, 422, 429]],
  ['post', '/api/v1/auth/send-code', [200, 422, 429]],
  ['post', '/api/v1/auth/verify-code', [200, 422, 429]],
  ['post', '/api/v1/auth/verify-register', [201, 403, 409, 422, 429]],
  ['post', '/api/v1/auth/password/send-code', [200, 422, 429]],
  ['post', '/api/v1/auth/password/reset', [204, 422, 429]],
  ['post', '/api/v1/auth/login-links/', [201, 401, 403, 404, 422, 429]],
  ['get', '/api/v1/auth/login-links/', [200, 401, 403, 422, 429]],
  // 403: a disabled user's link; 404: the user deleted between the link's use and the sign-in
  ['get', '/api/v1/auth/login-links/open', [302, 401, 403, 404, 422, 429]],
  ['delete', '/api/v1/auth/login-links/{id}', [204, 401, 403, 404, 422, 429]],
  ['get', '/api/v1/auth/oidc', [200, 429]],
  ['get', '/api/v1/auth/oidc/{id}/start', [302, 404, 422, 429, 502]],
  ['get', '/api/v1/auth/oidc/{id}/callback', [302, 403, 422, 429]],
  ['post', '/api/v1/auth/oidc/{id}/link', [200, 401, 403, 404, 422, 429, 502]],
  ['get', '/api/v1/auth/identities', [200, 401, 403, 429]],
  ['delete', '/api/v1/auth/identities/{id}', [204, 401, 403, 404, 409, 422, 429]],
  ['get', '/api/v1/admin/oidc-providers/', [200, 401, 403, 429]],
  ['post', '/api/v1/admin/oidc-providers/', [201, 401, 403, 409, 422, 429]],
  ['get', '/api/v1/admin/oidc-providers/{id}', [200, 401, 403, 404, 422, 429]],
  ['patch', '/api/v1/admin/oidc-providers/{id}', [200, 401, 403, 404, 409, 422, 429]],
  ['delete', '/api/v1/admin/oidc-providers/{id}', [204, 401, 403, 404, 409, 422, 429]],
  ['get', '/api/v1/api-keys/', [200, 401, 403, 429]],
  ['post', '/api/v1/api-keys/', [201, 401, 403, 422, 429]],
  ['delete', '/api/v1/api-keys/{id}', [204, 401, 403, 404, 422, 429]],
  ['get', '/api/v1/users/me/', [200, 401, 403, 404, 429]],
  ['patch', '/api/v1/users/me/', [200, 401, 403, 404, 422, 429]],
  ['get', '/api/v1/users/me/preferences', [200, 401, 403, 404, 429]],
  ['put', '/api/v1/users/me/preferences', [200, 401, 403, 404, 422, 429]],
  ['get', '/api/v1/users/me/stats', [200, 401, 403, 429]],
  ['get', '/api/v1/users/me/credits', [200, 401, 403, 404, 429]],
  ['get', '/api/v1/users/me/storage', [200, 401, 403, 429]],
  ['get', '/api/v1/users/me/privacy', [200, 401, 403, 404, 429]],
  ['put', '/api/v1/users/me/privacy', [200, 401, 403, 404, 422, 429]],
  ['get', '/api/v1/users/me/groups', [200, 401, 403, 422, 429]],
  ['get', '/api/v1/users/me/effective-settings', [200, 401, 403, 404, 429]],
  ['get', '/api/v1/users/me/export', [200, 401, 403, 404, 429]],
  ['delete', '/api/v1/users/me/', [204, 401, 403, 404, 409, 422, 429]],
  ['get', '/api/v1/admin/users', [200, 401, 403, 422, 429]],
  ['patch', '/api/v1/admin/users/{id}', [200, 401, 403, 404, 409, 422, 429]],
  ['delete', '/api/v1/admin/users/{id}', [204, 401, 403, 404, 409, 422, 429]],
  ['post', '/api/v1/admin/invites', [201, 401, 403, 422, 429]],
  ['get', '/api/v1/admin/invites', [200, 401, 403, 422, 429]],
  ['delete', '/api/v1/admin/invites/{id}', [204, 401, 403, 404, 422, 429]],
  ['get', '/api/v1/admin/usage', [200, 401, 403, 422, 429]],
  ['get', '/api/v1/system/status', [200, 401, 403, 429]],
]

describe('/openapi.json: the statuses of the accounts routes', () => {
  let t: TestApp
  let paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema?: unknown }> }> }>>
  beforeAll(async () => {
    t = await createTestApp('sqlite')
    paths = (await t.request('GET', '/openapi.json')).body.paths
  })
  afterAll(() => t.close())

  test.each(ROUTES)('%s %s', (method, path, statuses) => {
    const responses = paths[path]?.[method]?.responses ?? {}
    expect(Object.keys(responses).map(Number).sort()).toEqual(statuses)
  })

  test('every problem status is documented with the Problem schema', () => {
    for (const [method, path, statuses] of ROUTES)
      for (const status of statuses.filter((s) => s >= 400)) {
        const content = paths[path]![method]!.responses[status]!.content ?? {}
        expect({ route: `${method} ${path} ${status}`, schemas: Object.values(content).map((c) => JSON.stringify(c.schema)) }).toEqual({
          route: `${method} ${path} ${status}`,
          schemas: expect.arrayContaining([expect.stringContaining('Problem')]),
        })
      }
  })

  test('every accounts route is in the table', () => {
    const accounts = Object.entries(paths).flatMap(([path, ops]) => (/^\/api\/v1\/(auth|api-keys|users|admin|system)\b/.test(path) ? Object.keys(ops).map((m) => `${m} ${path}`) : []))
    expect(accounts.sort()).toEqual(ROUTES.map(([m, p]) => `${m} ${p}`).sort())
  })
})
