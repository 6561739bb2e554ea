/**
 * @module The chat-completions stream of OpenAI and OpenAI-compatible servers, read directly:
 * one JSON.parse per chunk. (The AI SDK validates every chunk against zod schemas, which made a
 * streamed token cost several times more CPU than the rest of the server's work on it.)
 */
import type { ModelMessage } from 'ai'
import { baseUrlOf, unreachable, UpstreamError, upstreamStatusMessage, upstreamText, upstreamTimeout, type ChatEvent, type ChatRequest, type FinishReason, type ProviderConnection } from './index.ts'

const FINISH: Record<string, FinishReason> = { stop: 'stop', length: 'length', tool_calls: 'tool_calls', function_call: 'tool_calls', content_filter: 'content_filter' }

type OpenAIMessage = Record<string, unknown>

function partText(p: unknown): string {
  return typeof p === 'object' && p && 'text' in p ? String((p as { text: unknown }).text) : ''
}

/** Provider-neutral messages → OpenAI's. */
export function toOpenAIMessages(system: string | undefined, messages: ModelMessage[]): OpenAIMessage[] {
  const out: OpenAIMessage[] = system ? [{ role: 'system', content: system }] : []
  for (const m of messages) {
    if (m.role === 'system') out.push({ role: 'system', content: m.content })
    else if (m.role === 'user') {
      if (typeof m.content === 'string') out.push({ role: 'user', content: m.content })
      else
        out.push({
          role: 'user',
          content: m.content.map((p) =>
            p.type === 'image' ? { type: 'image_url', image_url: { url: p.image instanceof URL ? p.image.href : String(p.image) } } : { type: 'text', text: partText(p) },
          ),
        })
    } else if (m.role === 'assistant') {
      if (typeof m.content === 'string') out.push({ role: 'assistant', content: m.content })
      else {
        const text = m.content.filter((p) => p.type === 'text').map(partText).join('')
        const calls = m.content.filter((p) => p.type === 'tool-call').map((p) => ({ id: p.toolCallId, type: 'function', function: { name: p.toolName, arguments: JSON.stringify(p.input ?? {}) } }))
        out.push({ role: 'assistant', content: text || null, ...(calls.length ? { tool_calls: calls } : {}) })
      }
    } else if (m.role === 'tool') {
      for (const r of m.content) {
        if (r.type !== 'tool-result') continue
        const o = r.output as { type: string; value?: unknown }
        out.push({ role: 'tool', tool_call_id: r.toolCallId, content: typeof o.value === 'string' ? o.value : JSON.stringify(o.value ?? null) })
      }
    }
  }
  return out
}

export function openAIBody(req: ChatRequest): Record<string, unknown> {
  const body: Record<string, unknown> = { model: req.model, messages: toOpenAIMessages(req.system, req.messages), stream: true, stream_options: { include_usage: true } }
  if (req.tools?.length) body.tools = req.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } }))
  if (req.toolChoice) body.tool_choice = typeof req.toolChoice === 'string' ? req.toolChoice : { type: 'function', function: { name: req.toolChoice.name } }
  if (req.temperature !== undefined) body.temperature = req.temperature
  if (req.topP !== undefined) body.top_p = req.topP
  if (req.maxTokens !== undefined) body.max_tokens = req.maxTokens
  if (req.stop?.length) body.stop = req.stop
  if (req.responseFormat) body.response_format = req.responseFormat.type === 'json' ? { type: 'json_object' } : { type: 'json_schema', json_schema: { name: req.responseFormat.name ?? 'response', schema: req.responseFormat.schema } }
  return body
}

interface Chunk {
  choices?: { delta?: { content?: string | null; reasoning_content?: string | null; reasoning?: string | null; tool_calls?: { index: number; id?: string; function?: { name?: string; arguments?: string } }[] }; finish_reason?: string | null }[]
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null
  error?: { message?: string }
}

