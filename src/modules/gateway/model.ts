/**
 * @module The gateway's wire, OpenAI's chat-completions shapes: the request schema, the answer and
 * error schemas (for the OpenAPI document and Eden), converting a request's messages and tools to the
 * provider-neutral request, and building `chat.completion` / `chat.completion.chunk` objects from
 * provider-neutral events (for Anthropic and Gemini behind the gateway).
 */
import type { ModelMessage } from 'ai'
import { z } from 'zod'
import type { ChatRequest, FinishReason, ToolSpec, Usage } from '../../llm/index.ts'
import { responsesOf } from '../../lib/schemas.ts'

const contentPart = z.looseObject({ type: z.string(), text: z.string().optional(), image_url: z.union([z.string(), z.looseObject({ url: z.string() })]).optional() })
const toolCall = z.looseObject({ id: z.string(), type: z.literal('function').optional(), function: z.looseObject({ name: z.string(), arguments: z.string() }) })

const chatMessage = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
  name: z.string().optional(),
  tool_calls: z.array(toolCall).optional(),
  tool_call_id: z.string().optional(),
})

/** The request: known fields validated, unknown ones kept (they are relayed to OpenAI-type upstreams as sent). */
export const chatCompletionRequest = z.looseObject({
  model: z.string().min(1).max(200),
  messages: z.array(chatMessage).min(1).max(10_000),
  stream: z.boolean().optional(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  max_tokens: z.number().int().positive().nullable().optional(),
  max_completion_tokens: z.number().int().positive().nullable().optional(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullable().optional(),
  n: z.number().int().min(1).max(1).nullable().optional(),
  tools: z.array(z.looseObject({ type: z.literal('function'), function: z.looseObject({ name: z.string(), description: z.string().optional(), parameters: z.record(z.string(), z.unknown()).optional() }) })).optional(),
  tool_choice: z.union([z.enum(['auto', 'none', 'required']), z.looseObject({ type: z.literal('function'), function: z.object({ name: z.string() }) })]).optional(),
  response_format: z
    .union([
      z.looseObject({ type: z.literal('text') }),
      z.looseObject({ type: z.literal('json_object') }),
      z.looseObject({ type: z.literal('json_schema'), json_schema: z.looseObject({ name: z.string().optional(), schema: z.record(z.string(), z.unknown()).optional() }) }),
    ])
    .optional(),
})

export type ChatCompletionRequest = z.infer<typeof chatCompletionRequest>

const openaiErrorSchema = z
  .object({ error: z.object({ message: z.string(), type: z.string(), param: z.null(), code: z.string().nullable() }) })
  .meta({ id: 'OpenAIError', description: "OpenAI's error shape" })

/** The error answers a /v1 route can give, by status, all in OpenAI's shape. */
export const openaiErrors = <S extends number>(...statuses: S[]) => responsesOf(openaiErrorSchema, statuses)

export const modelListSchema = z.object({ object: z.literal('list'), data: z.array(z.object({ id: z.string(), object: z.literal('model'), created: z.number().int(), owned_by: z.string() })) })

const usageSchema = z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() })

/** A non-streamed answer. Relayed answers are the upstream's own and may carry more fields. */
export const chatCompletionSchema = z
  .looseObject({
    id: z.string(),
    object: z.literal('chat.completion'),
    created: z.number().int(),
    model: z.string(),
    choices: z.array(
      z.looseObject({
        index: z.number().int(),
        message: z.looseObject({
          role: z.literal('assistant'),
          content: z.string().nullable(),
          tool_calls: z.array(z.object({ id: z.string(), type: z.literal('function'), function: z.object({ name: z.string(), arguments: z.string() }) })).optional(),
          reasoning_content: z.string().optional(),
          refusal: z.string().nullable().optional(),
        }),
        logprobs: z.looseObject({}).nullable(),
        finish_reason: z.enum(['stop', 'length', 'tool_calls', 'content_filter', 'function_call']),
      }),
    ),
    usage: usageSchema,
  })
  .meta({ id: 'ChatCompletion' })

/** One piece of a streamed answer. Relayed chunks are the upstream's own and may carry more fields. */
const chatCompletionChunkSchema = z
  .looseObject({
    id: z.string(),
    object: z.literal('chat.completion.chunk'),
    created: z.number().int(),
    model: z.string(),
    choices: z.array(
      z.looseObject({
        index: z.number().int(),
        delta: z.looseObject({
          role: z.literal('assistant').optional(),
          content: z.string().nullable().optional(),
          reasoning_content: z.string().optional(),
          tool_calls: z
            .array(z.looseObject({ index: z.number().int(), id: z.string().optional(), type: z.literal('function').optional(), function: z.looseObject({ name: z.string().optional(), arguments: z.string().optional() }) }))
            .optional(),
        }),
        logprobs: z.looseObject({}).nullable().optional(),
        finish_reason: z.enum(['stop', 'length', 'tool_calls', 'content_filter', 'function_call']).nullable(),
      }),
    ),
    usage: usageSchema.nullable().optional().describe('Only in the last chunk (empty `choices`), when `stream_options.include_usage` is set'),
  })
  .meta({ id: 'ChatCompletionChunk' })

/** The events of `stream: true`: `data:` lines only (no `event:` or `id:`), as OpenAI sends them. */
export const chatCompletionEventSchema = z
  .union([
    z.object({ data: chatCompletionChunkSchema }),
    z.object({ data: openaiErrorSchema.describe('The upstream failed after the first byte; `[DONE]` follows') }),
    z.object({ data: z.literal('[DONE]').describe('The last line of every stream') }),
  ])
  .meta({ id: 'ChatCompletionStreamEvent', description: 'One `data:` line of a streamed completion: a chunk, an error, or `[DONE]`' })

