/**
 * @module One model turn — the one way any module calls a model (chat now; tasks, plans, SQL
 * answers and workflow sessions next): the model chosen by name or catalogue id, credits held
 * before the call, the stream read with its text, reasoning and tool calls handed to the caller as
 * they come, the growing text written every 250 ms (and at least every 10 s, as a sign of life),
 * stop by AbortSignal, and at the end the usage recorded and the credits settled. It knows no HTTP
 * and no wire format: each caller turns what it is handed into its own events and rows.
 */
import { unlessNotFound, validationError } from '../lib/errors.ts'
import type { Logger } from '../lib/logger.ts'
import { streamChat, UpstreamError, type ChatRequest, type FinishReason, type Usage } from '../llm/index.ts'
import type { Principal } from '../modules/auth/service.ts'
import { modelNotAllowed, noAllowedModel } from '../modules/groups/errors.ts'
import type { GroupEffect } from '../modules/groups/service.ts'
import type { ProvidersService, ResolvedModel } from '../modules/providers/service.ts'
import { costOf, type UsageService, type UsageSource } from '../modules/usage/service.ts'

/** How often a growing answer is handed to `persist`. */
const FLUSH_MS = 250
/** The longest a running turn goes without `persist`, so that a silent row means a dead run. */
const HEARTBEAT_MS = 10_000
/** What a turn may cost at most when neither the request nor the model sets a maximum output. */
export const DEFAULT_MAX_OUTPUT = 4096

export interface ToolCall {
  id: string
  name: string
  arguments: string
}

/** What the caller is handed while the turn streams. */
export interface TurnSink {
  text?(text: string): void
  reasoning?(text: string): void
  toolCall?(call: ToolCall): void
  /** write the text so far (every 250 ms while it grows, at least every 10 s); a failure is logged, the turn goes on */
  persist?(text: string): Promise<unknown>
}

export interface TurnInput {
  principal: Principal
  model: ResolvedModel
  request: Omit<ChatRequest, 'model'>
  source: UsageSource
  /** what `reserve` held for this turn */
  held: number
  signal: AbortSignal
  sink: TurnSink
  /** extra fields for the log line of an unexpected failure */
  logFields?: Record<string, unknown>
  /** false: no usage row and nothing settled (a conversation's title, which has never been billed) */
  record?: boolean
}

export interface TurnResult {
  status: 'complete' | 'stopped' | 'error'
  finishReason: FinishReason | 'stopped'
  text: string
  reasoning: string
  toolCalls: ToolCall[]
  usage: Usage
  cost: number
  latencyMs: number
  ttftMs: number | null
  /** UPSTREAM_ERROR: the model failed; QUOTA_EXCEEDED: a later turn of a tool loop could not hold its credits (tool-loop.ts) */
  error?: { code: 'UPSTREAM_ERROR' | 'QUOTA_EXCEEDED'; message: string }
  /** resolves once the usage row is written and the credits settled */
  settled: Promise<void>
}

const noSuchModel = (ref: string) => validationError(`No model '${ref}' you can use`, [{ path: 'model_id', message: 'unknown or unavailable model' }])
const noModelConfigured = () => validationError('No model is configured: add a provider and a model first', [{ path: 'model_id', message: 'no model available' }])

