/**
 * @module The `agent` task kind: the tool loop (src/generation/tool-loop.ts) driven by the task's
 * agent — its model, system prompt, temperature, max tokens and tools, or the task's own model and
 * tools — for at most `max_steps` model turns (the last one without tools, so it answers). Each turn
 * is stored as `agent_message` (with its `usage`, and its `tool_called` steps, in one write); each
 * result as `tool_result`. A task claimed again after a crash rebuilds the conversation from those
 * steps: finished turns and recorded results are not redone, a call without a recorded result is
 * made again, a recorded final answer completes the task at once. A call of a tool that needs
 * approval waits for it (approvals.ts: a `tool_approval_required` step, then the decision as a
 * `tool_approval` step); a refusal or a timeout goes back to the model as the call's result. On a
 * resume a recorded decision is honoured and a call still pending waits again.
 */
import type { ModelMessage } from 'ai'
import { eq } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import type { ModelTurns, ToolCall, TurnResult } from '../../generation/model-turn.ts'
import { createToolLoop, refusedOutcome, resultForModel, roundMessages, type RanCall } from '../../generation/tool-loop.ts'
import { AppError } from '../../lib/errors.ts'
import { TaskFailure, type StepRow, type TaskRun, type TaskRunner } from '../../tasks/engine.ts'
import type { NewStep } from '../../tasks/store.ts'
import type { Principal } from '../auth/service.ts'
import type { ToolOutcome, ToolsService } from '../tools/service.ts'
import { approvalsIn, type TaskApprovals } from './approvals.ts'

export const DEFAULT_MAX_STEPS = 10

interface RecordedRound {
  text: string
  calls: ToolCall[]
  results: Map<string, { id: string; text: string; isError: boolean }>
}

/** The model turns recorded in a run's steps, with their calls and results. */
export function recordedRounds(history: StepRow[]): RecordedRound[] {
  const rounds: RecordedRound[] = []
  for (const s of history) {
    const d = (s.data ?? {}) as Record<string, unknown>
    if (s.step === 'agent_message') rounds.push({ text: String(d.content ?? ''), calls: [], results: new Map() })
    else if (s.step === 'tool_called' && rounds.length) rounds.at(-1)!.calls.push({ id: String(d.id), name: String(d.tool), arguments: typeof d.arguments === 'string' ? d.arguments : JSON.stringify(d.arguments ?? {}) })
    else if (s.step === 'tool_result' && rounds.length) rounds.at(-1)!.results.set(String(d.id), { id: String(d.id), text: String(d.result ?? ''), isError: !!d.is_error })
  }
  return rounds
}

const usageOf = (turn: TurnResult) => ({ inputTokens: turn.usage.inputTokens, outputTokens: turn.usage.outputTokens, cost: turn.cost })
const usageStep = (turn: TurnResult): NewStep => ({ step: 'usage', data: { input_tokens: turn.usage.inputTokens, output_tokens: turn.usage.outputTokens, cost: turn.cost } })
const resultStep = (r: RanCall): NewStep => ({ step: 'tool_result', data: { id: r.call.id, tool: r.call.name, result: r.text, is_error: r.outcome.result.isError, duration_ms: r.outcome.durationMs } })

/** Where an agent's runs are recorded (agents' executions): one per attempt of a task that names an agent. */
export interface ExecutionLog {
  start(input: { agentId: string; userId: string; executionType: 'task'; taskId: string }): Promise<string>
  finish(id: string, outcome: { status: 'completed' | 'failed' | 'cancelled'; inputTokens: number; outputTokens: number; cost: number; toolCalls: number }): Promise<void>
}

