/** @module The sessions wire (docs/api.md §20 "Sessions"): Session and its messages, request bodies, the events of a reply's stream, and row → wire mappings. */
import { z } from 'zod'
import type { Database } from '../../db/index.ts'
import { eventStreamOf, isoDate, listQuery, type FinalStreamEvent } from '../../lib/schemas.ts'
import type { Run } from '../../runs/index.ts'
import { toolResultSchema } from '../tools/model.ts'
import type { SessionMessageDto } from './types.ts'

export type SessionRow = Database['t']['workflowSessions']['$inferSelect']
export type SessionMessageRow = Database['t']['sessionMessages']['$inferSelect']

/** The longest message a user may send. */
export const MAX_SESSION_MESSAGE_LENGTH = 100_000
/** How much of the last message `last_message_summary` keeps. */
export const SUMMARY_LENGTH = 100

export const sessionSchema = z
  .object({
    id: z.string(),
    title: z.string().nullable(),
    workflow_id: z.string(),
    agent_id: z.string().nullable().describe('The agent (type `workflow`) that answers; null: the built-in workflow editor'),
    status: z.enum(['active', 'archived']),
    last_message_summary: z.string().nullable().describe(`The first ${SUMMARY_LENGTH} characters of the last message`),
    message_count: z.number().int(),
    created_at: isoDate,
    updated_at: isoDate,
  })
  .meta({ id: 'WorkflowSession' })

export const sessionMessageSchema = z
  .object({
    id: z.string(),
    role: z.enum(['user', 'assistant']),
    content: z.string(),
    created_at: isoDate,
  })
  .meta({ id: 'SessionMessage' })

/** A message as the list shows it: the wire message and how far it got (a reply being written is `streaming`). */
export const sessionMessageListItem = sessionMessageSchema.extend({ status: z.enum(['complete', 'streaming', 'stopped', 'error']) })

const title = z.string().trim().min(1).max(200)
const agentId = z.string().min(1).max(64).nullable().optional().describe('An active agent of type `workflow` you can use (global or yours; `422` otherwise); null or absent: the built-in workflow editor')

export const createSessionBody = z.object({
  workflow_id: z.string().min(1).max(64).describe('One of your workflows (`422` otherwise)'),
  title: title.optional().describe('Absent: the first words of the first message'),
  agent_id: agentId,
})
export const patchSessionBody = z.object({ title: title.optional(), status: z.enum(['active', 'archived']).optional(), agent_id: agentId })
export const sendMessageBody = z.object({ content: z.string().trim().min(1).max(MAX_SESSION_MESSAGE_LENGTH) })
export const listSessionsQuery = listQuery.extend({ workflow_id: z.string().min(1).max(64).optional(), status: z.enum(['active', 'archived']).optional() })

export function toSessionDto(s: SessionRow): z.infer<typeof sessionSchema> {
  return {
    id: s.id,
    title: s.title,
    workflow_id: s.workflowId,
    agent_id: s.agentId,
    status: s.status,
    last_message_summary: s.lastMessageSummary,
    message_count: s.messageCount,
    created_at: s.createdAt.toISOString(),
    updated_at: s.updatedAt.toISOString(),
  }
}

export const toSessionMessageDto = (m: SessionMessageRow): SessionMessageDto => ({ id: m.id, role: m.role, content: m.content, created_at: m.createdAt.toISOString() })
export const toSessionMessageListItem = (m: SessionMessageRow) => ({ ...toSessionMessageDto(m), status: m.status })

/** What `data` holds in each event of a reply's run (GET /sessions/{id}/stream); turn.ts emits through these. */
export const sessionEventData = {
  'message.received': z
    .object({ session_id: z.string(), message: sessionMessageSchema, client_msg_id: z.string().optional() })
    .describe('A stored message: the user message first (with the `client_msg_id` a socket sent), the finished reply just before `done`'),
  delta: z.object({ session_id: z.string(), message_id: z.string(), text: z.string() }).describe('The next piece of the reply (`message_id`: the reply being written)'),
  tool_call: z.object({ id: z.string(), name: z.string(), arguments: z.string().describe('JSON text') }).describe('The agent calls a tool'),
  workflow_locked: z.object({ workflow_id: z.string(), reason: z.string() }).describe('`update_workflow` took the lock: other writers of the workflow get `409` until `workflow_unlocked`'),
  workflow_unlocked: z.object({ workflow_id: z.string() }).describe('`update_workflow` let the lock go'),
  tool_result: z.object({ id: z.string(), name: z.string(), result: toolResultSchema, is_error: z.boolean() }).describe('A call is over; the next model turn gets its result'),
  usage: z.object({ input_tokens: z.number().int(), output_tokens: z.number().int(), cost: z.number() }).describe("The reply's tokens and cost, every model turn added up; just before `done`"),
  error: z.object({ code: z.string(), message: z.string() }).describe('The reply failed (the model, or the credits for a later turn); `done` follows'),
  done: z
    .object({ session_id: z.string(), message_id: z.string(), finish_reason: z.enum(['stop', 'length', 'tool_calls', 'content_filter', 'other', 'stopped', 'error']) })
    .describe('Always the last event'),
}

export const emitSessionEvent = <E extends keyof typeof sessionEventData>(run: Run, event: E, data: z.input<(typeof sessionEventData)[E]>) => run.emit(event, data)

export const sessionEventSchema = eventStreamOf(sessionEventData).meta({ id: 'SessionEvent', description: 'One event of a session reply stream: `id:`, `event:` and a one-line JSON `data:`' })

export type SessionEventData = { [E in keyof typeof sessionEventData]: z.output<(typeof sessionEventData)[E]> }
export type SessionStreamEvent = { [E in keyof SessionEventData]: { id: number; event: E; data: SessionEventData[E] } }[keyof SessionEventData] | FinalStreamEvent
