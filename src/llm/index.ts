/**
 * @module One streaming interface over the four provider types — text and reasoning deltas, tool
 * calls, usage and finish reason; abort by AbortSignal; an idle timeout that also bounds the wait
 * for the first byte — on the Vercel AI SDK for Anthropic and Gemini, and on a direct reader of the
 * chat-completions stream for OpenAI-type providers (openai-stream.ts). Plus the upstream model lists.
 * Every request goes out through the connection's own fetch (lib/outbound.ts), which does not follow redirects.
 */
import { createAnthropic } from '@ai-sdk/anthropic'
import { createGoogleGenerativeAI } from '@ai-sdk/google'
import { createOpenAI } from '@ai-sdk/openai'
import { createOpenAICompatible } from '@ai-sdk/openai-compatible'
import { APICallError, jsonSchema, Output, streamText, type LanguageModel, type ModelMessage, type ToolSet } from 'ai'
import { downloadWith } from './media.ts'
import { streamOpenAI } from './openai-stream.ts'

// The AI SDK would print warnings and failed request bodies (user content) to the console; we log our own.
;(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false

export type ProviderType = 'openai' | 'anthropic' | 'google' | 'openai_compatible'

/** Everything needed to call a provider (decrypted), for one caller. */
export interface ProviderConnection {
  type: ProviderType
  baseUrl: string | null
  apiKey: string | null
  headers: Record<string, string>
  /** idle timeout: the longest wait for the first byte, and between two chunks */
  timeoutMs: number
  /** sends the requests to the provider: with the rights of whoever chose its base URL (lib/outbound.ts) */
  fetch: typeof fetch
  /** fetches what the caller's request points at (an image URL the model cannot take as a URL), with the caller's rights */
  fetchMedia: typeof fetch
}

export const DEFAULT_BASE_URLS: Record<ProviderType, string | null> = {
  openai: 'https://api.openai.com/v1',
  anthropic: 'https://api.anthropic.com/v1',
  google: 'https://generativelanguage.googleapis.com/v1beta',
  openai_compatible: null,
}

export const baseUrlOf = (c: Pick<ProviderConnection, 'type' | 'baseUrl'>) => (c.baseUrl ?? DEFAULT_BASE_URLS[c.type] ?? '').replace(/\/+$/, '')

export interface ToolSpec {
  name: string
  description?: string
  /** JSON Schema of the arguments */
  parameters: Record<string, unknown>
}

export interface ChatRequest {
  /** the upstream model id */
  model: string
  system?: string
  messages: ModelMessage[]
  tools?: ToolSpec[]
  toolChoice?: 'auto' | 'none' | 'required' | { name: string }
  temperature?: number
  topP?: number
  maxTokens?: number
  stop?: string[]
  /** JSON output: `json` (any object) or a named JSON Schema */
  responseFormat?: { type: 'json' } | { type: 'json_schema'; name?: string; schema: Record<string, unknown> }
}

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'error' | 'other'

export interface Usage {
  inputTokens: number
  outputTokens: number
}

export type ChatEvent =
  | { type: 'text'; text: string }
  | { type: 'reasoning'; text: string }
  | { type: 'tool_call'; id: string; name: string; arguments: string }
  | { type: 'finish'; reason: FinishReason; usage: Usage }

/** A provider failed: its HTTP status when it answered, `timeout` when it did not in time. */
export class UpstreamError extends Error {
  override name = 'UpstreamError'
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly kind: 'http' | 'timeout' | 'network' = 'http',
  ) {
    super(message)
  }
}

/** A provider that went quiet for longer than its timeout (before the first byte or between two chunks). */
export const upstreamTimeout = (timeoutMs: number) => new UpstreamError(`the provider sent nothing for ${timeoutMs} ms`, undefined, 'timeout')

/** The longest piece of a provider's own text (an error message) passed on to users. */
const MAX_UPSTREAM_TEXT = 300

