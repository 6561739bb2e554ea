/**
 * @module Data connections (docs/api.md §19): databases a user asks questions of — Postgres,
 * MySQL/MariaDB, or a SQLite file (an uploaded dataset; a path on the server for admins). Personal
 * ones are their owner's alone (404 to everyone else); global ones are an admin's, usable by all.
 * Passwords are encrypted at rest and never leave the server. Every statement is vetted (vet.ts,
 * layer a), then run by the driver read-only (layer b) under the timeout and the row cap (layer c).
 *
 * Pools: one per connection and instance, opened on first use, closed after `idleMs` without use,
 * when the connection changes or goes (on every instance, over the bus) and at shutdown. A pool is
 * keyed by the connection's `updated_at`, so a stale one is never used even if a message is lost.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { open as openFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import { and, asc, eq, isNull, or, sql, type SQL } from 'drizzle-orm'
import { defineChannel, type Bus } from '../../db/bus.ts'
import { isUniqueViolation } from '../../db/errors.ts'
import type { Database } from '../../db/index.ts'
import { pageOfTable, type Page, type PageRequest } from '../../db/query.ts'
import { AppError, unlessNotFound, validationError } from '../../lib/errors.ts'
import type { Logger } from '../../lib/logger.ts'
import type { OutboundCaller, OutboundGuard } from '../../lib/outbound.ts'
import type { SecretBox } from '../../lib/secrets.ts'
import type { Principal } from '../auth/service.ts'
import type { FilesService } from '../files/service.ts'
import { openMysql } from './drivers/mysql.ts'
import { openPostgres } from './drivers/postgres.ts'
import { createSqliteProcesses, openSqlite } from './drivers/sqlite.ts'
import { StatementFailed, Unreachable, type DriverPool, type DriverTarget, type ServerInfo } from './drivers/types.ts'
import {
  connectionFieldInvalid,
  connectionNameTaken,
  connectionNotFound,
  databaseUnreachable,
  datasetNotFound,
  globalConnectionAdminOnly,
  globalConnectionCreateAdminOnly,
  globalConnectionNameTaken,
  notASqliteFile,
  schemaUnreadable,
  serverPathAdminOnly,
  sqlFailed,
  sqlRefused,
} from './errors.ts'
import type { ConnectionsApi, DbSchema, Driver, QueryResult, SchemaTable } from './types.ts'
import { MAX_SQL_LENGTH, vetSql } from './vet.ts'

export type ConnectionRow = Database['t']['connections']['$inferSelect']

export interface ConnectionInput {
  name: string
  driver: Driver
  scope?: 'global' | 'personal'
  host?: string | null
  port?: number | null
  database?: string | null
  username?: string | null
  /** `null` on a change removes it */
  password?: string | null
  ssl?: boolean
  fileId?: string | null
  path?: string | null
  isDefault?: boolean
}

/** What a change may set; the scope is fixed at creation. */
export type ConnectionChanges = Partial<Omit<ConnectionInput, 'scope'>>

/** POST /test: a failing database is `connected: false` with the reason, never a thrown error. */
export interface TestResult {
  connected: boolean
  version: string | null
  tablesCount: number | null
  message: string
  latencyMs: number
}

/** The longest statement accepted, in characters (the vetting's limit; a JSON body is at most 1 MiB anyway). */
export { MAX_SQL_LENGTH }
export const MAX_IDENTIFIER_LENGTH = 128
const DEFAULT_PORTS: Record<Driver, number | null> = { postgres: 5432, mysql: 3306, sqlite: null }
const NETWORK_FIELDS = ['host', 'port', 'database', 'username', 'password', 'ssl'] as const
/** Fields that change what a connection reaches: changing one resets its status and cached schema. */
const CONNECTION_FIELDS = ['driver', ...NETWORK_FIELDS, 'fileId', 'path'] as const
const SQLITE_MAGIC = 'SQLite format 3\0'

/** A global connection's host is an admin's choice: it is reached with an admin's rights, whoever asks. */
const GLOBAL_SENDER: OutboundCaller = { role: 'admin' }

/** A connection changed or went: every instance closes its pool. */
const connectionsChannel = defineChannel<{ id: string }>('sql_connections')

