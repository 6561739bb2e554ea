/**
 * Data connections (docs/api.md §19) against real databases: a throw-away Postgres database (with
 * TEST_DATABASE_URL), a throw-away MariaDB/MySQL database (with TEST_MYSQL_URL) and an uploaded
 * SQLite file, each with the same fixture (test/helpers/sql-targets.ts). Hearth's own database is
 * SQLite and, with TEST_DATABASE_URL, Postgres too.
 *
 * Covered: CRUD and who may see and change what (guest, user, other user, admin); passwords never
 * answered and encrypted in the row; validation; private hosts; `test` (connected, wrong
 * credentials, a port nothing listens on, a host that never answers); the schema and its cache;
 * queries on each driver with JSON-safe values; every refused kind of statement per dialect with
 * the data unchanged after; the read-only transaction alone (the driver called directly, no vetting);
 * slow queries cancelled on the server (nothing left in pg_stat_activity / the process list, the
 * SQLite process killed); the row cap; bad input; pools closed when idle, changed or deleted.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openMysql } from '../src/modules/connections/drivers/mysql.ts'
import { openPostgres } from '../src/modules/connections/drivers/postgres.ts'
import { createSqliteProcesses, openSqlite } from '../src/modules/connections/drivers/sqlite.ts'
import { StatementFailed, type DriverPool, type DriverTarget } from '../src/modules/connections/drivers/types.ts'
import { createOutboundGuard } from '../src/lib/outbound.ts'
import { createSecondInstance, createTestApp, type TestApp } from './helpers/app.ts'
import { register, setupCallers, type CallersContext } from './helpers/accounts.ts'
import { DIALECTS, eachDialect } from './helpers/db.ts'
import { privateName } from './helpers/private-name.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios } from './helpers/scenarios.ts'
import { createMysqlTarget, createPgTarget, createSqliteFile, targetAvailable, type MysqlTarget, type PgTarget, type TargetDriver } from './helpers/sql-targets.ts'
import { eventually } from './helpers/streams.ts'
import { startS3 } from './helpers/s3.ts'
import { createS3Storage } from '../src/storage/s3.ts'

const SUITE = 'connections'
const SQL_TIMEOUT_MS = 1500
const PASSWORD = 'S3cret-connection-pw-7f3a'
const DRIVERS = (['sqlite', 'postgres', 'mysql'] as const).filter((d) => targetAvailable(d, SUITE))

/** A TCP server on loopback that accepts connections and never says a word (a host that never answers). */
async function silentServer(): Promise<{ port: number; close(): void }> {
  const sockets = new Set<import('node:net').Socket>()
  const server: Server = createServer((s) => void sockets.add(s))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as { port: number }).port,
    close() {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}

/** A port on loopback that nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as { port: number }).port
  await new Promise((r) => server.close(r))
  return port
}

async function upload(t: TestApp, token: string, bytes: Uint8Array, purpose = 'dataset', name = 'data.sqlite'): Promise<string> {
  const form = new FormData()
  form.append('purpose', purpose)
  form.append('file', new Blob([bytes as Uint8Array<ArrayBuffer>]), name)
  const res = await t.app.handle(new Request('http://localhost/api/v1/files', { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form }))
  const body = (await res.json()) as { id: string }
  expect(res.status).toBe(201)
  return body.id
}

type AnyTarget = PgTarget | MysqlTarget | { driver: 'sqlite'; path: string; fingerprint(): Promise<string>; drop(): Promise<void> }

/** A fixture database of `driver`, made for one suite. */
async function makeTarget(driver: TargetDriver, dir: string): Promise<AnyTarget> {
  if (driver === 'postgres') return createPgTarget()
  if (driver === 'mysql') return createMysqlTarget()
  const file = createSqliteFile(dir)
  return { driver: 'sqlite', path: file.path, fingerprint: async () => file.fingerprint(), drop: async () => {} }
}

/** The body that makes a connection to `target` (a SQLite file is uploaded by `token`'s user). */
async function connectionBody(t: TestApp, token: string, target: AnyTarget, name: string): Promise<Record<string, unknown>> {
  if (target.driver === 'sqlite') return { name, driver: 'sqlite', file_id: await upload(t, token, readFileSync(target.path)) }
  return { name, driver: target.driver, host: target.host, port: target.port, database: target.database, username: target.username, ...(target.driver === 'mysql' && target.password ? { password: target.password } : {}) }
}

/** The driver's pool on `target`, without Hearth in front: no vetting, only the read-only transaction and the limits. */
function directPool(target: AnyTarget, sqlite: ReturnType<typeof createSqliteProcesses>): DriverPool {
  if (target.driver === 'sqlite') return openSqlite(target.path, sqlite)
  const t: DriverTarget = { driver: target.driver, host: target.host, address: target.host, port: target.port, database: target.database, username: target.username, password: target.driver === 'mysql' ? target.password : null, ssl: false, file: null }
  const options = { connectTimeoutMs: 2000, maxSessions: 2, statementTimeoutMs: 30_000 }
  return target.driver === 'postgres' ? openPostgres(t, options) : openMysql(t, options)
}

/** Statements still running on the target database (other than the check's own). */
async function runningStatements(target: AnyTarget): Promise<string[]> {
  if (target.driver === 'postgres') {
    const rows = await target.admin.unsafe<{ query: string }[]>(`SELECT query FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()`)
    return rows.map((r) => r.query)
  }
  if (target.driver === 'mysql') {
    const [rows] = await target.admin.query<import('mysql2').RowDataPacket[]>('SHOW FULL PROCESSLIST')
    return rows.filter((r) => r.db === target.database && r.Command === 'Query' && !String(r.Info).startsWith('SHOW FULL PROCESSLIST')).map((r) => String(r.Info))
  }
  return []
}

// ---------------------------------------------------------------------------------------------

