/** @module POST /api/v1/workflows/{id}/runs (docs/api.md §20 "Runs"): a workflow run on its ComfyUI service, as a task. */
import { Elysia } from 'elysia'
import { idParams, problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { taskSchema, toTaskDto } from '../tasks/model.ts'
import { runBody } from './model.ts'
import type { WorkflowRunsService } from './service.ts'

export function workflowRunRoutes(deps: { runs: WorkflowRunsService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { runs } = deps
  return new Elysia({ name: 'hearth.routes.workflow-runs', prefix: '/api/v1', detail: { tags: ['Workflows'] } })
    .use(deps.authPlugin)
    .post(
      '/workflows/:id/runs',
      async ({ principal, params, body, set }) => {
        const task = await runs.start(principal.userId, params.id, body?.inputs)
        set.status = 202
        set.headers.location = `/api/v1/tasks/${task.id}`
        return toTaskDto(task)
      },
      {
        auth: true,
        params: idParams,
        body: runBody,
        response: { 202: taskSchema, ...problems(401, 403, 404, 422, 429) },
        detail: {
          summary: 'Run a workflow',
          description:
            "Queues a task of kind `workflow` (`202` + `Location: /api/v1/tasks/{id}`) that sends the workflow, with `inputs` set (`\"<node_id>.<input>\": value`), to its ComfyUI service, reports the engine's progress as `task_progress` steps (with `node`, and `value`/`max` within a node), stores the output files as your files (purpose `workflow_output`) and completes with `result: { prompt_id, outputs: [{ node, file_id, url, file_name, content_type }] }`. Refused with `422` before a task is made: a workflow in ComfyUI's UI format (export it with 'Save (API Format)'), one without a service, an input naming no node or no input of that node (paths `inputs.<key>`). Another user's workflow is `404`. An engine error fails the task with `UPSTREAM_ERROR` and the engine's message; cancelling the task interrupts the run on the engine.",
        },
      },
    )
}
