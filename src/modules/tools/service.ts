/**
 * @module The one tool layer: every tool a caller may use — the built-ins and the tools of the MCP
 * servers they can reach, named `<server>__<tool>` — listed, described to a model, checked against
 * its JSON Schema and called, the same way for `POST /tools/call`, chat runs and tasks. Every call
 * is logged (who, from where, how long, the start of its result) and announced on the caller's
 * tool events.
 */
import { and, desc, eq, gte, lte, type SQL } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { pageOfTable, type Page, type PageRequest } from '../../db/query.ts'
import { AppError } from '../../lib/errors.ts'
import { newId } from '../../lib/ids.ts'
import { schemaProblems } from '../../lib/json-schema.ts'
import type { Logger } from '../../lib/logger.ts'
import type { ToolSpec } from '../../llm/index.ts'
import type { Principal } from '../auth/service.ts'
import { invalidArguments, toolFailed, toolNotFound } from './errors.ts'
import type { ToolEvents } from './events.ts'
import type { BuiltinTool, McpServerTools, McpToolSource, ToolResult } from './types.ts'

/** A tool as GET /tools lists it. */
export interface ToolInfo {
  name: string
  description: string
  source: 'builtin' | 'mcp'
  serverId: string | null
  serverName: string | null
  inputSchema: Record<string, unknown>
  requiresApproval: boolean
  enabled: boolean
}

/** Where a call comes from, for its log. */
export interface CallOrigin {
  source: 'api' | 'chat' | 'task' | 'session'
  conversationId?: string
  taskId?: string
  /** the caller's run: aborting it cancels the call */
  signal?: AbortSignal
}

export interface ToolOutcome {
  result: ToolResult
  durationMs: number
  logId: string
}

type ToolLogRow = Database['t']['toolLogs']['$inferSelect']

export interface LogFilter extends PageRequest {
  userId: string
  tool?: string
  source?: ToolLogRow['source']
  isError?: boolean
  from?: Date
  to?: Date
}

/** What a log keeps of a result. */
export const RESULT_PREVIEW_BYTES = 2048
/** Arguments longer than this (as JSON) are logged cut, as a string. */
const MAX_LOGGED_ARGUMENTS = 16_384
/** The longest a built-in may run. MCP calls have their server's `timeout_ms`. */
const BUILTIN_TIMEOUT_MS = 60_000
/** Tool names: what every provider accepts. */
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/

/** `text` cut to at most `bytes` bytes of UTF-8, never inside a character. */
export function cutToBytes(text: string, bytes: number): string {
  if (text.length * 3 <= bytes) return text
  const encoded = new TextEncoder().encode(text)
  if (encoded.length <= bytes) return text
  return new TextDecoder().decode(encoded.subarray(0, bytes)).replace(/\uFFFD$/, '')
}

/** A result as text: its text parts, and a word for each other part. */
export function resultText(r: ToolResult): string {
  const parts = r.content.map((c) => (c.type === 'text' && typeof c.text === 'string' ? c.text : `[${c.type}]`))
  if (!parts.length && r.structuredContent !== undefined) parts.push(JSON.stringify(r.structuredContent))
  return parts.join('\n')
}

/** A problem met before or instead of calling the tool, as a tool result a model can read. */
const failedResult = (message: string): ToolResult => ({ content: [{ type: 'text', text: message }], isError: true })

/** What a call aborted by its caller's run returns, when the tool itself threw rather than answer. */
const CANCELLED = 'The call was cancelled: the run was stopped'

/** The model-facing name of an MCP tool: `<server>__<tool>`, the tool's name made to fit TOOL_NAME. */
const mcpName = (server: string, tool: string) => `${server}__${tool.replace(/[^a-zA-Z0-9_-]/g, '_')}`.slice(0, 64)

type Resolved =
  | { kind: 'builtin'; info: ToolInfo; tool: BuiltinTool }
  | { kind: 'mcp'; info: ToolInfo; server: McpServerTools; toolName: string }

export interface ToolsDeps {
  database: Database
  logger: Logger
  events: ToolEvents
  builtins: BuiltinTool[]
  /** the MCP module; absent, only built-ins exist */
  mcp?: McpToolSource
  /** a setting for this user: their personal value, else the global one (configs) */
  settingFor: (userId: string, group: string, name: string) => Promise<string | null>
}

