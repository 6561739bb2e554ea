/** @module /api/v1/plan-types and /api/v1/plans (docs/api.md §18): structured generation run as tasks. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { idParams, listQuery, page, pageOf, problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { taskEventStream, wantsStream, type TaskEvents } from '../tasks/routes.ts'
import * as m from './model.ts'
import type { PlansService } from './service.ts'

export function planRoutes(deps: { plans: PlansService; taskEvents: TaskEvents; authPlugin: ReturnType<typeof authPlugin> }) {
  const { plans, taskEvents } = deps
  return new Elysia({ name: 'hearth.routes.plans', prefix: '/api/v1', detail: { tags: ['Plans'] } })
    .use(deps.authPlugin)
    .get(
      '/plan-types',
      async ({ query }) => {
        const { rows, total } = await plans.listTypes(query)
        return pageOf(rows.map(m.toPlanTypeDto), total, query)
      },
      { auth: true, query: listQuery, response: { 200: page(m.planTypeSchema), ...problems(401, 403, 422, 429) }, detail: { summary: 'List plan types', description: 'Every plan type, built-ins (`pet_diet`) first: its prompt and its input and output JSON Schemas.' } },
    )
    .post(
      '/plan-types',
      async ({ body, set }) => {
        const row = await plans.createType(m.fromPlanTypeBody(body))
        set.status = 201
        set.headers.location = `/api/v1/plan-types/${row.id}`
        return m.toPlanTypeDto(row)
      },
      {
        auth: 'admin',
        body: m.planTypeBody,
        response: { 201: m.planTypeSchema, ...problems(401, 403, 409, 422, 429) },
        detail: { summary: 'Create a plan type', description: 'Admins only. `id` is 1–64 of `a-z0-9_-` (`409` when taken); `input_schema` and `output_schema` must be JSON Schemas that compile (`422` naming the field).' },
      },
    )
    .get('/plan-types/:id', async ({ params }) => m.toPlanTypeDto(await plans.getType(params.id)), {
      auth: true,
      params: idParams,
      response: { 200: m.planTypeSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a plan type', description: 'One plan type, by id.' },
    })
    .patch('/plan-types/:id', async ({ params, body }) => m.toPlanTypeDto(await plans.updateType(params.id, m.fromPlanTypePatch(body))), {
      auth: 'admin',
      params: idParams,
      body: m.planTypePatch,
      response: { 200: m.planTypeSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Change a plan type', description: 'Admins only; the fields given change, `id` does not. Built-in types are read-only (`403`).' },
    })
    .delete(
      '/plan-types/:id',
      async ({ params, set }) => {
        await plans.removeType(params.id)
        set.status = 204
      },
      {
        auth: 'admin',
        params: idParams,
        response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) },
        detail: { summary: 'Delete a plan type', description: 'Admins only; built-in types are read-only (`403`). Plans already made keep their input and result.' },
      },
    )
    .post(
      '/plans',
      async ({ principal, body, request, set }) => {
        const { type, input, model_id, use_stream: _, ...rest } = body
        const { plan, task } = await plans.create(principal, { type, input, rest, modelId: model_id })
        if (wantsStream(body, request)) return taskEvents(principal, task.id)
        set.status = 202
        set.headers.location = `/api/v1/plans/${plan.id}`
        return { plan_id: plan.id, task_id: task.id, status: 'pending' as const }
      },
      {
        auth: true,
        body: m.planBody,
        response: { 202: m.planAccepted, ...problems(401, 403, 422, 429) },
        detail: {
          summary: 'Make a plan',
          description:
            "Checks `input` against the type's input schema (`422` with field errors under `input.…`; an unknown `type` or `model_id` is `422` naming it), then queues a `plan` task: `202` with the plan's and the task's ids. For `pet_diet` the input's fields may also stand at the top level of the body. Follow the task (`GET /api/v1/tasks/{task_id}/events`) or poll `GET /api/v1/plans/{id}`. With `Accept: text/event-stream` or `use_stream: true`, the task's events stream at once instead, ending with `task_completed { task_id, result }` (or `error`).",
          ...taskEventStream,
        },
      },
    )
    .get(
      '/plans/history',
      async ({ principal, query }) => {
        const { rows, total } = await plans.history(principal.userId, query)
        return pageOf(rows.map(m.toPlanSummaryDto), total, query)
      },
      { auth: true, query: listQuery, response: { 200: page(m.planSummarySchema), ...problems(401, 403, 422, 429) }, detail: { summary: 'List your plans', description: 'Your plans, newest first, each with its task\'s status.' } },
    )
    .get('/plans/:id', async ({ principal, params }) => m.toPlanDto(await plans.get(principal.userId, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: m.planSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a plan', description: "One of your plans, with its task's status and, once completed, its `result` (JSON valid against the type's output schema). Another user's plan is `404`." },
    })
    .delete(
      '/plans/:id',
      async ({ principal, params, set }) => {
        await plans.remove(principal.userId, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 409, 422, 429) }, detail: { summary: 'Delete a plan', description: 'The plan and its task. A plan whose task is running: `409` (cancel the task first).' } },
    )
}
