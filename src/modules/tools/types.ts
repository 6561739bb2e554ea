/**
 * @module The contract between the tools layer and what provides tools: built-ins (this module's
 * builtins/) and MCP servers (src/modules/mcp). Results have MCP's shape for every tool, so chat,
 * tasks and `POST /tools/call` handle one kind of result.
 */
import type { Principal } from '../auth/service.ts'

/** One piece of a tool's result, as MCP's `CallToolResult.content` has it (`text`, `image`, `resource`, …). */
export type ToolContent = { type: 'text'; text: string } | { type: string; [key: string]: unknown }

/** What a call returned. A tool that reports failure says `isError: true`; it does not throw. */
export interface ToolResult {
  content: ToolContent[]
  structuredContent?: unknown
  isError: boolean
}

/** Who calls, and when to give up. */
export interface ToolCallContext {
  principal: Principal
  /** aborted when the caller's run is stopped, or the call times out */
  signal: AbortSignal
}

/** A tool the server itself provides. `call` throws an AppError for a problem the caller must fix (422 not configured) or a 502 for a failed upstream. */
export interface BuiltinTool {
  name: string
  description: string
  /** JSON Schema (draft 2020-12 or 7) of the arguments */
  inputSchema: Record<string, unknown>
  call(args: Record<string, unknown>, ctx: ToolCallContext): Promise<ToolResult>
}

/** An MCP tool as its server lists it. */
export interface McpTool {
  name: string
  description: string | null
  inputSchema: Record<string, unknown>
}

/** A server the caller may use, with its tools. */
export interface McpServerTools {
  id: string
  name: string
  requiresApproval: boolean
  timeoutMs: number
  tools: McpTool[]
}

/** What the MCP module offers the tools layer. */
export interface McpToolSource {
  /** the enabled servers the caller may use (their own and the global ones), with the tools each listed last (listed now when never listed; a server that cannot be reached has none) */
  servers(p: Principal): Promise<McpServerTools[]>
  /** call one tool with the caller's credentials; a tool's own failure is `isError: true`; an unreachable server or a timeout throws a 502 AppError (UPSTREAM_ERROR); `signal` aborts (notifications/cancelled is sent) */
  call(p: Principal, serverId: string, tool: string, args: Record<string, unknown>, signal: AbortSignal): Promise<ToolResult>
}
