/** @module The chat module's wire: request and response schemas, and the mapping of rows to them (docs/api.md §11). */
import { z } from 'zod'
import type { Database } from '../../db/index.ts'
import { DEFAULT_MAX_TOOL_ROUNDS } from '../../generation/tool-loop.ts'
import { eventStreamOf, isoDate, type FinalStreamEvent } from '../../lib/schemas.ts'
import type { Run } from '../../runs/index.ts'
import { toolResultSchema } from '../tools/model.ts'

export type ConversationRow = Database['t']['conversations']['$inferSelect']
export type MessageRow = Database['t']['messages']['$inferSelect']

export const conversationSchema = z
  .object({
    id: z.string(),
    title: z.string().nullable(),
    model_id: z.string().nullable(),
    preset_id: z.string().nullable(),
    agent_id: z.string().nullable().describe('The agent whose model, prompt, settings and tools its answers use (what the conversation sets itself comes first)'),
    connection_id: z.string().nullable().describe('The data connection its questions are answered from with SQL (docs/api.md §19, "Questions in chat"); null: a plain chat'),
    system_prompt: z.string().nullable(),
    tools: z.array(z.string()).describe('The tools its answers may call (`GET /tools` names); empty: its preset’s'),
    is_favorite: z.boolean(),
    message_count: z.number().int(),
    created_at: isoDate,
    updated_at: isoDate,
  })
  .meta({ id: 'Conversation' })

export const messageSchema = z
  .object({
    id: z.string(),
    conversation_id: z.string(),
    parent_id: z.string().nullable(),
    role: z.enum(['system', 'user', 'assistant', 'tool']),
    content: z.string(),
    parts: z.array(z.unknown()).optional(),
    status: z.enum(['complete', 'streaming', 'stopped', 'error']),
    metadata: z.record(z.string(), z.unknown()),
    created_at: isoDate,
  })
  .meta({ id: 'Message' })

export const conversationWithMessages = conversationSchema.extend({ messages: z.array(messageSchema) })
export const turnSchema = z.object({ user_message: messageSchema, assistant_message: messageSchema })
export const sharedSchema = z.object({ title: z.string().nullable(), messages: z.array(z.object({ role: z.string(), content: z.string(), created_at: isoDate })), created_at: isoDate })

const optText = (max: number) => z.string().max(max).nullable().optional()
const toolNames = z.array(z.string().trim().min(1).max(100)).max(50).optional().describe('Tool names as `GET /tools` lists them; unknown ones are `422`')
const agentId = optText(64).describe('An active agent you can use (global or yours; `422` otherwise); null clears it')
const connectionId = optText(64).describe('A data connection you can use (yours or a global one; `422` otherwise): answers are questions over SQL on it; null clears it')
export const conversationBody = z.object({ title: optText(200), model_id: optText(200), preset_id: optText(64), agent_id: agentId, connection_id: connectionId, system_prompt: optText(20_000), tools: toolNames })
export const conversationPatch = z.object({ title: optText(200), is_favorite: z.boolean().optional(), model_id: optText(200), agent_id: agentId, connection_id: connectionId, system_prompt: optText(20_000), tools: toolNames })
export const sendBody = z.object({
  content: z.string().trim().min(1).max(200_000),
  model_id: z.string().max(200).optional(),
  parent_id: z.string().max(64).nullable().optional(),
  temperature: z.number().min(0).max(2).optional(),
  max_tokens: z.number().int().min(1).max(1_000_000).optional(),
  max_tool_rounds: z.number().int().min(0).max(20).optional().describe(`Rounds of tool calls before the answer must come (default ${DEFAULT_MAX_TOOL_ROUNDS})`),
  connection_id: connectionId.describe('Sets the conversation’s data connection for this answer and the later ones (as on create; null clears it); absent: the conversation’s'),
})
export const regenerateBody = sendBody.omit({ content: true, parent_id: true, connection_id: true }).optional()
export const messageParams = z.object({ id: z.string().min(1).max(64), message_id: z.string().min(1).max(64) })
export const listConversationsQuery = { q: z.string().max(200).optional(), favorites: z.enum(['true', 'false']).optional() }
export const chatStreamQuery = z.object({
  query: z.string().trim().min(1).max(20_000),
  model: z.string().max(200).optional(),
  conversation_id: z.string().max(64).optional(),
  connection_id: z.string().min(1).max(64).optional().describe('Answer with SQL on this data connection (and keep it as the conversation’s)'),
  language: z.enum(['zh', 'en']).optional(),
})

export function toConversationDto(c: ConversationRow) {
  return {
    id: c.id,
    title: c.title,
    model_id: c.modelId,
    preset_id: c.presetId,
    agent_id: c.agentId,
    connection_id: c.connectionId,
    system_prompt: c.systemPrompt,
    tools: c.tools,
    is_favorite: c.isFavorite,
    message_count: c.messageCount,
    created_at: c.createdAt.toISOString(),
    updated_at: c.updatedAt.toISOString(),
  }
}

/** A message on the wire — in responses and in the `message.created` event of a run. */
export function toMessageDto(m: MessageRow) {
  return {
    id: m.id,
    conversation_id: m.conversationId,
    parent_id: m.parentId,
    role: m.role,
    content: m.content,
    parts: m.parts ?? undefined,
    status: m.status,
    metadata: m.metadata,
    created_at: m.createdAt.toISOString(),
  }
}

