/**
 * @module The task engine: a durable queue on the database (the task row is the job, after
 * pg-boss) and the workers that run it. Kinds plug in with `registerKind(kind, runner)`; the engine
 * knows nothing of agents. Each instance runs up to `concurrency` tasks; a claim takes the oldest
 * pending task of the user with the fewest running (at most `userConcurrency` each, across
 * instances) or one whose lease ran out (attempts + 1). A heartbeat renews the leases and sees
 * cancellation; a cancel also reaches the worker at once as the `task_cancelled` event on the bus.
 * Workers wake on the bus when a task is created or retried and poll slowly besides. `close()`
 * hands running tasks back (pending, not counted as an attempt) so another instance resumes them.
 *
 * Every event is a step row first (store.ts), then published on the bus (`task_events`): followers
 * on any instance get each event once, in seq order, re-reading the database when they see a gap.
 * Deltas are the exception: live only, never stored, sent without an id.
 */
import { and, asc, eq, gt } from 'drizzle-orm'
import { defineChannel, type Bus } from '../db/bus.ts'
import type { Database } from '../db/index.ts'
import { newId } from '../lib/ids.ts'
import type { Logger } from '../lib/logger.ts'
import type { EventFeed, SseEvent } from '../lib/sse.ts'
import { createTaskStore, type NewStep, type StepEffect } from './store.ts'

export type TaskRow = Database['t']['tasks']['$inferSelect']
export type StepRow = Database['t']['taskSteps']['$inferSelect']

/** The events that end a task's run. */
export const TERMINAL_EVENTS = new Set(['task_completed', 'task_cancelled', 'error'])
/** The events Hearth itself sends; any other step name is an external runtime's, sent as `step { step, data }`. */
export const TASK_EVENTS = new Set(['task_started', 'message_created', 'task_progress', 'agent_message', 'delta', 'tool_called', 'tool_approval_required', 'tool_approval', 'tool_result', 'step', 'usage', 'task_completed', 'task_cancelled', 'error'])

/** A failure a runner reports: `retryable` ones (the upstream failed) are tried again with backoff up to max_attempts. */
export class TaskFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable = false,
  ) {
    super(message)
  }
}

/** A worker's write was refused: its lease is gone (taken over, cancelled, handed back, deleted). */
class LeaseLost extends Error {}

export interface TaskRun {
  task: TaskRow
  /** 1 for the first run, more after a reclaim or retry */
  attempt: number
  /** aborted when the task is cancelled, handed back or its lease is lost */
  signal: AbortSignal
  /** the steps of the current run (since the last terminal event), for resuming after a crash */
  history: StepRow[]
  /** store the event as a step, then send it (in call order) */
  emit(event: string, data: unknown, effect?: Pick<StepEffect, 'progress' | 'usage'>): Promise<void>
  /** several events stored together (all or none), then sent */
  emitAll(steps: NewStep[], effect?: Pick<StepEffect, 'progress' | 'usage'>): Promise<void>
  /** a live-only delta */
  delta(text: string): void
  /**
   * Call `wake` whenever a stored step of this task arrives on the bus (from any instance: a
   * decision posted elsewhere, say) and on every heartbeat, so a waiting runner re-reads the
   * database; returns how to stop.
   */
  onWake(wake: () => void): () => void
}

export type TaskRunner = (run: TaskRun) => Promise<{ result: unknown }>

export interface TaskEventMessage {
  task_id: string
  /** absent for deltas */
  seq?: number
  event: string
  data: unknown
}

const eventsChannel = defineChannel<TaskEventMessage>('task_events')
const wakeChannel = defineChannel<{ at: number }>('task_wake')

export interface EngineOptions {
  database: Database
  bus: Bus
  logger: Logger
  concurrency: number
  userConcurrency: number
  leaseMs: number
  /** first retry delay; doubled per attempt */
  retryBaseMs: number
  /** fallback poll; default min(5 s, lease / 2) */
  pollMs?: number
}