export function createToolsService(deps: ToolsDeps) {
  const { database, logger, events } = deps
  const { db, t } = database
  const builtins = new Map(deps.builtins.map((b) => [b.name, b]))
  for (const name of builtins.keys()) if (!TOOL_NAME.test(name)) throw new Error(`bad built-in tool name ${name}`)

  /** `tools.requires_approval`: the built-ins whose calls this user approves one by one. */
  async function approvalsOf(userId: string): Promise<Set<string>> {
    const value = await deps.settingFor(userId, 'tools', 'requires_approval')
    return new Set((value ?? '').split(',').map((s) => s.trim()).filter(Boolean))
  }

  /** Every tool the caller may use, by name. */
  async function catalogue(p: Principal): Promise<Map<string, Resolved>> {
    const [approvals, servers] = await Promise.all([approvalsOf(p.userId), deps.mcp ? deps.mcp.servers(p) : []])
    const all = new Map<string, Resolved>()
    for (const tool of builtins.values())
      all.set(tool.name, {
        kind: 'builtin',
        tool,
        info: { name: tool.name, description: tool.description, source: 'builtin', serverId: null, serverName: null, inputSchema: tool.inputSchema, requiresApproval: approvals.has(tool.name), enabled: true },
      })
    for (const server of servers)
      for (const tool of server.tools) {
        const name = mcpName(server.name, tool.name)
        if (all.has(name)) continue // two tool names made alike by the renaming: the first keeps it
        all.set(name, {
          kind: 'mcp',
          server,
          toolName: tool.name,
          info: { name, description: tool.description ?? '', source: 'mcp', serverId: server.id, serverName: server.name, inputSchema: tool.inputSchema, requiresApproval: server.requiresApproval, enabled: true },
        })
      }
    return all
  }

  async function resolve(p: Principal, name: string): Promise<Resolved> {
    const found = (await catalogue(p)).get(name)
    if (!found) throw toolNotFound(name)
    return found
  }

  /** Run a resolved tool whose arguments passed its schema: logged, announced, timed out. Throws only for a 422 or 502 the tool raised. */
  async function invoke(p: Principal, found: Resolved, args: Record<string, unknown>, origin: CallOrigin): Promise<ToolOutcome> {
    const logId = newId()
    const started = performance.now()
    const { name } = found.info
    void events.publish(p.userId, { event: 'tool_started', data: { log_id: logId, tool: name } }).catch(() => {})
    let result: ToolResult | undefined
    let failure: unknown
    try {
      if (found.kind === 'builtin') {
        const timeout = AbortSignal.timeout(BUILTIN_TIMEOUT_MS)
        result = await found.tool.call(args, { principal: p, signal: origin.signal ? AbortSignal.any([origin.signal, timeout]) : timeout })
      } else {
        result = await deps.mcp!.call(p, found.server.id, found.toolName, args, origin.signal ?? new AbortController().signal)
      }
    } catch (error) {
      // the caller's run was stopped (the MCP server was sent notifications/cancelled): a result saying so, not a failure of the tool
      if (origin.signal?.aborted) result = failedResult(CANCELLED)
      else failure = error
    }
    const durationMs = Math.round(performance.now() - started)
    const isError = result?.isError ?? true
    const preview = result ? resultText(result) : failure instanceof AppError ? failure.detail : 'The tool failed'
    if (failure && !(failure instanceof AppError)) logger.error('tool call failed', { error: failure, tool: name })
    const argumentsJson = JSON.stringify(args)
    await db
      .insert(t.toolLogs)
      .values({
        id: logId,
        userId: p.userId,
        tool: name,
        serverId: found.info.serverId,
        arguments: argumentsJson.length > MAX_LOGGED_ARGUMENTS ? argumentsJson.slice(0, MAX_LOGGED_ARGUMENTS) : args,
        resultPreview: cutToBytes(preview, RESULT_PREVIEW_BYTES),
        isError,
        durationMs,
        source: origin.source,
        conversationId: origin.conversationId ?? null,
        taskId: origin.taskId ?? null,
      })
      .catch((error) => logger.warn('could not log a tool call', { error, tool: name }))
    void events.publish(p.userId, { event: 'tool_finished', data: { log_id: logId, tool: name, is_error: isError, duration_ms: durationMs } }).catch(() => {})
    if (failure) throw failure instanceof AppError ? failure : toolFailed()
    return { result: result!, durationMs, logId }
  }

  function checked(found: Resolved, args: Record<string, unknown>) {
    const problems = schemaProblems(found.info.inputSchema, args, 'arguments')
    if (problems.length) throw invalidArguments(found.info.name, problems)
  }

  return {
    /** Every tool the caller may use: built-ins first, then each server's. */
    list: async (p: Principal): Promise<ToolInfo[]> => [...(await catalogue(p)).values()].map((r) => r.info),

    /**
     * Call a tool for a client: 404 unknown, 422 arguments that fail its schema (or a built-in not
     * configured), 502 an MCP server that cannot be reached; a tool that reports failure is `isError`.
     */
    async call(p: Principal, name: string, args: Record<string, unknown>, origin: CallOrigin): Promise<ToolOutcome> {
      const found = await resolve(p, name)
      checked(found, args)
      return invoke(p, found, args, origin)
    },

    /**
     * Call a tool for a run (chat, tasks): never throws for anything the model or the tool did —
     * an unknown tool, bad arguments (a model's arguments are JSON text), a refused or failed call
     * all come back as an `isError` result saying why, for the model to read.
     */
    async execute(p: Principal, name: string, argumentsJson: string, origin: CallOrigin): Promise<ToolOutcome> {
      const started = performance.now()
      const failed = (message: string): ToolOutcome => ({ result: failedResult(message), durationMs: Math.round(performance.now() - started), logId: '' })
      let args: unknown
      try {
        args = argumentsJson.trim() ? JSON.parse(argumentsJson) : {}
      } catch {
        return failed('The arguments are not valid JSON')
      }
      if (typeof args !== 'object' || args === null || Array.isArray(args)) return failed('The arguments must be a JSON object')
      try {
        const found = await resolve(p, name)
        checked(found, args as Record<string, unknown>)
        return await invoke(p, found, args as Record<string, unknown>, origin)
      } catch (error) {
        if (!(error instanceof AppError)) throw error
        const fields = error.errors?.map((e) => `${e.path}: ${e.message}`).join('; ')
        return failed(fields ? `${error.detail} (${fields})` : error.detail)
      }
    },

    /** The tools `names` offers a model, as the model is told of them, and which of them wait for approval. Unknown names are left out. */
    async forModel(p: Principal, names: readonly string[]): Promise<{ specs: ToolSpec[]; needsApproval: Set<string> }> {
      if (!names.length) return { specs: [], needsApproval: new Set() }
      const all = await catalogue(p)
      const specs: ToolSpec[] = []
      const needsApproval = new Set<string>()
      for (const name of new Set(names)) {
        const found = all.get(name)
        if (!found) continue
        specs.push({ name, description: found.info.description, parameters: found.info.inputSchema })
        if (found.info.requiresApproval) needsApproval.add(name)
      }
      return { specs, needsApproval }
    },

    /** The names among `names` that are no tool the caller may use (for checking what a conversation or preset names). */
    async unknownOf(p: Principal, names: readonly string[]): Promise<string[]> {
      if (!names.length) return []
      const all = await catalogue(p)
      return names.filter((n) => !all.has(n))
    },

    async logs(f: LogFilter): Promise<Page<ToolLogRow>> {
      const conditions: (SQL | undefined)[] = [
        eq(t.toolLogs.userId, f.userId),
        f.tool ? eq(t.toolLogs.tool, f.tool) : undefined,
        f.source ? eq(t.toolLogs.source, f.source) : undefined,
        f.isError === undefined ? undefined : eq(t.toolLogs.isError, f.isError),
        f.from ? gte(t.toolLogs.createdAt, f.from) : undefined,
        f.to ? lte(t.toolLogs.createdAt, f.to) : undefined,
      ]
      return pageOfTable(db, t.toolLogs, and(...conditions), [desc(t.toolLogs.createdAt), desc(t.toolLogs.id)], f)
    },
  }
}

export type ToolsService = ReturnType<typeof createToolsService>
