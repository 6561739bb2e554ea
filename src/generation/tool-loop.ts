/**
 * @module The tool loop — model turns that may call tools, for any module that runs a model with
 * tools (chat now, tasks next). A turn is offered the tools; the calls it asks for run (at once and
 * in parallel; a tool that needs approval waits for the driver's answer first); their results go
 * back to the model in the next turn; after `maxRounds` rounds of calls one more turn is sent with
 * `toolChoice: 'none'`, so the loop ends with an answer. Each turn is a model turn of its own
 * (model-turn.ts): its own credit hold, usage row and settlement. The loop knows no storage and no
 * events: the driver's hooks store and announce each turn and call.
 */
import type { ModelMessage } from 'ai'
import { AppError } from '../lib/errors.ts'
import type { ChatRequest, ToolSpec, Usage } from '../llm/index.ts'
import type { Principal } from '../modules/auth/service.ts'
import type { ResolvedModel } from '../modules/providers/service.ts'
import { resultText, type CallOrigin, type ToolOutcome, type ToolsService } from '../modules/tools/service.ts'
import type { UsageSource } from '../modules/usage/service.ts'
import type { ModelTurns, ToolCall, TurnResult, TurnSink } from './model-turn.ts'

/** Rounds of tool calls a run may make when its caller names no other number. */
export const DEFAULT_MAX_TOOL_ROUNDS = 5

/** The most of one result's text a model is sent (about 4,000 tokens); the rest is cut, and the model told so. */
export const MAX_RESULT_CHARS = 16_000

/** What came of a call that waited for approval. Anything but `approved` is a refusal: the tool is not run. */
export type ApprovalDecision = 'approved' | 'declined' | 'timeout' | 'stopped'

/** A call of a round, and what came of it. */
export interface RanCall {
  call: ToolCall
  outcome: ToolOutcome
  /** the result as the model is sent it: its text, cut to MAX_RESULT_CHARS */
  text: string
  /** the calls that waited for approval: the decision */
  approval?: ApprovalDecision
}

export interface ToolLoopHooks {
  /** how the model turn of `round` (1, 2, …) hands out what it streams */
  sink(round: number): TurnSink
  /** the turn of `round` asked for `calls`, which run now; `needApproval`: those of them that wait for `approval` first */
  callsStarting(round: number, turn: TurnResult, calls: ToolCall[], needApproval: ToolCall[]): Promise<void>
  /** the user's decision on one call (after callsStarting); resolves `stopped` when `signal` aborts */
  approval(call: ToolCall, signal: AbortSignal): Promise<ApprovalDecision>
  /** one call is over (calls end in any order) */
  callEnded?(ran: RanCall): void
  /**
   * The round is over: its turn and the calls that ran (in the order the model asked for them;
   * none when the turn answered). `next`: another turn follows. A stop while calls run ends the
   * round with `turn.status` `stopped` and the calls that ran (aborted ones say so).
   */
  roundEnded(round: number, turn: TurnResult, ran: RanCall[], next: boolean): Promise<void>
}

export interface ToolLoopInput {
  principal: Principal
  model: ResolvedModel
  request: Omit<ChatRequest, 'model' | 'tools' | 'toolChoice'>
  /** the tools offered (tools.forModel); none: a single turn without tools */
  tools: { specs: ToolSpec[]; needsApproval: ReadonlySet<string> }
  maxRounds: number
  /** what `reserve` held for the first turn, on the estimate `inputChars` of its input */
  held: number
  inputChars: number
  source: UsageSource
  /** where the calls come from, for their logs (the run's signal is added) */
  origin: Omit<CallOrigin, 'signal'>
  signal: AbortSignal
  logFields?: Record<string, unknown>
  hooks: ToolLoopHooks
}

export interface ToolLoopResult {
  /** the last turn; `stopped` when the run was stopped, during a turn or while calls ran */
  last: TurnResult
  /** every turn's tokens and cost, added up */
  usage: Usage
  cost: number
  /** resolves once every turn's usage row is written and its credits settled */
  settled: Promise<void>
}

/** A result's text, cut to what a model is sent. */
export function resultForModel(outcome: ToolOutcome): string {
  const text = resultText(outcome.result)
  if (text.length <= MAX_RESULT_CHARS) return text
  return `${text.slice(0, MAX_RESULT_CHARS)}\n[… cut: the result has ${text.length} characters; these are the first ${MAX_RESULT_CHARS}]`
}

/** A call's arguments as a value (an object; `{}` for text that is none — the model is told of the error by the call's result). */
function parsedArguments(json: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(json)
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {}
  } catch {
    return {}
  }
}

/**
 * One round as the model is sent it: the assistant's text and calls, then each call's result
 * (paired by call id, in the calls' order). A call with no result (a run that died while it ran)
 * gets one saying so, since OpenAI and Anthropic refuse a call left without a result.
 */
