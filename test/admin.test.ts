/**
 * Admin user management and system status (docs/api.md §5): search and filters, credits, role
 * changes and disabling (with what they revoke), the last-admin guard, deletion.
 */
import { describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import { register, useCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { scenarios } from './helpers/scenarios.ts'

const me = (t: TestApp, token: string) => t.request('GET', '/api/v1/auth/me', { token })

eachDialect('admin', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers)))

  describe('who may call what', () => {
    scenarios<CallersContext>(() => ctx, [
      { name: 'admin list: guest', as: 'guest', method: 'GET', path: '/api/v1/admin/users', status: 401 },
      { name: 'admin list: user', as: 'user', method: 'GET', path: '/api/v1/admin/users', status: 403, code: 'FORBIDDEN' },
      { name: 'admin list: admin', as: 'admin', method: 'GET', path: '/api/v1/admin/users', status: 200, check: (r) => expect(r.body).toMatchObject({ total: 3, limit: 50, offset: 0, has_more: false }), notContains: ['password_hash', 'passwordHash'] },
      { name: 'status: user', as: 'user', method: 'GET', path: '/api/v1/system/status', status: 403 },
      { name: 'status: admin', as: 'admin', method: 'GET', path: '/api/v1/system/status', status: 200, check: (r) => expect(r.body).toMatchObject({ version: '0.0.0-test', database: dialect, counts: { users: 3, conversations: 0, messages: 0, tasks: 0 } }) },
      { name: 'user cannot change roles', as: 'user', method: 'PATCH', path: (c) => `/api/v1/admin/users/${c.accounts.user.id}`, body: { role: 'admin' }, status: 403 },
      { name: 'user cannot delete', as: 'other', method: 'DELETE', path: (c) => `/api/v1/admin/users/${c.accounts.user.id}`, status: 403 },
      { name: 'unknown user', as: 'admin', method: 'PATCH', path: '/api/v1/admin/users/nope', body: { credits_delta: 1 }, status: 404 },
      { name: 'bad role', as: 'admin', method: 'PATCH', path: (c) => `/api/v1/admin/users/${c.accounts.user.id}`, body: { role: 'root' }, status: 422 },
      { name: 'bad filter', as: 'admin', method: 'GET', path: '/api/v1/admin/users?limit=500', status: 422 },
    ])
  })

  test('admin: search and filter users', async () => {
    const { admin, other } = ctx.accounts
    const q = await t.request('GET', `/api/v1/admin/users?q=${other.username.toUpperCase()}`, { token: admin.access })
    expect(q.body.items.map((u: { id: string }) => u.id)).toEqual([other.id])
    const admins = await t.request('GET', '/api/v1/admin/users?role=admin', { token: admin.access })
    expect(admins.body.items.map((u: { id: string }) => u.id)).toEqual([admin.id])
    const paged = await t.request('GET', '/api/v1/admin/users?limit=1&offset=1', { token: admin.access })
    expect(paged.body).toMatchObject({ total: 3, limit: 1, offset: 1, has_more: true })
    const wild = await t.request('GET', '/api/v1/admin/users?q=%25', { token: admin.access })
    expect(wild.body.total).toBe(0)
  })

  test('admin: credits, role change (old tokens must refresh), disable (everything revoked at once)', async () => {
    const { admin } = ctx.accounts
    const target = await register(t, 'target')
    const key = (await t.request('POST', '/api/v1/api-keys', { token: target.access, body: { name: 'k' } })).body.key
    const credited = await t.request('PATCH', `/api/v1/admin/users/${target.id}`, { token: admin.access, body: { credits_delta: 12.5 } })
    expect(credited.body.credits).toEqual({ balance: 12.5, used: 0 })
    expect((await t.request('GET', '/api/v1/users/me/credits', { token: target.access })).body.balance).toBe(12.5)

    const promoted = await t.request('PATCH', `/api/v1/admin/users/${target.id}`, { token: admin.access, body: { role: 'admin' } })
    expect(promoted.body.role).toBe('admin')
    const stale = await me(t, target.access)
    expect([stale.status, stale.body.code]).toEqual([401, 'TOKEN_EXPIRED'])
    const fresh = await t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: target.refresh } })
    expect((await t.request('GET', '/api/v1/admin/users', { token: fresh.body.tokens.access_token })).status).toBe(200)

    const disabled = await t.request('PATCH', `/api/v1/admin/users/${target.id}`, { token: admin.access, body: { is_active: false } })
    expect(disabled.body.is_active).toBe(false)
    expect((await me(t, fresh.body.tokens.access_token)).status).toBe(401)
    expect((await me(t, key)).status).toBe(401)
    expect((await t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: fresh.body.tokens.refresh_token } })).status).toBe(401)
    const blocked = await t.request('POST', '/api/v1/auth/login', { body: { username: target.username, password: target.password } })
    expect([blocked.status, blocked.body.code]).toEqual([403, 'FORBIDDEN'])
    const filtered = await t.request('GET', '/api/v1/admin/users?is_active=false', { token: admin.access })
    expect(filtered.body.items.map((u: { id: string }) => u.id)).toEqual([target.id])
  })

  test('the last admin cannot be demoted, disabled or deleted', async () => {
    const solo = await createTestApp(dialect)
    const a = await register(solo, 'only')
    for (const body of [{ role: 'user' }, { is_active: false }]) {
      const res = await solo.request('PATCH', `/api/v1/admin/users/${a.id}`, { token: a.access, body })
      expect([res.status, res.body.code]).toEqual([409, 'CONFLICT'])
    }
    expect((await solo.request('DELETE', `/api/v1/admin/users/${a.id}`, { token: a.access })).status).toBe(409)
    const b = await register(solo, 'second')
    expect((await solo.request('PATCH', `/api/v1/admin/users/${b.id}`, { token: a.access, body: { role: 'admin' } })).status).toBe(200)
    expect((await solo.request('PATCH', `/api/v1/admin/users/${a.id}`, { token: a.access, body: { role: 'user' } })).status).toBe(200)
    await solo.close()
  })

  test('deleting a user: 204, their tokens stop working', async () => {
    const victim = await register(t, 'deleted')
    expect((await t.request('DELETE', `/api/v1/admin/users/${victim.id}`, { token: ctx.accounts.admin.access })).status).toBe(204)
    expect((await me(t, victim.access)).status).toBe(401)
    expect((await t.request('DELETE', `/api/v1/admin/users/${victim.id}`, { token: ctx.accounts.admin.access })).status).toBe(404)
  })

  test('deleting a user who owns one of everything: 204, and what they owned is gone', async () => {
    const owner = await register(t, 'owner')
    const as = { token: owner.access }
    const made = await Promise.all([
      t.request('POST', '/api/v1/configs', { ...as, body: { config_group: 'search', config_name: 'exa_api_key', config_value: 'personal-key' } }),
      t.request('POST', '/api/v1/mcp/servers', { ...as, body: { name: 'mine', transport: 'http', url: 'http://127.0.0.1:9/mcp' } }),
      t.request('POST', '/api/v1/conversations', { ...as, body: { title: 'with tools', tools: ['current_time'] } }),
      t.request('POST', '/api/v1/tools/call', { ...as, body: { tool: 'current_time' } }),
      t.request('POST', '/api/v1/memories', { ...as, body: { content: 'a fact' } }),
    ])
    expect(made.map((r) => r.status)).toEqual([201, 201, 201, 200, 201])
    expect((await t.request('DELETE', `/api/v1/admin/users/${owner.id}`, { token: ctx.accounts.admin.access })).status).toBe(204)
    const { db, t: tables } = t.deps.database
    const left = await Promise.all([tables.configs, tables.mcpServers, tables.conversations, tables.toolLogs, tables.memories].map((table) => db.$count(table, eq(table.userId, owner.id))))
    expect(left).toEqual([0, 0, 0, 0, 0])
  })

  test('no password, hash, token or key ever reaches the log', () => {
    const log = t.logText()
    for (const a of Object.values(ctx.accounts)) {
      expect(log).not.toContain(a.password)
      expect(log).not.toContain(a.access)
      expect(log).not.toContain(a.refresh)
    }
    expect(log).not.toContain('hk_')
    expect(log).not.toContain('$argon2id$')
  })
})
