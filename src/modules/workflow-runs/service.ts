/**
 * @module Starting a workflow run: the checks a caller can act on at once — the workflow is theirs
 * (404 otherwise), has a service, is in ComfyUI's API format (the UI format is refused naming it),
 * and every input override names a node and one of its inputs — then a pending task of kind
 * `workflow` (input `{ workflow_id, inputs }`) that the engine runs (runner.ts), and the workflow's
 * `last_used_at`.
 */
import type { Database } from '../../db/index.ts'
import type { TaskRow } from '../../tasks/engine.ts'
import type { WorkflowsApi } from '../workflows/types.ts'
import { invalidRunInputs, notApiFormat, uiFormatWorkflow, workflowWithoutService } from './errors.ts'
import { applyOverrides, formatOf } from './prompt.ts'
import type { WorkflowTaskInput } from './runner.ts'

export function createWorkflowRunsService(deps: {
  database: Database
  workflows: Pick<WorkflowsApi, 'get' | 'serviceOf' | 'touch'>
  /** wakes the task workers once the task is written (the task engine's `announce`) */
  announce: () => Promise<unknown>
}) {
  const { database, workflows } = deps
  const { db, t } = database

  return {
    async start(userId: string, workflowId: string, inputs: Record<string, unknown> = {}): Promise<TaskRow> {
      const workflow = await workflows.get(userId, workflowId)
      const format = formatOf(workflow.workflowData)
      if (format.format === 'ui') throw uiFormatWorkflow()
      if (format.format !== 'api') throw notApiFormat(format.problem)
      const applied = applyOverrides(format.prompt, inputs)
      if ('problems' in applied) throw invalidRunInputs(applied.problems)
      if (!(await workflows.serviceOf(workflow))) throw workflowWithoutService()

      const now = new Date()
      const input: WorkflowTaskInput = { workflow_id: workflow.id, inputs }
      const [row] = await db
        .insert(t.tasks)
        .values({ userId, kind: 'workflow', title: `Run of ${workflow.name}`.slice(0, 200), input: input as unknown as Record<string, unknown>, status: 'pending', createdAt: now, updatedAt: now })
        .returning()
      await workflows.touch(workflow.id)
      await deps.announce()
      return row!
    },
  }
}

export type WorkflowRunsService = ReturnType<typeof createWorkflowRunsService>