export interface ConnectionsOptions {
  /** HEARTH_SQL_TIMEOUT_MS */
  timeoutMs: number
  /** HEARTH_SQL_MAX_ROWS */
  maxRows: number
  /** opening a session: TCP, TLS, authentication (default 5 s) */
  connectTimeoutMs?: number
  /** a pool unused this long closes (default 5 minutes) */
  idleMs?: number
  /** sessions per Postgres or MySQL pool (default 4) */
  maxSessions?: number
  /** SQLite processes per instance, shared by every SQLite connection (default 4) */
  maxSqliteProcesses?: number
}

/** `[::1]` → `::1`: a host is kept as the drivers take it. */
const bareHost = (host: string | null | undefined) => (host ? host.replace(/^\[(.*)\]$/, '$1') : host)

export function createConnectionsService(deps: {
  database: Database
  bus: Bus
  secrets: SecretBox
  outbound: OutboundGuard
  files: FilesService
  logger: Logger
  /** the user's preference `default_connection_id` */
  preferredConnectionOf: (userId: string) => Promise<string | null>
  options: ConnectionsOptions
}) {
  const { database, secrets, outbound, files, logger } = deps
  const { db, t } = database
  const c = t.connections
  const options = { connectTimeoutMs: 5_000, idleMs: 5 * 60_000, maxSessions: 4, maxSqliteProcesses: 4, ...deps.options }
  const sqlite = createSqliteProcesses({ max: options.maxSqliteProcesses, idleMs: options.idleMs })

  const visible = (p: Principal): SQL => or(isNull(c.userId), eq(c.userId, p.userId))!

  const byId = db
    .select()
    .from(c)
    .where(and(eq(c.id, sql.placeholder('id')), or(isNull(c.userId), eq(c.userId, sql.placeholder('user')))))
    .prepare('connection_for_use')

  async function getVisible(p: Principal, id: string): Promise<ConnectionRow> {
    const [row] = await byId.execute({ id, user: p.userId })
    if (!row) throw connectionNotFound()
    return row
  }

  /** visible and changeable by p: personal ones by their owner, global ones by admins */
  async function getWritable(p: Principal, id: string): Promise<ConnectionRow> {
    const row = await getVisible(p, id)
    if (row.userId === null && p.role !== 'admin') throw globalConnectionAdminOnly()
    return row
  }

  /** A personal name may not be a global connection's: a connection named in chat or in `sql_query` must be one. */
  async function assertNotGlobalName(name: string, exceptId?: string) {
    const [hit] = await db.select({ id: c.id }).from(c).where(and(isNull(c.userId), sql`lower(${c.name}) = ${name.toLowerCase()}`))
    if (hit && hit.id !== exceptId) throw globalConnectionNameTaken(name)
  }

  /** Only one default per owner, or among global connections. */
  async function clearOtherDefaults(row: Pick<ConnectionRow, 'id' | 'userId'>) {
    await db
      .update(c)
      .set({ isDefault: false })
      .where(and(row.userId === null ? isNull(c.userId) : eq(c.userId, row.userId), eq(c.isDefault, true), sql`${c.id} <> ${row.id}`))
  }

  /** The first bytes of a file: a SQLite database starts with its magic string. */
  async function startsLikeSqlite(read: () => Promise<Uint8Array>): Promise<boolean> {
    try {
      return Buffer.from(await read()).subarray(0, 16).toString('latin1') === SQLITE_MAGIC
    } catch {
      return false
    }
  }

  /** The fields a driver needs, after a change or at creation; the checks that need the caller (paths, files, hosts) too. */
  async function checkShape(p: Principal, sender: OutboundCaller, v: Required<Omit<ConnectionChanges, 'name' | 'isDefault'>>, sent: ConnectionChanges) {
    if (v.driver === 'sqlite') {
      for (const f of NETWORK_FIELDS) if (v[f] !== null && v[f] !== false) throw connectionFieldInvalid(f, 'a sqlite connection reads a file: it has no ' + f)
      if ((v.fileId === null) === (v.path === null)) throw connectionFieldInvalid(v.fileId === null ? 'file_id' : 'path', 'a sqlite connection needs either file_id (an uploaded dataset) or path (admins), not both')
      if (v.path !== null && sent.path !== undefined) {
        if (p.role !== 'admin') throw serverPathAdminOnly()
        if (!isAbsolute(v.path)) throw connectionFieldInvalid('path', 'must be an absolute path on the server')
        const ok = await startsLikeSqlite(async () => {
          const handle = await openFile(v.path!, 'r')
          try {
            const buffer = new Uint8Array(16)
            await handle.read(buffer, 0, 16, 0)
            return buffer
          } finally {
            await handle.close()
          }
        })
        if (!ok) throw notASqliteFile('path')
      }
      if (v.fileId !== null && sent.fileId !== undefined) {
        const file = await files.get(p.userId, v.fileId).catch(unlessNotFound)
        if (!file || file.purpose !== 'dataset') throw datasetNotFound()
        if (!(await startsLikeSqlite(async () => new Uint8Array(await new Response(files.content(file, { start: 0, end: Math.min(15, Math.max(0, file.fileSize - 1)) })).arrayBuffer())))) throw notASqliteFile('file_id')
      }
      return
    }
    if (v.fileId !== null) throw connectionFieldInvalid('file_id', `a ${v.driver} connection has no file_id`)
    if (v.path !== null) throw connectionFieldInvalid('path', `a ${v.driver} connection has no path`)
    if (!v.host) throw connectionFieldInvalid('host', `a ${v.driver} connection needs a host`)
    if (!v.username) throw connectionFieldInvalid('username', `a ${v.driver} connection needs a username`)
    if (v.driver === 'mysql' && !v.database) throw connectionFieldInvalid('database', 'a mysql connection needs a database (the schema questions are asked of)')
    if (sent.host !== undefined) await outbound.checkHost(sender, v.host, 'host')
  }

  async function create(p: Principal, input: ConnectionInput): Promise<ConnectionRow> {
    const global = (input.scope ?? (p.role === 'admin' ? 'global' : 'personal')) === 'global'
    if (global && p.role !== 'admin') throw globalConnectionCreateAdminOnly()
    const shape = {
      driver: input.driver,
      host: bareHost(input.host) ?? null,
      port: input.port ?? null,
      database: input.database ?? null,
      username: input.username ?? null,
      password: input.password ?? null,
      ssl: input.ssl ?? false,
      fileId: input.fileId ?? null,
      path: input.path ?? null,
    }
    await checkShape(p, global ? GLOBAL_SENDER : p, shape, input)
    if (!global) await assertNotGlobalName(input.name)
    try {
      const [row] = await db
        .insert(c)
        .values({
          userId: global ? null : p.userId,
          name: input.name,
          ...shape,
          port: shape.port ?? DEFAULT_PORTS[shape.driver],
          password: shape.password ? await secrets.encrypt(shape.password) : null,
          isDefault: input.isDefault ?? false,
        })
        .returning()
      if (row!.isDefault) await clearOtherDefaults(row!)
      return row!
    } catch (error) {
      throw isUniqueViolation(error) ? connectionNameTaken(input.name) : error
    }
  }

  async function update(p: Principal, id: string, changes: ConnectionChanges): Promise<ConnectionRow> {
    const row = await getWritable(p, id)
    const driver = changes.driver ?? row.driver
    // moving to or from sqlite drops what the old kind needed, unless it is sent again
    const switched = driver !== row.driver && (driver === 'sqlite' || row.driver === 'sqlite')
    const pick = <K extends keyof ConnectionChanges>(k: K, cleared: ConnectionChanges[K], current: ConnectionChanges[K]) => (changes[k] !== undefined ? changes[k] : switched ? cleared : current)
    const shape = {
      driver,
      host: bareHost(pick('host', null, row.host)) ?? null,
      port: pick('port', null, row.port) ?? null,
      database: pick('database', null, row.database) ?? null,
      username: pick('username', null, row.username) ?? null,
      // the stored password is not decrypted for the check: only whether there is one matters
      password: pick('password', null, row.password) ?? null,
      ssl: pick('ssl', false, row.ssl) ?? false,
      fileId: pick('fileId', null, row.fileId) ?? null,
      path: pick('path', null, row.path) ?? null,
    }
    await checkShape(p, row.userId === null ? GLOBAL_SENDER : p, shape, changes)
    if (changes.name !== undefined && row.userId !== null) await assertNotGlobalName(changes.name, row.id)

    const values: Partial<ConnectionRow> = { updatedAt: new Date(), ...shape, port: shape.port ?? DEFAULT_PORTS[driver] }
    values.password = changes.password !== undefined ? (changes.password ? await secrets.encrypt(changes.password) : null) : switched ? null : row.password
    if (changes.name !== undefined) values.name = changes.name
    if (changes.isDefault !== undefined) values.isDefault = changes.isDefault
    if (switched || CONNECTION_FIELDS.some((f) => changes[f] !== undefined)) Object.assign(values, { isConnected: false, lastError: null, lastTestedAt: null, schemaCache: null, schemaFetchedAt: null })
    try {
      const [updated] = await db.update(c).set(values).where(eq(c.id, id)).returning()
      if (changes.isDefault) await clearOtherDefaults(updated!)
      await changed(id)
      return updated!
    } catch (error) {
      throw isUniqueViolation(error) ? connectionNameTaken(changes.name ?? row.name) : error
    }
  }

  // ---- pools ----

  interface Live {
    version: string
    pool: Promise<DriverPool>
    active: number
    idleTimer?: ReturnType<typeof setTimeout>
  }
  const live = new Map<string, Live>()
  let scratchDir: string | undefined
  let closing = false

  function drop(id: string) {
    const entry = live.get(id)
    if (!entry) return
    live.delete(id)
    clearTimeout(entry.idleTimer)
    void entry.pool.then((pool) => pool.close()).catch(() => {})
  }

  const unsubscribe = deps.bus.subscribe(connectionsChannel, ({ id }) => drop(id), { onResync: () => [...live.keys()].forEach(drop) })
  const changed = (id: string) => deps.bus.publish(connectionsChannel, { id })

  /** Who the database is reached as: an admin for a global connection, else its owner (the only one who can use it). */
  const senderOf = (row: ConnectionRow, p: Principal): OutboundCaller => (row.userId === null ? GLOBAL_SENDER : p)

  /** A private copy of an uploaded dataset, opened read-only by the SQLite processes; gone when the pool closes. */
  async function datasetCopy(row: ConnectionRow): Promise<string> {
    if (!row.fileId) throw new Unreachable('the dataset file of this connection was deleted')
    const [file] = await db.select().from(t.files).where(eq(t.files.id, row.fileId))
    if (!file) throw new Unreachable('the dataset file of this connection was deleted')
    scratchDir ??= mkdtempSync(join(tmpdir(), 'hearth-sql-'))
    const path = join(scratchDir, `${row.id}-${crypto.randomUUID()}.sqlite`)
    const bytes = new Uint8Array(await new Response(files.content(file)).arrayBuffer())
    // a file saved in WAL mode, without its -wal and -shm, opens read-only as a rollback-journal database
    if (bytes[18] === 2 && bytes[19] === 2) bytes[18] = bytes[19] = 1
    await writeFile(path, bytes, { mode: 0o600 })
    return path
  }

  async function openPool(row: ConnectionRow, sender: OutboundCaller, connectTimeoutMs = options.connectTimeoutMs, maxSessions = options.maxSessions): Promise<DriverPool> {
    if (row.driver === 'sqlite') {
      // a personal connection to a server file stays, but does not open, once its owner is no longer an admin
      if (row.path && sender.role !== 'admin') throw new Unreachable('only admins may read a file on the server by its path')
      if (row.path) return openSqlite(row.path, sqlite)
      const copy = await datasetCopy(row)
      return openSqlite(copy, sqlite, () => rm(copy, { force: true }))
    }
    const target: DriverTarget = {
      driver: row.driver,
      host: row.host,
      address: await outbound.addressFor(sender, row.host ?? ''),
      port: row.port,
      database: row.database,
      username: row.username,
      password: row.password ? await secrets.decrypt(row.password) : null,
      ssl: row.ssl,
      file: null,
    }
    const driverOptions = { connectTimeoutMs, maxSessions, statementTimeoutMs: options.timeoutMs }
    return row.driver === 'postgres' ? openPostgres(target, driverOptions) : openMysql(target, driverOptions)
  }

  /** `work` with the connection's pool, opened on first use; the pool closes after `idleMs` without work. */
  async function withPool<T>(row: ConnectionRow, p: Principal, work: (pool: DriverPool) => Promise<T>): Promise<T> {
    if (closing) throw new Unreachable('the server is stopping')
    const sender = senderOf(row, p)
    const version = `${row.updatedAt.getTime()}\0${sender.role}\0${outbound.mayReachPrivate(sender)}`
    let entry = live.get(row.id)
    if (entry && entry.version !== version) {
      drop(row.id)
      entry = undefined
    }
    if (!entry) {
      const created: Live = { version, pool: openPool(row, sender), active: 0 }
      // a pool that could not open is not kept: the next use tries again
      created.pool.catch(() => live.get(row.id) === created && live.delete(row.id))
      live.set(row.id, (entry = created))
    }
    const used = entry
    used.active++
    clearTimeout(used.idleTimer)
    try {
      return await work(await used.pool)
    } finally {
      used.active--
      if (used.active === 0 && live.get(row.id) === used) {
        used.idleTimer = setTimeout(() => used.active === 0 && live.get(row.id) === used && drop(row.id), options.idleMs)
        used.idleTimer.unref?.()
      }
    }
  }

  /** The driver's failure as the contract names it (types.ts). */
  function failure(row: ConnectionRow, error: unknown): unknown {
    if (error instanceof StatementFailed) return sqlFailed(error.message)
    if (error instanceof Unreachable) return databaseUnreachable(row.name, error.message)
    return error
  }

  const elapsedMs = (started: number) => Math.round(performance.now() - started)

  /** The statement checks every caller gets: not empty, not too long, no NUL, then the vetting. */
  function vetted(sqlText: string, driver: Driver): string {
    if (typeof sqlText !== 'string' || !sqlText.trim()) throw sqlRefused('The query is empty')
    if (sqlText.length > MAX_SQL_LENGTH) throw sqlRefused(`A query is at most ${MAX_SQL_LENGTH} characters`)
    if (sqlText.includes('\0')) throw sqlRefused('A query must not contain the NUL character (U+0000)')
    const verdict = vetSql(sqlText, driver)
    if (!verdict.ok) throw sqlRefused(verdict.reason)
    return sqlText
  }

  async function query(p: Principal, id: string, sqlText: string, opts: { limit?: number; signal?: AbortSignal } = {}): Promise<QueryResult> {
    const row = await getVisible(p, id)
    const text = vetted(sqlText, row.driver)
    const maxRows = Math.max(1, Math.min(Math.floor(opts.limit ?? options.maxRows), options.maxRows))
    try {
      return await withPool(row, p, (pool) => pool.run(text, { maxRows, timeoutMs: options.timeoutMs, signal: opts.signal }))
    } catch (error) {
      if (opts.signal?.aborted && error === opts.signal.reason) throw error
      throw failure(row, error)
    }
  }

  async function schema(p: Principal, id: string, opts: { refresh?: boolean } = {}): Promise<DbSchema> {
    const row = await getVisible(p, id)
    if (!opts.refresh && row.schemaCache && row.schemaFetchedAt) return { tables: (row.schemaCache as { tables: SchemaTable[] }).tables, fetched_at: row.schemaFetchedAt.toISOString() }
    let tables: SchemaTable[]
    try {
      tables = await withPool(row, p, (pool) => pool.schema(options.timeoutMs))
    } catch (error) {
      if (error instanceof StatementFailed || error instanceof Unreachable) throw schemaUnreadable(row.name, error.message)
      throw error
    }
    const fetchedAt = new Date()
    // kept only while the connection is as it was read (a change meanwhile clears the cache)
    await db
      .update(c)
      .set({ schemaCache: { tables }, schemaFetchedAt: fetchedAt })
      .where(and(eq(c.id, row.id), eq(c.updatedAt, row.updatedAt)))
    return { tables, fetched_at: fetchedAt.toISOString() }
  }

  const quoteIdentifier = (driver: Driver, name: string) => (driver === 'mysql' ? '`' + name.replaceAll('`', '``') + '`' : '"' + name.replaceAll('"', '""') + '"')

  function identifier(name: string, path: string): string {
    if (typeof name !== 'string' || !name || name.length > MAX_IDENTIFIER_LENGTH || name.includes('\0')) throw validationError(`Not a table or column name: ${path}`, [{ path, message: `must be 1 to ${MAX_IDENTIFIER_LENGTH} characters, without NUL` }])
    return name
  }

  const toRef = (row: ConnectionRow) => ({ id: row.id, name: row.name, driver: row.driver })

  async function test(p: Principal, id: string): Promise<TestResult> {
    const row = await getVisible(p, id)
    const started = performance.now()
    let info: ServerInfo | undefined
    let message: string
    try {
      // a pool of its own, opened now: a test proves that a new session can be had, not that an old one lives on
      if (row.driver === 'sqlite') info = await withPool(row, p, (pool) => pool.probe(options.timeoutMs))
      else {
        const pool = await openPool(row, senderOf(row, p), options.connectTimeoutMs, 1)
        try {
          info = await pool.probe(options.timeoutMs)
        } finally {
          await pool.close()
        }
      }
      message = `Connected to ${info.version}: ${info.tablesCount} ${info.tablesCount === 1 ? 'table or view' : 'tables and views'}`
    } catch (error) {
      if (!(error instanceof StatementFailed || error instanceof Unreachable || (error instanceof AppError && error.status === 502))) throw error
      message = error.message
    }
    const connected = info !== undefined
    await db
      .update(c)
      .set({ isConnected: connected, lastTestedAt: new Date(), lastError: connected ? null : message })
      .where(eq(c.id, row.id))
    return { connected, version: info?.version ?? null, tablesCount: info?.tablesCount ?? null, message, latencyMs: elapsedMs(started) }
  }

  const api = {
    /** the connections p can see, by name: the global ones and their own */
    list(p: Principal, query: PageRequest & { scope?: 'global' | 'personal'; driver?: Driver }): Promise<Page<ConnectionRow>> {
      const where = and(visible(p), query.scope === 'global' ? isNull(c.userId) : query.scope === 'personal' ? eq(c.userId, p.userId) : undefined, query.driver ? eq(c.driver, query.driver) : undefined)
      return pageOfTable(db, c, where, [sql`lower(${c.name})`, asc(c.id)], query)
    },

    get: getVisible,
    create,
    update,

    async remove(p: Principal, id: string) {
      await getWritable(p, id)
      await db.delete(c).where(eq(c.id, id))
      await changed(id)
    },

    test,

    async usable(p: Principal, id: string) {
      return toRef(await getVisible(p, id))
    },

    /** A connection p may use, by its name (case-insensitive; their own before a global one), for tools that name one. */
    async usableByName(p: Principal, name: string) {
      const [row] = await db
        .select()
        .from(c)
        .where(and(visible(p), sql`lower(${c.name}) = ${name.toLowerCase()}`))
        .orderBy(sql`CASE WHEN ${c.userId} IS NULL THEN 1 ELSE 0 END`)
        .limit(1)
      if (!row) throw connectionNotFound()
      return toRef(row)
    },

    /** Their own default, else their preference `default_connection_id` (when they may still use it), else the global default. */
    async defaultFor(p: Principal) {
      const [own] = await db.select().from(c).where(and(eq(c.userId, p.userId), eq(c.isDefault, true))).limit(1)
      if (own) return toRef(own)
      const preferred = await deps.preferredConnectionOf(p.userId)
      if (preferred) {
        const [row] = await byId.execute({ id: preferred, user: p.userId })
        if (row) return toRef(row)
      }
      const [global] = await db.select().from(c).where(and(isNull(c.userId), eq(c.isDefault, true))).limit(1)
      return global ? toRef(global) : null
    },

    schema,

    async sampleValues(p: Principal, id: string, table: { name: string; schema?: string }, column: string, limit: number): Promise<unknown[]> {
      const row = await getVisible(p, id)
      const q = (n: string) => quoteIdentifier(row.driver, n)
      const col = q(identifier(column, 'column'))
      const from = (table.schema && row.driver === 'postgres' ? `${q(identifier(table.schema, 'table.schema'))}.` : '') + q(identifier(table.name, 'table.name'))
      const n = Math.max(1, Math.min(Math.floor(limit), options.maxRows))
      // the first 10,000 values are enough to tell a small enum, and bound the scan
      const result = await query(p, id, `SELECT DISTINCT ${col} FROM (SELECT ${col} FROM ${from} WHERE ${col} IS NOT NULL LIMIT 10000) AS sampled LIMIT ${n}`, { limit: n })
      return result.rows.map((r) => r[0])
    },

    query,

    /** pools open now (tests, the bench) */
    livePools: () => live.size,
    sqliteProcessIds: () => sqlite.pids(),

    /** Close every pool (running statements are cancelled) and the SQLite processes. */
    async close() {
      closing = true
      unsubscribe()
      const pools = [...live.values()]
      live.clear()
      for (const e of pools) clearTimeout(e.idleTimer)
      await Promise.allSettled(pools.map((e) => e.pool.then((pool) => pool.close())))
      await sqlite.close()
      if (scratchDir) rmSync(scratchDir, { recursive: true, force: true })
      logger.debug('sql connections closed', { pools: pools.length })
    },
  }
  return api satisfies ConnectionsApi
}

export type ConnectionsService = ReturnType<typeof createConnectionsService>
