/**
 * @module The plan runner: one plan's structured generation, knowing neither HTTP nor the task
 * engine. The model is asked for JSON — the provider's structured-output mode with the type's
 * output schema where the provider type has one, else JSON mode — and the answer is parsed and
 * checked against the output schema; an answer that fails gets ONE repair turn that shows the model
 * its answer and the problems found; a second failure throws PlanFailure. Every turn goes through
 * the model turns (credits held, usage recorded with source `task`).
 */
import type { ModelMessage } from 'ai'
import type { ModelTurns, TurnResult } from '../../generation/model-turn.ts'
import { AppError, type FieldProblem } from '../../lib/errors.ts'
import { schemaProblems } from '../../lib/json-schema.ts'
import type { ChatRequest, ProviderType } from '../../llm/index.ts'
import type { Principal } from '../auth/service.ts'

/** What a plan runs with: its type's prompt and output schema. */
export interface PlanSpec {
  id: string
  prompt: string
  outputSchema: Record<string, unknown>
}

export interface PlanRunRequest {
  principal: Principal
  planType: PlanSpec
  input: Record<string, unknown>
  /** a model by name or catalogue id; the caller's default model when absent */
  modelId?: string | null
  signal: AbortSignal
  /** told after each model turn (its usage is already recorded) */
  onTurn?(turn: { attempt: 1 | 2; usage: { inputTokens: number; outputTokens: number; cost: number }; problems: FieldProblem[] }): void | Promise<void>
}

export interface PlanRunResult {
  result: unknown
  /** 1: the first answer was valid; 2: the repaired one */
  turns: 1 | 2
  usage: { inputTokens: number; outputTokens: number; cost: number }
}

/**
 * Why a plan failed. `UPSTREAM_ERROR`: the model call failed (`retryable`), or the model's answer
 * still did not match the output schema after the repair turn (not retryable: the repair was the
 * second chance; `problems` lists what was wrong). `QUOTA_EXCEEDED`: no credits for the turn.
 * `VALIDATION_ERROR`: no usable model. `CANCELLED`: the signal was aborted.
 */
export class PlanFailure extends Error {
  override name = 'PlanFailure'
  constructor(
    readonly code: 'UPSTREAM_ERROR' | 'QUOTA_EXCEEDED' | 'VALIDATION_ERROR' | 'CANCELLED',
    message: string,
    readonly retryable = false,
    readonly problems: FieldProblem[] = [],
  ) {
    super(message)
  }
}

/**
 * Structured output where the provider type has it: OpenAI (`response_format: json_schema`),
 * Anthropic and Gemini (the AI SDK's object output). `openai_compatible` servers get JSON mode
 * (`json_object`): many of them (older vLLM, llama.cpp, LM Studio, proxies) refuse or ignore
 * `json_schema`, while JSON mode is widely supported — the schema is in the prompt either way, and
 * the answer is validated here whatever the mode.
 */
export const structuredOutputFor = (type: ProviderType): 'json_schema' | 'json' => (type === 'openai_compatible' ? 'json' : 'json_schema')

/** The answer's JSON: the text itself, or the object inside a ``` fence some models add even in JSON mode. */
function parseAnswer(text: string): { value: unknown } | { error: string } {
  const trimmed = text.trim()
  const fenced = /^```(?:json)?\s*([\s\S]*?)\s*```$/i.exec(trimmed)
  try {
    return { value: JSON.parse(fenced ? fenced[1]! : trimmed) }
  } catch (e) {
    return { error: trimmed ? `is not valid JSON (${(e as Error).message})` : 'is empty' }
  }
}

/** The answer checked: no problems means it is the result. */
function check(text: string, schema: Record<string, unknown>): { value?: unknown; problems: FieldProblem[] } {
  const parsed = parseAnswer(text)
  if ('error' in parsed) return { problems: [{ path: 'result', message: parsed.error }] }
  return { value: parsed.value, problems: schemaProblems(schema, parsed.value, 'result') }
}

const listed = (problems: FieldProblem[]) => problems.map((p) => `- ${p.path}: ${p.message}`).join('\n')

