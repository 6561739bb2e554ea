/**
 * @module The wire of data connections (docs/api.md §19): the Connection object, request bodies,
 * the test, schema and query answers, and the mapping between the snake_case wire and the service.
 */
import { z } from 'zod'
import { isoDate, listQuery } from '../../lib/schemas.ts'
import type { Principal } from '../auth/service.ts'
import type { DbSchema, QueryResult } from './types.ts'
import { MAX_SQL_LENGTH, type ConnectionChanges, type ConnectionInput, type ConnectionRow, type TestResult } from './service.ts'

const driver = z.enum(['sqlite', 'postgres', 'mysql'])
const scope = z.enum(['global', 'personal'])
/** A host name or an IP address (IPv6 with or without brackets): no scheme, port, path or spaces. */
const host = z
  .string()
  .trim()
  .min(1)
  .max(253)
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*|[\p{L}\p{N}._-]+)$/u, 'a host name or an IP address, without scheme, port or path')

export const connectionSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    driver,
    host: z.string().nullable(),
    port: z.number().int().nullable(),
    database: z.string().nullable(),
    username: z.string().nullable(),
    has_password: z.boolean().meta({ description: '`password` is write-only' }),
    ssl: z.boolean(),
    file_id: z.string().nullable().meta({ description: 'SQLite: the uploaded dataset it reads' }),
    path: z.string().nullable().meta({ description: 'SQLite: the file on the server it reads (admins set it; shown to admins only)' }),
    is_default: z.boolean(),
    is_connected: z.boolean().meta({ description: 'what the last test found' }),
    last_tested_at: isoDate.nullable(),
    last_error: z.string().nullable().meta({ description: "the last test's failure" }),
    scope,
    created_at: isoDate,
    updated_at: isoDate,
  })
  .meta({ id: 'Connection' })

const fields = {
  name: z.string().trim().min(1).max(100),
  driver,
  host: host.nullable().optional(),
  port: z.number().int().min(1).max(65535).nullable().optional(),
  database: z.string().min(1).max(255).nullable().optional(),
  username: z.string().min(1).max(255).nullable().optional(),
  password: z.string().max(1024).nullable().optional().meta({ description: 'write-only; `null` removes it' }),
  ssl: z.boolean().optional().meta({ description: 'TLS, with the certificate checked against `host`' }),
  file_id: z.string().min(1).max(64).nullable().optional(),
  path: z.string().min(1).max(4096).nullable().optional(),
  is_default: z.boolean().optional(),
}

export const connectionBody = z.object({ ...fields, scope: scope.optional() })
/** scope is fixed at creation */
export const connectionPatch = z.object(fields).partial()

export const connectionListQuery = listQuery.extend({ scope: scope.optional(), driver: driver.optional() })

export const testResultSchema = z.object({
  connected: z.boolean(),
  version: z.string().nullable().meta({ description: 'e.g. `PostgreSQL 16.2`, `MariaDB 10.11.6`, `SQLite 3.45.1`; null when not connected' }),
  tables_count: z.number().int().nullable(),
  message: z.string(),
  latency_ms: z.number().int(),
})

const schemaColumn = z.object({ name: z.string(), type: z.string(), nullable: z.boolean(), primary: z.boolean() })
export const dbSchemaSchema = z
  .object({
    tables: z.array(
      z.object({
        name: z.string(),
        schema: z.string().optional().meta({ description: 'Postgres: the schema, when not `public`' }),
        columns: z.array(schemaColumn),
        row_count: z.number().int().nullable().meta({ description: 'an estimate on Postgres and MySQL, exact on SQLite; null when unknown (views)' }),
      }),
    ),
    fetched_at: isoDate,
  })
  .meta({ id: 'DbSchema' })
export const schemaQuery = z.object({ refresh: z.enum(['true', 'false']).optional() })

export const queryBody = z.object({
  sql: z.string().min(1).max(MAX_SQL_LENGTH),
  limit: z.number().int().min(1).max(1_000_000).optional().meta({ description: 'at most this many rows (never more than HEARTH_SQL_MAX_ROWS)' }),
})
export const queryResultSchema = z
  .object({
    columns: z.array(z.object({ name: z.string(), type: z.string() })),
    rows: z.array(z.array(z.unknown())),
    rows_count: z.number().int(),
    truncated: z.boolean(),
    duration_ms: z.number(),
  })
  .meta({ id: 'QueryResult' })

export function toConnectionDto(row: ConnectionRow, viewer: Principal): z.infer<typeof connectionSchema> {
  return {
    id: row.id,
    name: row.name,
    driver: row.driver,
    host: row.host,
    port: row.port,
    database: row.database,
    username: row.username,
    has_password: row.password !== null,
    ssl: row.ssl,
    file_id: row.fileId,
    path: viewer.role === 'admin' ? row.path : null,
    is_default: row.isDefault,
    is_connected: row.isConnected,
    last_tested_at: row.lastTestedAt?.toISOString() ?? null,
    last_error: row.lastError,
    scope: row.userId === null ? 'global' : 'personal',
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  }
}

type Body = z.infer<typeof connectionPatch>

const fromFields = (b: Body): ConnectionChanges => {
  const out: ConnectionChanges = {}
  if (b.name !== undefined) out.name = b.name
  if (b.driver !== undefined) out.driver = b.driver
  if (b.host !== undefined) out.host = b.host
  if (b.port !== undefined) out.port = b.port
  if (b.database !== undefined) out.database = b.database
  if (b.username !== undefined) out.username = b.username
  if (b.password !== undefined) out.password = b.password
  if (b.ssl !== undefined) out.ssl = b.ssl
  if (b.file_id !== undefined) out.fileId = b.file_id
  if (b.path !== undefined) out.path = b.path
  if (b.is_default !== undefined) out.isDefault = b.is_default
  return out
}

export const fromConnectionBody = (b: z.infer<typeof connectionBody>): ConnectionInput => ({ ...fromFields(b), name: b.name, driver: b.driver, scope: b.scope })
export const fromConnectionPatch = (b: Body): ConnectionChanges => fromFields(b)

export const toTestDto = (r: TestResult): z.infer<typeof testResultSchema> => ({ connected: r.connected, version: r.version, tables_count: r.tablesCount, message: r.message, latency_ms: r.latencyMs })
export const toSchemaDto = (s: DbSchema): z.infer<typeof dbSchemaSchema> => s
export const toQueryDto = (r: QueryResult): z.infer<typeof queryResultSchema> => r
