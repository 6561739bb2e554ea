/** @module The built-in tools, in the order GET /tools lists them. */
import type { BuiltinTool } from '../types.ts'
import { currentTimeTool } from './current-time.ts'
import { sqlQueryTool } from './sql-query.ts'

export function builtinTools(): BuiltinTool[] {
  return [sqlQueryTool, currentTimeTool]
}
