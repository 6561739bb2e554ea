/** @module The tasks wire: Task, Step, the request bodies and queries, the task events, and the row → DTO mappings. */
import { z } from 'zod'
import { eventStreamOf, isoDate, listQuery, queryInteger, withDefault } from '../../lib/schemas.ts'
import type { StepRow, TaskRow } from '../../tasks/engine.ts'

export const TASK_KINDS = ['agent', 'plan', 'workflow', 'external'] as const
export const TASK_STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const
/** The largest `data` of one posted step, as JSON text. */
export const MAX_STEP_DATA_CHARS = 256 * 1024

export const taskSchema = z
  .object({
    id: z.string(),
    kind: z.enum(TASK_KINDS),
    title: z.string().nullable(),
    agent_id: z.string().nullable(),
    input: z.record(z.string(), z.unknown()),
    status: z.enum(TASK_STATUSES),
    progress: z.number().int(),
    result: z.unknown(),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
    attempts: z.number().int(),
    max_attempts: z.number().int(),
    usage: z.object({ input_tokens: z.number().int(), output_tokens: z.number().int(), cost: z.number() }),
    created_at: isoDate,
    started_at: isoDate.nullable(),
    finished_at: isoDate.nullable(),
    updated_at: isoDate,
  })
  .meta({ id: 'Task' })

export const stepSchema = z
  .object({ id: z.string(), task_id: z.string(), seq: z.number().int(), step: z.string(), data: z.unknown(), timestamp: isoDate, created_at: isoDate })
  .meta({ id: 'TaskStep' })

export const createTaskBody = z.object({
  prompt: z.string().min(1).optional(),
  input: z.record(z.string(), z.unknown()).optional(),
  agent_id: z.string().min(1).max(64).optional(),
  model_id: z.string().min(1).max(200).optional(),
  tools: z.array(z.string().min(1).max(200)).max(100).optional(),
  max_steps: z.number().int().min(1).max(50).optional(),
  title: z.string().max(200).optional(),
  kind: z.enum(['agent', 'external']).optional(),
  use_stream: z.boolean().optional(),
})

export const listTasksQuery = listQuery.extend({ status: z.enum(TASK_STATUSES).optional(), kind: z.enum(TASK_KINDS).optional(), agent_id: z.string().min(1).max(64).optional() })

export const stepsQuery = listQuery.extend({ step: z.string().min(1).max(100).optional(), limit: withDefault(queryInteger(1, 500), 100) })

const stepName = z.string().min(1).max(100).regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits and _ . : - only')
export const postStepBody = z.object({ step: stepName, data: z.unknown().optional(), timestamp: z.iso.datetime({ offset: true }).optional() })
export const putStepBody = z.object({ step: stepName.optional(), data: z.unknown().optional(), timestamp: z.iso.datetime({ offset: true }).optional() })

export const playbackQuery = z.object({ delay: withDefault(z.string().regex(/^\d{1,2}(\.\d{1,3})?$/, 'seconds, like 0.5').pipe(z.coerce.number<string>().min(0).max(5)), 0.5) })

export const shareSchema = z.object({ share_token: z.string(), url: z.string() }).meta({ id: 'TaskShare' })
export const sharedTaskSchema = z.object({ task: taskSchema, steps: z.array(stepSchema), created_at: isoDate }).meta({ id: 'SharedTask' })

const usage = z.object({ input_tokens: z.number().int(), output_tokens: z.number().int(), cost: z.number() })
export const taskEventData = {
  task_started: z.object({ task_id: z.string(), attempt: z.number().int() }),
  message_created: z.object({ message: z.string() }),
  task_progress: z.object({ progress: z.number().int(), message: z.string() }),
  agent_message: z.object({ agent: z.string(), content: z.string() }),
  delta: z.object({ text: z.string() }),
  tool_called: z.object({ id: z.string(), tool: z.string(), arguments: z.string() }),
  tool_approval_required: z
    .object({ id: z.string(), tool: z.string(), arguments: z.string() })
    .describe('The call waits for `POST /tasks/{id}/tool-approvals` (at most 10 minutes; then it is refused)'),
  tool_approval: z.object({ id: z.string(), approved: z.boolean(), decision: z.enum(['approved', 'declined', 'timeout']) }).describe('The decision on a call that waited for approval'),
  tool_result: z.object({ id: z.string(), tool: z.string(), result: z.string(), is_error: z.boolean(), duration_ms: z.number() }),
  step: z.object({ step: z.string(), data: z.unknown() }),
  usage,
  task_completed: z.object({ task_id: z.string(), result: z.unknown() }),
  task_cancelled: z.object({ task_id: z.string() }),
  error: z.object({ task_id: z.string(), code: z.string(), message: z.string() }),
}
export const taskEventSchema = eventStreamOf(taskEventData).meta({ id: 'TaskEvent', description: 'One event of a task stream: `id:` is the step seq (deltas have none), `event:` and a one-line JSON `data:`' })

const iso = (d: Date | null) => (d ? d.toISOString() : null)

export const toTaskDto = (r: TaskRow): z.infer<typeof taskSchema> => ({
  id: r.id,
  kind: r.kind,
  title: r.title,
  agent_id: r.agentId,
  input: r.input,
  status: r.status,
  progress: r.progress,
  result: r.result ?? null,
  error: r.error ?? null,
  attempts: r.attempts,
  max_attempts: r.maxAttempts,
  usage: { input_tokens: r.inputTokens, output_tokens: r.outputTokens, cost: r.cost },
  created_at: r.createdAt.toISOString(),
  started_at: iso(r.startedAt),
  finished_at: iso(r.finishedAt),
  updated_at: r.updatedAt.toISOString(),
})

export const toStepDto = (s: StepRow): z.infer<typeof stepSchema> => ({ id: s.id, task_id: s.taskId, seq: s.seq, step: s.step, data: s.data ?? null, timestamp: s.timestamp.toISOString(), created_at: s.createdAt.toISOString() })
