/** @module The OpenAI-compatible gateway at /v1 (API.md §6). */
import { Elysia } from 'elysia'
import { z } from 'zod'
import type { authPlugin } from '../../plugins/auth.ts'
import { chatCompletionRequest } from './openai-format.ts'
import type { Gateway } from './service.ts'

const openaiErrorSchema = z.object({ error: z.object({ message: z.string(), type: z.string(), param: z.null(), code: z.string().nullable() }) }).meta({ id: 'OpenAIError' })

export function gatewayRoutes(deps: { gateway: Gateway; authPlugin: ReturnType<typeof authPlugin> }) {
  const { gateway } = deps
  return new Elysia({ name: 'hearth.routes.gateway', prefix: '/v1', detail: { tags: ['OpenAI-compatible gateway'] } })
    .use(deps.authPlugin)
    .get('/models', ({ principal }) => gateway.models(principal), {
      auth: true,
      response: { 200: z.object({ object: z.literal('list'), data: z.array(z.object({ id: z.string(), object: z.literal('model'), created: z.number().int(), owned_by: z.string() })) }), 401: openaiErrorSchema },
      detail: { summary: 'Models you can use, by name' },
    })
    .post('/chat/completions', ({ principal, body, request }) => gateway.complete(principal, body, request.signal), {
      auth: true,
      body: chatCompletionRequest,
      detail: {
        summary: 'OpenAI chat completions: JSON, or `chat.completion.chunk` SSE ending in `data: [DONE]` with `stream: true`',
        responses: { 200: { description: 'chat.completion (JSON) or text/event-stream of chat.completion.chunk' }, 400: { description: 'OpenAI error' }, 401: { description: 'OpenAI error' }, 402: { description: 'insufficient_quota' }, 404: { description: 'model_not_found' }, 502: { description: 'upstream_error' }, 504: { description: 'upstream_timeout' } },
      },
    })
}
