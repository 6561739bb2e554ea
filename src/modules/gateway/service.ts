/**
 * @module The OpenAI-compatible gateway. OpenAI-type upstreams are relayed: the request goes out
 * as sent (model renamed, usage asked for), and the stream comes back event by event without being
 * rebuilt — only the usage chunk is read. When the client did not ask for usage, that chunk and the
 * `"usage":null` the upstream then puts in every other chunk are cut out, so the client gets what
 * the upstream would have sent it.
 * Anthropic and Gemini go through the provider-neutral stream and are written as OpenAI chunks.
 * Either way: usage recorded and credits settled; a failure before the first byte is a clean
 * OpenAI error, after it an error event and `[DONE]`; the client going away aborts the upstream.
 */
import { AppError } from '../../lib/errors.ts'
import type { Logger } from '../../lib/logger.ts'
import { SSE_HEADERS } from '../../lib/sse.ts'
import { baseUrlOf, streamChat, unreachable, UpstreamError, upstreamStatusMessage, upstreamTimeout, type ChatEvent, type ProviderConnection, type Usage } from '../../llm/index.ts'
import type { Principal } from '../auth/service.ts'
import type { GroupEffect } from '../groups/service.ts'
import type { ProvidersService, ResolvedModel } from '../providers/service.ts'
import { costOf, type UsageService } from '../usage/service.ts'
import { errorEvent, insufficientQuota, modelNotAllowed, modelNotFound, serverError, upstreamBrokeOff, upstreamFailure } from './errors.ts'
import { chatCompletion, chunkWriter, estimateInputTokens, toChatRequest, type ChatCompletionRequest, type ToolCallOut } from './model.ts'

const JSON_HEADERS = { 'content-type': 'application/json' }
const EVENT_END = Buffer.from('\n\n')
const DONE_MARK = Buffer.from('data: [DONE]')
const USAGE_MARK = Buffer.from('"usage":{')
const NULL_USAGE = Buffer.from(',"usage":null')
const MAX_EVENT_BYTES = 4 * 1024 * 1024
const encoder = new TextEncoder()
/** what a completion may cost at most when the request sets no max_tokens and the model no max output */
const DEFAULT_MAX_OUTPUT = 4096