/** A provider's text made safe to show: control characters gone, whitespace collapsed, at most 300 characters. */
export function upstreamText(text: string): string {
  const clean = text.replace(/[\p{Cc}\p{Cf}\u2028\u2029]+/gu, ' ').replace(/\s+/g, ' ').trim()
  return clean.length > MAX_UPSTREAM_TEXT ? `${clean.slice(0, MAX_UPSTREAM_TEXT - 1)}…` : clean
}

/**
 * What to say of a provider's error answer: its own message (trimmed, upstreamText) when it sent one,
 * else the status. Never request headers. Redirects are not followed (lib/outbound.ts): an API
 * endpoint does not redirect, and a followed redirect could take the server to an address its
 * user may not reach; a 3xx says so.
 */
export function upstreamStatusMessage(status: number, body: string): string {
  if (status >= 300 && status < 400) return `the provider answered ${status}, a redirect, which is not followed: set base_url to the address that answers`
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown }
    const msg = typeof parsed.error === 'string' ? parsed.error : (parsed.error?.message ?? parsed.message)
    const text = typeof msg === 'string' ? upstreamText(msg) : ''
    if (text) return `the provider answered ${status}: ${text}`
  } catch {}
  return `the provider answered ${status}`
}

/** A request that failed before the provider answered (not a timeout): why, in words users may see. */
export const unreachable = (error: unknown) => new UpstreamError(`the provider could not be reached: ${upstreamText(error instanceof Error ? error.message : String(error))}`, undefined, 'network')

export function languageModel(c: ProviderConnection, modelId: string): LanguageModel {
  const options = { baseURL: baseUrlOf(c), apiKey: c.apiKey ?? '', headers: c.headers, fetch: c.fetch }
  switch (c.type) {
    case 'openai':
      return createOpenAI(options).chat(modelId)
    case 'openai_compatible':
      return createOpenAICompatible({ ...options, name: 'upstream', includeUsage: true }).chatModel(modelId)
    case 'anthropic':
      return createAnthropic(options)(modelId)
    case 'google':
      return createGoogleGenerativeAI(options)(modelId)
  }
}

const FINISH: Record<string, FinishReason> = { stop: 'stop', length: 'length', 'tool-calls': 'tool_calls', 'content-filter': 'content_filter', error: 'error' }

/**
 * Stream one model call. Ends with exactly one `finish` event; throws UpstreamError when the
 * provider fails or goes quiet for longer than its timeout; stops when `signal` aborts.
 */
