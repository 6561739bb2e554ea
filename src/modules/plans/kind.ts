/**
 * @module The `plan` task kind: the plan runner (runner.ts) driven by a task row (`input: { type,
 * input }`, `model_id`) for its owner, its turns reported as steps — `task_progress`, a
 * `message_created` when the answer goes to repair, `usage` per turn (added to the task's usage).
 * The engine stores `task_completed` with the result, or `error` with the failure. A plan claimed
 * again after a crash runs from the start (its finished turns were charged; a plan is one or two
 * turns, so nothing long is redone).
 */
import { eq } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import type { ModelTurns } from '../../generation/model-turn.ts'
import type { Principal } from '../auth/service.ts'
import { createPlanRunner, PlanFailure } from './runner.ts'

type TaskRow = Database['t']['tasks']['$inferSelect']
type Usage = { inputTokens: number; outputTokens: number; cost: number }

/** What the engine hands a runner (src/tasks/engine.ts TaskRun), as far as plans use it. */
export interface PlanTaskRun {
  task: TaskRow
  signal: AbortSignal
  emit(event: string, data: unknown, effect?: { progress?: number; usage?: Usage }): Promise<void>
}

export function planKind(deps: {
  database: Database
  turns: ModelTurns
  /** the engine's failure (TaskFailure): its code and message become the task's error; retryable ones are tried again */
  failure: (code: string, message: string, retryable: boolean) => Error
}) {
  const { database, turns, failure } = deps
  const { db, t } = database
  const runPlan = createPlanRunner({ turns })

  return async function runPlanTask(run: PlanTaskRun): Promise<{ result: unknown }> {
    const { task } = run
    const { type, input } = task.input as { type?: string; input?: Record<string, unknown> }
    const [user] = await db.select({ role: t.users.role }).from(t.users).where(eq(t.users.id, task.userId))
    if (!user) throw failure('NOT_FOUND', "The plan's user is gone", false)
    const [planType] = type ? await db.select().from(t.planTypes).where(eq(t.planTypes.id, type)) : []
    if (!planType) throw failure('NOT_FOUND', `The plan type '${type ?? ''}' no longer exists`, false)
    const principal: Principal = { userId: task.userId, role: user.role, via: 'session', sessionId: null, apiKeyId: null, scopes: [] }

    await run.emit('task_progress', { progress: 10, message: 'Asking the model' }, { progress: 10 })
    try {
      const out = await runPlan({
        principal,
        planType,
        input: input ?? {},
        modelId: task.modelId,
        signal: run.signal,
        async onTurn({ attempt, usage, problems }) {
          await run.emit('usage', { input_tokens: usage.inputTokens, output_tokens: usage.outputTokens, cost: usage.cost }, { usage })
          if (attempt === 1 && problems.length) {
            await run.emit('message_created', { message: `The answer did not match the output schema (${problems.length} problem${problems.length === 1 ? '' : 's'}): asking the model to repair it` }, { progress: 60 })
          } else if (!problems.length) {
            await run.emit('task_progress', { progress: 90, message: 'The answer is valid' }, { progress: 90 })
          }
        },
      })
      return { result: out.result }
    } catch (error) {
      if (error instanceof PlanFailure) throw failure(error.code, error.message, error.retryable)
      throw error
    }
  }
}