export function roundMessages(text: string, calls: ToolCall[], results: { id: string; text: string; isError: boolean }[]): ModelMessage[] {
  const byId = new Map(results.map((r) => [r.id, r]))
  return [
    {
      role: 'assistant',
      content: [...(text ? [{ type: 'text' as const, text }] : []), ...calls.map((c) => ({ type: 'tool-call' as const, toolCallId: c.id, toolName: c.name, input: parsedArguments(c.arguments) }))],
    },
    {
      role: 'tool',
      content: calls.map((c) => {
        const r = byId.get(c.id) ?? { text: 'The call was interrupted: there is no result', isError: true }
        return { type: 'tool-result' as const, toolCallId: c.id, toolName: c.name, output: r.isError ? { type: 'error-text' as const, value: r.text } : { type: 'text' as const, value: r.text } }
      }),
    },
  ]
}

/** An outcome for a call that was not run, saying why. */
const notRun = (text: string): ToolOutcome => ({ result: { content: [{ type: 'text', text }], isError: true }, durationMs: 0, logId: '' })

const REFUSED: Record<Exclude<ApprovalDecision, 'approved'>, string> = {
  declined: 'The user declined this tool call: it was not run.',
  timeout: 'The user did not approve this tool call in time: it was not run.',
  stopped: 'The run was stopped before this tool call ran.',
}

/** The outcome of a call that was refused (a driver that runs recorded calls again, after a crash, says the same). */
export const refusedOutcome = (decision: Exclude<ApprovalDecision, 'approved'>): ToolOutcome => notRun(REFUSED[decision])

/** The turn a later round has instead of a model call when its credits cannot be held. */
function quotaTurn(error: AppError): TurnResult {
  return { status: 'error', finishReason: 'error', text: '', reasoning: '', toolCalls: [], usage: { inputTokens: 0, outputTokens: 0 }, cost: 0, latencyMs: 0, ttftMs: null, error: { code: 'QUOTA_EXCEEDED', message: error.detail }, settled: Promise.resolve() }
}

/** `tools`: what runs the calls — the tools layer, or a driver's wrapper of it that adds tools of its own (a session's `update_workflow`). */
export function createToolLoop(deps: { turns: ModelTurns; tools: Pick<ToolsService, 'execute'> }) {
  const { turns, tools } = deps

  return async function runToolLoop(input: ToolLoopInput): Promise<ToolLoopResult> {
    const { principal: p, model, hooks, signal } = input
    const { specs, needsApproval } = input.tools
    const offered = new Set(specs.map((s) => s.name))
    const messages = [...input.request.messages]
    const settled: Promise<void>[] = []
    const usage = { inputTokens: 0, outputTokens: 0 }
    let cost = 0
    let inputChars = input.inputChars
    const ended = (last: TurnResult): ToolLoopResult => ({ last, usage, cost, settled: Promise.all(settled).then(() => {}) })

    async function runCall(call: ToolCall): Promise<RanCall> {
      let approval: ApprovalDecision | undefined
      let outcome: ToolOutcome
      // only what was offered runs: a model naming another of the user's tools is told there is none
      if (!offered.has(call.name)) outcome = notRun(`There is no tool named '${call.name}' here`)
      else {
        if (needsApproval.has(call.name)) approval = await hooks.approval(call, signal)
        if (approval && approval !== 'approved') outcome = notRun(REFUSED[approval])
        else if (signal.aborted) outcome = notRun(REFUSED.stopped)
        else outcome = await tools.execute(p, call.name, call.arguments, { ...input.origin, signal })
      }
      const ran: RanCall = { call, outcome, text: resultForModel(outcome), approval }
      hooks.callEnded?.(ran)
      return ran
    }

    for (let round = 1; ; round++) {
      let held = input.held
      let turn: TurnResult
      try {
        if (round > 1) held = await turns.reserve(p, model, { inputChars, maxTokens: input.request.maxTokens })
        turn = await turns.run({
          principal: p,
          model,
          request: { ...input.request, messages, ...(specs.length ? { tools: specs, toolChoice: round > input.maxRounds ? 'none' : undefined } : {}) },
          source: input.source,
          held,
          signal,
          sink: hooks.sink(round),
          logFields: input.logFields,
        })
      } catch (error) {
        if (!(error instanceof AppError) || error.status !== 402) throw error
        turn = quotaTurn(error)
      }
      settled.push(turn.settled)
      usage.inputTokens += turn.usage.inputTokens
      usage.outputTokens += turn.usage.outputTokens
      cost += turn.cost
      const calls = specs.length > 0 && round <= input.maxRounds && turn.status === 'complete' ? turn.toolCalls : []
      if (!calls.length) {
        await hooks.roundEnded(round, turn, [], false)
        return ended(turn)
      }
      await hooks.callsStarting(round, turn, calls, calls.filter((c) => needsApproval.has(c.name)))
      const ran = await Promise.all(calls.map(runCall))
      if (signal.aborted) {
        const stopped: TurnResult = { ...turn, status: 'stopped', finishReason: 'stopped' }
        await hooks.roundEnded(round, stopped, ran, false)
        return ended(stopped)
      }
      await hooks.roundEnded(round, turn, ran, true)
      messages.push(...roundMessages(turn.text, calls, ran.map((r) => ({ id: r.call.id, text: r.text, isError: r.outcome.result.isError }))))
      inputChars += turn.text.length + ran.reduce((n, r) => n + r.call.arguments.length + r.text.length, 0)
    }
  }
}

export type ToolLoop = ReturnType<typeof createToolLoop>
