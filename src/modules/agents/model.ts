/** @module The agents wire: the Agent and AgentExecution objects, the request bodies and queries, and the mappings to and from the service's camelCase. */
import { z } from 'zod'
import { isoDate, listQuery } from '../../lib/schemas.ts'
import { DEFAULT_AGENT_MAX_STEPS, type AgentInput, type AgentRow, type ExecutionRow } from './service.ts'

const agentType = z.enum(['assistant', 'planner', 'sql', 'workflow', 'custom'])
const agentStatus = z.enum(['active', 'disabled'])
const agentScope = z.enum(['global', 'personal'])
const executionStatus = z.enum(['running', 'completed', 'failed', 'cancelled'])

export const agentSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    type: agentType,
    description: z.string().nullable(),
    model_id: z.string().nullable(),
    system_prompt: z.string().nullable(),
    temperature: z.number().nullable(),
    max_tokens: z.number().int().nullable(),
    tools_config: z.object({ tools: z.array(z.string()), max_steps: z.number().int() }),
    status: agentStatus,
    scope: agentScope,
    created_at: isoDate,
    updated_at: isoDate,
  })
  .meta({ id: 'Agent' })

const toolsConfig = z.object({
  tools: z.array(z.string().trim().min(1).max(100)).max(50).optional().describe('Tool names as `GET /tools` lists them; unknown ones are `422`'),
  max_steps: z.number().int().min(1).max(50).optional().describe(`Model turns a task may take (default ${DEFAULT_AGENT_MAX_STEPS}); in chat, rounds of tool calls`),
})

export const agentBody = z.object({
  name: z.string().trim().min(1).max(100),
  type: agentType.optional().describe('default `assistant`'),
  description: z.string().max(500).nullable().optional(),
  model_id: z.string().trim().min(1).max(200).nullable().meta({ description: 'a model you can use, by id or name (422 otherwise); null: the conversation’s or the default' }).optional(),
  system_prompt: z.string().max(20_000).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  max_tokens: z.number().int().min(1).max(1_000_000).nullable().optional(),
  tools_config: toolsConfig.optional(),
  status: agentStatus.optional().describe('default `active`'),
  scope: agentScope.optional().describe('default `global` for admins, `personal` for everyone else; fixed at creation'),
})

/** scope is fixed at creation */
export const agentPatch = agentBody.omit({ scope: true }).partial()

export const agentListQuery = listQuery.extend({ type: agentType.optional(), status: agentStatus.optional(), scope: agentScope.optional() })

export const executionSchema = z
  .object({
    id: z.string(),
    agent_id: z.string(),
    task_id: z.string().nullable(),
    conversation_id: z.string().nullable(),
    session_id: z.string().nullable(),
    execution_type: z.enum(['task', 'chat', 'session', 'plan']),
    status: executionStatus,
    duration_ms: z.number().int().nullable(),
    token_usage: z.object({ input_tokens: z.number().int(), output_tokens: z.number().int(), total_tokens: z.number().int() }),
    cost: z.number(),
    tool_calls: z.number().int(),
    started_at: isoDate,
    finished_at: isoDate.nullable(),
  })
  .meta({ id: 'AgentExecution' })

export const executionListQuery = listQuery.extend({
  status: executionStatus.optional(),
  session_id: z.string().max(64).optional(),
  conversation_id: z.string().max(64).optional(),
  from: z.iso.datetime({ offset: true }).optional().describe('started at or after'),
  to: z.iso.datetime({ offset: true }).optional().describe('started before'),
})

export const toAgentDto = (a: AgentRow): z.infer<typeof agentSchema> => ({
  id: a.id,
  name: a.name,
  type: a.type,
  description: a.description,
  model_id: a.modelId,
  system_prompt: a.systemPrompt,
  temperature: a.temperature,
  max_tokens: a.maxTokens,
  tools_config: { tools: a.tools ?? [], max_steps: a.maxSteps ?? DEFAULT_AGENT_MAX_STEPS },
  status: a.status,
  scope: a.userId === null ? 'global' : 'personal',
  created_at: a.createdAt.toISOString(),
  updated_at: a.updatedAt.toISOString(),
})

export const toExecutionDto = (e: ExecutionRow): z.infer<typeof executionSchema> => ({
  id: e.id,
  agent_id: e.agentId,
  task_id: e.taskId,
  conversation_id: e.conversationId,
  session_id: e.sessionId,
  execution_type: e.executionType,
  status: e.status,
  duration_ms: e.durationMs,
  token_usage: { input_tokens: e.inputTokens, output_tokens: e.outputTokens, total_tokens: e.inputTokens + e.outputTokens },
  cost: e.cost,
  tool_calls: e.toolCalls,
  started_at: e.startedAt.toISOString(),
  finished_at: e.finishedAt?.toISOString() ?? null,
})

type AgentBody = z.infer<typeof agentBody>

/** The service input of a body; a field the body leaves out stays undefined (a PATCH leaves it alone). */
export function fromAgentBody(body: AgentBody): AgentInput
export function fromAgentBody(body: Partial<AgentBody>): Partial<AgentInput>
export function fromAgentBody(body: Partial<AgentBody>): Partial<AgentInput> {
  return {
    name: body.name,
    type: body.type,
    description: body.description,
    modelId: body.model_id,
    systemPrompt: body.system_prompt,
    temperature: body.temperature,
    maxTokens: body.max_tokens,
    tools: body.tools_config?.tools,
    maxSteps: body.tools_config?.max_steps,
    status: body.status,
    scope: body.scope,
  }
}
