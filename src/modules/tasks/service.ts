/**
 * @module Tasks (docs/api.md §16): a user's durable background work, run by the engine
 * (src/tasks/engine.ts) or, for `external` tasks, recorded by the caller's own runtime. Each task
 * belongs to one user and is invisible (404) to everyone else. External tasks are created
 * `running` and are never claimed by workers; they end when the caller posts a terminal step
 * (`task_completed` with `data.result`, `error` with `data.code`/`data.message`, or
 * `task_cancelled`), or on cancel.
 */
import { and, asc, count, desc, eq, ne, type SQL } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { pageOfTable, type Page } from '../../db/query.ts'
import type { ModelTurns } from '../../generation/model-turn.ts'
import { randomToken, sha256 } from '../../lib/crypto.ts'
import type { EventFeed, SseEvent } from '../../lib/sse.ts'
import { deletedEvent, type Subscriptions } from '../../runs/subscriptions.ts'
import { stepEvent, type StepRow, type TaskEngine, type TaskRow } from '../../tasks/engine.ts'
import type { Principal } from '../auth/service.ts'
import type { TaskApprovals } from './approvals.ts'
import { noPendingApproval, notRetryable, promptRequired, runByHearth, stepDataTooLarge, stepNotFound, taskFinished, taskNotFound, taskRunning, taskNotRunning, taskShareNotFound, unknownAgent } from './errors.ts'
import { MAX_STEP_DATA_CHARS, toStepDto, toTaskDto, type TASK_KINDS, type TASK_STATUSES } from './model.ts'

export const taskTopic = (id: string) => `task:${id}`
const FINISHED = ['completed', 'failed', 'cancelled'] as const

export interface CreateTaskInput {
  prompt?: string
  input?: Record<string, unknown>
  agentId?: string
  modelId?: string
  tools?: string[]
  maxSteps?: number
  title?: string
  kind?: 'agent' | 'external'
}