/** Camel-case inputs from the bodies above. */
export const fromSendBody = (b: z.infer<typeof sendBody>) => ({ content: b.content, parentId: b.parent_id, modelId: b.model_id, temperature: b.temperature, maxTokens: b.max_tokens, maxToolRounds: b.max_tool_rounds, connectionId: b.connection_id })
export const fromConversationBody = (b: z.infer<typeof conversationBody> & { is_favorite?: boolean }) => ({
  title: b.title,
  modelId: b.model_id,
  presetId: b.preset_id,
  agentId: b.agent_id,
  connectionId: b.connection_id,
  systemPrompt: b.system_prompt,
  tools: b.tools,
  isFavorite: b.is_favorite,
})

export const approvalBody = z.object({ tool_call_id: z.string().min(1).max(200), approve: z.boolean() })
export const approvalSchema = z.object({ tool_call_id: z.string(), tool: z.string(), arguments: z.string().describe('JSON text'), approved: z.boolean() }).meta({ id: 'ToolApproval' })

/** A chart of a query result (docs/api.md §19, "Charts"; src/modules/connections/charts.ts builds it). */
const chartSchema = z.object({
  type: z.enum(['bar', 'line', 'pie', 'scatter', 'number', 'table']),
  title: z.string(),
  x: z.string().nullable().describe('The category, time or first number column; null for `number` and `table`'),
  y: z.array(z.string()).describe('The value columns'),
  data: z.array(z.record(z.string(), z.unknown())).describe('The rows as objects keyed by column name (at most 500)'),
  truncated: z.boolean().describe('`data` shows only part of the result'),
  vega_lite: z.record(z.string(), z.unknown()).describe('A complete Vega-Lite v5 spec with the data inline'),
})

/** What `data` holds in each event of a chat run (docs/api.md §11); the run's events are emitted through these types (turns.ts). */
export const chatEventData = {
  'message.created': z.object({ conversation_id: z.string(), user_message: messageSchema, assistant_message_id: z.string() }).describe('Always the first event'),
  delta: z.object({ text: z.string() }).describe('The next piece of the answer'),
  reasoning: z.object({ text: z.string() }).describe("The next piece of the model's reasoning (models that expose it)"),
  tool_call: z.object({ id: z.string(), name: z.string(), arguments: z.string().describe('JSON text') }).describe('The model calls a tool'),
  tool_approval_required: z
    .object({ id: z.string().describe('The call, as `tool_call` named it'), tool: z.string(), arguments: z.string().describe('JSON text') })
    .describe('The call waits for `POST /conversations/{id}/tool-approvals` (at most 10 minutes; then it is refused)'),
  tool_result: z
    .object({ id: z.string(), name: z.string(), result: toolResultSchema.describe('What the model is sent: the result’s text (cut to 16,000 characters), and its structured content when small'), is_error: z.boolean() })
    .describe('A call is over (or was refused); the next model turn gets its result'),
  progress: z
    .object({ stage: z.enum(['analyzing', 'generating_sql', 'executing', 'retrying']), message: z.string().describe('What is happening, for people; for `retrying`, why the query failed (the database’s message)') })
    .describe('A question over SQL moves on (conversations with a `connection_id`)'),
  result: z
    .object({
      sql: z.string(),
      columns: z.array(z.object({ name: z.string(), type: z.string() })),
      rows: z.array(z.array(z.unknown())),
      rows_count: z.number().int(),
      truncated: z.boolean().describe('More rows exist than were read (the row cap) or sent (1 MB of rows in this event)'),
      duration_ms: z.number(),
    })
    .describe('The query of a question over SQL ran'),
  visualization: z.object({ chart: chartSchema }).describe('The result as a chart, when it suits one (never `table`: `result` is the table)'),
  usage: z.object({ input_tokens: z.number().int(), output_tokens: z.number().int(), cost: z.number() }).describe("The answer's tokens and cost: every model turn of the answer added up; just before `done`"),
  error: z.object({ code: z.string(), message: z.string() }).describe('The model call failed; `done` follows'),
  title: z.object({ conversation_id: z.string(), title: z.string() }).describe("The conversation's new title, given by its first exchange; just before `done`"),
  done: z
    .object({ conversation_id: z.string(), message_id: z.string(), finish_reason: z.enum(['stop', 'length', 'tool_calls', 'content_filter', 'other', 'stopped', 'error']) })
    .describe('Always the last event'),
}

/** An event of a chat run, its data typed by the schema that documents it. */
export const emitChatEvent = <E extends keyof typeof chatEventData>(run: Run, event: E, data: z.input<(typeof chatEventData)[E]>) => run.emit(event, data)

export const chatEventSchema = eventStreamOf(chatEventData).meta({ id: 'ChatEvent', description: 'One event of a chat stream: `id:`, `event:` and a one-line JSON `data:`' })

/** Each chat event's `data` as the schemas above give it; turns.ts emits through them, so the two cannot drift. */
export type ChatEventData = { [E in keyof typeof chatEventData]: z.output<(typeof chatEventData)[E]> }

/**
 * One item of a chat stream as a client reads it — what Eden's `for await` over a streamed send
 * yields: `{ id, event, data }` per event, and the final events without an id that end a stream
 * early (lib/schemas.ts eventStreamOf).
 */
export type ChatStreamEvent = { [E in keyof ChatEventData]: { id: number; event: E; data: ChatEventData[E] } }[keyof ChatEventData] | FinalStreamEvent
