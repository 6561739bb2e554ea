/**
 * @module Approvals of an agent task's tool calls, across instances, kept in the task's steps. A
 * call that needs approval is recorded as `tool_approval_required { id, tool, arguments }` and
 * waits; the decision — `POST /tasks/{id}/tool-approvals` on any instance, or the worker's own
 * timeout — is recorded as `tool_approval { id, approved, decision }` under a lock per task, so
 * the first one written holds and a late one is refused. A call is pending while its
 * `tool_approval_required` step (in the current run) has no `tool_approval` after it. The worker
 * hears of a decision through the engine's events (every stored step reaches the instance running
 * the task) and re-reads on each heartbeat, so a missed bus message only delays it. A stop (cancel,
 * hand-back) writes nothing: a resumed run waits for the same call again.
 */
import { and, asc, eq, inArray } from 'drizzle-orm'
import type { Database, Db } from '../../db/index.ts'
import { withLock } from '../../db/lock.ts'
import { APPROVAL_TIMEOUT_MS, waitForDecision } from '../../generation/approval-wait.ts'
import type { ApprovalDecision } from '../../generation/tool-loop.ts'
import { currentRun, TERMINAL_EVENTS, type StepRow, type TaskEngine, type TaskRun } from '../../tasks/engine.ts'

/** A call waiting for approval, as its `tool_approval_required` step has it. */
export interface PendingTaskApproval {
  id: string
  tool: string
  arguments: string
}

/** What the steps of a run say of its approvals: the calls asked about (with when), and the decisions. */
export function approvalsIn(steps: StepRow[]) {
  const asked = new Map<string, { call: PendingTaskApproval; at: Date }>()
  const decided = new Map<string, ApprovalDecision>()
  for (const s of steps) {
    const d = (s.data ?? {}) as Record<string, unknown>
    if (s.step === 'tool_approval_required') asked.set(String(d.id), { call: { id: String(d.id), tool: String(d.tool), arguments: String(d.arguments ?? '{}') }, at: s.timestamp })
    else if (s.step === 'tool_approval' && !decided.has(String(d.id))) decided.set(String(d.id), d.decision === 'timeout' ? 'timeout' : d.approved === true ? 'approved' : 'declined')
  }
  return { asked, decided }
}

const lockName = (taskId: string) => `task-tool-approvals:${taskId}`

export function createTaskApprovals(deps: { database: Database; engine: Pick<TaskEngine, 'record'>; timeoutMs?: number }) {
  const { database } = deps
  const { t } = database
  const timeoutMs = deps.timeoutMs ?? APPROVAL_TIMEOUT_MS

  async function stateOf(q: Db, taskId: string) {
    const rows = await q
      .select()
      .from(t.taskSteps)
      .where(and(eq(t.taskSteps.taskId, taskId), inArray(t.taskSteps.step, ['tool_approval_required', 'tool_approval', ...TERMINAL_EVENTS])))
      .orderBy(asc(t.taskSteps.seq))
    return approvalsIn(currentRun(rows))
  }

  return {
    /**
     * The runner's side: wait for the decision on call `callId` (asked at `askedAt`: the timeout
     * counts from then, after a resume too). A stop resolves `stopped` and records nothing.
     */
    wait(run: TaskRun, callId: string, askedAt: Date): Promise<ApprovalDecision> {
      const taskId = run.task.id
      return waitForDecision({
        deadline: askedAt.getTime() + timeoutMs,
        signal: run.signal,
        listen: run.onWake,
        settle: (fallback) =>
          withLock(database, lockName(taskId), async (q) => {
            const decided = (await stateOf(q, taskId)).decided.get(callId)
            if (decided || fallback !== 'timeout') return decided ?? fallback
            try {
              await run.emit('tool_approval', { id: callId, approved: false, decision: 'timeout' })
              return 'timeout'
            } catch {
              return 'stopped' // the lease is gone: another attempt will decide
            }
          }),
      })
    },

    /**
     * The user's decision on a call waiting in running task `taskId` (whose owner the caller
     * checked), from any instance. `undefined`: no such call waits (never asked, decided already,
     * timed out); `not_running`: the task stopped running meanwhile.
     */
    decide(taskId: string, callId: string, approve: boolean): Promise<PendingTaskApproval | 'not_running' | undefined> {
      return withLock(database, lockName(taskId), async (q) => {
        const { asked, decided } = await stateOf(q, taskId)
        const waiting = asked.get(callId)
        if (!waiting || decided.has(callId)) return undefined
        const seq = await deps.engine.record(taskId, 'tool_approval', { id: callId, approved: approve, decision: approve ? 'approved' : 'declined' }, { whenStatus: ['running'] })
        return seq === undefined ? 'not_running' : waiting.call
      })
    },
  }
}

export type TaskApprovals = ReturnType<typeof createTaskApprovals>