/** Stream one call; the same contract as streamChat. */
export async function* streamOpenAI(c: ProviderConnection, req: ChatRequest, signal?: AbortSignal): AsyncGenerator<ChatEvent> {
  const controller = new AbortController()
  let timedOut = false
  const watchdog = setTimeout(() => {
    timedOut = true
    controller.abort()
  }, c.timeoutMs)
  const onAbort = () => controller.abort()
  signal?.addEventListener('abort', onAbort, { once: true })
  const timeout = () => upstreamTimeout(c.timeoutMs)
  try {
    let res: Response
    try {
      res = await c.fetch(`${baseUrlOf(c)}/chat/completions`, {
        method: 'POST',
        headers: { ...c.headers, 'content-type': 'application/json', ...(c.apiKey ? { authorization: `Bearer ${c.apiKey}` } : {}) },
        body: JSON.stringify(openAIBody(req)),
        signal: controller.signal,
      })
    } catch (error) {
      if (timedOut) throw timeout()
      if (signal?.aborted) return
      throw unreachable(error)
    }
    if (!res.ok) {
      throw new UpstreamError(upstreamStatusMessage(res.status, await res.text().catch(() => '')), res.status)
    }

    const tools = new Map<number, { id: string; name: string; arguments: string }>()
    let finish: FinishReason | undefined
    let usage = { inputTokens: 0, outputTokens: 0 }
    let sawDone = false
    const decoder = new TextDecoder()
    let buffer = ''
    const reader = res.body!.getReader()
    try {
      read: for (;;) {
        let chunk
        try {
          chunk = await reader.read()
        } catch {
          if (timedOut) throw timeout()
          if (signal?.aborted) return
          throw new UpstreamError('the provider broke off the stream', undefined, 'network')
        }
        if (chunk.done) break
        watchdog.refresh()
        buffer += decoder.decode(chunk.value, { stream: true })
        if (buffer.length > 4 * 1024 * 1024 && buffer.indexOf('\n') === -1) throw new UpstreamError('the provider sent a line longer than 4 MiB', undefined, 'network')
        let nl: number
        while ((nl = buffer.indexOf('\n')) !== -1) {
          const line = buffer.slice(0, nl).trim()
          buffer = buffer.slice(nl + 1)
          if (!line.startsWith('data:')) continue
          const data = line.slice(5).trim()
          if (data === '[DONE]') {
            sawDone = true
            break read
          }
          let parsed: Chunk
          try {
            parsed = JSON.parse(data) as Chunk
          } catch {
            continue
          }
          if (parsed.error) throw new UpstreamError(`the provider failed mid-stream: ${typeof parsed.error.message === 'string' ? upstreamText(parsed.error.message) : 'unknown error'}`, undefined)
          if (parsed.usage) usage = { inputTokens: parsed.usage.prompt_tokens ?? 0, outputTokens: parsed.usage.completion_tokens ?? 0 }
          const choice = parsed.choices?.[0]
          if (!choice) continue
          const d = choice.delta
          const reasoning = d?.reasoning_content ?? d?.reasoning
          if (reasoning) yield { type: 'reasoning', text: reasoning }
          if (d?.content) yield { type: 'text', text: d.content }
          for (const tc of d?.tool_calls ?? []) {
            const t = tools.get(tc.index) ?? { id: '', name: '', arguments: '' }
            if (tc.id) t.id = tc.id
            if (tc.function?.name) t.name += tc.function.name
            if (tc.function?.arguments) t.arguments += tc.function.arguments
            tools.set(tc.index, t)
          }
          if (choice.finish_reason) finish = FINISH[choice.finish_reason] ?? 'other'
        }
      }
    } finally {
      reader.cancel().catch(() => {})
    }
    if (!sawDone && !finish) {
      if (signal?.aborted) return
      throw new UpstreamError('the provider ended the stream early', undefined, 'network')
    }
    // some OpenAI-compatible servers send no call id: the results sent back need one to pair with
    for (const [index, t] of [...tools.entries()].sort((a, b) => a[0] - b[0])) yield { type: 'tool_call', id: t.id || `call_${index}`, name: t.name, arguments: t.arguments || '{}' }
    yield { type: 'finish', reason: finish ?? 'stop', usage }
  } finally {
    clearTimeout(watchdog)
    signal?.removeEventListener('abort', onAbort)
  }
}
