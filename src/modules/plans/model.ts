/** @module The plans wire: plan types, plan bodies and answers, and the row → DTO mappings. */
import { z } from 'zod'
import { isoDate } from '../../lib/schemas.ts'
import type { PlanTypeInput } from './builtins.ts'
import type { PlanRow, PlanTypeRow, PlanWithTask } from './service.ts'

const jsonSchema = z.record(z.string(), z.unknown()).meta({ description: 'a JSON Schema (draft 2020-12)' })
const taskStatus = z.enum(['pending', 'running', 'completed', 'failed', 'cancelled'])

export const planTypeSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    input_schema: jsonSchema,
    output_schema: jsonSchema,
    prompt: z.string(),
    is_builtin: z.boolean(),
    created_at: isoDate,
    updated_at: isoDate,
  })
  .meta({ id: 'PlanType' })


const planTypeFields = {
  name: z.string().trim().min(1).max(200),
  description: z.string().max(2000).nullable().optional(),
  input_schema: jsonSchema,
  output_schema: jsonSchema,
  prompt: z.string().trim().min(1).max(20_000),
}

export const planTypeBody = z.object({
  id: z.string().regex(/^[a-z0-9_-]{1,64}$/, 'must be 1 to 64 of a-z, 0-9, _ and -'),
  ...planTypeFields,
})
export const planTypePatch = z.object(planTypeFields).partial()

export const fromPlanTypeBody = (b: z.infer<typeof planTypeBody>): PlanTypeInput => ({ id: b.id, ...fromPlanTypePatch(b) }) as PlanTypeInput
export const fromPlanTypePatch = (b: z.infer<typeof planTypePatch>): Partial<Omit<PlanTypeInput, 'id'>> => ({
  name: b.name,
  description: b.description,
  inputSchema: b.input_schema,
  outputSchema: b.output_schema,
  prompt: b.prompt,
})

export const toPlanTypeDto = (r: PlanTypeRow): z.infer<typeof planTypeSchema> => ({
  id: r.id,
  name: r.name,
  description: r.description,
  input_schema: r.inputSchema,
  output_schema: r.outputSchema,
  prompt: r.prompt,
  is_builtin: r.isBuiltin,
  created_at: r.createdAt.toISOString(),
  updated_at: r.updatedAt.toISOString(),
})

/** Loose: for `pet_diet` the input's fields may stand at the top level; other unknown fields are ignored. */
export const planBody = z.looseObject({
  type: z.string().min(1).max(64),
  input: z.record(z.string(), z.unknown()).optional(),
  model_id: z.string().min(1).max(200).optional(),
  use_stream: z.boolean().optional(),
})

export const planAccepted = z.object({ plan_id: z.string(), task_id: z.string(), status: z.literal('pending') }).meta({ id: 'PlanAccepted' })

export const planSummarySchema = z.object({ id: z.string(), type: z.string(), title: z.string().nullable(), status: taskStatus, created_at: isoDate }).meta({ id: 'PlanSummary' })

export const planSchema = z
  .object({ id: z.string(), type: z.string(), input: z.record(z.string(), z.unknown()), status: taskStatus, result: z.unknown().nullable(), task_id: z.string(), created_at: isoDate })
  .meta({ id: 'Plan' })

export const toPlanSummaryDto = (r: { plan: PlanRow; status: z.infer<typeof taskStatus> }): z.infer<typeof planSummarySchema> => ({
  id: r.plan.id,
  type: r.plan.type,
  title: r.plan.title,
  status: r.status,
  created_at: r.plan.createdAt.toISOString(),
})

export const toPlanDto = ({ plan, task }: PlanWithTask): z.infer<typeof planSchema> => ({
  id: plan.id,
  type: plan.type,
  input: plan.input,
  status: task.status,
  result: task.result ?? null,
  task_id: plan.taskId,
  created_at: plan.createdAt.toISOString(),
})