export function createTasksService(deps: { database: Database; engine: TaskEngine; turns: ModelTurns; subscriptions: Subscriptions; approvals: TaskApprovals }) {
  const { database, engine, turns, subscriptions } = deps
  const { db, t } = database

  async function get(userId: string, id: string): Promise<TaskRow> {
    const [row] = await db.select().from(t.tasks).where(and(eq(t.tasks.id, id), eq(t.tasks.userId, userId)))
    if (!row) throw taskNotFound()
    return row
  }

  const reread = async (id: string) => (await db.select().from(t.tasks).where(eq(t.tasks.id, id)))[0]!

  async function ownStep(userId: string, stepId: string) {
    const [row] = await db.select({ step: t.taskSteps, kind: t.tasks.kind, status: t.tasks.status }).from(t.taskSteps).innerJoin(t.tasks, eq(t.tasks.id, t.taskSteps.taskId)).where(and(eq(t.taskSteps.id, stepId), eq(t.tasks.userId, userId)))
    if (!row) throw stepNotFound()
    return row
  }

  const checkData = (data: unknown) => {
    if (data !== undefined && JSON.stringify(data).length > MAX_STEP_DATA_CHARS) throw stepDataTooLarge(MAX_STEP_DATA_CHARS)
  }

  /** The steps `steps` as SSE with `delayMs` between them, then `done`. */
  function playbackFeed(steps: { seq: number; step: string; data: unknown }[], delayMs: number): EventFeed {
    let i = 0
    let next = Date.now()
    let finished = false
    return {
      read(): SseEvent | null | undefined {
        if (finished) return null
        if (Date.now() < next) return undefined
        if (i < steps.length) {
          const s = steps[i++]!
          next = Date.now() + delayMs
          return stepEvent(s.seq, s.step, s.data)
        }
        finished = true
        return { event: 'done', data: { steps: steps.length } }
      },
      wait(wake) {
        const timer = setTimeout(wake, Math.max(0, next - Date.now()))
        return () => clearTimeout(timer)
      },
    }
  }

  return {
    get,

    /** A new task, pending (external: running); workers everywhere are woken. 422 for an unknown agent or model. */
    async create(p: Principal, input: CreateTaskInput): Promise<TaskRow> {
      const kind = input.kind ?? 'agent'
      const taskInput = { ...(input.input ?? {}), ...(input.prompt !== undefined ? { prompt: input.prompt } : {}) }
      if (input.agentId) {
        const [agent] = await db.select({ id: t.agents.id, userId: t.agents.userId, status: t.agents.status }).from(t.agents).where(eq(t.agents.id, input.agentId))
        if (!agent || agent.status !== 'active' || (agent.userId !== null && agent.userId !== p.userId)) throw unknownAgent(input.agentId)
      }
      if (kind === 'agent') {
        if (typeof taskInput.prompt !== 'string' || !taskInput.prompt.trim()) throw promptRequired()
        if (input.modelId) await turns.model(p, input.modelId)
      }
      const now = new Date()
      const [row] = await db
        .insert(t.tasks)
        .values({
          userId: p.userId,
          kind,
          title: input.title ?? (typeof taskInput.prompt === 'string' ? taskInput.prompt.slice(0, 80) : null),
          agentId: input.agentId ?? null,
          modelId: input.modelId ?? null,
          input: taskInput,
          tools: input.tools ?? [],
          maxSteps: input.maxSteps ?? null,
          status: kind === 'external' ? 'running' : 'pending',
          startedAt: kind === 'external' ? now : null,
          createdAt: now,
          updatedAt: now,
        })
        .returning()
      if (kind !== 'external') await engine.announce()
      return row!
    },

    list(userId: string, q: { status?: (typeof TASK_STATUSES)[number]; kind?: (typeof TASK_KINDS)[number]; agent_id?: string; limit: number; offset: number }): Promise<Page<TaskRow>> {
      const where: SQL[] = [eq(t.tasks.userId, userId)]
      if (q.status) where.push(eq(t.tasks.status, q.status))
      if (q.kind) where.push(eq(t.tasks.kind, q.kind))
      if (q.agent_id) where.push(eq(t.tasks.agentId, q.agent_id))
      return pageOfTable(db, t.tasks, and(...where), [desc(t.tasks.createdAt), desc(t.tasks.id)], q)
    },

    /** 409 while it runs (a task claimed meanwhile is not deleted). Its open streams end with `task_deleted`. */
    async remove(userId: string, id: string) {
      const task = await get(userId, id)
      if (task.status === 'running' && task.kind !== 'external') throw taskRunning()
      const gone = await db
        .delete(t.tasks)
        .where(and(eq(t.tasks.id, id), task.kind === 'external' ? undefined : ne(t.tasks.status, 'running')))
        .returning({ id: t.tasks.id })
      if (!gone.length) throw (await get(userId, id)).status === 'running' ? taskRunning() : taskNotFound()
      await subscriptions.endTopic(taskTopic(id), deletedEvent('task_deleted'))
    },

    /**
     * Cancel: the task becomes `cancelled` with a `task_cancelled` step at once. Its worker, on
     * whichever instance, gets that event on the bus and aborts the run (its later writes are
     * fenced off by the cleared lease). 409 when it had finished.
     */
    async cancel(userId: string, id: string): Promise<TaskRow> {
      const task = await get(userId, id)
      if ((FINISHED as readonly string[]).includes(task.status)) throw taskFinished(task.status)
      const seq = await engine.record(id, 'task_cancelled', { task_id: id }, { status: 'cancelled', cancelRequested: true, whenStatus: ['pending', 'running'] })
      const row = await reread(id)
      if (seq === undefined) throw taskFinished(row.status)
      return row
    },

    /**
     * The user's decision on a tool call the running task waits for (approvals.ts), from any
     * instance: 404 when no such call waits (or the task is another user's), 409 when the task is
     * not running.
     */
    async decideApproval(userId: string, id: string, toolCallId: string, approve: boolean) {
      const task = await get(userId, id)
      if (task.status !== 'running') throw taskNotRunning(task.status)
      const call = await deps.approvals.decide(id, toolCallId, approve)
      if (call === 'not_running') throw taskNotRunning((await reread(id)).status)
      if (!call) throw noPendingApproval()
      return { tool_call_id: call.id, tool: call.tool, arguments: call.arguments, approved: approve }
    },

    /** A failed or cancelled task goes back to pending (attempts from 0); 409 otherwise. */
    async retry(userId: string, id: string): Promise<TaskRow> {
      const task = await get(userId, id)
      if (task.kind === 'external' || (task.status !== 'failed' && task.status !== 'cancelled')) throw notRetryable(task.kind === 'external' ? 'external' : task.status)
      const [row] = await db
        .update(t.tasks)
        .set({ status: 'pending', attempts: 0, error: null, result: null, progress: 0, finishedAt: null, cancelRequested: false, leaseOwner: null, leaseUntil: null, runAfter: null, updatedAt: new Date() })
        .where(and(eq(t.tasks.id, id), eq(t.tasks.status, task.status)))
        .returning()
      if (!row) throw notRetryable((await reread(id)).status)
      await engine.record(id, 'message_created', { message: 'The task was retried' })
      await engine.announce()
      return reread(id)
    },

    async steps(userId: string, id: string, q: { step?: string; limit: number; offset: number }): Promise<Page<StepRow>> {
      await get(userId, id)
      const where = and(eq(t.taskSteps.taskId, id), q.step ? eq(t.taskSteps.step, q.step) : undefined)
      return pageOfTable(db, t.taskSteps, where, [asc(t.taskSteps.seq)], q)
    },

    /** An external runtime's step: stored, then sent live. A terminal step name ends the task. 409 for tasks Hearth runs or finished ones. */
    async postStep(userId: string, id: string, body: { step: string; data?: unknown; timestamp?: string }): Promise<StepRow> {
      const task = await get(userId, id)
      if (task.kind !== 'external') throw runByHearth()
      checkData(body.data)
      if ((FINISHED as readonly string[]).includes(task.status)) throw taskFinished(task.status)
      const d = (body.data ?? {}) as Record<string, unknown>
      const effect =
        body.step === 'task_completed'
          ? { status: 'completed' as const, result: d.result ?? null, progress: 100 }
          : body.step === 'error'
            ? { status: 'failed' as const, error: { code: String(d.code ?? 'EXTERNAL_ERROR'), message: String(d.message ?? 'The external task failed') } }
            : body.step === 'task_cancelled'
              ? { status: 'cancelled' as const }
              : body.step === 'task_progress' && typeof d.progress === 'number'
                ? { progress: Math.max(0, Math.min(100, Math.round(d.progress))) }
                : {}
      const seq = await engine.record(id, body.step, body.data ?? null, { ...effect, whenStatus: ['pending', 'running'] }, body.timestamp ? new Date(body.timestamp) : undefined)
      if (seq === undefined) throw taskFinished((await reread(id)).status)
      const [row] = await db.select().from(t.taskSteps).where(and(eq(t.taskSteps.taskId, id), eq(t.taskSteps.seq, seq)))
      return row!
    },

    getStep: async (userId: string, stepId: string) => (await ownStep(userId, stepId)).step,

    /** Change an external task's step (its seq stays); 409 for the steps of tasks Hearth runs. */
    async putStep(userId: string, stepId: string, body: { step?: string; data?: unknown; timestamp?: string }): Promise<StepRow> {
      const own = await ownStep(userId, stepId)
      if (own.kind !== 'external') throw runByHearth()
      checkData(body.data)
      const [row] = await db
        .update(t.taskSteps)
        .set({ ...(body.step ? { step: body.step } : {}), ...(body.data !== undefined ? { data: body.data } : {}), ...(body.timestamp ? { timestamp: new Date(body.timestamp) } : {}) })
        .where(eq(t.taskSteps.id, stepId))
        .returning()
      return row!
    },

    async deleteStep(userId: string, stepId: string) {
      const own = await ownStep(userId, stepId)
      if (own.kind !== 'external') throw runByHearth()
      await db.delete(t.taskSteps).where(eq(t.taskSteps.id, stepId))
    },

    /** The recorded steps replayed with `delaySeconds` between them. */
    async playback(userId: string, id: string, delaySeconds: number): Promise<EventFeed> {
      await get(userId, id)
      const steps = await db.select().from(t.taskSteps).where(eq(t.taskSteps.taskId, id)).orderBy(asc(t.taskSteps.seq))
      return playbackFeed(steps, delaySeconds * 1000)
    },

    /** A frozen snapshot of the task and its steps behind a new token (sharing again replaces it). */
    async share(userId: string, id: string): Promise<string> {
      const task = await get(userId, id)
      const steps = await db.select().from(t.taskSteps).where(eq(t.taskSteps.taskId, id)).orderBy(asc(t.taskSteps.seq))
      const token = randomToken(24)
      const snapshot = { task: toTaskDto(task), steps: steps.map(toStepDto) }
      await db.delete(t.taskShares).where(eq(t.taskShares.taskId, id))
      await db.insert(t.taskShares).values({ taskId: id, tokenHash: sha256(token), snapshot })
      return token
    },

    async unshare(userId: string, id: string) {
      await get(userId, id)
      const gone = await db.delete(t.taskShares).where(eq(t.taskShares.taskId, id)).returning({ id: t.taskShares.id })
      if (!gone.length) throw taskShareNotFound()
    },

    /** The snapshot behind a task share token, or undefined (the token may be a conversation's). */
    async shared(token: string) {
      const [row] = await db.select().from(t.taskShares).where(eq(t.taskShares.tokenHash, sha256(token)))
      if (!row) return undefined
      return { ...(row.snapshot as { task: ReturnType<typeof toTaskDto>; steps: ReturnType<typeof toStepDto>[] }), created_at: row.createdAt.toISOString() }
    },

    async sharedPlayback(token: string, delaySeconds: number): Promise<EventFeed> {
      const [row] = await db.select().from(t.taskShares).where(eq(t.taskShares.tokenHash, sha256(token)))
      if (!row) throw taskShareNotFound()
      const steps = (row.snapshot as { steps: ReturnType<typeof toStepDto>[] }).steps
      return playbackFeed(steps, delaySeconds * 1000)
    },

    /** The task counts of /users/me/stats. */
    async countsOf(userId: string) {
      const [n] = await db.select({ n: count() }).from(t.tasks).where(eq(t.tasks.userId, userId))
      return { tasks: Number(n?.n ?? 0) }
    },

    /** The task counts of /system/status. */
    async totals() {
      const [n] = await db.select({ n: count() }).from(t.tasks)
      return { tasks: Number(n?.n ?? 0) }
    },
  }
}

export type TasksService = ReturnType<typeof createTasksService>