export function createAgentRunner(deps: { database: Database; turns: ModelTurns; tools: ToolsService; approvals: TaskApprovals; executions?: ExecutionLog }): TaskRunner {
  const { database, turns, tools } = deps
  const { db, t } = database
  const runToolLoop = createToolLoop({ turns, tools })

  /** Ask for the approval of `call` (a step), then wait for the decision. */
  async function askApproval(run: TaskRun, call: ToolCall) {
    const at = new Date()
    try {
      await run.emit('tool_approval_required', { id: call.id, tool: call.name, arguments: call.arguments })
    } catch {
      return 'stopped' as const
    }
    return deps.approvals.wait(run, call.id, at)
  }

  return async function runAgentTaskRecorded(run: TaskRun) {
    const { task } = run
    const log = task.agentId && deps.executions ? deps.executions : undefined
    const executionId = log ? await log.start({ agentId: task.agentId!, userId: task.userId, executionType: 'task', taskId: task.id }).catch(() => undefined) : undefined
    const totals = { inputTokens: 0, outputTokens: 0, cost: 0, toolCalls: 0 }
    let status: 'completed' | 'failed' | 'cancelled' = 'failed'
    try {
      const outcome = await runAgentTask(run, totals)
      // a cancel ends the run 'ended'; a hand-back or a lost lease leaves the task to another attempt (this one counts as failed)
      status = run.signal.aborted ? (run.signal.reason === 'ended' ? 'cancelled' : 'failed') : 'completed'
      return outcome
    } finally {
      if (executionId) await log!.finish(executionId, { status, ...totals }).catch(() => {})
    }
  }

  async function runAgentTask(run: TaskRun, totals: { inputTokens: number; outputTokens: number; cost: number; toolCalls: number }) {
    const { task } = run
    const [agent] = task.agentId ? await db.select().from(t.agents).where(eq(t.agents.id, task.agentId)) : []
    const [user] = await db.select({ role: t.users.role }).from(t.users).where(eq(t.users.id, task.userId))
    if (!user) throw new TaskFailure('NOT_FOUND', "The task's user is gone")
    const p: Principal = { userId: task.userId, role: user.role, via: 'session', sessionId: null, apiKeyId: null, scopes: [] }
    const ref = task.modelId ?? agent?.modelId
    const model = await (ref ? turns.model(p, ref) : turns.defaultModel(p)).catch((error: unknown) => {
      // the model's own code: VALIDATION_ERROR for an unknown one, FORBIDDEN for one the user's groups do not allow
      throw error instanceof AppError ? new TaskFailure(error.code, error.detail) : new TaskFailure('VALIDATION_ERROR', 'No model to run the task with')
    })
    const offered = await tools.forModel(p, task.tools.length ? task.tools : (agent?.tools ?? []))
    const maxSteps = task.maxSteps ?? agent?.maxSteps ?? DEFAULT_MAX_STEPS
    const name = agent?.name ?? 'assistant'
    const progress = (turnsDone: number) => Math.min(99, Math.round((100 * turnsDone) / maxSteps))

    // resume: the turns recorded so far, their missing results made again
    const rounds = recordedRounds(run.history)
    const lastRound = rounds.at(-1)
    if (lastRound && !lastRound.calls.length) return { result: { content: lastRound.text } }
    const messages: ModelMessage[] = [{ role: 'user', content: String(task.input.prompt ?? '') }]
    const names = new Set(offered.specs.map((s) => s.name))
    for (const r of rounds) {
      for (const call of r.calls.filter((c) => !r.results.has(c.id))) {
        let outcome: ToolOutcome
        if (!names.has(call.name)) outcome = { result: { content: [{ type: 'text' as const, text: `The tool '${call.name}' cannot run here` }], isError: true }, durationMs: 0, logId: '' }
        else {
          // asked before the crash: the recorded decision, or wait again (the timeout counts from the question)
          const asked = offered.needsApproval.has(call.name) ? approvalsIn(run.history).asked.get(call.id) : undefined
          const decision = !offered.needsApproval.has(call.name) ? 'approved' : asked ? await deps.approvals.wait(run, call.id, asked.at) : await askApproval(run, call)
          if (run.signal.aborted) return { result: null }
          outcome = decision === 'approved' ? await tools.execute(p, call.name, call.arguments, { source: 'task', taskId: task.id, signal: run.signal }) : refusedOutcome(decision)
        }
        if (run.signal.aborted) return { result: null }
        const ran: RanCall = { call, outcome, text: resultForModel(outcome) }
        totals.toolCalls++
        await run.emitAll([resultStep(ran)])
        r.results.set(call.id, { id: call.id, text: ran.text, isError: outcome.result.isError })
      }
      messages.push(...roundMessages(r.text, r.calls, [...r.results.values()]))
    }
    const done = rounds.length
    if (done >= maxSteps) return { result: { content: lastRound?.text ?? '' } }

    const request = { system: agent?.systemPrompt ?? undefined, messages, temperature: agent?.temperature ?? undefined, maxTokens: agent?.maxTokens ?? undefined }
    const inputChars = (request.system?.length ?? 0) + JSON.stringify(messages).length
    let held: number
    try {
      held = await turns.reserve(p, model, { inputChars, maxTokens: request.maxTokens })
    } catch (error) {
      if (error instanceof AppError && error.status === 402) throw new TaskFailure('QUOTA_EXCEEDED', error.detail)
      throw error
    }
    const loop = await runToolLoop({
      principal: p,
      model,
      request,
      tools: offered,
      maxRounds: Math.max(0, maxSteps - 1 - done),
      held,
      inputChars,
      source: 'task',
      origin: { source: 'task', taskId: task.id },
      signal: run.signal,
      logFields: { task_id: task.id },
      hooks: {
        sink: () => ({ text: (text) => run.delta(text) }),
        async callsStarting(round, turn, calls) {
          totals.toolCalls += calls.length
          const steps: NewStep[] = [{ step: 'agent_message', data: { agent: name, content: turn.text } }, usageStep(turn), ...calls.map((c) => ({ step: 'tool_called', data: { id: c.id, tool: c.name, arguments: c.arguments } }))]
          await run.emitAll(steps, { usage: usageOf(turn), progress: progress(done + round) })
        },
        approval: (call) => askApproval(run, call),
        callEnded: (r) => void run.emitAll([resultStep(r)]).catch(() => {}),
        async roundEnded(round, turn, ran, next) {
          if (ran.length || next) return run.emitAll([{ step: 'task_progress', data: { progress: progress(done + round), message: `Step ${done + round} of at most ${maxSteps} done` } }], { progress: progress(done + round) })
          const steps: NewStep[] = turn.status === 'complete' ? [{ step: 'agent_message', data: { agent: name, content: turn.text } }] : []
          if (turn.usage.inputTokens || turn.usage.outputTokens) steps.push(usageStep(turn))
          if (steps.length) await run.emitAll(steps, { usage: usageOf(turn) })
        },
      },
    })
    await loop.settled
    totals.inputTokens += loop.usage.inputTokens
    totals.outputTokens += loop.usage.outputTokens
    totals.cost += loop.cost
    const { last } = loop
    if (last.status === 'stopped') return { result: null }
    if (last.error) throw new TaskFailure(last.error.code, last.error.message, last.error.code === 'UPSTREAM_ERROR')
    return { result: { content: last.text } }
  }
}
