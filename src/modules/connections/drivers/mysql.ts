/**
 * @module MySQL and MariaDB through mysql2: one pool (`max` sessions) per connection. A session is
 * made read-only when it opens and after every statement (`tx_read_only` / `transaction_read_only`,
 * which also holds in the transaction a DDL statement's implicit commit starts), in UTC, with the
 * server's own statement timeout
 * (`max_statement_time`, seconds, on MariaDB; `max_execution_time`, ms, on MySQL — the server is
 * told apart by its version). Each statement runs in `START TRANSACTION READ ONLY`, one statement
 * per call (multipleStatements is off), streamed row by row to the row cap, then rolled back.
 * At the timeout, an abort or the row cap, `KILL QUERY <thread>` is sent from a session of its own
 * and the session that ran it is discarded, so a late kill cannot hit the next statement. When the
 * host was checked by the outbound guard, the socket goes to the checked address while TLS still
 * checks the certificate against the host name.
 */
import { connect as tcpConnect } from 'node:net'
import mysql, { Types, type Connection as CoreConnection, type FieldPacket } from 'mysql2'
import mysqlPromise, { type Pool, type PoolConnection, type PoolOptions } from 'mysql2/promise'
import type { QueryResult, SchemaTable } from '../types.ts'
import { sessionWithin, StatementFailed, timedOut, Unreachable, watchStatement, type DriverOptions, type DriverPool, type DriverTarget, type RunLimits, type ServerInfo } from './types.ts'
import { exactDecimal, jsonSafe } from './values.ts'

type Flavour = 'mariadb' | 'mysql'

/** Client-side codes (and server codes) that mean no session could be had. */
const UNREACHABLE_CODES = new Set([1040, 1044, 1045, 1049, 1129, 1130, 1203, 1226, 1251, 2002, 2003, 2005, 2006, 2013, 2026])
const INTERRUPTED = new Set([1317, 1969, 3024])

const typeNameOf = Object.fromEntries(Object.entries(Types as unknown as Record<string, number>).map(([name, code]) => [code, name.toLowerCase()])) as Record<number, string>
const BINARY_CHARSET = 63

/** A column's type as MySQL names it, from the result's field description. */
function columnType(f: FieldPacket): string {
  const code = f.columnType ?? f.type ?? -1
  const binary = f.characterSet === BINARY_CHARSET
  switch (code) {
    case Types.DECIMAL:
    case Types.NEWDECIMAL:
      return 'decimal'
    case Types.TINY:
      return 'tinyint'
    case Types.SHORT:
      return 'smallint'
    case Types.LONG:
      return 'int'
    case Types.INT24:
      return 'mediumint'
    case Types.LONGLONG:
      return 'bigint'
    case Types.VAR_STRING:
    case Types.VARCHAR:
      return binary ? 'varbinary' : 'varchar'
    case Types.STRING:
      return binary ? 'binary' : 'char'
    case Types.TINY_BLOB:
    case Types.MEDIUM_BLOB:
    case Types.LONG_BLOB:
    case Types.BLOB:
      return binary ? 'blob' : 'text'
    case Types.NEWDATE:
      return 'date'
    default:
      return typeNameOf[code] ?? String(code)
  }
}

/** A value as JSON holds it, by its column's type (dates arrive as text: dateStrings). */
function converter(f: FieldPacket): (v: unknown) => unknown {
  const code = f.columnType ?? f.type
  if (code === Types.DECIMAL || code === Types.NEWDECIMAL) return (v) => (typeof v === 'string' ? exactDecimal(v) : jsonSafe(v))
  // the session is in UTC: a TIMESTAMP is a moment; a DATETIME is a wall-clock time with no zone
  if (code === Types.TIMESTAMP) return (v) => (typeof v === 'string' && !v.startsWith('0000') ? v.replace(' ', 'T') + 'Z' : v)
  if (code === Types.DATETIME) return (v) => (typeof v === 'string' ? v.replace(' ', 'T') : v)
  if (code === Types.BIT) return (v) => (Buffer.isBuffer(v) && v.length <= 6 ? (v.length ? v.readUIntBE(0, v.length) : 0) : jsonSafe(v))
  return jsonSafe
}

function classify(error: unknown): Error {
  if (error instanceof StatementFailed || error instanceof Unreachable) return error
  const e = error as { errno?: number; code?: string; fatal?: boolean; message?: string }
  const message = e?.message || String(error)
  if (e?.code === 'ETIMEDOUT') return new Unreachable('the database did not answer in time (connect timeout)')
  if (e?.fatal || (typeof e?.errno === 'number' && (UNREACHABLE_CODES.has(e.errno) || e.errno < 0)) || /^(ECONN|EHOST|ENET|ENOTFOUND|EAI_|EPIPE|PROTOCOL_|HANDSHAKE_)/.test(e?.code ?? '')) return new Unreachable(message)
  return new StatementFailed(message)
}