/** Models by name, once each: the first the caller can use. */
export const toModelListDto = (models: { name: string; createdAt: Date; providerName: string }[]): z.infer<typeof modelListSchema> => ({
  object: 'list',
  data: models.map((m) => ({ id: m.name, object: 'model', created: Math.floor(m.createdAt.getTime() / 1000), owned_by: m.providerName })),
})

const textOf = (content: z.infer<typeof chatMessage>['content']): string =>
  typeof content === 'string' ? content : (content ?? []).map((p) => (p.type === 'text' ? (p.text ?? '') : '')).join('')

/** Rough prompt size before a call, for holding credits: ~4 characters a token. */
export const estimateInputTokens = (req: ChatCompletionRequest) => Math.ceil(req.messages.reduce((n, m) => n + textOf(m.content).length, 0) / 4) + 4 * req.messages.length

/** The provider-neutral request for an OpenAI-shaped one. */
export function toChatRequest(req: ChatCompletionRequest, upstreamModel: string): ChatRequest {
  const system: string[] = []
  const messages: ModelMessage[] = []
  const toolNames = new Map<string, string>()
  for (const m of req.messages) {
    if (m.role === 'system' || m.role === 'developer') {
      system.push(textOf(m.content))
    } else if (m.role === 'user') {
      if (typeof m.content === 'string' || !m.content) messages.push({ role: 'user', content: m.content ?? '' })
      else
        messages.push({
          role: 'user',
          content: m.content.map((p) =>
            p.type === 'image_url' && p.image_url ? { type: 'image' as const, image: new URL(typeof p.image_url === 'string' ? p.image_url : p.image_url.url) } : { type: 'text' as const, text: p.text ?? '' },
          ),
        })
    } else if (m.role === 'assistant') {
      const parts: Exclude<Extract<ModelMessage, { role: 'assistant' }>['content'], string> = []
      const text = textOf(m.content)
      if (text) parts.push({ type: 'text', text })
      for (const c of m.tool_calls ?? []) {
        toolNames.set(c.id, c.function.name)
        parts.push({ type: 'tool-call', toolCallId: c.id, toolName: c.function.name, input: parseArguments(c.function.arguments) })
      }
      messages.push({ role: 'assistant', content: parts })
    } else {
      const id = m.tool_call_id ?? ''
      messages.push({ role: 'tool', content: [{ type: 'tool-result', toolCallId: id, toolName: toolNames.get(id) ?? m.name ?? 'tool', output: { type: 'text', value: textOf(m.content) } }] })
    }
  }
  const tools: ToolSpec[] | undefined = req.tools?.map((t) => ({ name: t.function.name, description: t.function.description, parameters: t.function.parameters ?? { type: 'object', properties: {} } }))
  const stop = req.stop == null ? undefined : typeof req.stop === 'string' ? [req.stop] : req.stop
  const rf = req.response_format
  return {
    model: upstreamModel,
    system: system.length ? system.join('\n\n') : undefined,
    messages,
    tools,
    toolChoice: req.tool_choice === undefined ? undefined : typeof req.tool_choice === 'string' ? req.tool_choice : { name: req.tool_choice.function.name },
    temperature: req.temperature ?? undefined,
    topP: req.top_p ?? undefined,
    maxTokens: req.max_completion_tokens ?? req.max_tokens ?? undefined,
    stop,
    responseFormat: rf?.type === 'json_object' ? { type: 'json' } : rf?.type === 'json_schema' && rf.json_schema.schema ? { type: 'json_schema', name: rf.json_schema.name, schema: rf.json_schema.schema } : undefined,
  }
}

function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return {}
  }
}

const openaiFinish = (r: FinishReason) => (r === 'tool_calls' ? 'tool_calls' : r === 'length' ? 'length' : r === 'content_filter' ? 'content_filter' : 'stop')

const usageObject = (u: Usage) => ({ prompt_tokens: u.inputTokens, completion_tokens: u.outputTokens, total_tokens: u.inputTokens + u.outputTokens })

const completionId = () => `chatcmpl-${crypto.randomUUID().replaceAll('-', '')}`

export type ToolCallOut = { id: string; type: 'function'; function: { name: string; arguments: string } }

/** The `chat.completion` of a translated answer (a relayed one is the upstream's own). */
export function chatCompletion(model: string, a: { text: string; reasoning: string; toolCalls: ToolCallOut[]; finish: FinishReason; usage: Usage }): z.infer<typeof chatCompletionSchema> {
  return {
    id: completionId(),
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: a.text || (a.toolCalls.length ? null : ''), ...(a.reasoning ? { reasoning_content: a.reasoning } : {}), ...(a.toolCalls.length ? { tool_calls: a.toolCalls } : {}), refusal: null },
        logprobs: null,
        finish_reason: openaiFinish(a.finish),
      },
    ],
    usage: usageObject(a.usage),
  }
}

/** Builds the chunks of one streamed completion. */
export function chunkWriter(model: string) {
  const id = completionId()
  const created = Math.floor(Date.now() / 1000)
  let toolIndex = 0
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
    `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`
  return {
    start: () => chunk({ role: 'assistant', content: '' }),
    text: (text: string) => chunk({ content: text }),
    reasoning: (text: string) => chunk({ reasoning_content: text }),
    toolCall: (c: { id: string; name: string; arguments: string }) => chunk({ tool_calls: [{ index: toolIndex++, id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }] }),
    finish: (reason: FinishReason) => chunk({}, openaiFinish(reason)),
    usage: (u: Usage) => `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage: usageObject(u) })}\n\n`,
  }
}
