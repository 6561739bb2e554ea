/** @module The tools wire: tools, calls, logs and the tool events, and the mappings from the service's camelCase. */
import { z } from 'zod'
import { eventStreamOf, isoDate, listQuery, type FinalStreamEvent } from '../../lib/schemas.ts'
import type { ToolInfo, ToolOutcome } from './service.ts'

const jsonSchemaObject = z.record(z.string(), z.unknown()).describe('JSON Schema')

export const toolSchema = z
  .object({
    name: z.string(),
    description: z.string(),
    source: z.enum(['builtin', 'mcp']),
    server_id: z.string().nullable(),
    server_name: z.string().nullable(),
    input_schema: jsonSchemaObject,
    requires_approval: z.boolean(),
    enabled: z.boolean(),
  })
  .meta({ id: 'Tool' })

export const toolListSchema = z.object({ items: z.array(toolSchema) })

export const toToolDto = (t: ToolInfo): z.infer<typeof toolSchema> => ({
  name: t.name,
  description: t.description,
  source: t.source,
  server_id: t.serverId,
  server_name: t.serverName,
  input_schema: t.inputSchema,
  requires_approval: t.requiresApproval,
  enabled: t.enabled,
})

export const callBody = z.object({
  tool: z.string().min(1).max(200),
  arguments: z.record(z.string(), z.unknown()).optional().describe('The arguments, checked against the tool’s input schema (default `{}`)'),
})

/** MCP's content parts (`text`, `image`, `resource`, …) as the tool returned them. */
const contentPart = z.looseObject({ type: z.string() })

export const toolResultSchema = z.object({ content: z.array(contentPart), structured_content: z.unknown().optional() }).meta({ id: 'ToolResult' })

export const callResultSchema = z.object({ result: toolResultSchema, is_error: z.boolean(), duration_ms: z.number().int(), log_id: z.string() }).meta({ id: 'ToolCallResult' })

export const toResultDto = (r: ToolOutcome['result']) => ({ content: r.content, ...(r.structuredContent === undefined ? {} : { structured_content: r.structuredContent }) })

export const toCallDto = (o: ToolOutcome): z.infer<typeof callResultSchema> => ({ result: toResultDto(o.result), is_error: o.result.isError, duration_ms: o.durationMs, log_id: o.logId })

const toolSource = z.enum(['api', 'chat', 'task', 'session'])

export const logSchema = z
  .object({
    id: z.string(),
    tool: z.string(),
    server_id: z.string().nullable(),
    arguments: z.unknown(),
    result_preview: z.string().nullable().describe('The start of the result as text, at most 2 KB'),
    is_error: z.boolean(),
    duration_ms: z.number().int(),
    source: toolSource,
    conversation_id: z.string().nullable(),
    task_id: z.string().nullable(),
    created_at: isoDate,
  })
  .meta({ id: 'ToolLog' })

export const logQuery = listQuery.extend({
  tool: z.string().max(200).optional(),
  source: toolSource.optional(),
  is_error: z.enum(['true', 'false']).optional(),
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  user_id: z.string().max(64).optional().describe("Admins: another user's logs"),
})

type LogRow = { id: string; tool: string; serverId: string | null; arguments: unknown; resultPreview: string | null; isError: boolean; durationMs: number; source: z.infer<typeof toolSource>; conversationId: string | null; taskId: string | null; createdAt: Date }

export const toLogDto = (l: LogRow): z.infer<typeof logSchema> => ({
  id: l.id,
  tool: l.tool,
  server_id: l.serverId,
  arguments: l.arguments,
  result_preview: l.resultPreview,
  is_error: l.isError,
  duration_ms: l.durationMs,
  source: l.source,
  conversation_id: l.conversationId,
  task_id: l.taskId,
  created_at: l.createdAt.toISOString(),
})

export const toolEventData = {
  tool_started: z.object({ log_id: z.string(), tool: z.string() }).describe('A call of one of your tools started (from any source, on any instance)'),
  tool_finished: z.object({ log_id: z.string(), tool: z.string(), is_error: z.boolean(), duration_ms: z.number().int() }).describe('That call ended; its log is written'),
  server_status: z.object({ server_id: z.string(), status: z.enum(['connected', 'error']), error: z.string().nullable() }).describe('An MCP server you can use connected or failed'),
}

export const toolEventSchema = eventStreamOf(toolEventData).meta({ id: 'ToolEvent', description: 'One event of the tool activity stream' })

type ToolEventData = { [E in keyof typeof toolEventData]: z.output<(typeof toolEventData)[E]> }
export type ToolStreamEvent = { [E in keyof ToolEventData]: { id: number; event: E; data: ToolEventData[E] } }[keyof ToolEventData] | FinalStreamEvent