eachDialect('connections', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  /** the suite's scratch directory; statements below name files in it as $DIR */
  let dir = ''
  const inDir = (sql: string) => sql.replaceAll('$DIR', dir)
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hearth-conn-test-'))
    t = await createTestApp(dialect, { HEARTH_SQL_TIMEOUT_MS: String(SQL_TIMEOUT_MS) }, { connections: { connectTimeoutMs: 1000, idleMs: 60_000 } })
    ctx = await setupCallers(t)
  })
  afterAll(async () => {
    await t?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })
  const as = (who: 'user' | 'other' | 'admin') => ctx.tokens[who]!
  const post = (who: 'user' | 'other' | 'admin', path: string, body: unknown) => t.request('POST', path, { token: as(who), body })

  describe('CRUD and who may do what', () => {
    interface Ctx extends CallersContext {
      mine: string
      global: string
      adminOwn: string
      dataset: string
      othersDataset: string
      attachment: string
      notSqlite: string
    }
    let c: Ctx
    beforeAll(async () => {
      const pg = { driver: 'postgres', host: '127.0.0.1', port: 5432, database: 'x', username: 'reader', password: PASSWORD }
      const mine = await post('user', '/api/v1/connections', { ...pg, name: 'Mine' })
      const global = await post('admin', '/api/v1/connections', { ...pg, name: 'Shared' })
      const adminOwn = await post('admin', '/api/v1/connections', { ...pg, name: 'AdminOwn', scope: 'personal' })
      for (const r of [mine, global, adminOwn]) expect(r.status).toBe(201)
      const sqliteBytes = readFileSync(createSqliteFile(dir, [], 'crud.sqlite').path)
      c = {
        ...ctx,
        mine: mine.body.id,
        global: global.body.id,
        adminOwn: adminOwn.body.id,
        dataset: await upload(t, as('user'), sqliteBytes),
        othersDataset: await upload(t, as('other'), sqliteBytes),
        attachment: await upload(t, as('user'), sqliteBytes, 'attachment'),
        notSqlite: await upload(t, as('user'), new TextEncoder().encode('id,name\n1,apple\n'), 'dataset', 'data.csv'),
      }
    })
    const pg = (extra: Record<string, unknown> = {}) => ({ name: `pg_${Math.random().toString(36).slice(2, 8)}`, driver: 'postgres', host: '127.0.0.1', database: 'x', username: 'reader', ...extra })
    const never = () => [PASSWORD, 'v1.']

    scenarios<Ctx>(() => c, [
      { name: 'needs a session', as: 'guest', method: 'GET', path: '/api/v1/connections', status: 401 },
      { name: 'guest cannot add', as: 'guest', method: 'POST', path: '/api/v1/connections', body: pg(), status: 401 },
      {
        name: 'own and global ones, never the password',
        as: 'user',
        method: 'GET',
        path: '/api/v1/connections',
        status: 200,
        notContains: never,
        check: (res, x) => {
          const ids = res.body.items.map((i: { id: string }) => i.id)
          expect(ids).toContain(x.mine)
          expect(ids).toContain(x.global)
          expect(ids).not.toContain(x.adminOwn)
          const mine = res.body.items.find((i: { id: string }) => i.id === x.mine)
          expect(mine).toMatchObject({ name: 'Mine', driver: 'postgres', host: '127.0.0.1', port: 5432, has_password: true, scope: 'personal', is_connected: false, last_tested_at: null })
          expect(mine).not.toHaveProperty('password')
        },
      },
      { name: "another user's connections are not listed", as: 'other', method: 'GET', path: '/api/v1/connections?scope=personal', status: 200, check: (res) => expect(res.body.items).toEqual([]) },
      { name: 'admins list the global ones and their own', as: 'admin', method: 'GET', path: '/api/v1/connections?scope=global', status: 200, check: (res, x) => expect(res.body.items.map((i: { id: string }) => i.id)).toEqual([x.global]) },
      { name: 'own one', as: 'user', method: 'GET', path: (x) => `/api/v1/connections/${x.mine}`, status: 200, notContains: never },
      { name: "another user's is 404", as: 'other', method: 'GET', path: (x) => `/api/v1/connections/${x.mine}`, status: 404, code: 'NOT_FOUND' },
      { name: "another user's is 404 for admins too", as: 'admin', method: 'GET', path: (x) => `/api/v1/connections/${x.mine}`, status: 404 },
      { name: 'a global one is visible', as: 'other', method: 'GET', path: (x) => `/api/v1/connections/${x.global}`, status: 200, check: (res) => expect(res.body.scope).toBe('global') },
      { name: 'a global one is changed by admins only', as: 'user', method: 'PATCH', path: (x) => `/api/v1/connections/${x.global}`, body: { name: 'Mine now' }, status: 403, code: 'FORBIDDEN' },
      { name: 'a global one is deleted by admins only', as: 'user', method: 'DELETE', path: (x) => `/api/v1/connections/${x.global}`, status: 403 },
      { name: "another user's cannot be changed", as: 'other', method: 'PATCH', path: (x) => `/api/v1/connections/${x.mine}`, body: { name: 'Taken' }, status: 404 },
      { name: "another user's cannot be deleted", as: 'other', method: 'DELETE', path: (x) => `/api/v1/connections/${x.mine}`, status: 404 },
      { name: "another user's cannot be tested", as: 'other', method: 'POST', path: (x) => `/api/v1/connections/${x.mine}/test`, status: 404 },
      { name: "another user's schema is 404", as: 'other', method: 'GET', path: (x) => `/api/v1/connections/${x.mine}/schema`, status: 404 },
      { name: "another user's cannot be queried", as: 'other', method: 'POST', path: (x) => `/api/v1/connections/${x.mine}/query`, body: { sql: 'SELECT 1' }, status: 404 },
      { name: "an admin cannot query a user's", as: 'admin', method: 'POST', path: (x) => `/api/v1/connections/${x.mine}/query`, body: { sql: 'SELECT 1' }, status: 404 },
      { name: 'users add personal ones', as: 'other', method: 'POST', path: '/api/v1/connections', body: pg({ password: PASSWORD }), status: 201, notContains: never, check: (res) => expect(res.body).toMatchObject({ scope: 'personal', port: 5432, has_password: true }) },
      { name: 'only admins add global ones', as: 'user', method: 'POST', path: '/api/v1/connections', body: pg({ scope: 'global' }), status: 403, code: 'FORBIDDEN' },
      { name: 'names are unique per user, whatever the case', as: 'user', method: 'POST', path: '/api/v1/connections', body: pg({ name: 'MINE' }), status: 409, code: 'CONFLICT' },
      { name: "a personal name may not be a global one's", as: 'other', method: 'POST', path: '/api/v1/connections', body: pg({ name: 'shared' }), status: 409 },
      { name: 'global names are unique', as: 'admin', method: 'POST', path: '/api/v1/connections', body: pg({ name: 'SHARED' }), status: 409 },
      { name: 'another user may use the same personal name', as: 'other', method: 'POST', path: '/api/v1/connections', body: pg({ name: 'Mine' }), status: 201 },
      { name: 'a rename onto a global name', as: 'user', method: 'PATCH', path: (x) => `/api/v1/connections/${x.mine}`, body: { name: 'Shared' }, status: 409 },
      { name: 'an unknown driver', as: 'user', method: 'POST', path: '/api/v1/connections', body: pg({ driver: 'oracle' }), status: 422, contains: ['driver'] },
      { name: 'port 0', as: 'user', method: 'POST', path: '/api/v1/connections', body: pg({ port: 0 }), status: 422, contains: ['port'] },
      { name: 'port 65536', as: 'user', method: 'POST', path: '/api/v1/connections', body: pg({ port: 65536 }), status: 422, contains: ['port'] },
      { name: 'port -1', as: 'user', method: 'POST', path: '/api/v1/connections', body: pg({ port: -1 }), status: 422, contains: ['port'] },
      { name: 'port as text', as: 'user', method: 'POST', path: '/api/v1/connections', body: pg({ port: '5432' }), status: 422, contains: ['port'] },
      { name: 'a port out of range on a change', as: 'user', method: 'PATCH', path: (x) => `/api/v1/connections/${x.mine}`, body: { port: 70000 }, status: 422, contains: ['port'] },
      { name: 'postgres needs a host', as: 'user', method: 'POST', path: '/api/v1/connections', body: pg({ host: undefined }), status: 422, check: (res) => expect(res.body.errors[0].path).toBe('host') },
      { name: 'a host with a scheme', as: 'user', method: 'POST', path: '/api/v1/connections', body: pg({ host: 'postgres://db:5432' }), status: 422, contains: ['host'] },
      { name: 'postgres needs a username', as: 'user', method: 'POST', path: '/api/v1/connections', body: pg({ username: undefined }), status: 422, check: (res) => expect(res.body.errors[0].path).toBe('username') },
      { name: 'mysql needs a database', as: 'user', method: 'POST', path: '/api/v1/connections', body: pg({ driver: 'mysql', database: undefined }), status: 422, check: (res) => expect(res.body.errors[0].path).toBe('database') },
      { name: 'postgres has no file_id', as: 'user', method: 'POST', path: '/api/v1/connections', body: (x: Ctx) => pg({ file_id: x.dataset }), status: 422, check: (res) => expect(res.body.errors[0].path).toBe('file_id') },
      { name: 'a dataset of your own', as: 'user', method: 'POST', path: '/api/v1/connections', body: (x: Ctx) => ({ name: 'Data', driver: 'sqlite', file_id: x.dataset }), status: 201, check: (res, x) => expect(res.body).toMatchObject({ driver: 'sqlite', file_id: x.dataset, host: null, port: null, has_password: false }) },
      { name: "another user's file", as: 'user', method: 'POST', path: '/api/v1/connections', body: (x: Ctx) => ({ name: 'Theirs', driver: 'sqlite', file_id: x.othersDataset }), status: 422, check: (res) => expect(res.body.errors[0].path).toBe('file_id') },
      { name: 'a file of another purpose', as: 'user', method: 'POST', path: '/api/v1/connections', body: (x: Ctx) => ({ name: 'Att', driver: 'sqlite', file_id: x.attachment }), status: 422, contains: ['dataset'] },
      { name: 'a dataset that is not SQLite', as: 'user', method: 'POST', path: '/api/v1/connections', body: (x: Ctx) => ({ name: 'Csv', driver: 'sqlite', file_id: x.notSqlite }), status: 422, contains: ['not a SQLite database'] },
      { name: 'sqlite needs file_id or path', as: 'user', method: 'POST', path: '/api/v1/connections', body: { name: 'Nothing', driver: 'sqlite' }, status: 422 },
      { name: 'sqlite takes file_id or path, not both', as: 'admin', method: 'POST', path: '/api/v1/connections', body: (x: Ctx) => ({ name: 'Both', driver: 'sqlite', file_id: x.dataset, path: '/tmp/x.sqlite' }), status: 422 },
      { name: 'sqlite has no host', as: 'user', method: 'POST', path: '/api/v1/connections', body: (x: Ctx) => ({ name: 'Hosted', driver: 'sqlite', file_id: x.dataset, host: 'db' }), status: 422, check: (res) => expect(res.body.errors[0].path).toBe('host') },
      { name: 'a server path is for admins', as: 'user', method: 'POST', path: '/api/v1/connections', body: { name: 'Etc', driver: 'sqlite', path: '/etc/passwd' }, status: 403, code: 'FORBIDDEN' },
      { name: 'a server path must be SQLite', as: 'admin', method: 'POST', path: '/api/v1/connections', body: { name: 'Etc', driver: 'sqlite', path: '/etc/passwd' }, status: 422, contains: ['not a SQLite database'] },
      { name: 'a server path must be absolute', as: 'admin', method: 'POST', path: '/api/v1/connections', body: { name: 'Rel', driver: 'sqlite', path: 'data.sqlite' }, status: 422 },
      { name: 'a NUL in a field', as: 'user', method: 'POST', path: '/api/v1/connections', body: pg({ username: 'a\u0000b' }), status: 422 },
      { name: 'a very long name', as: 'user', method: 'POST', path: '/api/v1/connections', body: pg({ name: 'n'.repeat(101) }), status: 422 },
    ])

    test('the password is encrypted in the row, write-only, and removed with null', async () => {
      const { db, t: tables } = t.deps.database
      const { eq } = await import('drizzle-orm')
      const [row] = await db.select().from(tables.connections).where(eq(tables.connections.id, c.mine))
      expect(row!.password).toStartWith('v1.')
      expect(row!.password).not.toContain(PASSWORD)
      expect(await t.deps.services.connections.get({ userId: ctx.accounts.user.id, role: 'user' } as never, c.mine)).toMatchObject({ id: c.mine })
      const cleared = await t.request('PATCH', `/api/v1/connections/${c.mine}`, { token: as('user'), body: { password: null } })
      expect(cleared.body.has_password).toBe(false)
      const again = await t.request('PATCH', `/api/v1/connections/${c.mine}`, { token: as('user'), body: { password: PASSWORD } })
      expect(again.body.has_password).toBe(true)
      expect(again.text).not.toContain(PASSWORD)
      expect(t.logText()).not.toContain(PASSWORD)
    })

    test('one default per user: setting one clears the others; defaultFor follows it, then the preference, then the global default', async () => {
      const u = await register(t, 'defaults')
      const make = async (name: string, extra: Record<string, unknown> = {}) => (await t.request('POST', '/api/v1/connections', { token: u.access, body: pg({ name, ...extra }) })).body.id as string
      const a = await make('A', { is_default: true })
      const b = await make('B', { is_default: true })
      const list = (await t.request('GET', '/api/v1/connections?scope=personal', { token: u.access })).body.items
      expect(list.map((i: { name: string; is_default: boolean }) => [i.name, i.is_default])).toEqual([
        ['A', false],
        ['B', true],
      ])
      const principal = { userId: u.id, role: 'user' } as never
      const svc = t.deps.services.connections
      expect((await svc.defaultFor(principal))?.id).toBe(b)
      await t.request('PATCH', `/api/v1/connections/${a}`, { token: u.access, body: { is_default: true } })
      expect((await svc.defaultFor(principal))?.id).toBe(a)
      await t.request('PATCH', `/api/v1/connections/${a}`, { token: u.access, body: { is_default: false } })
      // no default of their own: the preference, when it names one they may use, else the global default
      const globalDefault = (await post('admin', '/api/v1/connections', pg({ name: 'GlobalDefault', is_default: true }))).body.id
      expect((await svc.defaultFor(principal))?.id).toBe(globalDefault)
      expect((await t.request('PUT', '/api/v1/users/me/preferences', { token: u.access, body: { default_connection_id: b } })).status).toBe(200)
      expect((await svc.defaultFor(principal))?.id).toBe(b)
      expect((await svc.usableByName(principal, 'globaldefault')).id).toBe(globalDefault)
      await t.request('DELETE', `/api/v1/connections/${globalDefault}`, { token: as('admin') })
    })

    test('a personal connection to a server file does not open once its owner is no longer an admin', async () => {
      const path = createSqliteFile(dir, [], 'own-path.sqlite').path
      const own = await post('admin', '/api/v1/connections', { name: 'OwnPath', driver: 'sqlite', path, scope: 'personal' })
      expect(own.status).toBe(201)
      const svc = t.deps.services.connections
      const asAdmin = { userId: ctx.accounts.admin.id, role: 'admin' } as never
      const demoted = { userId: ctx.accounts.admin.id, role: 'user' } as never
      expect((await svc.query(asAdmin, own.body.id, 'SELECT count(*) FROM items')).rows).toEqual([[3]])
      await expect(svc.query(demoted, own.body.id, 'SELECT count(*) FROM items')).rejects.toMatchObject({ status: 502 })
      expect((await svc.test(demoted, own.body.id)).connected).toBe(false)
      await t.request('DELETE', `/api/v1/connections/${own.body.id}`, { token: as('admin') })
    })

    test('a change of what it reaches resets its status and cached schema; a global one is changed by admins', async () => {
      const res = await t.request('PATCH', `/api/v1/connections/${c.global}`, { token: as('admin'), body: { port: 6543, ssl: true } })
      expect(res.body).toMatchObject({ port: 6543, ssl: true, is_connected: false })
      // moving to sqlite drops the network fields
      const moved = await t.request('PATCH', `/api/v1/connections/${c.adminOwn}`, { token: as('admin'), body: { driver: 'sqlite', path: createSqliteFile(dir, [], 'moved.sqlite').path } })
      expect(moved.body).toMatchObject({ driver: 'sqlite', host: null, port: null, username: null, has_password: false, path: join(dir, 'moved.sqlite') })
      // a user never sees a server path
      const global = await post('admin', '/api/v1/connections', { name: 'ServerFile', driver: 'sqlite', path: join(dir, 'moved.sqlite') })
      expect(global.status).toBe(201)
      const seen = await t.request('GET', `/api/v1/connections/${global.body.id}`, { token: as('user') })
      expect(seen.body.path).toBeNull()
      expect(seen.text).not.toContain(dir)
      await t.request('DELETE', `/api/v1/connections/${global.body.id}`, { token: as('admin') })
    })
  })

  describe('test: connected or not, never a 5xx', () => {
    let silent: Awaited<ReturnType<typeof silentServer>>
    beforeAll(async () => void (silent = await silentServer()))
    afterAll(() => silent?.close())

    const cases: [string, () => Promise<Record<string, unknown>>, RegExp][] = [
      ['a port nothing listens on (postgres)', async () => ({ driver: 'postgres', host: '127.0.0.1', port: await closedPort(), username: 'u', database: 'd' }), /ECONNREFUSED/],
      ['a port nothing listens on (mysql)', async () => ({ driver: 'mysql', host: '127.0.0.1', port: await closedPort(), username: 'u', database: 'd' }), /ECONNREFUSED/],
      ['a host that never answers (postgres)', async () => ({ driver: 'postgres', host: '127.0.0.1', port: silent.port, username: 'u', database: 'd' }), /did not answer in time/],
      ['a host that never answers (mysql)', async () => ({ driver: 'mysql', host: '127.0.0.1', port: silent.port, username: 'u', database: 'd' }), /did not answer in time/],
      ['a name that does not resolve', async () => ({ driver: 'postgres', host: 'no-such-host.invalid', port: 5432, username: 'u', database: 'd' }), /no-such-host|ENOTFOUND|getaddrinfo|resolve/i],
    ]
    for (const [name, body, message] of cases) {
      test(name, async () => {
        const created = await post('user', '/api/v1/connections', { name: `t_${Math.random().toString(36).slice(2, 8)}`, ...(await body()) })
        expect(created.status).toBe(201)
        const started = performance.now()
        const res = await post('user', `/api/v1/connections/${created.body.id}/test`, {})
        expect(res.status).toBe(200)
        expect(res.body).toMatchObject({ connected: false, version: null, tables_count: null })
        expect(res.body.message).toMatch(message)
        expect(performance.now() - started).toBeLessThan(4000)
        const row = await t.request('GET', `/api/v1/connections/${created.body.id}`, { token: as('user') })
        expect(row.body).toMatchObject({ is_connected: false, last_error: res.body.message })
        expect(row.body.last_tested_at).not.toBeNull()
      }, 10_000)
    }
  })

  describe('private hosts, for users (HEARTH_ALLOW_PRIVATE_UPSTREAMS off)', () => {
    let strict: TestApp
    let user: string
    let admin: string
    const lookups: string[] = []
    beforeAll(async () => {
      // db.public.test resolves to a public address (unreachable from here); db.inside.test to a private one
      const outbound = createOutboundGuard({
        allowPrivate: false,
        resolve: async (host) => {
          lookups.push(host)
          if (host === 'db.public.test') return ['192.0.43.10']
          if (host === 'db.inside.test') return ['10.1.2.3']
          return (await Bun.dns.lookup(host)).map((a) => a.address)
        },
      })
      strict = await createTestApp(dialect, { HEARTH_ALLOW_PRIVATE_UPSTREAMS: 'false', HEARTH_SQL_TIMEOUT_MS: String(SQL_TIMEOUT_MS) }, { outbound, connections: { connectTimeoutMs: 700 } })
      const callers = await setupCallers(strict)
      user = callers.tokens.user!
      admin = callers.tokens.admin!
    })
    afterAll(() => strict?.close())
    const body = (host: string) => ({ name: `p_${Math.random().toString(36).slice(2, 8)}`, driver: 'postgres', host, username: 'u', database: 'd' })

    for (const host of ['127.0.0.1', '::1', '[::1]', 'localhost', '10.0.0.8', '169.254.169.254', 'db.inside.test']) {
      test(`a user may not aim at ${host}`, async () => {
        const res = await strict.request('POST', '/api/v1/connections', { token: user, body: body(host) })
        expectProblem(res, 422, 'VALIDATION_ERROR')
        expect(res.body.errors[0].path).toBe('host')
      })
    }
    test('nor at a name of this machine', async () => {
      const res = await strict.request('POST', '/api/v1/connections', { token: user, body: body(await privateName()) })
      expectProblem(res, 422)
    })
    test('admins may', async () => {
      expect((await strict.request('POST', '/api/v1/connections', { token: admin, body: { ...body('127.0.0.1'), scope: 'personal' } })).status).toBe(201)
    })
    test('a public name is accepted, and connected to at the address that was checked (no second lookup by the driver)', async () => {
      const created = await strict.request('POST', '/api/v1/connections', { token: user, body: body('db.public.test') })
      expect(created.status).toBe(201)
      const res = await strict.request('POST', `/api/v1/connections/${created.body.id}/test`, { token: user })
      expect(res.body.connected).toBe(false)
      // the driver went to 192.0.43.10 (which does not answer here); it never looked the name up itself (that would fail: it does not resolve)
      expect(res.body.message).not.toMatch(/ENOTFOUND|getaddrinfo|db\.public\.test/)
      expect(lookups.filter((h) => h === 'db.public.test').length).toBeGreaterThanOrEqual(1)
    }, 10_000)
    test('the guard gives the checked address; a private one is refused at connect time too', async () => {
      const guard = createOutboundGuard({ allowPrivate: false, resolve: async (h) => (h === 'flip.test' ? ['10.0.0.1'] : ['192.0.43.10']) })
      expect(await guard.addressFor({ role: 'user' }, 'db.public.test')).toBe('192.0.43.10')
      expect(await guard.addressFor({ role: 'admin' }, 'DB.Example.COM.')).toBe('db.example.com')
      await expect(guard.addressFor({ role: 'user' }, 'flip.test')).rejects.toMatchObject({ status: 502 })
      await expect(guard.addressFor({ role: 'user' }, '127.0.0.1')).rejects.toMatchObject({ status: 502 })
    })
  })

  for (const driver of DRIVERS) {
    describe(`a ${driver} database`, () => {
      let target: AnyTarget
      let id: string
      let before: string
      const sqlite = createSqliteProcesses({ max: 2, idleMs: 60_000 })
      let direct: DriverPool
      const query = (sql: string, extra: Record<string, unknown> = {}, who: 'user' | 'other' | 'admin' = 'user') => post(who, `/api/v1/connections/${id}/query`, { sql, ...extra })
      const q = (name: string) => (driver === 'mysql' ? `\`${name}\`` : `"${name}"`)

      beforeAll(async () => {
        target = await makeTarget(driver, dir)
        const res = await post('user', '/api/v1/connections', await connectionBody(t, as('user'), target, `fixture_${driver}`))
        expect(res.status).toBe(201)
        id = res.body.id
        before = await target.fingerprint()
        direct = directPool(target, sqlite)
      })
      afterAll(async () => {
        await direct?.close()
        await sqlite.close()
        await target?.drop()
      })

      test('test: connected, with the version and the tables', async () => {
        const res = await post('user', `/api/v1/connections/${id}/test`, {})
        expect(res.status).toBe(200)
        expect(res.body).toMatchObject({ connected: true, tables_count: 5 })
        expect(res.body.version).toMatch(driver === 'postgres' ? /^PostgreSQL \d+/ : driver === 'mysql' ? /^(MariaDB|MySQL) \d+\.\d+/ : /^SQLite 3\./)
        expect(res.body.latency_ms).toBeGreaterThanOrEqual(0)
        const row = (await t.request('GET', `/api/v1/connections/${id}`, { token: as('user') })).body
        expect(row).toMatchObject({ is_connected: true, last_error: null })
      })

      test('schema: every table and view with its columns, kept until refreshed', async () => {
        const res = await t.request('GET', `/api/v1/connections/${id}/schema`, { token: as('user') })
        expect(res.status).toBe(200)
        const names = res.body.tables.map((x: { name: string }) => x.name).sort()
        expect(names).toEqual(['big', 'cheap', 'items', 'orders', 'Ürünler'].sort())
        const items = res.body.tables.find((x: { name: string }) => x.name === 'items')
        expect(items.schema).toBeUndefined()
        expect(items.columns.map((col: { name: string }) => col.name)).toEqual(['id', 'name', 'price', 'qty', 'created_at', 'data', 'note'])
        expect(items.columns[0]).toMatchObject({ name: 'id', primary: true, nullable: false })
        expect(items.columns[1]).toMatchObject({ name: 'name', nullable: false, primary: false })
        expect(items.columns[6]).toMatchObject({ name: 'note', nullable: true, primary: false })
        expect(items.columns[2].type).toMatch(/numeric|decimal/i)
        const big = res.body.tables.find((x: { name: string }) => x.name === 'big')
        if (driver === 'sqlite') expect(big.row_count).toBe(2500)
        else expect(big.row_count).toBeGreaterThan(1000)
        expect(res.body.tables.find((x: { name: string }) => x.name === 'cheap').row_count).toBeNull()
        const unicode = res.body.tables.find((x: { name: string }) => x.name === 'Ürünler')
        expect(unicode.columns.map((col: { name: string }) => col.name)).toEqual(['名前', 'fiyat'])
        // cached: the same fetched_at until refresh=true
        const again = await t.request('GET', `/api/v1/connections/${id}/schema`, { token: as('user') })
        expect(again.body.fetched_at).toBe(res.body.fetched_at)
        await Bun.sleep(5)
        const fresh = await t.request('GET', `/api/v1/connections/${id}/schema?refresh=true`, { token: as('user') })
        expect(fresh.body.fetched_at > res.body.fetched_at).toBe(true)
        expect(fresh.body.tables).toEqual(res.body.tables)
        // the service's contract (what chat reads)
        const svc = await t.deps.services.connections.schema({ userId: ctx.accounts.user.id, role: 'user' } as never, id)
        expect(svc.fetched_at).toBe(fresh.body.fetched_at)
      })

      test('a query: columns, rows as arrays, JSON-safe values', async () => {
        const res = await query('SELECT id, name, price, qty, created_at, data, note FROM items ORDER BY id')
        expect(res.status).toBe(200)
        expect(res.body.columns.map((col: { name: string }) => col.name)).toEqual(['id', 'name', 'price', 'qty', 'created_at', 'data', 'note'])
        expect(res.body).toMatchObject({ rows_count: 3, truncated: false })
        expect(res.body.duration_ms).toBeGreaterThanOrEqual(0)
        const [apple, banana, cherry] = res.body.rows
        expect(apple.slice(0, 2)).toEqual([1, 'apple'])
        expect(apple[2]).toBe(1.5)
        expect(apple[3]).toBe(10)
        // beyond 2^53: exact, as text
        expect(banana[3]).toBe('9007199254740993')
        expect(apple[5]).toBe(Buffer.from([0, 255]).toString('base64'))
        expect(apple[6]).toBeNull()
        if (driver === 'sqlite') expect(apple[4]).toBe('2024-01-05 10:00:00')
        else expect(apple[4]).toBe('2024-01-05T10:00:00')
        // an exact decimal of 16 digits stays exact, as text (SQLite stores NUMERIC as a double)
        if (driver !== 'sqlite') expect(cherry[2]).toBe('12345678901234.56')
        const types = Object.fromEntries(res.body.columns.map((col: { name: string; type: string }) => [col.name, col.type.toLowerCase()]))
        expect(types.id).toMatch(/int/)
        expect(types.name).toMatch(/text|char/)
      })

      test('repeated column names (a join) keep every value', async () => {
        const res = await query('SELECT items.id, orders.id, orders.amount FROM items JOIN orders ON orders.item_id = items.id ORDER BY orders.id')
        expect(res.status).toBe(200)
        expect(res.body.columns.map((col: { name: string }) => col.name)).toEqual(['id', 'id', 'amount'])
        expect(res.body.rows).toEqual([
          [1, 10, 5],
          [2, 11, 7],
          [1, 12, 1],
        ])
      })

      test('unicode identifiers and text', async () => {
        const res = await query(`SELECT ${q('名前')}, fiyat, '☕ ü' AS ${q('içecek')} FROM ${q('Ürünler')} ORDER BY fiyat`)
        expect(res.status).toBe(200)
        expect(res.body.columns.map((col: { name: string }) => col.name)).toEqual(['名前', 'fiyat', 'içecek'])
        expect(res.body.rows).toEqual([
          ['çay', 5, '☕ ü'],
          ['kahve', 8, '☕ ü'],
        ])
      })

      test('the row cap: at most HEARTH_SQL_MAX_ROWS (1000), fewer with limit; truncated when there were more', async () => {
        const all = await query('SELECT id FROM big ORDER BY id')
        expect(all.body).toMatchObject({ rows_count: 1000, truncated: true })
        expect(all.body.rows[999]).toEqual([1000])
        const ten = await query('SELECT id FROM big ORDER BY id', { limit: 10 })
        expect(ten.body).toMatchObject({ rows_count: 10, truncated: true, rows: Array.from({ length: 10 }, (_, i) => [i + 1]) })
        const exact = await query('SELECT id FROM big WHERE id <= 10 ORDER BY id', { limit: 10 })
        expect(exact.body).toMatchObject({ rows_count: 10, truncated: false })
        // a limit over the cap is the cap
        const over = await query('SELECT id FROM big', { limit: 5000 })
        expect(over.body).toMatchObject({ rows_count: 1000, truncated: true })
        // the session is usable after a cut-off read
        expect((await query('SELECT count(*) AS n FROM big')).body.rows).toEqual([[2500]])
      })

      test('a statement the database refuses is 422 with its message', async () => {
        const res = await query('SELECT no_such_column FROM items')
        expectProblem(res, 422, 'VALIDATION_ERROR')
        expect(res.body.errors[0].path).toBe('sql')
        expect(res.body.errors[0].message).toMatch(/no_such_column/)
        const syntax = await query('SELECT FROM WHERE')
        expectProblem(syntax, 422)
      })

      const refused: string[] = [
        `INSERT INTO items (id, name) VALUES (99, 'x')`,
        `UPDATE items SET name = 'x'`,
        `DELETE FROM items`,
        `DROP TABLE items`,
        `CREATE TABLE evil (a INTEGER)`,
        `ALTER TABLE items ADD COLUMN evil INTEGER`,
        `SELECT 1; DELETE FROM items`,
        `SELECT 1 /* a comment */; DROP TABLE items`,
        `SELECT * FROM items -- a comment\n; DELETE FROM items`,
        `/* hidden */ DELETE FROM items`,
        `SELECT 1;\nUPDATE items SET name = 'x';`,
        ...(driver === 'postgres'
          ? [
              `WITH d AS (DELETE FROM items RETURNING *) SELECT * FROM d`,
              `WITH u AS (UPDATE items SET name = 'x' RETURNING id) SELECT count(*) FROM u`,
              `SELECT * INTO copy_of_items FROM items`,
              `SELECT * FROM items FOR UPDATE`,
              `SELECT pg_sleep(5)`,
              `SELECT pg_terminate_backend(pg_backend_pid())`,
              `SELECT pg_read_file('/etc/passwd')`,
              `SELECT lo_import('/etc/passwd')`,
              `TRUNCATE items`,
              `COPY items TO STDOUT`,
              `SET statement_timeout = 0`,
              `BEGIN`,
              `SELECT set_config('default_transaction_read_only', 'off', false)`,
              `EXPLAIN ANALYZE DELETE FROM items`,
            ]
          : driver === 'mysql'
            ? [
                `SELECT * FROM items FOR UPDATE`,
                `SELECT id INTO @x FROM items LIMIT 1`,
                `SELECT * FROM items INTO OUTFILE '/tmp/hearth-evil.txt'`,
                `SELECT SLEEP(5)`,
                `SELECT BENCHMARK(100000000, MD5('a'))`,
                `TRUNCATE items`,
                `LOCK TABLES items READ`,
                `SET @a = 1`,
                `DO SLEEP(1)`,
                `REPLACE INTO items (id, name) VALUES (1, 'x')`,
                `HANDLER items OPEN`,
                `SELECT GET_LOCK('x', 10)`,
              ]
            : [
                `ATTACH DATABASE '$DIR/attached.sqlite' AS other`,
                `PRAGMA query_only = OFF`,
                `VACUUM INTO '$DIR/copy.sqlite'`,
                `REPLACE INTO items (id, name) VALUES (1, 'x')`,
                `INSERT OR REPLACE INTO items (id, name) VALUES (1, 'x')`,
                `SELECT load_extension('/tmp/evil')`,
                `BEGIN IMMEDIATE`,
                `WITH d AS (SELECT 1) DELETE FROM items`,
              ]),
      ]
      for (const sql of refused) {
        test(`refused: ${JSON.stringify(sql).slice(0, 80)}`, async () => {
          const res = await query(inDir(sql))
          expectProblem(res, 422, 'VALIDATION_ERROR')
          expect(res.body.errors[0].path).toBe('sql')
          expect(await target.fingerprint()).toBe(before)
        }, 10_000)
      }
      test('after every refusal the data is unchanged and nothing was created', async () => {
        expect(await target.fingerprint()).toBe(before)
        expect(existsSync('/tmp/hearth-evil.txt')).toBe(false)
        expect(existsSync(join(dir, 'copy.sqlite'))).toBe(false)
        const schema = await t.request('GET', `/api/v1/connections/${id}/schema?refresh=true`, { token: as('user') })
        expect(schema.body.tables.map((x: { name: string }) => x.name).sort()).toEqual(['big', 'cheap', 'items', 'orders', 'Ürünler'].sort())
      })

      describe('the read-only transaction alone (the driver called directly, nothing vetted)', () => {
        const limits = { maxRows: 100, timeoutMs: 5000 }
        const writes: string[] = [
          `UPDATE items SET name = 'x'`,
          `DELETE FROM items`,
          `INSERT INTO items (id, name) VALUES (99, 'x')`,
          `CREATE TABLE evil (a INTEGER)`,
          `DROP TABLE orders`,
          ...(driver === 'postgres' ? [`WITH d AS (DELETE FROM items RETURNING *) SELECT * FROM d`, `SELECT * INTO copy_of_items FROM items`, `SELECT 1; DELETE FROM items`] : []),
          ...(driver === 'mysql' ? [`SELECT 1; DELETE FROM items`, `TRUNCATE items`, `CREATE DATABASE hearth_evil_db`] : []),
          ...(driver === 'sqlite' ? [`ATTACH DATABASE '$DIR/a2.sqlite' AS other`, `PRAGMA query_only = OFF`, `VACUUM INTO '$DIR/copy2.sqlite'`, `BEGIN`] : []),
        ]
        for (const sql of writes) {
          test(`refused by the database: ${JSON.stringify(sql).slice(0, 70)}`, async () => {
            const error = await direct.run(inDir(sql), limits).then(
              () => undefined,
              (e: unknown) => e,
            )
            expect(error).toBeInstanceOf(StatementFailed)
            expect(await target.fingerprint()).toBe(before)
          })
        }
        test('and data is unchanged, nothing created', async () => {
          expect(await target.fingerprint()).toBe(before)
          expect(existsSync(join(dir, 'copy2.sqlite'))).toBe(false)
          const names = (await direct.schema(5000)).map((x) => x.name)
          expect(names).not.toContain('evil')
          expect(names).not.toContain('copy_of_items')
        })
        test('a session setting changed by a statement does not lift the read-only transaction of the next one', async () => {
          const lift = driver === 'postgres' ? `SELECT set_config('default_transaction_read_only', 'off', false)` : driver === 'mysql' ? `SET SESSION TRANSACTION READ WRITE` : `PRAGMA query_only = OFF`
          await direct.run(lift, limits).catch(() => {})
          await expect(direct.run(`UPDATE items SET name = 'x'`, limits)).rejects.toBeInstanceOf(StatementFailed)
          expect(await target.fingerprint()).toBe(before)
        })
        test('a read runs', async () => {
          const r = await direct.run('SELECT count(*) AS n FROM items', limits)
          expect(r.rows).toEqual([[3]])
        })
      })

      const slow = driver === 'postgres' ? 'SELECT pg_sleep(30)' : driver === 'mysql' ? 'SELECT SLEEP(30)' : 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c'
      test('a slow statement is cancelled on the server at the timeout (the driver directly)', async () => {
        const started = performance.now()
        const pids = driver === 'sqlite' ? (await direct.run('SELECT 1', { maxRows: 1, timeoutMs: 1000 }), sqlite.pids()) : []
        const error = await direct.run(slow, { maxRows: 10, timeoutMs: 800 }).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(error).toBeInstanceOf(StatementFailed)
        expect((error as Error).message).toMatch(/longer than 800 ms/)
        expect(performance.now() - started).toBeLessThan(5000)
        await eventually(async () => (await runningStatements(target)).length === 0, 2000, 'no statement left running')
        if (driver === 'sqlite') await eventually(() => pids.every((pid) => !existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ')), 2000, 'the SQLite process gone')
        // the pool goes on working
        expect((await direct.run('SELECT 1 AS one', { maxRows: 1, timeoutMs: 2000 })).rows).toEqual([[1]])
      }, 15_000)

      const cross = driver === 'sqlite' ? 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c' : 'SELECT count(*) FROM big a, big b, big c'
      test('a slow query through the route: 422 after HEARTH_SQL_TIMEOUT_MS, cancelled on the server', async () => {
        const started = performance.now()
        const res = await query(cross)
        expectProblem(res, 422, 'VALIDATION_ERROR')
        expect(res.body.errors[0].message).toMatch(new RegExp(`longer than ${SQL_TIMEOUT_MS} ms`))
        expect(performance.now() - started).toBeLessThan(SQL_TIMEOUT_MS + 3000)
        await eventually(async () => (await runningStatements(target)).length === 0, 2000, 'no statement left running')
        expect((await query('SELECT count(*) FROM items')).body.rows).toEqual([[3]])
      }, 15_000)

      test("the caller's signal cancels it on the server (chat's stop)", async () => {
        const stop = new AbortController()
        const reason = new Error('stopped by the user')
        setTimeout(() => stop.abort(reason), 300)
        const started = performance.now()
        const principal = { userId: ctx.accounts.user.id, role: 'user' } as never
        await expect(t.deps.services.connections.query(principal, id, cross, { signal: stop.signal })).rejects.toBe(reason)
        expect(performance.now() - started).toBeLessThan(SQL_TIMEOUT_MS)
        await eventually(async () => (await runningStatements(target)).length === 0, 2000, 'no statement left running')
      }, 10_000)

      test('an HTTP client that goes away cancels the query on the server', async () => {
        const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: t.app.fetch, idleTimeout: 30 })
        try {
          const pids = driver === 'sqlite' ? (await query('SELECT 1'), t.deps.services.connections.sqliteProcessIds()) : []
          const gone = new AbortController()
          setTimeout(() => gone.abort(), 300)
          const started = performance.now()
          await fetch(`http://127.0.0.1:${server.port}/api/v1/connections/${id}/query`, {
            method: 'POST',
            headers: { authorization: `Bearer ${as('user')}`, 'content-type': 'application/json' },
            body: JSON.stringify({ sql: cross }),
            signal: gone.signal,
          }).catch(() => undefined)
          await eventually(async () => (await runningStatements(target)).length === 0, SQL_TIMEOUT_MS - 400, 'no statement left running before the timeout')
          if (driver === 'sqlite') await eventually(() => pids.every((pid) => !t.deps.services.connections.sqliteProcessIds().includes(pid)), SQL_TIMEOUT_MS - 400, 'the SQLite process killed before the timeout')
          expect(performance.now() - started).toBeLessThan(SQL_TIMEOUT_MS)
        } finally {
          server.stop(true)
        }
      }, 10_000)

      test('sampleValues: distinct values of a column, through the same guard', async () => {
        const principal = { userId: ctx.accounts.user.id, role: 'user' } as never
        const values = await t.deps.services.connections.sampleValues(principal, id, { name: 'items' }, 'name', 5)
        expect([...values].sort()).toEqual(['apple', 'banana', 'cherry'])
        const unicode = await t.deps.services.connections.sampleValues(principal, id, { name: 'Ürünler' }, '名前', 1)
        expect(unicode).toHaveLength(1)
        await expect(t.deps.services.connections.sampleValues(principal, id, { name: 'items"; DROP TABLE items; --' }, 'name', 5)).rejects.toMatchObject({ status: 422 })
        expect(await target.fingerprint()).toBe(before)
      })

      if (driver === 'mysql') {
        test('credentials: a read-only user connects; a wrong password is connected: false', async () => {
          const my = target as MysqlTarget
          const user = `hearth_ro_${process.pid}`
          await my.admin.query(`DROP USER IF EXISTS '${user}'@'%'`)
          await my.admin.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'right-pw'`)
          await my.admin.query(`GRANT SELECT ON \`${my.database}\`.* TO '${user}'@'%'`)
          try {
            const body = { driver: 'mysql', host: my.host, port: my.port, database: my.database, username: user }
            const wrong = await post('user', '/api/v1/connections', { ...body, name: 'WrongPw', password: 'wrong-pw' })
            const right = await post('user', '/api/v1/connections', { ...body, name: 'RightPw', password: 'right-pw' })
            const failed = await post('user', `/api/v1/connections/${wrong.body.id}/test`, {})
            expect(failed.body).toMatchObject({ connected: false, version: null })
            expect(failed.body.message).toMatch(/Access denied/)
            expect(failed.text).not.toContain('wrong-pw')
            expect((await post('user', `/api/v1/connections/${right.body.id}/test`, {})).body.connected).toBe(true)
            expect((await post('user', `/api/v1/connections/${right.body.id}/query`, { sql: 'SELECT count(*) FROM items' })).body.rows).toEqual([[3]])
            // a query on the wrong one: the database cannot be reached
            const q502 = await post('user', `/api/v1/connections/${wrong.body.id}/query`, { sql: 'SELECT 1' })
            expectProblem(q502, 502, 'UPSTREAM_ERROR')
            expect(q502.text).not.toContain('wrong-pw')
          } finally {
            await my.admin.query(`DROP USER IF EXISTS '${user}'@'%'`)
          }
        }, 15_000)
      }

      if (driver === 'postgres') {
        test('credentials and database: an unknown role or database is connected: false; a query on it 502', async () => {
          const pg = target as PgTarget
          const base = { driver: 'postgres', host: pg.host, port: pg.port }
          const role = await post('user', '/api/v1/connections', { ...base, name: 'NoRole', database: pg.database, username: 'no_such_role_x', password: 'pw' })
          const db = await post('user', '/api/v1/connections', { ...base, name: 'NoDb', database: 'no_such_database_x', username: pg.username })
          const r1 = await post('user', `/api/v1/connections/${role.body.id}/test`, {})
          expect(r1.body.connected).toBe(false)
          expect(r1.body.message).toMatch(/no_such_role_x/)
          const r2 = await post('user', `/api/v1/connections/${db.body.id}/test`, {})
          expect(r2.body.connected).toBe(false)
          expect(r2.body.message).toMatch(/no_such_database_x/)
          expectProblem(await post('user', `/api/v1/connections/${db.body.id}/query`, { sql: 'SELECT 1' }), 502, 'UPSTREAM_ERROR')
          expectProblem(await t.request('GET', `/api/v1/connections/${db.body.id}/schema`, { token: as('user') }), 502, 'UPSTREAM_ERROR')
        })

        test('a table outside public has its schema; Postgres values: timestamptz in UTC, dates, json, NaN', async () => {
          const pg = target as PgTarget
          await pg.admin.unsafe('CREATE SCHEMA sales')
          await pg.admin.unsafe('CREATE TABLE sales.deals (id int PRIMARY KEY, won boolean)')
          try {
            const res = await t.request('GET', `/api/v1/connections/${id}/schema?refresh=true`, { token: as('user') })
            const deals = res.body.tables.find((x: { name: string }) => x.name === 'deals')
            expect(deals).toMatchObject({ name: 'deals', schema: 'sales', columns: [{ name: 'id', type: 'integer', primary: true, nullable: false }, { name: 'won', type: 'boolean', primary: false, nullable: true }] })
            const values = await query(`SELECT '2024-01-05 10:00:00+02'::timestamptz AS t, date '2024-01-05' AS d, '{"a": [1, 2]}'::jsonb AS j, 'NaN'::float8 AS nan, 9007199254740993::numeric AS big, 1.10::numeric AS dec, ARRAY[1, 2] AS arr, '6ecd8c99-4036-403d-bf84-cf8400f67836'::uuid AS u, interval '1 day' AS i, true AS b, NULL::text AS n`)
            expect(values.body.rows).toEqual([['2024-01-05T08:00:00Z', '2024-01-05', { a: [1, 2] }, 'NaN', '9007199254740993', 1.1, [1, 2], '6ecd8c99-4036-403d-bf84-cf8400f67836', '1 day', true, null]])
            expect(values.body.columns.map((col: { type: string }) => col.type)).toEqual(['timestamp with time zone', 'date', 'jsonb', 'double precision', 'numeric', 'numeric', 'integer[]', 'uuid', 'interval', 'boolean', 'text'])
          } finally {
            await pg.admin.unsafe('DROP SCHEMA sales CASCADE')
          }
        })
      }

      describe('bad input: a clear problem, never a 5xx, nothing changed', () => {
        const cases: [string, () => Promise<Awaited<ReturnType<typeof query>>>, number][] = [
          ['1 MB of SQL', () => t.request('POST', `/api/v1/connections/${id}/query`, { token: as('user'), raw: JSON.stringify({ sql: `SELECT 1 -- ${'x'.repeat(1024 * 1024)}` }), headers: { 'content-type': 'application/json' } }), 413],
          ['SQL over 100,000 characters', () => query(`SELECT 1 -- ${'x'.repeat(100_000)}`), 422],
          ['a NUL byte', () => query('SELECT 1\u0000; DROP TABLE items'), 422],
          ['empty SQL', () => query(''), 422],
          ['only a comment', () => query('-- nothing'), 422],
          ['SQL that is not text', () => post('user', `/api/v1/connections/${id}/query`, { sql: 42 }), 422],
          ['limit 0', () => query('SELECT 1', { limit: 0 }), 422],
          ['limit as text', () => query('SELECT 1', { limit: '10' }), 422],
          ['garbage', () => query('💥💥 ))) ((( ;;; \\ \' "'), 422],
          // SQLite ends such a comment at the end of the text: it runs SELECT 1, and nothing is hidden
          ['an unterminated comment hiding a statement', () => query('SELECT 1 /* ; DROP TABLE items'), driver === 'sqlite' ? 200 : 422],
          ['an unterminated string', () => query("SELECT 'abc"), 422],
        ]
        for (const [name, send, status] of cases) {
          test(name, async () => {
            const res = await send()
            if (status === 200) expect(res.status).toBe(200)
            else expectProblem(res, status)
            expect(await target.fingerprint()).toBe(before)
          }, 10_000)
        }
      })
    })
  }

  if (DRIVERS.includes('sqlite')) {
    describe('pools', () => {
      test('closed when the connection is changed or deleted, and a SQLite copy is removed', async () => {
        const svc = t.deps.services.connections
        const file = createSqliteFile(dir, [], 'pools.sqlite')
        const created = await post('user', '/api/v1/connections', await connectionBody(t, as('user'), { driver: 'sqlite', path: file.path, fingerprint: async () => '', drop: async () => {} }, 'Pooled'))
        const id = created.body.id
        expect((await post('user', `/api/v1/connections/${id}/query`, { sql: 'SELECT count(*) FROM items' })).body.rows).toEqual([[3]])
        const open = svc.livePools()
        expect(open).toBeGreaterThanOrEqual(1)
        await t.request('PATCH', `/api/v1/connections/${id}`, { token: as('user'), body: { name: 'Pooled2' } })
        expect(svc.livePools()).toBe(open - 1)
        expect((await post('user', `/api/v1/connections/${id}/query`, { sql: 'SELECT count(*) FROM items' })).body.rows).toEqual([[3]])
        expect(svc.livePools()).toBe(open)
        await t.request('DELETE', `/api/v1/connections/${id}`, { token: as('user') })
        expect(svc.livePools()).toBe(open - 1)
        expect((await post('user', `/api/v1/connections/${id}/query`, { sql: 'SELECT 1' })).status).toBe(404)
      })
    })
  }
})

