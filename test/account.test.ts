/**
 * Your account: the streamed export (GET /users/me/export) — one valid JSON document of everything
 * you own, paged through every table, no secret in it, one at a time, stopped when the client goes —
 * and deleting your account (DELETE /users/me): the password (or a fresh single sign-on), the last
 * admin kept, every row of the user gone table by table (derived from the schema), file bytes too.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { connect } from 'node:net'
import { count, eq, inArray, type SQL } from 'drizzle-orm'
import { serveApp } from '../src/app.ts'
import { CHILD_PAGE, EXPORT_COVERAGE, PAGE } from '../src/modules/account/export.ts'
import { accountExportSchema } from '../src/modules/account/model.ts'
import { FRESH_SIGN_IN_MS } from '../src/modules/account/service.ts'
import { newId } from '../src/lib/ids.ts'
import { login, register, setupCallers, type Account, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { eventually } from './helpers/mcp.ts'
import { SEEDED_SECRETS, seedOneOfEach, userTables } from './helpers/owned-rows.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Caller } from './helpers/scenarios.ts'

type Json = Record<string, any>
const EXPORT = '/api/v1/users/me/export'
const ME = '/api/v1/users/me'

/** An export, parsed and checked against the documented schema. */
async function exportOf(t: TestApp, token: string): Promise<{ res: TestResponse; doc: Json }> {
  const res = await t.request('GET', EXPORT, { token })
  expect(res.status).toBe(200)
  const doc = JSON.parse(res.text)
  accountExportSchema.parse(doc)
  return { res, doc }
}

async function upload(t: TestApp, token: string, name: string, data: string) {
  const fd = new FormData()
  fd.append('purpose', 'attachment')
  fd.append('file', new Blob([data], { type: 'text/plain' }), name)
  const res = await t.app.handle(new Request('http://localhost/api/v1/files', { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: fd }))
  expect(res.status).toBe(201)
  return (await res.json()) as Json
}

/** whether the store still holds the object (BunFile and S3File both tell) */
const stored = (t: TestApp, key: string) => (t.deps.services.storage.file(key) as Blob & { exists(): Promise<boolean> }).exists()

/** `n` conversations of `userId`, each with `perConversation` messages, inserted in bulk. */
async function insertConversations(t: TestApp, userId: string, n: number, perConversation: number, content = (c: number, m: number) => `message ${m} of ${c}`) {
  const { db, t: tables } = t.deps.database
  const ids: string[] = []
  for (let start = 0; start < n; start += 500) {
    const rows = Array.from({ length: Math.min(500, n - start) }, (_, i) => ({ id: newId(), userId, title: `conversation ${start + i}`, messageCount: perConversation }))
    await db.insert(tables.conversations).values(rows)
    ids.push(...rows.map((r) => r.id))
  }
  const messages = ids.flatMap((conversationId, c) => Array.from({ length: perConversation }, (_, m) => ({ id: newId(), conversationId, role: m % 2 ? ('assistant' as const) : ('user' as const), content: content(c, m) })))
  for (let start = 0; start < messages.length; start += 500) await db.insert(tables.messages).values(messages.slice(start, start + 500))
  return ids
}

// -------------------------------------------------------------------------------------------------

type Kind = Caller | 'key'
interface Ctx extends CallersContext {
  tokens: Partial<Record<Kind, string>>
}