export function systemPromptOf(spec: PlanSpec): string {
  return [
    spec.prompt.trim(),
    '',
    'Answer with one JSON object and nothing else (no Markdown, no comments). It must validate against this JSON Schema:',
    JSON.stringify(spec.outputSchema),
  ].join('\n')
}

export const inputMessageOf = (input: Record<string, unknown>) => `The input, as JSON:\n${JSON.stringify(input, null, 2)}`

export const repairMessageOf = (problems: FieldProblem[]) =>
  ['Your answer does not validate against the JSON Schema. The problems found (paths start at `result`, the whole answer):', listed(problems), '', 'Answer again with the corrected JSON object only.'].join('\n')

export function createPlanRunner(deps: { turns: ModelTurns }) {
  const { turns } = deps

  return async function runPlan(req: PlanRunRequest): Promise<PlanRunResult> {
    const { principal: p, planType, signal } = req
    const model = await (req.modelId ? turns.model(p, req.modelId) : turns.defaultModel(p)).catch((error: unknown) => {
      throw new PlanFailure('VALIDATION_ERROR', error instanceof AppError ? error.detail : 'No model to run the plan with')
    })
    const mode = structuredOutputFor(model.provider.type as ProviderType)
    const responseFormat: ChatRequest['responseFormat'] = mode === 'json_schema' ? { type: 'json_schema', name: planType.id.slice(0, 64), schema: planType.outputSchema } : { type: 'json' }
    const system = systemPromptOf(planType)
    const messages: ModelMessage[] = [{ role: 'user', content: inputMessageOf(req.input) }]
    const usage = { inputTokens: 0, outputTokens: 0, cost: 0 }

    async function turn(): Promise<TurnResult> {
      if (signal.aborted) throw new PlanFailure('CANCELLED', 'The plan was cancelled')
      const inputChars = system.length + messages.reduce((n, m) => n + String(m.content).length, 0)
      const held = await turns.reserve(p, model, { inputChars }).catch((error: unknown) => {
        if (error instanceof AppError && error.code === 'QUOTA_EXCEEDED') throw new PlanFailure('QUOTA_EXCEEDED', error.detail)
        throw error
      })
      const result = await turns.run({ principal: p, model, request: { system, messages, responseFormat }, source: 'task', held, signal, sink: {}, logFields: { plan_type: planType.id } })
      await result.settled
      usage.inputTokens += result.usage.inputTokens
      usage.outputTokens += result.usage.outputTokens
      usage.cost += result.cost
      if (result.status === 'stopped') throw new PlanFailure('CANCELLED', 'The plan was cancelled')
      if (result.status === 'error') throw new PlanFailure('UPSTREAM_ERROR', result.error?.message ?? 'The model call failed', true)
      return result
    }

    const first = await turn()
    const firstCheck = check(first.text, planType.outputSchema)
    await req.onTurn?.({ attempt: 1, usage: { inputTokens: first.usage.inputTokens, outputTokens: first.usage.outputTokens, cost: first.cost }, problems: firstCheck.problems })
    if (firstCheck.problems.length === 0) return { result: firstCheck.value, turns: 1, usage }

    messages.push({ role: 'assistant', content: first.text }, { role: 'user', content: repairMessageOf(firstCheck.problems) })
    const second = await turn()
    const secondCheck = check(second.text, planType.outputSchema)
    await req.onTurn?.({ attempt: 2, usage: { inputTokens: second.usage.inputTokens, outputTokens: second.usage.outputTokens, cost: second.cost }, problems: secondCheck.problems })
    if (secondCheck.problems.length === 0) return { result: secondCheck.value, turns: 2, usage }
    throw new PlanFailure(
      'UPSTREAM_ERROR',
      `The model's answer did not match the plan type's output schema, even after a repair: ${secondCheck.problems.slice(0, 5).map((x) => `${x.path} ${x.message}`).join('; ')}`,
      false,
      secondCheck.problems,
    )
  }
}

export type PlanRunner = ReturnType<typeof createPlanRunner>
