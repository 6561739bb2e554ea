/**
 * @module Postgres through postgres-js: one pool (`max` sessions) per connection. Each statement
 * runs on a session of its own in `BEGIN READ ONLY` with `SET LOCAL statement_timeout`, over the
 * extended protocol (one statement only: Postgres refuses two in one Parse), read with a cursor
 * until the row cap, then rolled back. Sessions also start read-only by default
 * (`default_transaction_read_only`), in UTC, and end a transaction left idle for a minute. At the
 * timeout or an abort the statement is cancelled on the server (a CancelRequest); closing the pool
 * cancels what is running first. Nothing is read from Hearth's own PG* environment.
 */
import { isIP } from 'node:net'
import postgres from 'postgres'
import type { ColumnTypeCache } from './pg-types.ts'
import { builtinTypeNames } from './pg-types.ts'
import { sessionWithin, StatementFailed, timedOut, Unreachable, watchStatement, type DriverOptions, type DriverPool, type DriverTarget, type RunLimits, type ServerInfo } from './types.ts'
import { base64, exactDecimal, exactInteger, jsonSafe } from './values.ts'
import type { QueryResult, SchemaTable } from '../types.ts'

/** SQLSTATE classes and codes that mean the session could not be had, not that the statement failed. */
const UNREACHABLE_STATES = /^(08|28|3D|53|57P0[123]|CONNECT_TIMEOUT|CONNECTION_)/
const CURSOR_BATCH = 500
/** how long after the server's own statement_timeout Hearth cancels the statement itself */
const CANCEL_BACKSTOP_MS = 250

/** `2024-01-05 10:00:00.5+00` (the session is in UTC) → `2024-01-05T10:00:00.5Z`; other offsets get their minutes. */
function isoTimestamptz(text: string): string {
  const iso = text.replace(' ', 'T')
  if (iso.endsWith('+00')) return iso.slice(0, -3) + 'Z'
  return /[+-]\d\d$/.test(iso) ? iso + ':00' : iso
}

/** Parsers for the types whose default postgres-js parse is not JSON-safe or loses something (a Date in local time, a string bigint). */
const TYPES = {
  hearth_int8: { to: 20, from: [20], serialize: String, parse: exactInteger },
  hearth_numeric: { to: 1700, from: [1700], serialize: String, parse: exactDecimal },
  hearth_date: { to: 1082, from: [1082], serialize: String, parse: (x: string) => x },
  hearth_timestamp: { to: 1114, from: [1114], serialize: String, parse: (x: string) => x.replace(' ', 'T') },
  hearth_timestamptz: { to: 1184, from: [1184], serialize: String, parse: isoTimestamptz },
  hearth_bytea: { to: 17, from: [17], serialize: String, parse: (x: string) => base64(Buffer.from(x.slice(2), 'hex')) },
}

function classify(error: unknown): Error {
  if (error instanceof StatementFailed || error instanceof Unreachable) return error
  const e = error as { code?: string; message?: string; errno?: unknown }
  const message = e?.message || String(error)
  if (typeof e?.errno === 'number' || (e?.code && UNREACHABLE_STATES.test(e.code)) || /^(ECONN|ETIMEDOUT|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_)/.test(e?.code ?? ''))
    return new Unreachable(e.code === 'CONNECT_TIMEOUT' ? 'the database did not answer in time (connect timeout)' : message)
  if (e?.code === '57014') return new StatementFailed(message)
  // a TLS failure, a protocol error: the session is not usable
  if (!e?.code || !/^[0-9A-Z]{5}$/.test(e.code)) return new Unreachable(message)
  return new StatementFailed(message)
}