if (DIALECTS.includes('postgres')) {
  describe('pools on two instances', () => {
    test('a change on one instance closes the pool on the other', async () => {
      const a = await createTestApp('postgres')
      const b = await createSecondInstance(a)
      const dir = mkdtempSync(join(tmpdir(), 'hearth-conn-two-'))
      try {
        const callers = await setupCallers(a)
        const token = callers.tokens.user!
        const file = createSqliteFile(dir)
        const id = (await a.request('POST', '/api/v1/connections', { token, body: { name: 'Two', driver: 'sqlite', file_id: await upload(a, token, readFileSync(file.path)) } })).body.id
        expect((await b.request('POST', `/api/v1/connections/${id}/query`, { token, body: { sql: 'SELECT count(*) FROM items' } })).body.rows).toEqual([[3]])
        expect(b.deps.services.connections.livePools()).toBe(1)
        await a.request('PATCH', `/api/v1/connections/${id}`, { token, body: { name: 'Two again' } })
        await eventually(() => b.deps.services.connections.livePools() === 0, 3000, "instance b's pool closed")
        expect((await b.request('POST', `/api/v1/connections/${id}/query`, { token, body: { sql: 'SELECT 1' } })).body.rows).toEqual([[1]])
        await a.request('DELETE', `/api/v1/connections/${id}`, { token })
        await eventually(() => b.deps.services.connections.livePools() === 0, 3000, "instance b's pool closed after the delete")
      } finally {
        await b.close()
        await a.close()
        rmSync(dir, { recursive: true, force: true })
      }
    }, 20_000)
  })
}

