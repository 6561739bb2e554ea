/**
 * @module What the connections module offers the rest of Hearth (chat's questions over SQL, the
 * `sql_query` tool): the shapes of a schema and a query result, and the service's contract.
 * Wire shapes are the contract's (docs/api.md §19), so they are snake_case here too.
 */
import type { Principal } from '../auth/service.ts'

export type Driver = 'sqlite' | 'postgres' | 'mysql'

export interface SchemaColumn {
  name: string
  type: string
  nullable: boolean
  primary: boolean
}

export interface SchemaTable {
  name: string
  /** the Postgres schema (namespace) when not `public`; absent on MySQL and SQLite */
  schema?: string
  columns: SchemaColumn[]
  /** an estimate (Postgres reltuples, MySQL table_rows) or an exact count (SQLite); null when unknown */
  row_count: number | null
}

export interface DbSchema {
  tables: SchemaTable[]
  fetched_at: string
}

export interface QueryResult {
  columns: { name: string; type: string }[]
  rows: unknown[][]
  rows_count: number
  truncated: boolean
  duration_ms: number
}

/**
 * Errors, as every caller may rely on them:
 * - refused SQL (not one read-only SELECT, a dangerous function, unreadable): `AppError 422 VALIDATION_ERROR`
 *   with `errors: [{ path: 'sql', message: <reason> }]`;
 * - the database refused or failed the statement (syntax, unknown column, timeout and cancel):
 *   `AppError 422 VALIDATION_ERROR` with `errors: [{ path: 'sql', message: <the database's message> }]` —
 *   what chat gives back to the model to correct its SQL;
 * - the database cannot be reached (connect timeout, refused, wrong password): `AppError 502 UPSTREAM_ERROR`;
 * - a connection the principal may not use: `404 NOT_FOUND`.
 */
export interface ConnectionsApi {
  /** one connection the principal may use (their own or a global one), else 404 */
  usable(p: Principal, id: string): Promise<{ id: string; name: string; driver: Driver }>
  /** the principal's default connection (their `is_default` one, else their preference `default_connection_id`), or null */
  defaultFor(p: Principal): Promise<{ id: string; name: string; driver: Driver } | null>
  /** the cached schema (read on first use, and again with `refresh`) */
  schema(p: Principal, id: string, opts?: { refresh?: boolean }): Promise<DbSchema>
  /** up to `limit` distinct values of a column (for small enums in the prompt), through the same read-only guard */
  sampleValues(p: Principal, id: string, table: { name: string; schema?: string }, column: string, limit: number): Promise<unknown[]>
  /** vet, then run read-only under the timeout and the row cap (`limit` ≤ HEARTH_SQL_MAX_ROWS); `signal` cancels it on the database */
  query(p: Principal, id: string, sql: string, opts?: { limit?: number; signal?: AbortSignal }): Promise<QueryResult>
}