export function openPostgres(target: DriverTarget, options: DriverOptions & { statementTimeoutMs: number }): DriverPool {
  const host = target.host ?? ''
  const open = () =>
    postgres({
    host: target.address ?? host,
    port: target.port ?? 5432,
    database: target.database || target.username || 'postgres',
    username: target.username ?? '',
    // a function, so an empty password never falls back to Hearth's own PGPASSWORD
    password: () => target.password ?? '',
    ssl: target.ssl ? { servername: isIP(host) ? undefined : host, rejectUnauthorized: true } : false,
    max: options.maxSessions,
    connect_timeout: options.connectTimeoutMs / 1000,
    idle_timeout: 0,
    max_lifetime: 0,
    prepare: false,
    fetch_types: true,
    keep_alive: 60,
    max_pipeline: 100,
    debug: false,
    target_session_attrs: undefined,
    onnotice: () => {},
    connection: {
      application_name: 'hearth',
      TimeZone: 'UTC',
      default_transaction_read_only: true,
      statement_timeout: String(options.statementTimeoutMs),
      idle_in_transaction_session_timeout: '60000',
    },
    types: TYPES,
  } as unknown as postgres.Options<Record<string, postgres.PostgresType>>)
  let sql = open()

  const typeNames: ColumnTypeCache = new Map(builtinTypeNames)
  const running = new Set<{ cancel(): unknown }>()
  let closed = false

  /**
   * A session that broke (the server ended it) cannot go back: postgres-js would hand it out again,
   * dead. The pool it came from is replaced, and ended once its other statements are done.
   */
  function renew(broken: postgres.Sql) {
    if (broken !== sql || closed) return
    sql = open()
    void broken.end({ timeout: options.statementTimeoutMs / 1000 + 1 }).catch(() => {})
  }

  /** A session of its own inside `BEGIN READ ONLY`, always rolled back. */
  async function readOnly<T>(timeoutMs: number, work: (tx: postgres.ReservedSql) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (closed) throw new Unreachable('the connection was closed')
    let tx: postgres.ReservedSql
    const pool = sql
    try {
      // a busy pool frees a session within one statement's time; a new one connects within the connect timeout
      tx = await sessionWithin(pool.reserve(), options.connectTimeoutMs + options.statementTimeoutMs, signal, (late) => late.release())
    } catch (error) {
      if (signal?.aborted && error === signal.reason) throw error
      throw classify(error)
    }
    let broken = false
    try {
      await tx.unsafe(`BEGIN READ ONLY; SET LOCAL statement_timeout = ${Math.max(1, Math.floor(timeoutMs))}`).simple()
      return await work(tx)
    } catch (error) {
      if (signal?.aborted && error === signal.reason) throw error
      const failure = classify(error)
      broken = failure instanceof Unreachable
      throw failure
    } finally {
      if (!broken) await tx.unsafe('ROLLBACK').simple().catch(() => (broken = true))
      if (!broken) tx.release()
      else renew(pool)
    }
  }

  /** The names of column types not known yet (extensions, domains, enums), read once per pool. */
  async function nameTypes(tx: postgres.ReservedSql, oids: number[]) {
    const unknown = [...new Set(oids.filter((o) => !typeNames.has(o)))]
    if (!unknown.length) return
    const rows = await tx.unsafe<{ oid: number; name: string }[]>('SELECT oid::int4 AS oid, format_type(oid, NULL) AS name FROM pg_catalog.pg_type WHERE oid = ANY($1::oid[])', [`{${unknown.join(',')}}`])
    for (const r of rows) typeNames.set(r.oid, r.name)
  }

  return {
    async run(text: string, { maxRows, timeoutMs, signal }: RunLimits): Promise<QueryResult> {
      signal?.throwIfAborted()
      const started = performance.now()
      return readOnly(timeoutMs, async (tx) => {
        const rows: unknown[][] = []
        let truncated = false
        const query = tx.unsafe(text).values()
        running.add(query)
        // A cancel request names the session, not the statement: one still on its way when the
        // statement ends would cancel the session's next one. So the server's own statement_timeout
        // comes first (Hearth's timer is a backstop just after it), and a cancel that was sent is
        // waited for — the server has signalled the session when it answers — before the session
        // is used again (an idle session ignores the signal).
        let cancelling: Promise<unknown> | undefined
        const watch = watchStatement(timeoutMs, signal, () => void (cancelling = Promise.resolve(query.cancel()).catch(() => {})), CANCEL_BACKSTOP_MS)
        try {
          await query.cursor(Math.min(maxRows + 1, CURSOR_BATCH), (batch: unknown[][]) => {
            for (const row of batch) {
              if (rows.length >= maxRows) {
                truncated = true
                return sql.CLOSE
              }
              rows.push(row)
            }
          })
        } catch (error) {
          const code = (error as { code?: string }).code
          throw watch.failure(code === '57014' && /statement timeout/.test(String((error as Error).message)) ? timedOut(timeoutMs) : error)
        } finally {
          watch.done()
          running.delete(query)
          if (cancelling) await cancelling
        }
        const described = (query as unknown as { statement?: { columns?: { name: string; type: number }[] } }).statement?.columns ?? []
        await nameTypes(tx, described.map((c) => c.type))
        return {
          columns: described.map((c) => ({ name: c.name, type: typeNames.get(c.type) ?? String(c.type) })),
          rows: rows.map((r) => r.map(jsonSafe)),
          rows_count: rows.length,
          truncated,
          duration_ms: Math.round((performance.now() - started) * 100) / 100,
        }
      }, signal)
    },

    schema: (timeoutMs) =>
      readOnly(timeoutMs, async (tx) => {
        const rows = await tx.unsafe<{ schema: string; table: string; kind: string; estimate: number | null; column: string; type: string; nullable: boolean; primary: boolean }[]>(SCHEMA_SQL)
        const tables: SchemaTable[] = []
        let current: SchemaTable | undefined
        for (const r of rows) {
          if (!current || current.name !== r.table || (current.schema ?? 'public') !== r.schema) {
            current = { name: r.table, ...(r.schema === 'public' ? {} : { schema: r.schema }), columns: [], row_count: r.estimate === null ? null : Number(r.estimate) }
            tables.push(current)
          }
          current.columns.push({ name: r.column, type: r.type, nullable: r.nullable, primary: r.primary })
        }
        return tables
      }),

    probe: (timeoutMs) =>
      readOnly(timeoutMs, async (tx): Promise<ServerInfo> => {
        const [row] = await tx.unsafe<{ version: string; tables: number }[]>(
          `SELECT current_setting('server_version') AS version, (SELECT count(*)::int4 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE ${VISIBLE_RELATIONS}) AS tables`,
        )
        return { version: `PostgreSQL ${row!.version}`, tablesCount: row!.tables }
      }),

    async close() {
      closed = true
      for (const q of running) q.cancel()
      await sql.end({ timeout: 1 }).catch(() => {})
    },
  }
}

/** Tables, views, materialized views and foreign tables outside the system schemas, that the session may read; partitions are shown as their parent. */
const VISIBLE_RELATIONS = `c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND has_table_privilege(c.oid, 'SELECT')`

/** One catalogue query for every column of every visible relation (pg_catalog, not information_schema: fast on thousands of columns). */
const SCHEMA_SQL = `
SELECT n.nspname AS schema, c.relname AS table, c.relkind AS kind,
  CASE WHEN c.relkind IN ('r', 'p', 'm') AND c.reltuples >= 0 THEN c.reltuples::int8 END AS estimate,
  a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,
  coalesce(a.attnum = ANY (pk.indkey), false) AS primary
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary
WHERE ${VISIBLE_RELATIONS}
ORDER BY n.nspname = 'public' DESC, n.nspname, c.relname, a.attnum`