describe('pools close when idle', () => {
  test('after idleMs without use (and the SQLite processes end)', async () => {
    const t = await createTestApp('sqlite', {}, { connections: { idleMs: 300 } })
    const dir = mkdtempSync(join(tmpdir(), 'hearth-conn-idle-'))
    try {
      const callers = await setupCallers(t)
      const token = callers.tokens.user!
      const file = createSqliteFile(dir)
      const id = (await t.request('POST', '/api/v1/connections', { token, body: { name: 'Idle', driver: 'sqlite', file_id: await upload(t, token, readFileSync(file.path)) } })).body.id
      expect((await t.request('POST', `/api/v1/connections/${id}/query`, { token, body: { sql: 'SELECT 1' } })).status).toBe(200)
      const svc = t.deps.services.connections
      expect(svc.livePools()).toBe(1)
      expect(svc.sqliteProcessIds().length).toBe(1)
      await eventually(() => svc.livePools() === 0 && svc.sqliteProcessIds().length === 0, 3000, 'the pool and the process closed')
      expect((await t.request('POST', `/api/v1/connections/${id}/query`, { token, body: { sql: 'SELECT 2' } })).body.rows).toEqual([[2]])
    } finally {
      await t.close()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 10_000)
})

describe('a dataset kept on S3', () => {
  test('is copied from the store and queried', async () => {
    const s3 = await startS3('hearth-conn')
    const t = await createTestApp('sqlite', {}, { storage: createS3Storage(s3.settings) })
    const dir = mkdtempSync(join(tmpdir(), 'hearth-conn-s3-'))
    try {
      const token = (await setupCallers(t)).tokens.user!
      const file = createSqliteFile(dir)
      const id = (await t.request('POST', '/api/v1/connections', { token, body: { name: 'OnS3', driver: 'sqlite', file_id: await upload(t, token, readFileSync(file.path)) } })).body.id
      const res = await t.request('POST', `/api/v1/connections/${id}/query`, { token, body: { sql: 'SELECT name FROM items ORDER BY id' } })
      expect(res.body.rows).toEqual([['apple'], ['banana'], ['cherry']])
    } finally {
      await t.close()
      await s3.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 20_000)
})

describe('the file written for a dataset', () => {
  test('a WAL-mode file uploaded alone opens', async () => {
    const t = await createTestApp('sqlite')
    const dir = mkdtempSync(join(tmpdir(), 'hearth-conn-wal-'))
    try {
      const token = (await setupCallers(t)).tokens.user!
      const { Database } = await import('bun:sqlite')
      const path = join(dir, 'wal.sqlite')
      const db = new Database(path)
      db.run('PRAGMA journal_mode = WAL')
      db.run('CREATE TABLE t (a INTEGER)')
      db.run('INSERT INTO t VALUES (7)')
      db.run('PRAGMA wal_checkpoint(TRUNCATE)')
      const bytes = readFileSync(path)
      db.close()
      expect(bytes[18]).toBe(2)
      writeFileSync(join(dir, 'copy.sqlite'), bytes)
      const id = (await t.request('POST', '/api/v1/connections', { token, body: { name: 'Wal', driver: 'sqlite', file_id: await upload(t, token, bytes) } })).body.id
      const res = await t.request('POST', `/api/v1/connections/${id}/query`, { token, body: { sql: 'SELECT a FROM t' } })
      expect(res.body.rows).toEqual([[7]])
    } finally {
      await t.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