export async function* streamChat(c: ProviderConnection, req: ChatRequest, signal?: AbortSignal): AsyncGenerator<ChatEvent> {
  if (c.type === 'openai' || c.type === 'openai_compatible') return yield* streamOpenAI(c, req, signal)
  const controller = new AbortController()
  let timedOut = false
  let watchdog: Timer | undefined
  const arm = () => {
    clearTimeout(watchdog)
    watchdog = setTimeout(() => {
      timedOut = true
      controller.abort()
    }, c.timeoutMs)
  }
  const onAbort = () => controller.abort()
  signal?.addEventListener('abort', onAbort, { once: true })
  arm()
  try {
    const tools: ToolSet | undefined = req.tools?.length
      ? Object.fromEntries(req.tools.map((t) => [t.name, { description: t.description, inputSchema: jsonSchema(t.parameters) }]))
      : undefined
    const result = streamText({
      model: languageModel(c, req.model),
      system: req.system,
      messages: req.messages,
      tools,
      toolChoice: typeof req.toolChoice === 'object' ? { type: 'tool', toolName: req.toolChoice.name } : req.toolChoice,
      temperature: req.temperature,
      topP: req.topP,
      maxOutputTokens: req.maxTokens,
      stopSequences: req.stop,
      // JSON output: each provider adapter turns this into its own switch (response_format, responseMimeType, …)
      output: req.responseFormat ? (req.responseFormat.type === 'json' ? Output.json() : Output.object({ schema: jsonSchema(req.responseFormat.schema), name: req.responseFormat.name })) : undefined,
      // images at URLs the model does not take: fetched through the caller's guard
      experimental_download: downloadWith(c.fetchMedia, controller.signal),
      abortSignal: controller.signal,
      maxRetries: 0,
      onError: () => {}, // errors arrive as `error` parts below
    })
    for await (const part of result.fullStream) {
      arm()
      switch (part.type) {
        case 'text-delta':
          if (part.text) yield { type: 'text', text: part.text }
          break
        case 'reasoning-delta':
          if (part.text) yield { type: 'reasoning', text: part.text }
          break
        case 'tool-call':
          yield { type: 'tool_call', id: part.toolCallId, name: part.toolName, arguments: JSON.stringify(part.input ?? {}) }
          break
        case 'error':
          throw toUpstreamError(part.error, timedOut, c.timeoutMs)
        case 'abort':
          if (timedOut) throw upstreamTimeout(c.timeoutMs)
          return
        case 'finish':
          yield {
            type: 'finish',
            reason: FINISH[part.finishReason] ?? 'other',
            usage: { inputTokens: part.totalUsage.inputTokens ?? 0, outputTokens: part.totalUsage.outputTokens ?? 0 },
          }
          break
      }
    }
  } catch (error) {
    if (error instanceof UpstreamError) throw error
    if (signal?.aborted && !timedOut) return
    throw toUpstreamError(error, timedOut, c.timeoutMs)
  } finally {
    clearTimeout(watchdog)
    signal?.removeEventListener('abort', onAbort)
  }
}

function toUpstreamError(error: unknown, timedOut: boolean, timeoutMs: number): UpstreamError {
  if (timedOut) return upstreamTimeout(timeoutMs)
  if (error instanceof UpstreamError) return error
  if (APICallError.isInstance(error)) return new UpstreamError(error.statusCode === undefined ? 'the provider answered with an error' : upstreamStatusMessage(error.statusCode, error.responseBody ?? ''), error.statusCode, 'http')
  return unreachable(error)
}

export interface UpstreamModel {
  id: string
  contextWindow: number | null
  maxOutputTokens: number | null
}

/** The models a provider lists, through each protocol's own list endpoint. */
export async function listModels(c: ProviderConnection, signal?: AbortSignal): Promise<UpstreamModel[]> {
  const base = baseUrlOf(c)
  const key = c.apiKey ?? ''
  const timeout = AbortSignal.timeout(c.timeoutMs)
  const init = (headers: Record<string, string>): RequestInit => ({ headers: { ...c.headers, ...headers }, signal: signal ? AbortSignal.any([signal, timeout]) : timeout })
  let res: Response
  try {
    if (c.type === 'anthropic') res = await c.fetch(`${base}/models?limit=1000`, init({ 'x-api-key': key, 'anthropic-version': '2023-06-01' }))
    else if (c.type === 'google') res = await c.fetch(`${base}/models?pageSize=1000`, init({ 'x-goog-api-key': key }))
    else res = await c.fetch(`${base}/models`, init(key ? { authorization: `Bearer ${key}` } : {}))
  } catch (error) {
    if (timeout.aborted) throw upstreamTimeout(c.timeoutMs)
    throw unreachable(error)
  }
  const text = await res.text()
  if (!res.ok) throw new UpstreamError(upstreamStatusMessage(res.status, text), res.status)
  const body = JSON.parse(text) as {
    data?: { id: string; context_window?: number; context_length?: number }[]
    models?: { name: string; inputTokenLimit?: number; outputTokenLimit?: number }[]
  }
  if (c.type === 'google')
    return (body.models ?? []).map((m) => ({ id: m.name.replace(/^models\//, ''), contextWindow: m.inputTokenLimit ?? null, maxOutputTokens: m.outputTokenLimit ?? null }))
  return (body.data ?? []).map((m) => ({ id: m.id, contextWindow: m.context_window ?? m.context_length ?? null, maxOutputTokens: null }))
}