export function createModelTurns(deps: {
  providers: ProvidersService
  usage: UsageService
  logger: Logger
  /** what the user's groups set (docs/api.md §21): their allowed models and default model; from memory */
  groupEffectOf?: (userId: string) => GroupEffect | Promise<GroupEffect>
}) {
  const { providers, usage, logger } = deps
  const noEffect = { allowedModelIds: null, defaultModelId: null }
  const effectOf = async (p: Principal) => (deps.groupEffectOf ? await deps.groupEffectOf(p.userId) : noEffect)
  /** whether the user's groups let them use this model: every model when none restricts */
  const allowedBy = (effect: Pick<GroupEffect, 'allowedModelIds'>, m: ResolvedModel) => !effect.allowedModelIds || effect.allowedModelIds.value.has(m.model.id)

  /** by name (the caller's own providers first) or catalogue id, among the models the caller can see; available ones only */
  async function usable(p: Principal, ref: string): Promise<ResolvedModel | undefined> {
    const found = (await providers.resolve(p, ref)) ?? (await providers.modelOf(p, ref).catch(unlessNotFound))
    return found?.model.isAvailable ? found : undefined
  }

  return {
    /** A model the caller may use, by name or catalogue id; 422 naming `model_id` otherwise, 403 when the caller's groups do not allow it. */
    async model(p: Principal, ref: string): Promise<ResolvedModel> {
      const found = await usable(p, ref)
      if (!found) throw noSuchModel(ref)
      if (!allowedBy(await effectOf(p), found)) throw modelNotAllowed(found.model.name)
      return found
    },

    /**
     * Whether the caller may use the model `ref` names (as `model` takes it): for checking a
     * reference where it is saved (a preference, a preset), which names its own field when not.
     * `allowedOnly`: and their groups allow it (a preference; a preset or agent may be shared, and is checked where it is used).
     */
    isUsable: async (p: Principal, ref: string, allowedOnly = false) => {
      const found = await usable(p, ref)
      return !!found && (!allowedOnly || allowedBy(await effectOf(p), found))
    },

    /**
     * The model used when nothing names one: `preferred` (the user's `default_model_id`
     * preference; 422 when it names no model they can use), else the default model of the
     * caller's groups, else the instance's default (docs/api.md §7); a default the groups do not
     * allow is skipped, down to the first allowed model that is available (403 when none is).
     * 422 when there is none.
     */
    async defaultModel(p: Principal, preferred?: string | null): Promise<ResolvedModel> {
      const effect = await effectOf(p)
      // the user's own default (a preference) is a default too: one their groups do not allow (saved before they joined) is skipped
      const fromPreference = preferred ? await usable(p, preferred) : undefined
      if (fromPreference && allowedBy(effect, fromPreference)) return fromPreference
      if (preferred && !fromPreference) throw noSuchModel(preferred)
      const fromGroup = effect.defaultModelId && (await usable(p, effect.defaultModelId.value))
      if (fromGroup && allowedBy(effect, fromGroup)) return fromGroup
      const found = await providers.defaultModel(p)
      if (found && allowedBy(effect, found)) return found
      if (effect.allowedModelIds) {
        for (const id of effect.allowedModelIds.value) {
          const allowed = await usable(p, id)
          if (allowed) return allowed
        }
        throw noAllowedModel()
      }
      throw noModelConfigured()
    },

    /** Hold the most a turn can cost (402 when the credits are used up); returns what was held. */
    reserve(p: Principal, model: ResolvedModel, estimate: { inputChars: number; maxTokens?: number }): Promise<number> {
      const maxOut = estimate.maxTokens ?? model.model.maxOutputTokens ?? DEFAULT_MAX_OUTPUT
      return usage.reserve(p.userId, costOf(Math.ceil(estimate.inputChars / 4), maxOut, model.model))
    },

    /** Give back a hold for a turn that never ran. */
    release: (p: Principal, held: number) => usage.release(p.userId, held),

    /** Run the turn to its end: never throws for a failing or stopped model, it says so in `status`. */
    async run(input: TurnInput): Promise<TurnResult> {
      const { principal: p, model, sink, signal } = input
      const started = performance.now()
      let text = ''
      let reasoning = ''
      let ttftMs: number | null = null
      const toolCalls: ToolCall[] = []
      let finishReason: FinishReason | 'stopped' = 'stop'
      let seen: Usage = { inputTokens: 0, outputTokens: 0 }
      let status: TurnResult['status'] = 'complete'
      let error: TurnResult['error']

      let dirty = false
      let lastWrite = Date.now()
      const persist = sink.persist
      const flusher = persist
        ? setInterval(() => {
            if (!dirty && Date.now() - lastWrite <= HEARTBEAT_MS) return
            dirty = false
            lastWrite = Date.now()
            void persist(text).catch((e) => logger.warn('could not write the growing answer', { error: e, ...input.logFields }))
          }, FLUSH_MS)
        : undefined

      try {
        // a run stopped before its turn began (a task handed back as it was claimed) makes no call
        signal.throwIfAborted()
        const connection = await providers.connection(model.provider, p)
        for await (const e of streamChat(connection, { model: model.model.modelId, ...input.request }, signal)) {
          ttftMs ??= Math.round(performance.now() - started)
          if (e.type === 'text') {
            text += e.text
            dirty = true
            sink.text?.(e.text)
          } else if (e.type === 'reasoning') {
            reasoning += e.text
            sink.reasoning?.(e.text)
          } else if (e.type === 'tool_call') {
            const call = { id: e.id, name: e.name, arguments: e.arguments }
            toolCalls.push(call)
            sink.toolCall?.(call)
          } else {
            finishReason = e.reason
            seen = e.usage
          }
        }
        if (signal.aborted) [status, finishReason] = ['stopped', 'stopped']
      } catch (failure) {
        if (signal.aborted) [status, finishReason] = ['stopped', 'stopped']
        else {
          ;[status, finishReason] = ['error', 'error']
          error = { code: 'UPSTREAM_ERROR', message: failure instanceof UpstreamError ? failure.message : 'The model call failed' }
          if (!(failure instanceof UpstreamError)) logger.error('model turn failed', { error: failure, source: input.source, ...input.logFields })
        }
      } finally {
        clearInterval(flusher)
      }

      const cost = costOf(seen.inputTokens, seen.outputTokens, model.model)
      const latencyMs = Math.round(performance.now() - started)
      const settled = input.record === false ? Promise.resolve() : usage.settle(
        {
          userId: p.userId,
          providerId: model.provider.id,
          model: model.model.name,
          source: input.source,
          inputTokens: seen.inputTokens,
          outputTokens: seen.outputTokens,
          cost,
          latencyMs,
          ttftMs,
          status: status === 'complete' ? 'ok' : status === 'stopped' ? 'aborted' : 'error',
        },
        input.held,
      )
      return { status, finishReason, text, reasoning, toolCalls, usage: seen, cost, latencyMs, ttftMs, error, settled }
    },
  }
}

export type ModelTurns = ReturnType<typeof createModelTurns>

/** `ModelTurns.isUsable`, for modules that save a model reference. */
export type ModelUsable = (p: Principal, ref: string) => Promise<boolean>
