/** @module /api/v1/connections (docs/api.md §19): data connections, their test, schema and read-only queries. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { idParams, page, pageOf, problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import {
  connectionBody,
  connectionListQuery,
  connectionPatch,
  connectionSchema,
  dbSchemaSchema,
  fromConnectionBody,
  fromConnectionPatch,
  queryBody,
  queryResultSchema,
  schemaQuery,
  testResultSchema,
  toConnectionDto,
  toQueryDto,
  toSchemaDto,
  toTestDto,
} from './model.ts'
import { MAX_SQL_LENGTH, type ConnectionsService } from './service.ts'

export function connectionRoutes(deps: { connections: ConnectionsService; maxRows: number; timeoutMs: number; authPlugin: ReturnType<typeof authPlugin> }) {
  const { connections } = deps
  return new Elysia({ name: 'hearth.routes.connections', prefix: '/api/v1', detail: { tags: ['Data connections'] } })
    .use(deps.authPlugin)
    .get(
      '/connections',
      async ({ principal, query }) => {
        const { rows, total } = await connections.list(principal, query)
        return pageOf(
          rows.map((r) => toConnectionDto(r, principal)),
          total,
          query,
        )
      },
      {
        auth: true,
        query: connectionListQuery,
        response: { 200: page(connectionSchema), ...problems(401, 403, 422, 429) },
        detail: { summary: 'List data connections', description: 'The global connections and your own, by name; `scope` and `driver` filter. Passwords never come back (`has_password`).' },
      },
    )
    .post(
      '/connections',
      async ({ principal, body, set }) => {
        const row = await connections.create(principal, fromConnectionBody(body))
        set.status = 201
        set.headers.location = `/api/v1/connections/${row.id}`
        return toConnectionDto(row, principal)
      },
      {
        auth: true,
        body: connectionBody,
        response: { 201: connectionSchema, ...problems(401, 403, 409, 422, 429) },
        detail: {
          summary: 'Add a data connection',
          description:
            '`postgres` and `mysql` (MySQL and MariaDB) need `host`, `username` (and `mysql` a `database`); `port` defaults to 5432 / 3306. `sqlite` reads an uploaded file (`file_id` of one of your files with purpose `dataset`) or, admins only (`403`), a file on the server (`path`). A user\'s `host` may not be a loopback or private address (`422`) unless the instance allows it. `password` is write-only (encrypted). `scope` defaults to `global` for admins and `personal` for everyone else; only admins add global connections (`403`). Names are unique case-insensitively in their scope (`409`), and a personal name may not be a global connection\'s (`409`). `is_default: true` makes it your default (one per user; among global ones, one).',
        },
      },
    )
    .get('/connections/:id', async ({ principal, params }) => toConnectionDto(await connections.get(principal, params.id), principal), {
      auth: true,
      params: idParams,
      response: { 200: connectionSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a data connection', description: "A global connection, or one of yours; another user's is `404`, for admins too." },
    })
    .patch('/connections/:id', async ({ principal, params, body }) => toConnectionDto(await connections.update(principal, params.id, fromConnectionPatch(body)), principal), {
      auth: true,
      params: idParams,
      body: connectionPatch,
      response: { 200: connectionSchema, ...problems(401, 403, 404, 409, 422, 429) },
      detail: {
        summary: 'Change a data connection',
        description:
          'The fields sent are set (`password: null` removes it). Any change closes its open sessions on every instance; a change of what it reaches (driver, host, port, database, username, password, ssl, file_id, path) also resets `is_connected` and the cached schema. Moving to or from `sqlite` drops the fields of the old kind unless they are sent. Global connections: admins only (`403`).',
      },
    })
    .delete(
      '/connections/:id',
      async ({ principal, params, set }) => {
        await connections.remove(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Delete a data connection', description: 'Its sessions close on every instance. Global connections: admins only (`403`).' } },
    )
    .post('/connections/:id/test', async ({ principal, params }) => toTestDto(await connections.test(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: testResultSchema, ...problems(401, 403, 404, 422, 429) },
      detail: {
        summary: 'Test a data connection',
        description:
          'Opens a new session now and reads the server version and how many tables and views it shows. Any failure — refused, a host that does not answer within 5 s, wrong credentials, no such database, a file that is not SQLite — is `connected: false` with the reason in `message`, never a 5xx. Sets `is_connected`, `last_tested_at` and `last_error`.',
      },
    })
    .get('/connections/:id/schema', async ({ principal, params, query }) => toSchemaDto(await connections.schema(principal, params.id, { refresh: query.refresh === 'true' })), {
      auth: true,
      params: idParams,
      query: schemaQuery,
      response: { 200: dbSchemaSchema, ...problems(401, 403, 404, 422, 429, 502) },
      detail: {
        summary: 'The schema of a data connection',
        description:
          'Tables and views with their columns, read from the catalogue on first use and kept; `refresh=true` reads it again (so does the first read after the connection changes). `502` when the database cannot be reached.',
      },
    })
    .post('/connections/:id/query', async ({ principal, params, body, request }) => toQueryDto(await connections.query(principal, params.id, body.sql, { limit: body.limit, signal: request.signal })), {
      auth: true,
      params: idParams,
      body: queryBody,
      response: { 200: queryResultSchema, ...problems(401, 403, 404, 422, 429, 502) },
      detail: {
        summary: 'Run a read-only query',
        description: `One SELECT (or WITH … SELECT, or EXPLAIN of one), at most ${MAX_SQL_LENGTH} characters, read-only in three layers (docs/api.md §19): anything else is \`422\` with the reason under \`errors[].path = "sql"\`. It runs in a read-only transaction, is cancelled on the database after ${deps.timeoutMs} ms (HEARTH_SQL_TIMEOUT_MS; \`422\`), and reads at most ${deps.maxRows} rows (HEARTH_SQL_MAX_ROWS, or fewer with \`limit\`): \`truncated: true\` when there were more. A statement the database refuses is \`422\` with its message; a database that cannot be reached \`502\`. Values are JSON: big integers beyond 2^53 and long decimals as strings, times as ISO 8601, bytes as base64.`,
      },
    })
}