export function createGatewayService(deps: {
  providers: ProvidersService
  usage: UsageService
  logger: Logger
  /** what the caller's groups set (docs/api.md §21): only their allowed models may be used and are listed */
  groupEffectOf?: (userId: string) => GroupEffect | Promise<GroupEffect>
}) {
  const { providers, usage, logger } = deps
  /** the catalogue ids the caller's groups allow; undefined: no restriction */
  const allowedOf = async (p: Principal) => (deps.groupEffectOf ? (await deps.groupEffectOf(p.userId)).allowedModelIds?.value : undefined)

  /** Everything one call needs to record its usage when it ends, whichever way it ends. */
  function meter(principal: Principal, resolved: ResolvedModel, held: number) {
    const started = performance.now()
    let ttft: number | null = null
    let done = false
    return {
      firstToken() {
        ttft ??= Math.round(performance.now() - started)
      },
      end(status: 'ok' | 'error' | 'aborted', u: Usage) {
        if (done) return
        done = true
        void usage.settle(
          {
            userId: principal.userId,
            providerId: resolved.provider.id,
            model: resolved.model.name,
            source: 'gateway',
            inputTokens: u.inputTokens,
            outputTokens: u.outputTokens,
            cost: costOf(u.inputTokens, u.outputTokens, resolved.model),
            latencyMs: Math.round(performance.now() - started),
            ttftMs: ttft,
            status,
          },
          held,
        )
      },
    }
  }

  async function relay(req: ChatCompletionRequest, resolved: ResolvedModel, conn: ProviderConnection, m: ReturnType<typeof meter>, clientSignal: AbortSignal): Promise<Response> {
    const wantsUsage = req.stream_options?.include_usage === true
    const body = { ...req, model: resolved.model.modelId, ...(req.stream ? { stream_options: { ...req.stream_options, include_usage: true } } : {}) }
    const upstream = new AbortController()
    const onClientGone = () => upstream.abort()
    clientSignal.addEventListener('abort', onClientGone, { once: true })
    let timedOut = false
    const idle = setTimeout(() => ((timedOut = true), upstream.abort()), conn.timeoutMs)
    const rearm = () => idle.refresh()
    const cleanup = () => {
      clearTimeout(idle)
      clientSignal.removeEventListener('abort', onClientGone)
    }

    let res: Response
    try {
      res = await conn.fetch(`${baseUrlOf(conn)}/chat/completions`, {
        method: 'POST',
        headers: { ...conn.headers, 'content-type': 'application/json', ...(conn.apiKey ? { authorization: `Bearer ${conn.apiKey}` } : {}) },
        body: JSON.stringify(body),
        signal: upstream.signal,
      })
    } catch (error) {
      cleanup()
      m.end(clientSignal.aborted ? 'aborted' : 'error', { inputTokens: 0, outputTokens: 0 })
      if (timedOut) return upstreamFailure(upstreamTimeout(conn.timeoutMs))
      return upstreamFailure(unreachable(error))
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '')
      cleanup()
      m.end('error', { inputTokens: 0, outputTokens: 0 })
      return upstreamFailure(new UpstreamError(upstreamStatusMessage(res.status, text), res.status))
    }

    if (!req.stream) {
      let text: string
      try {
        text = await res.text()
      } catch {
        cleanup()
        m.end(clientSignal.aborted ? 'aborted' : 'error', { inputTokens: 0, outputTokens: 0 })
        return timedOut ? upstreamFailure(upstreamTimeout(conn.timeoutMs)) : upstreamBrokeOff()
      }
      cleanup()
      m.firstToken()
      const u = (JSON.parse(text) as { usage?: { prompt_tokens?: number; completion_tokens?: number } }).usage
      m.end('ok', { inputTokens: u?.prompt_tokens ?? 0, outputTokens: u?.completion_tokens ?? 0 })
      return new Response(text, { headers: JSON_HEADERS })
    }

    // Streaming: the upstream's bytes go out as they came, cut only at event boundaries; only an
    // event carrying the usage is decoded. Unless the client asked for usage, that event and every
    // `,"usage":null` are cut out.
    const reader = res.body!.getReader()
    let pending: Buffer = Buffer.alloc(0)
    let sawDone = false
    let counted: Usage = { inputTokens: 0, outputTokens: 0 }
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          for (;;) {
            const { value, done } = await reader.read()
            if (done) break
            rearm()
            m.firstToken()
            const bytes = pending.length ? Buffer.concat([pending, value]) : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
            const cut = bytes.lastIndexOf(EVENT_END)
            if (cut === -1) {
              // an upstream that never ends an event must not grow this buffer without bound
              if (bytes.length > MAX_EVENT_BYTES) throw new Error('upstream event too large')
              pending = Buffer.from(bytes)
              continue
            }
            const complete = bytes.subarray(0, cut + 2)
            pending = cut + 2 < bytes.length ? Buffer.from(bytes.subarray(cut + 2)) : Buffer.alloc(0)
            if (complete.includes(DONE_MARK)) sawDone = true
            const out = wantsUsage ? takeUsage(complete) : withoutNullUsage(takeUsage(complete))
            if (!out.length) continue
            controller.enqueue(out)
            return
          }
          cleanup()
          if (!sawDone) {
            m.end('error', counted)
            controller.enqueue(encoder.encode(errorEvent('the provider ended the stream early')))
          } else m.end('ok', counted)
          controller.close()
        } catch {
          cleanup()
          m.end(clientSignal.aborted ? 'aborted' : 'error', counted)
          if (!clientSignal.aborted) {
            controller.enqueue(encoder.encode(errorEvent(timedOut ? upstreamTimeout(conn.timeoutMs).message : 'the provider broke off the stream')))
            controller.close()
          }
        }
      },
      cancel() {
        cleanup()
        upstream.abort()
        m.end('aborted', counted)
      },
    })

    /**
     * Read the usage from the event carrying it, and cut that event out when the client did not ask
     * for it. Only that event is decoded; the rest stays the upstream's bytes. (`"usage":{` cannot
     * occur inside a JSON string, where its quotes would be escaped.)
     */
    function takeUsage(bytes: Buffer): Buffer {
      let at = bytes.indexOf(USAGE_MARK)
      if (at === -1) return bytes
      const kept: Buffer[] = []
      let from = 0
      while (at !== -1) {
        const before = bytes.lastIndexOf(EVENT_END, at)
        const start = before === -1 ? 0 : before + 2
        const end = bytes.indexOf(EVENT_END, at) + 2
        try {
          const event = bytes.toString('utf8', start, end)
          const u = (JSON.parse(event.slice(event.indexOf('{'))) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage
          counted = { inputTokens: u.prompt_tokens, outputTokens: u.completion_tokens }
        } catch {}
        if (!wantsUsage) {
          kept.push(bytes.subarray(from, start))
          from = end
        }
        at = bytes.indexOf(USAGE_MARK, end)
      }
      if (wantsUsage) return bytes
      kept.push(bytes.subarray(from))
      return Buffer.concat(kept)
    }

    return new Response(stream, { headers: SSE_HEADERS })
  }

  async function translate(req: ChatCompletionRequest, resolved: ResolvedModel, conn: ProviderConnection, m: ReturnType<typeof meter>, clientSignal: AbortSignal): Promise<Response> {
    const name = req.model
    const chatRequest = toChatRequest(req, resolved.model.modelId)
    chatRequest.maxTokens ??= resolved.model.maxOutputTokens ?? undefined
    const events = streamChat(conn, chatRequest, clientSignal)
    let finish: Extract<ChatEvent, { type: 'finish' }> | undefined

    if (!req.stream) {
      let text = ''
      let reasoning = ''
      const toolCalls: ToolCallOut[] = []
      try {
        for await (const e of events) {
          m.firstToken()
          if (e.type === 'text') text += e.text
          else if (e.type === 'reasoning') reasoning += e.text
          else if (e.type === 'tool_call') toolCalls.push({ id: e.id, type: 'function', function: { name: e.name, arguments: e.arguments } })
          else finish = e
        }
      } catch (error) {
        m.end(clientSignal.aborted ? 'aborted' : 'error', { inputTokens: 0, outputTokens: 0 })
        return upstreamFailure(asUpstream(error))
      }
      const u = finish?.usage ?? { inputTokens: 0, outputTokens: 0 }
      m.end('ok', u)
      return Response.json(chatCompletion(name, { text, reasoning, toolCalls, finish: finish?.reason ?? 'stop', usage: u }))
    }

    // Wait for the first event before answering, so an early failure is still a clean error response.
    const iterator = events[Symbol.asyncIterator]()
    let first: IteratorResult<ChatEvent>
    try {
      first = await iterator.next()
    } catch (error) {
      m.end(clientSignal.aborted ? 'aborted' : 'error', { inputTokens: 0, outputTokens: 0 })
      return upstreamFailure(asUpstream(error))
    }
    const w = chunkWriter(name)
    const wantsUsage = req.stream_options?.include_usage === true
    const write = (e: ChatEvent): string => {
      switch (e.type) {
        case 'text':
          return w.text(e.text)
        case 'reasoning':
          return w.reasoning(e.text)
        case 'tool_call':
          return w.toolCall(e)
        case 'finish':
          finish = e
          return w.finish(e.reason) + (wantsUsage ? w.usage(e.usage) : '') + 'data: [DONE]\n\n'
      }
    }
    let started = false
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          let out = ''
          if (!started) {
            started = true
            m.firstToken()
            out = w.start() + (first.done ? '' : write(first.value))
          } else {
            const next = await iterator.next()
            if (!next.done) out = write(next.value)
            else {
              m.end(finish ? 'ok' : 'error', finish?.usage ?? { inputTokens: 0, outputTokens: 0 })
              if (!finish) controller.enqueue(encoder.encode(errorEvent('the provider ended the stream early')))
              return controller.close()
            }
          }
          controller.enqueue(encoder.encode(out))
          if (first.done) {
            m.end('error', { inputTokens: 0, outputTokens: 0 })
            controller.enqueue(encoder.encode(errorEvent('the provider ended the stream early')))
            controller.close()
          }
        } catch (error) {
          m.end(clientSignal.aborted ? 'aborted' : 'error', finish?.usage ?? { inputTokens: 0, outputTokens: 0 })
          controller.enqueue(encoder.encode(errorEvent(asUpstream(error).message)))
          controller.close()
        }
      },
      cancel() {
        void iterator.return?.(undefined)
        m.end('aborted', finish?.usage ?? { inputTokens: 0, outputTokens: 0 })
      },
    })
    return new Response(stream, { headers: SSE_HEADERS })
  }

  return {
    /** POST /v1/chat/completions */
    async complete(principal: Principal, req: ChatCompletionRequest, clientSignal: AbortSignal): Promise<Response> {
      const resolved = await providers.resolve(principal, req.model)
      if (!resolved) return modelNotFound(req.model)
      if ((await allowedOf(principal))?.has(resolved.model.id) === false) return modelNotAllowed(req.model)
      const maxOut = req.max_completion_tokens ?? req.max_tokens ?? resolved.model.maxOutputTokens ?? DEFAULT_MAX_OUTPUT
      let held: number
      try {
        held = await usage.reserve(principal.userId, costOf(estimateInputTokens(req), maxOut, resolved.model))
      } catch (error) {
        // A refused hold is the caller's quota. Anything else (the database failing) is ours: a 500,
        // logged with the request id by the error mapper, as when resolve() fails.
        if (error instanceof AppError && error.code === 'QUOTA_EXCEEDED') return insufficientQuota()
        throw error
      }
      const m = meter(principal, resolved, held)
      try {
        const conn = await providers.connection(resolved.provider, principal)
        const openaiType = resolved.provider.type === 'openai' || resolved.provider.type === 'openai_compatible'
        return await (openaiType ? relay : translate)(req, resolved, conn, m, clientSignal)
      } catch (error) {
        m.end('error', { inputTokens: 0, outputTokens: 0 })
        if (error instanceof UpstreamError) return upstreamFailure(error)
        logger.error('gateway failure', { error, model: req.model })
        return serverError()
      }
    },

    /** GET /v1/models: the models the caller can use, each name once; under a group restriction, the names that resolve to an allowed model */
    async models(principal: Principal) {
      const seen = new Set<string>()
      const unique = (await providers.usableModels(principal)).filter((r) => {
        if (seen.has(r.name)) return false
        seen.add(r.name)
        return true
      })
      const allowed = await allowedOf(principal)
      if (!allowed) return unique
      const resolved = await Promise.all(unique.map((r) => providers.resolve(principal, r.name)))
      return unique.filter((_, i) => resolved[i] && allowed.has(resolved[i].model.id))
    },
  }
}

/**
 * The bytes without `,"usage":null`, which an upstream asked for usage puts in every chunk and which
 * OpenAI does not send a client that did not ask. (As with the usage mark, this cannot occur inside a
 * JSON string.) One copy, only when there is something to cut.
 */
function withoutNullUsage(bytes: Buffer): Buffer {
  let at = bytes.indexOf(NULL_USAGE)
  if (at === -1) return bytes
  const out = Buffer.allocUnsafe(bytes.length)
  let length = 0
  let from = 0
  while (at !== -1) {
    length += bytes.copy(out, length, from, at)
    from = at + NULL_USAGE.length
    at = bytes.indexOf(NULL_USAGE, from)
  }
  length += bytes.copy(out, length, from)
  return out.subarray(0, length)
}

const asUpstream = (error: unknown) => (error instanceof UpstreamError ? error : new UpstreamError('the provider failed', undefined, 'network'))

export type GatewayService = ReturnType<typeof createGatewayService>
