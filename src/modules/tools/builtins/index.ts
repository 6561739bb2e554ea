/** @module The built-in tools, in the order GET /tools lists them. */
import type { OutboundGuard } from '../../../lib/outbound.ts'
import type { SearchService } from '../../search/service.ts'
import type { BuiltinTool } from '../types.ts'
import { currentTimeTool } from './current-time.ts'
import { httpFetchTool } from './http-fetch.ts'
import { sqlQueryTool, type SqlToolConnections } from './sql-query.ts'
import { webSearchTool } from './web-search.ts'

export function builtinTools(deps: { outbound: OutboundGuard; search: SearchService; connections?: SqlToolConnections; sqlMaxRows?: number }): BuiltinTool[] {
  return [webSearchTool(deps.search), httpFetchTool({ outbound: deps.outbound }), sqlQueryTool({ connections: deps.connections, maxRows: deps.sqlMaxRows }), currentTimeTool]
}
