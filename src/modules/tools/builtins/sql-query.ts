/**
 * @module The `sql_query` built-in: a read-only query on one of the caller's data connections.
 * Registered now so that conversations and agents may name it; until data connections exist it
 * answers that none is configured.
 */
import { toolNotConfigured } from '../errors.ts'
import type { BuiltinTool } from '../types.ts'

export const sqlQueryTool: BuiltinTool = {
  name: 'sql_query',
  description: 'Run one read-only SQL query (SELECT) on one of your data connections and return the rows.',
  inputSchema: {
    type: 'object',
    properties: {
      connection_id: { type: 'string', description: 'The data connection to query' },
      query: { type: 'string', description: 'One SELECT statement', maxLength: 100_000 },
    },
    required: ['connection_id', 'query'],
    additionalProperties: false,
  },
  async call() {
    throw toolNotConfigured('No data connection is configured: data connections are not available on this server yet', 'arguments.connection_id')
  },
}
