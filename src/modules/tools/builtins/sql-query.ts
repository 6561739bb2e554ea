/**
 * @module The `sql_query` built-in: one read-only query on a data connection the caller may use
 * (their own or a global one; another user's is not found), through the connections module —
 * the same parsing, read-only transaction, timeout and row cap as `POST /connections/{id}/query`.
 * The call names it by `connection_id`, or by `connection` (its name: the caller's own before a
 * global one); naming neither, the caller's default connection is used. A statement that is refused or
 * that the database fails comes back as a result with `isError: true` and the reason, for the
 * model to correct; an unknown connection is 404 and an unreachable database 502, as for the API.
 */
import { AppError } from '../../../lib/errors.ts'
import type { Principal } from '../../auth/service.ts'
import type { ConnectionsApi, QueryResult } from '../../connections/types.ts'
import { toolNotConfigured } from '../errors.ts'
import type { BuiltinTool, ToolResult } from '../types.ts'

/** The text a model reads: about 4,000 tokens of rows at most (the rest counted, not shown). */
const MAX_TEXT_CHARS = 16_000
/** The rows of `structured_content`, as JSON, at most. */
const MAX_STRUCTURED_BYTES = 1_000_000

/** The rows that fit in `budget` characters of JSON lines. */
function rowsWithin(rows: unknown[][], budget: number): { lines: string[]; shown: number } {
  const lines: string[] = []
  let used = 0
  for (const row of rows) {
    const line = JSON.stringify(row)
    if (used + line.length + 1 > budget) break
    lines.push(line)
    used += line.length + 1
  }
  return { lines, shown: lines.length }
}

/** The result as text (a summary line, the column names, then one JSON array per row) and as structured content. */
export function queryToolResult(r: QueryResult): ToolResult {
  const head = `${r.rows_count} row${r.rows_count === 1 ? '' : 's'}${r.truncated ? ' (more exist: only the first ones were read)' : ''} in ${r.duration_ms} ms`
  const columns = JSON.stringify(r.columns.map((c) => c.name))
  const text = rowsWithin(r.rows, MAX_TEXT_CHARS - head.length - columns.length - 80)
  const cut = text.shown < r.rows.length ? `\n[${r.rows.length - text.shown} more rows not shown]` : ''
  const structured = rowsWithin(r.rows, MAX_STRUCTURED_BYTES)
  return {
    content: [{ type: 'text', text: `${head}\ncolumns: ${columns}\n${text.lines.join('\n')}${cut}` }],
    structuredContent: { columns: r.columns, rows: r.rows.slice(0, structured.shown), rows_count: r.rows_count, truncated: r.truncated || structured.shown < r.rows.length, duration_ms: r.duration_ms },
    isError: false,
  }
}

/** The connections module as the tool uses it: the contract, and finding a connection by its name. */
export type SqlToolConnections = ConnectionsApi & { usableByName?(p: Principal, name: string): Promise<{ id: string }> }

export function sqlQueryTool(deps: { connections?: SqlToolConnections; maxRows?: number }): BuiltinTool {
  return {
    name: 'sql_query',
    description: 'Run one read-only SQL query (a SELECT) on one of your data connections and get the rows. Name the connection by connection_id or by its name (connection); naming neither, your default connection is used.',
    inputSchema: {
      type: 'object',
      properties: {
        connection_id: { type: 'string', description: 'The id of the data connection to query (GET /connections)', minLength: 1, maxLength: 64 },
        connection: { type: 'string', description: 'Or its name', minLength: 1, maxLength: 100 },
        query: { type: 'string', description: 'One SELECT statement (or WITH … SELECT, or EXPLAIN of one)', minLength: 1, maxLength: 100_000 },
        limit: { type: 'integer', description: 'The most rows to read', minimum: 1, ...(deps.maxRows ? { maximum: deps.maxRows } : {}) },
      },
      required: ['query'],
      additionalProperties: false,
    },

    async call(args, ctx) {
      const { connections } = deps
      if (!connections) throw toolNotConfigured('Data connections are not available on this server', 'arguments.connection_id')
      let id: string
      if (typeof args.connection_id === 'string') id = (await connections.usable(ctx.principal, args.connection_id)).id
      else if (typeof args.connection === 'string' && connections.usableByName) id = (await connections.usableByName(ctx.principal, args.connection)).id
      else {
        const fallback = await connections.defaultFor(ctx.principal)
        if (!fallback) throw toolNotConfigured('No connection_id (or connection name) was given and you have no default data connection', 'arguments.connection_id')
        id = fallback.id
      }
      try {
        const result = await connections.query(ctx.principal, id, String(args.query), { limit: typeof args.limit === 'number' ? args.limit : undefined, signal: ctx.signal })
        return queryToolResult(result)
      } catch (error) {
        // a statement refused, or failed by the database: the model (or the caller) can correct it
        const reason = error instanceof AppError && error.status === 422 ? error.errors?.find((e) => e.path === 'sql')?.message : undefined
        if (reason === undefined) throw error
        return { content: [{ type: 'text', text: `The query failed: ${reason}` }], isError: true }
      }
    },
  }
}