/** A step as an SSE event: Hearth's own by name, an external runtime's as `step`. */
export function stepEvent(seq: number, step: string, data: unknown): SseEvent {
  return TASK_EVENTS.has(step) ? { id: seq, event: step, data } : { id: seq, event: 'step', data: { step, data } }
}

/** The steps of the current run: those after the last terminal event. */
export function currentRun(steps: StepRow[]): StepRow[] {
  let from = 0
  steps.forEach((s, i) => {
    if (TERMINAL_EVENTS.has(s.step)) from = i + 1
  })
  return steps.slice(from)
}

export function createTaskEngine(opts: EngineOptions) {
  const { database, bus, logger } = opts
  const { db, t } = database
  const store = createTaskStore(database)
  const owner = newId()
  const runners = new Map<string, TaskRunner>()
  const active = new Map<string, { controller: AbortController; done: Promise<void> }>()
  const followers = new Map<string, Set<(m: TaskEventMessage) => void>>()
  /** the runners here waiting for something another instance may write (TaskRun.onWake) */
  const wakers = new Map<string, Set<() => void>>()
  const wakeRunners = (taskId: string) => {
    for (const w of wakers.get(taskId) ?? []) w()
  }
  const heartbeatMs = Math.max(200, Math.min(10_000, Math.floor(opts.leaseMs / 3)))
  const pollMs = opts.pollMs ?? Math.max(200, Math.min(5_000, Math.floor(opts.leaseMs / 2)))
  let started = false
  let closing = false
  let claimed = 0
  let pumping: Promise<void> | undefined
  let again = false
  let heartbeat: Timer | undefined
  let poll: Timer | undefined

  const unsubscribeEvents = bus.subscribe(eventsChannel, (m) => {
    for (const f of followers.get(m.task_id) ?? []) f(m)
    if (m.seq !== undefined) wakeRunners(m.task_id)
    // a cancel (or anything that ends the task elsewhere) stops its worker here
    if (m.seq !== undefined && TERMINAL_EVENTS.has(m.event)) active.get(m.task_id)?.controller.abort('ended')
  })
  const unsubscribeWake = bus.subscribe(wakeChannel, () => wake())

  /** Store steps (with `effect` on their task, at once) and send them; returns the last one's seq, undefined when refused. */
  async function recordMany(taskId: string, steps: NewStep[], effect?: StepEffect, timestamp?: Date): Promise<number | undefined> {
    const last = await store.append(taskId, steps, effect, timestamp)
    if (last === undefined) return undefined
    const first = last - steps.length + 1
    await Promise.all(steps.map((s, i) => bus.publish(eventsChannel, { task_id: taskId, seq: first + i, event: s.step, data: s.data }))).catch((error) => logger.warn('task event not sent', { error, task_id: taskId }))
    return last
  }

  /** Store a step (with `effect` on its task) and send it; returns its seq, undefined when refused. */
  const record = (taskId: string, event: string, data: unknown, effect?: StepEffect, timestamp?: Date) => recordMany(taskId, [{ step: event, data }], effect, timestamp)

  function wake() {
    if (!started || closing) return
    if (pumping) return void (again = true)
    pumping = (async () => {
      do {
        again = false
        while (!closing && active.size < opts.concurrency) {
          let id: string | undefined
          try {
            id = await store.claim(owner, [...runners.keys()], opts.leaseMs, opts.userConcurrency)
          } catch (error) {
            logger.warn('task claim failed', { error })
            break
          }
          if (!id) break
          claimed++
          if (closing) {
            await store.handBack(owner)
            break
          }
          runTask(id)
        }
      } while (again && !closing)
    })().finally(() => {
      pumping = undefined
      if (again) wake()
    })
  }

  function runTask(id: string) {
    const controller = new AbortController()
    const entry = { controller, done: Promise.resolve() }
    active.set(id, entry)
    entry.done = execute(id, controller)
      .catch((error) => logger.error('task run failed', { error, task_id: id }))
      .finally(() => {
        active.delete(id)
        wake()
      })
  }

  async function execute(id: string, controller: AbortController) {
    const [task] = await db.select().from(t.tasks).where(eq(t.tasks.id, id))
    if (!task) return
    const fenced = { owner }
    if (task.attempts > task.maxAttempts) {
      await record(id, 'error', { task_id: id, code: 'TASK_INTERRUPTED', message: `The task was interrupted ${task.attempts - 1} times` }, { ...fenced, status: 'failed', error: { code: 'TASK_INTERRUPTED', message: 'The task was interrupted too many times' } })
      return
    }
    const runner = runners.get(task.kind)
    if (!runner) return
    const steps = await db.select().from(t.taskSteps).where(eq(t.taskSteps.taskId, id)).orderBy(asc(t.taskSteps.seq))
    const history = currentRun(steps)
    let chain: Promise<unknown> = Promise.resolve()
    const emitAll = (batch: NewStep[], effect?: Pick<StepEffect, 'progress' | 'usage'>) => {
      const next = chain.then(async () => {
        if ((await recordMany(id, batch, { ...effect, ...fenced })) === undefined) throw new LeaseLost()
      })
      chain = next.catch(() => {})
      return next.catch((error) => {
        if (error instanceof LeaseLost) controller.abort('lost')
        throw error
      })
    }
    const emit = (event: string, data: unknown, effect?: Pick<StepEffect, 'progress' | 'usage'>) => emitAll([{ step: event, data }], effect)
    const run: TaskRun = {
      task,
      attempt: task.attempts,
      signal: controller.signal,
      history,
      emit,
      emitAll,
      delta: (text) => void bus.publish(eventsChannel, { task_id: id, event: 'delta', data: { text } }).catch(() => {}),
      onWake(w) {
        let set = wakers.get(id)
        if (!set) wakers.set(id, (set = new Set()))
        set.add(w)
        return () => {
          const s = wakers.get(id)
          if (s?.delete(w) && s.size === 0) wakers.delete(id)
        }
      },
    }
    try {
      await emit('task_started', { task_id: id, attempt: task.attempts })
      const { result } = await runner(run)
      await chain
      if (controller.signal.aborted) return
      await record(id, 'task_completed', { task_id: id, result }, { ...fenced, status: 'completed', result, progress: 100 })
    } catch (error) {
      await chain
      if (controller.signal.aborted || error instanceof LeaseLost) return
      const failure = error instanceof TaskFailure ? error : new TaskFailure('INTERNAL_ERROR', 'The task failed')
      if (!(error instanceof TaskFailure)) logger.error('task runner failed', { error, task_id: id, kind: task.kind })
      if (failure.retryable && task.attempts < task.maxAttempts) {
        const delay = opts.retryBaseMs * 2 ** (task.attempts - 1)
        const message = `${failure.message}; trying again in ${(delay / 1000).toFixed(1)} s (attempt ${task.attempts + 1} of ${task.maxAttempts})`
        await record(id, 'message_created', { message }, { ...fenced, status: 'pending', runAfterMs: delay })
        setTimeout(wake, delay + 5).unref?.()
        return
      }
      const e = { code: failure.code, message: failure.message }
      await record(id, 'error', { task_id: id, ...e }, { ...fenced, status: 'failed', error: e })
    }
  }

  async function beat() {
    const ids = [...active.keys()]
    if (!ids.length) return
    const held = await store.heartbeat(owner, ids, opts.leaseMs)
    const still = new Map(held.map((h) => [h.id, h.cancelRequested]))
    for (const id of ids) {
      // gone from what we hold: cancelled, reclaimed after an expired lease, or deleted
      if (!still.has(id) || still.get(id)) active.get(id)?.controller.abort('ended')
      else wakeRunners(id)
    }
  }

  /**
   * The task's events after `after` as a feed: the recorded ones from the database, then the live
   * ones; a gap in the live seqs (a missed notification) is filled from the database. Ends once the
   * task is finished and everything up to its last step was read.
   */
  function follow(taskId: string, after: number): EventFeed {
    let last = after
    const ready: SseEvent[] = []
    let ended = false
    let reading = false
    let stale = true
    let wakeUp: (() => void) | undefined
    const notify = () => wakeUp?.()

    async function catchUp() {
      if (reading) return
      reading = true
      try {
        while (stale && !ended) {
          stale = false
          const rows = await db
            .select()
            .from(t.taskSteps)
            .where(and(eq(t.taskSteps.taskId, taskId), gt(t.taskSteps.seq, last)))
            .orderBy(asc(t.taskSteps.seq))
            .limit(500)
          for (const r of rows) {
            ready.push(stepEvent(r.seq, r.step, r.data))
            last = r.seq
          }
          if (rows.length === 500) {
            stale = true
            continue
          }
          const [task] = await db.select({ status: t.tasks.status, lastSeq: t.tasks.lastSeq }).from(t.tasks).where(eq(t.tasks.id, taskId))
          if (!task || (['completed', 'failed', 'cancelled'].includes(task.status) && last >= task.lastSeq)) ended = true
          else if (task.lastSeq > last) stale = true
        }
      } catch (error) {
        logger.warn('task events could not be read', { error, task_id: taskId })
        ended = true
      } finally {
        reading = false
        notify()
      }
    }

    const listener = (m: TaskEventMessage) => {
      if (ended) return
      if (m.seq === undefined) {
        if (!reading && !stale) ready.push({ event: m.event, data: m.data })
      } else if (m.seq <= last) return
      else if (m.seq === last + 1 && !reading && !stale) {
        ready.push(stepEvent(m.seq, m.event, m.data))
        last = m.seq
        if (TERMINAL_EVENTS.has(m.event)) ended = true
      } else {
        stale = true
        void catchUp()
      }
      notify()
    }
    let set = followers.get(taskId)
    if (!set) followers.set(taskId, (set = new Set()))
    set.add(listener)
    void catchUp()
    const remove = () => {
      const s = followers.get(taskId)
      if (s?.delete(listener) && s.size === 0) followers.delete(taskId)
    }
    return {
      read() {
        const e = ready.shift()
        if (e) return e
        if (ended && !reading) {
          remove()
          return null
        }
        return undefined
      },
      wait(w) {
        wakeUp = () => {
          wakeUp = undefined
          w()
        }
        return () => void (wakeUp = undefined)
      },
      close: remove,
    }
  }

  return {
    owner,
    registerKind(kind: string, runner: TaskRunner) {
      runners.set(kind, runner)
    },
    record,
    recordMany,
    follow,
    /** wake every instance's workers (a task was created or retried) */
    announce: () => bus.publish(wakeChannel, { at: Date.now() }),
    /** how many claims this instance has made */
    get claimed() {
      return claimed
    },
    /** how many tasks this instance runs now */
    get running() {
      return active.size
    },
    start() {
      if (started) return
      started = true
      heartbeat = setInterval(() => void beat().catch((error) => logger.warn('task heartbeat failed', { error })), heartbeatMs)
      poll = setInterval(wake, pollMs)
      heartbeat.unref?.()
      poll.unref?.()
      wake()
    },
    /** Stop claiming, hand running tasks back at once (for another instance or the next start), stop their runs. */
    async close() {
      closing = true
      clearInterval(heartbeat)
      clearInterval(poll)
      unsubscribeWake()
      await pumping?.catch(() => {})
      const handed = await store.handBack(owner).catch((error) => {
        logger.warn('tasks not handed back', { error })
        return [] as string[]
      })
      for (const { controller } of active.values()) controller.abort('handback')
      await Promise.allSettled([...active.values()].map((a) => a.done))
      if (handed.length) {
        logger.info('running tasks handed back', { count: handed.length })
        await bus.publish(wakeChannel, { at: Date.now() }).catch(() => {})
      }
      unsubscribeEvents()
    },
  }
}

export type TaskEngine = ReturnType<typeof createTaskEngine>