export function openMysql(target: DriverTarget, options: DriverOptions & { statementTimeoutMs: number }): DriverPool {
  const host = target.host ?? ''
  const port = target.port ?? 3306
  const address = target.address ?? host
  const config: PoolOptions = {
    // the name, for TLS; the socket itself goes to the checked address
    host,
    port,
    ...(address !== host ? { stream: () => tcpConnect({ host: address, port, noDelay: true }) } : {}),
    user: target.username ?? '',
    password: target.password ?? '',
    database: target.database ?? undefined,
    ssl: target.ssl ? { rejectUnauthorized: true, verifyIdentity: true } : undefined,
    connectTimeout: options.connectTimeoutMs,
    connectionLimit: options.maxSessions,
    maxIdle: options.maxSessions,
    idleTimeout: 60_000,
    queueLimit: 0,
    multipleStatements: false,
    supportBigNumbers: true,
    bigNumberStrings: false,
    dateStrings: true,
    rowsAsArray: true,
    charset: 'utf8mb4',
    enableKeepAlive: true,
  }
  const pool: Pool = mysqlPromise.createPool(config)
  // attach a listener: mysql2 would otherwise throw on an idle connection's error
  pool.on('connection', (c) => {
    const core = (c as unknown as { connection?: CoreConnection }).connection ?? (c as unknown as CoreConnection)
    core.on('error', () => {})
  })
  const prepared = new WeakSet<object>()
  let flavour: Flavour | undefined
  let serverVersion = ''
  const running = new Set<() => void>()
  let closed = false

  /** `KILL QUERY` for a session, from a session of its own (the statement's own session is busy). */
  async function killQuery(threadId: number) {
    const killer = mysql.createConnection({ ...config, connectionLimit: undefined, maxIdle: undefined, idleTimeout: undefined, queueLimit: undefined } as mysql.ConnectionOptions)
    killer.on('error', () => {})
    await new Promise<void>((resolve) => {
      const done = () => {
        killer.destroy()
        resolve()
      }
      const timer = setTimeout(done, options.connectTimeoutMs)
      killer.query(`KILL QUERY ${Number(threadId)}`, () => {
        clearTimeout(timer)
        done()
      })
    })
  }

  /**
   * Read-only for every transaction (which also covers the one a DDL statement's implicit commit
   * starts), UTC, and the server's own statement timeout — set when a session opens and again after
   * each statement, so one that changed them (were it let through) cannot leave them changed.
   */
  const sessionSettings = () =>
    flavour === 'mariadb'
      ? `SET SESSION tx_read_only = 1, SESSION time_zone = '+00:00', SESSION max_statement_time = ${Math.max(0.001, options.statementTimeoutMs / 1000)}`
      : `SET SESSION transaction_read_only = 1, SESSION time_zone = '+00:00', SESSION max_execution_time = ${Math.ceil(options.statementTimeoutMs)}`

  /** A session of the pool, made read-only, in UTC and with the server's statement timeout the first time it is used. */
  async function session(signal?: AbortSignal): Promise<PoolConnection> {
    if (closed) throw new Unreachable('the connection was closed')
    let conn: PoolConnection
    try {
      // a busy pool frees a session within one statement's time; a new one connects within the connect timeout
      conn = await sessionWithin(pool.getConnection(), options.connectTimeoutMs + options.statementTimeoutMs, signal, (late) => late.release())
    } catch (error) {
      if (signal?.aborted && error === signal.reason) throw error
      throw classify(error)
    }
    const core = (conn as unknown as { connection: CoreConnection }).connection
    if (prepared.has(core)) return conn
    try {
      if (!flavour) {
        const [rows] = await conn.query<mysqlPromise.RowDataPacket[]>({ sql: 'SELECT VERSION()', rowsAsArray: true })
        serverVersion = String((rows as unknown as unknown[][])[0]?.[0] ?? '')
        flavour = /mariadb/i.test(serverVersion) ? 'mariadb' : 'mysql'
      }
      await conn.query(sessionSettings())
      prepared.add(core)
      return conn
    } catch (error) {
      conn.destroy()
      throw classify(error)
    }
  }

  /**
   * `work` on a session in `START TRANSACTION READ ONLY`, rolled back after. `kill()` (given to
   * work) cancels what runs on the server; a session that was killed is discarded.
   */
  async function readOnly<T>(work: (core: CoreConnection, kill: () => void) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const conn = await session(signal)
    const core = (conn as unknown as { connection: CoreConnection }).connection
    let killing: Promise<void> | undefined
    const kill = () => void (killing ??= killQuery(core.threadId!))
    running.add(kill)
    let discard = false
    try {
      await conn.query('START TRANSACTION READ ONLY')
      return await work(core, kill)
    } catch (error) {
      if (signal?.aborted && error === signal.reason) throw error
      const failure = classify(error)
      if (failure instanceof Unreachable) discard = true
      throw failure
    } finally {
      running.delete(kill)
      if (killing) {
        await killing
        discard = true
      }
      if (!discard) await conn.query('ROLLBACK').catch(() => (discard = true))
      if (discard) conn.destroy()
      else {
        // queued on the session before whatever its next user sends (a session runs commands in order)
        conn.query(sessionSettings()).catch(() => conn.destroy())
        conn.release()
      }
    }
  }

  /** Stream one statement's first result to the cap. */
  function stream(core: CoreConnection, text: string, { maxRows, timeoutMs, signal }: RunLimits, kill: () => void): Promise<{ fields: FieldPacket[]; rows: unknown[][]; truncated: boolean }> {
    return new Promise((resolve, reject) => {
      const rows: unknown[][] = []
      let fields: FieldPacket[] = []
      let truncated = false
      const watch = watchStatement(timeoutMs, signal, kill)
      const query = core.query({ sql: text, rowsAsArray: true })
      query.on('fields', (f: FieldPacket[], index?: number) => {
        if (!index) fields = f
      })
      query.on('result', (row: unknown, index?: number) => {
        if (index || !Array.isArray(row)) return
        if (rows.length < maxRows) rows.push(row)
        else if (!truncated) {
          truncated = true
          kill()
        }
      })
      query.on('error', (error: Error & { errno?: number }) => {
        watch.done()
        if (truncated && !watch.cancelled && INTERRUPTED.has(error.errno ?? 0)) return resolve({ fields, rows, truncated })
        if (INTERRUPTED.has(error.errno ?? 0) && !watch.cancelled) return reject(timedOut(timeoutMs))
        reject(watch.failure(error))
      })
      query.on('end', () => {
        watch.done()
        if (watch.cancelled) return reject(watch.failure())
        resolve({ fields, rows, truncated })
      })
    })
  }

  /** A catalogue query under a timeout (the session's own, and a kill at `timeoutMs`). */
  function catalogue<R>(core: CoreConnection, text: string, timeoutMs: number, kill: () => void): Promise<R[]> {
    return stream(core, text, { maxRows: Number.MAX_SAFE_INTEGER, timeoutMs }, kill).then(({ rows }) => rows as R[])
  }

  return {
    async run(text: string, limits: RunLimits): Promise<QueryResult> {
      limits.signal?.throwIfAborted()
      const started = performance.now()
      return readOnly(async (core, kill) => {
        const { fields, rows, truncated } = await stream(core, text, limits, kill)
        const convert = fields.map(converter)
        return {
          columns: fields.map((f) => ({ name: f.name, type: columnType(f) })),
          rows: rows.map((r) => r.map((v, i) => (convert[i] ?? jsonSafe)(v))),
          rows_count: rows.length,
          truncated,
          duration_ms: Math.round((performance.now() - started) * 100) / 100,
        }
      }, limits.signal)
    },

    schema: (timeoutMs) =>
      readOnly(async (core, kill) => {
        // two queries: MariaDB plans the join of TABLES and COLUMNS badly (10× slower than both)
        const kinds = new Map<string, { estimate: number | null; view: boolean }>()
        for (const [table, estimate, kind] of await catalogue<[string, number | null, string]>(core, TABLES_SQL, timeoutMs, kill)) kinds.set(table, { estimate, view: kind === 'VIEW' })
        const rows = await catalogue<[string, string, string, string, string]>(core, COLUMNS_SQL, timeoutMs, kill)
        const tables: SchemaTable[] = []
        let current: SchemaTable | undefined
        for (const [table, column, type, nullable, key] of rows) {
          if (!current || current.name !== table) {
            const kind = kinds.get(table)
            current = { name: table, columns: [], row_count: !kind || kind.view || kind.estimate === null ? null : Number(kind.estimate) }
            tables.push(current)
          }
          current.columns.push({ name: column, type, nullable: nullable === 'YES', primary: key === 'PRI' })
        }
        return tables
      }),

    probe: (timeoutMs) =>
      readOnly(async (core, kill): Promise<ServerInfo> => {
        const [first] = await catalogue<[number]>(core, "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()", timeoutMs, kill)
        const number = /^\d+(\.\d+)*/.exec(serverVersion)?.[0] ?? serverVersion
        return { version: `${flavour === 'mariadb' ? 'MariaDB' : 'MySQL'} ${number}`, tablesCount: Number(first?.[0] ?? 0) }
      }),

    async close() {
      closed = true
      for (const kill of running) kill()
      await pool.end().catch(() => {})
    },
  }
}

/** The tables and views of the connection's database, with InnoDB's row estimate. */
const TABLES_SQL = `SELECT TABLE_NAME, TABLE_ROWS, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()`
/** Every column of them, in order. */
const COLUMNS_SQL = `SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION`