eachDialect('account: who may export and delete', (dialect) => {
  let t: TestApp
  let ctx: Ctx
  beforeAll(async () => {
    t = await createTestApp(dialect)
    const callers = await setupCallers(t)
    const key = (await t.request('POST', '/api/v1/api-keys', { token: callers.accounts.user.access, body: { name: 'script', scopes: ['api'] } })).body.key
    ctx = { ...callers, tokens: { ...callers.tokens, key } }
  })
  afterAll(() => t.close())

  scenarios<Ctx, Kind>(() => ctx, [
    { name: 'needs credentials', as: 'guest', method: 'GET', path: EXPORT, status: 401 },
    {
      name: 'your own data, as a download',
      as: 'user',
      method: 'GET',
      path: EXPORT,
      status: 200,
      check: (r, c) => {
        expect(r.headers.get('content-type')).toBe('application/json; charset=utf-8')
        expect(r.headers.get('content-disposition')).toBe(`attachment; filename="hearth-export-${c.accounts.user.username}-${new Date().toISOString().slice(0, 10)}.json"`)
        expect(r.body.user).toMatchObject({ id: c.accounts.user.id, username: c.accounts.user.username, has_password: true })
        expect(r.body.api_keys.map((k: Json) => k.name)).toEqual(['script'])
      },
      notContains: (c) => [c.accounts.other.username, c.accounts.admin.username, c.tokens.key!],
    },
    { name: 'another user gets their own', as: 'other', method: 'GET', path: EXPORT, status: 200, check: (r, c) => expect([r.body.user.id, r.body.api_keys]).toEqual([c.accounts.other.id, []]) },
    { name: 'an admin gets their own too', as: 'admin', method: 'GET', path: EXPORT, status: 200, check: (r, c) => expect(r.body.user).toMatchObject({ id: c.accounts.admin.id, role: 'admin' }) },
    { name: 'an API key with the api scope exports its owner', as: 'key', method: 'GET', path: EXPORT, status: 200, check: (r, c) => expect(r.body.user.id).toBe(c.accounts.user.id) },

    { name: 'needs credentials', as: 'guest', method: 'DELETE', path: ME, body: { password: 'whatever-it-is' }, status: 401 },
    { name: 'an API key cannot delete its owner', as: 'key', method: 'DELETE', path: ME, body: (c: Ctx) => ({ password: c.accounts.user.password }), status: 403, code: 'FORBIDDEN' },
    { name: 'wrong password', as: 'user', method: 'DELETE', path: ME, body: { password: 'not-the-password' }, status: 401, code: 'INVALID_CREDENTIALS' },
    { name: 'no password', as: 'other', method: 'DELETE', path: ME, status: 422, code: 'VALIDATION_ERROR', contains: ['password'] },
    { name: 'a password that is not a string', as: 'other', method: 'DELETE', path: ME, body: { password: 12345678 }, status: 422 },
    { name: 'the last active admin cannot', as: 'admin', method: 'DELETE', path: ME, body: (c: Ctx) => ({ password: c.accounts.admin.password }), status: 409, code: 'CONFLICT' },
  ])

  test('after the refusals every caller is still there and signed in', async () => {
    for (const a of Object.values(ctx.accounts)) expect((await t.request('GET', '/api/v1/auth/me', { token: a.access })).status).toBe(200)
  })

  test('deleting yourself: 204, cookies cleared, tokens and API keys dead, the username free again', async () => {
    const me = await register(t, 'leaver')
    const key = (await t.request('POST', '/api/v1/api-keys', { token: me.access, body: { name: 'k' } })).body.key
    const res = await t.request('DELETE', ME, { token: me.access, body: { password: me.password } })
    expect(res.status).toBe(204)
    const cookies = res.headers.getSetCookie()
    expect(cookies.some((c) => c.startsWith('hearth_access=;') && /Max-Age=0/i.test(c))).toBe(true)
    expect(cookies.some((c) => c.startsWith('hearth_refresh=;') && /Max-Age=0/i.test(c))).toBe(true)
    for (const token of [me.access, key]) expect((await t.request('GET', '/api/v1/auth/me', { token })).status).toBe(401)
    expect((await t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: me.refresh } })).status).toBe(401)
    expect((await t.request('POST', '/api/v1/auth/login', { body: { username: me.username, password: me.password } })).status).toBe(401)
    expect((await t.request('POST', '/api/v1/auth/register', { body: { username: me.username, email: me.email, password: me.password } })).status).toBe(201)
  })

  test('an admin may delete themselves while another active admin exists', async () => {
    const second = await register(t, 'second_admin')
    expect((await t.request('PATCH', `/api/v1/admin/users/${second.id}`, { token: ctx.accounts.admin.access, body: { role: 'admin' } })).status).toBe(200)
    const fresh = await login(t, second)
    expect((await t.request('DELETE', ME, { token: fresh.access, body: { password: second.password } })).status).toBe(204)
    expect((await t.request('GET', `/api/v1/admin/users?q=${second.username}`, { token: ctx.accounts.admin.access })).body.total).toBe(0)
  })

  test('wrong passwords are counted: after 5 in 15 minutes even the right one is refused (429), the account stays', async () => {
    const me = await register(t, 'guessed')
    for (let i = 0; i < 5; i++) expectProblem(await t.request('DELETE', ME, { token: me.access, body: { password: `guess-${i}-wrong` } }), 401, 'INVALID_CREDENTIALS')
    const locked = await t.request('DELETE', ME, { token: me.access, body: { password: me.password } })
    expectProblem(locked, 429, 'RATE_LIMITED')
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0)
    expect((await t.request('GET', '/api/v1/auth/me', { token: me.access })).status).toBe(200)
  })

  describe('an account without a password (single sign-on)', () => {
    const client = { ip: '127.0.0.1', userAgent: 'test' }
    async function ssoAccount(): Promise<Account> {
      const a = await register(t, 'sso')
      const { db, t: tables } = t.deps.database
      await db.update(tables.users).set({ hasPassword: false }).where(eq(tables.users.id, a.id))
      return a
    }
    const signIn = async (a: Account, method: 'oidc' | 'login_link') => (await t.deps.services.auth.signInAs(a.id, client, method)).tokens.accessToken

    test('a single sign-on of the last 10 minutes stands in for the password: 204', async () => {
      const a = await ssoAccount()
      const res = await t.request('DELETE', ME, { token: await signIn(a, 'oidc') })
      expect(res.status).toBe(204)
      expect((await t.request('GET', '/api/v1/auth/me', { token: a.access })).status).toBe(401)
    })

    test('a password session, a login link or an older single sign-on: 403 saying to sign in again with the provider; a password does not help', async () => {
      const a = await ssoAccount()
      const old = await signIn(a, 'oidc')
      const { db, t: tables } = t.deps.database
      await db.update(tables.sessions).set({ createdAt: new Date(Date.now() - FRESH_SIGN_IN_MS - 60_000) }).where(eq(tables.sessions.method, 'oidc'))
      for (const token of [a.access, await signIn(a, 'login_link'), old]) {
        const res = await t.request('DELETE', ME, { token, body: { password: a.password } })
        expectProblem(res, 403, 'FORBIDDEN')
        expect(res.body.detail).toContain('sign in again with your single sign-on provider')
      }
      expect((await t.request('GET', '/api/v1/auth/me', { token: a.access })).status).toBe(200)
    })
  })

  test('the admin route deletes through the same steps: the target is gone with their file bytes', async () => {
    const target = await register(t, 'admin_deleted')
    const file = await upload(t, target.access, 'a.txt', 'bytes of the target')
    const [row] = await t.deps.database.db.select().from(t.deps.database.t.files).where(eq(t.deps.database.t.files.id, file.id))
    expect(await stored(t, row!.storageKey)).toBe(true)
    expect((await t.request('DELETE', `/api/v1/admin/users/${target.id}`, { token: ctx.accounts.admin.access })).status).toBe(204)
    expect(await stored(t, row!.storageKey)).toBe(false)
    expect((await t.request('GET', '/api/v1/auth/me', { token: target.access })).status).toBe(401)
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('account deletion: every row the user owned, table by table', (dialect) => {
  let t: TestApp
  beforeAll(async () => (t = await createTestApp(dialect)))
  afterAll(() => t.close())

  test('the schema has the tables this test knows how to fill', () => {
    // derived from the schema: a new table with a path to users is listed here, and seedOneOfEach then asks for a row of it
    expect(userTables(t.deps.database).length).toBeGreaterThanOrEqual(30)
  })

  test('removes every row the user owned, leaves everyone else\'s, and deletes the stored bytes', async () => {
    await register(t, 'first_admin')
    const victim = await register(t, 'victim')
    const bystander = await register(t, 'bystander')
    const { db } = t.deps.database
    const mine = await seedOneOfEach(t.deps.database, victim.id, 'victim')
    const theirs = await seedOneOfEach(t.deps.database, bystander.id, 'bystander')
    const file = await upload(t, victim.access, 'mine.txt', 'the victim\'s bytes')
    const otherFile = await upload(t, bystander.access, 'theirs.txt', 'the bystander\'s bytes')
    const keyOf = async (id: string) => (await db.select().from(t.deps.database.t.files).where(eq(t.deps.database.t.files.id, id)))[0]!.storageKey
    const [myKey, theirKey] = [await keyOf(file.id), await keyOf(otherFile.id)]

    expect((await t.request('DELETE', ME, { token: victim.access, body: { password: victim.password } })).status).toBe(204)

    const tables = userTables(t.deps.database)
    const report: Record<string, unknown> = {}
    for (const table of tables) {
      const rowsOf = async (where: SQL) => Number((await db.select({ n: count() }).from(table.table).where(where))[0]!.n)
      const referencing = await Promise.all(table.userColumns.map((c) => rowsOf(eq((table.table as any)[camel(c)], victim.id))))
      report[table.name] = {
        referencing_the_user: referencing.reduce((a, b) => a + b, 0),
        seeded_row_left: await rowsOf(mine[table.name]!),
        bystanders_row_left: await rowsOf(theirs[table.name]!),
      }
    }
    const expected = Object.fromEntries(tables.map((table) => [table.name, { referencing_the_user: 0, seeded_row_left: table.gone ? 0 : 1, bystanders_row_left: 1 }]))
    expect(report).toEqual(expected)
    // the rows that stay (usage, invites) only lost the user
    expect(tables.filter((x) => !x.gone).map((x) => x.name).sort()).toEqual(['invites', 'usage'])
    expect(await stored(t, myKey)).toBe(false)
    expect(await stored(t, theirKey)).toBe(true)
    expect((await t.request('GET', '/api/v1/auth/me', { token: bystander.access })).status).toBe(200)
  }, 30_000)
})

const camel = (snake: string) => snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())

// -------------------------------------------------------------------------------------------------

eachDialect('account export: the document', (dialect) => {
  let t: TestApp
  let me: Account
  beforeAll(async () => {
    t = await createTestApp(dialect)
    await register(t, 'first_admin')
    me = await register(t, 'exporter')
  })
  afterAll(() => t.close())

  test('every table holding a user\'s rows is placed in the export or left out with a reason', () => {
    expect(userTables(t.deps.database).map((x) => x.name).sort()).toEqual(Object.keys(EXPORT_COVERAGE).filter((n) => n !== 'users').sort())
  })

  test('one of everything: every array has it, nested children under their parents, no secret anywhere', async () => {
    const other = await register(t, 'not_exported')
    await seedOneOfEach(t.deps.database, me.id, 'me')
    await seedOneOfEach(t.deps.database, other.id, 'other')
    const file = await upload(t, me.access, 'notes.txt', 'hello')
    const { res, doc } = await exportOf(t, me.access)
    expect(doc.format).toBe('hearth-export/1')
    const arrays = Object.entries(accountExportSchema.shape).filter(([, s]) => s.def.type === 'array').map(([k]) => k)
    expect(arrays.filter((k) => !doc[k]?.length)).toEqual([])
    expect(doc.conversations[0].messages.map((m: Json) => m.content)).toEqual(['seeded message'])
    expect(doc.tasks[0].steps.map((s: Json) => s.data)).toEqual([{ text: 'seeded step' }])
    expect(doc.workflows[0].versions.map((v: Json) => v.version)).toEqual([1])
    expect(doc.workflow_sessions[0].messages.map((m: Json) => m.content)).toEqual(['seeded session message'])
    expect(doc.providers[0].models.map((m: Json) => m.name)).toEqual(['seeded-model-me'])
    expect(doc.groups).toEqual([{ group_id: expect.any(String), name: 'seeded me', role: 'group_admin', joined_at: expect.any(String) }])
    expect(doc.plans[0]).toMatchObject({ type: 'seeded', status: 'completed', input: { topic: 'seeded' } })
    expect(doc.configs[0]).toMatchObject({ config_name: 'exa_api_key', is_secret: true, has_value: true, config_value: null })
    expect(doc.connections[0]).toMatchObject({ has_password: true })
    expect(doc.mcp_servers[0]).toMatchObject({ env_keys: ['E'], header_keys: ['Authorization'] })
    expect(doc.mcp_user_vars[0]).toMatchObject({ keys: ['TOKEN'] })
    expect(doc.usage).toEqual({ input_tokens: 7, output_tokens: 5, cost: 0.25 })
    expect(doc.privacy).toEqual({ history_retention_days: null, memory_enabled: false, usage_visible_to_group_admins: false })
    for (const secret of SEEDED_SECRETS) expect(res.text).not.toContain(secret)
    for (const theirs of [other.username, other.id, 'seeded other', 'seeded-model-other']) expect(res.text).not.toContain(theirs)
    expect(res.text).not.toContain('$argon2id$')

    // the file's link is absolute and works without credentials
    const exported = doc.files.find((f: Json) => f.id === file.id)
    expect(exported.access_url).toStartWith('http://localhost/api/v1/files/')
    const content = await t.app.handle(new Request(exported.access_url))
    expect([content.status, await content.text()]).toEqual([200, 'hello'])
  })

  test('tricky text comes back exactly, and the document never holds `</script>`', async () => {
    const tricky = 'quote " backslash \\ newline \n tab \t unicode é 漢字 😀 line sep \u2028 </script><script>alert(1)</script> <!-- \u001f'
    const who = await register(t, 'tricky')
    await t.request('PATCH', ME, { token: who.access, body: { display_name: 'Tricky </script> "name"' } })
    await insertConversations(t, who.id, 1, 1, () => tricky)
    expect((await t.request('POST', '/api/v1/memories', { token: who.access, body: { content: tricky } })).status).toBe(201)
    const { res, doc } = await exportOf(t, who.access)
    expect(res.text).not.toContain('</script>')
    expect(res.text).not.toContain('<')
    expect(doc.conversations[0].messages[0].content).toBe(tricky)
    expect(doc.memories[0].content).toBe(tricky)
    expect(doc.user.display_name).toBe('Tricky </script> "name"')
  })

  test(`pages: ${PAGE * 2 + 50} conversations, and one with ${CHILD_PAGE * 2 + 7} messages across child pages — every message once, under its conversation, in order`, async () => {
    const who = await register(t, 'many')
    const ids = await insertConversations(t, who.id, PAGE * 2 + 50, 2)
    const [big] = await insertConversations(t, who.id, 1, CHILD_PAGE * 2 + 7)
    const { doc } = await exportOf(t, who.access)
    expect(doc.conversations.map((c: Json) => c.id)).toEqual([...ids, big].sort())
    for (const c of doc.conversations) {
      expect(c.messages.every((m: Json) => m.conversation_id === c.id)).toBe(true)
      // insertConversations numbers each batch's conversations from 0: the big one is alone in its batch
      const [n, index] = c.id === big ? [CHILD_PAGE * 2 + 7, 0] : [2, ids.indexOf(c.id)]
      expect(c.messages.map((m: Json) => m.content)).toEqual(Array.from({ length: n }, (_, m) => `message ${m} of ${index}`))
    }
    expect(doc.conversations.reduce((n: number, c: Json) => n + c.messages.length, 0)).toBe((PAGE * 2 + 50) * 2 + CHILD_PAGE * 2 + 7)
  }, 60_000)

  test('one export at a time per user (429 while one is open); cancelling it frees the next', async () => {
    const who = await register(t, 'one_at_a_time')
    await insertConversations(t, who.id, PAGE * 3, 2)
    const first = await t.app.handle(new Request(`http://localhost${EXPORT}`, { headers: { authorization: `Bearer ${who.access}` } }))
    expect(first.status).toBe(200)
    const reader = first.body!.getReader()
    expect((await reader.read()).done).toBe(false)
    const second = await t.request('GET', EXPORT, { token: who.access })
    expectProblem(second, 429, 'RATE_LIMITED')
    expect(second.headers.get('retry-after')).toBeTruthy()
    // another user is not held up
    expect((await t.request('GET', EXPORT, { token: me.access })).status).toBe(200)
    await reader.cancel()
    expect((await t.request('GET', EXPORT, { token: who.access })).status).toBe(200)
  }, 30_000)

  test('over HTTP: a client that stops reading holds the export; when it goes away the export stops (the next one is let in)', async () => {
    const who = await register(t, 'goes_away')
    // ~12 MB: more than the socket buffers hold, so the server waits for the reader
    await insertConversations(t, who.id, 3000, 2, (c, m) => `${'x'.repeat(2000)} ${c}.${m}`)
    const server = serveApp(t.app, { port: 0, hostname: '127.0.0.1', idleTimeout: 0 })
    try {
      const url = `http://127.0.0.1:${server.port}${EXPORT}`
      const exportNow = async () => {
        const res = await fetch(url, { headers: { authorization: `Bearer ${who.access}` } })
        await res.body?.cancel()
        return res.status
      }
      // a raw client that reads the first bytes, then nothing more
      const socket = connect(server.port!, '127.0.0.1')
      const firstBytes = new Promise<string>((resolve) => socket.once('data', (d) => (socket.pause(), resolve(d.toString()))))
      socket.write(`GET ${EXPORT} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${who.access}\r\n\r\n`)
      expect(await firstBytes).toStartWith('HTTP/1.1 200')
      expect(await exportNow()).toBe(429)
      socket.destroy()
      await eventually(async () => (await exportNow()) === 200, 10_000, 'a new export after the first client left')
    } finally {
      server.stop(true)
    }
  }, 60_000)

  test('a deleted conversation\'s messages are not exported, nor is anyone else\'s', async () => {
    const who = await register(t, 'partial')
    const other = await register(t, 'partial_other')
    const [keep, drop] = await insertConversations(t, who.id, 2, 1)
    await insertConversations(t, other.id, 3, 1)
    const { db, t: tables } = t.deps.database
    await db.delete(tables.conversations).where(inArray(tables.conversations.id, [drop!]))
    const { doc } = await exportOf(t, who.access)
    expect(doc.conversations.map((c: Json) => c.id)).toEqual([keep])
  })
})
