/** @module The OpenAI-compatible gateway at /v1 (docs/api.md §8). */
import { Elysia } from 'elysia'
import { openaiError } from '../../lib/errors.ts'
import { subscribedBody } from '../../lib/sse.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { eventStreamResponse } from '../../plugins/openapi-document.ts'
import type { FinalEvent, Subscriptions } from '../../runs/subscriptions.ts'
import { chatCompletionEventSchema, chatCompletionRequest, chatCompletionSchema, modelListSchema, openaiErrors, toModelListDto } from './model.ts'
import type { GatewayService } from './service.ts'

/** What each status of a completion means (docs/api.md §8), and the streamed 200 beside the JSON one, for the OpenAPI document. */
const completionResponses = {
  200: eventStreamResponse('`chat.completion` (JSON); with `stream: true`, server-sent `chat.completion.chunk` events ending in `data: [DONE]`', chatCompletionEventSchema),
  400: { description: '`validation_error`: the body is not valid; or `upstream_rejected`' },
  401: { description: '`unauthorized`: no or bad key' },
  403: { description: '`forbidden`: an API key without the `gateway` scope, or the `hearth_access` cookie sent from another site (docs/api.md §1); `model_not_allowed` (`permission_error`): the caller\'s groups do not allow the model (§21)' },
  402: { description: '`insufficient_quota`: credits used up' },
  404: { description: '`model_not_found`: unknown model, or one the caller may not use; or `upstream_rejected`' },
  413: { description: '`payload_too_large`: the body is over 1 MiB; or `upstream_rejected`' },
  415: { description: '`unsupported_media_type`: the body is not `application/json`' },
  422: { description: '`upstream_rejected`: the upstream refused the request' },
  429: { description: '`rate_limited` (Hearth\'s own limit, or with `stream: true` the cap on open streams) or `upstream_rate_limited`' },
  500: { description: '`internal_error`: a failure in Hearth, such as its database' },
  502: { description: '`upstream_error`: the upstream failed or could not be reached' },
  504: { description: '`upstream_timeout`: the upstream sent nothing within the provider\'s timeout' },
}

/**
 * How a streamed completion ends when its key or session is revoked: OpenAI's in-stream error and
 * `[DONE]`, as for an upstream that breaks off, so SDKs raise it instead of taking a cut answer as whole.
 */
function revokedChunk(final: FinalEvent): string {
  const { code, reason } = final.data as { code: string; reason: string }
  const message = reason === 'api_key_revoked' ? 'the API key was revoked' : reason === 'session_revoked' ? 'the session was revoked' : "the account's access changed; authenticate again"
  return `data: ${JSON.stringify(openaiError(message, 'authentication_error', code.toLowerCase()))}\n\ndata: [DONE]\n\n`
}

export function gatewayRoutes(deps: { gateway: GatewayService; subscriptions: Subscriptions; authPlugin: ReturnType<typeof authPlugin> }) {
  const { gateway, subscriptions } = deps
  return new Elysia({ name: 'hearth.routes.gateway', prefix: '/v1', detail: { tags: ['OpenAI-compatible gateway'] } })
    .use(deps.authPlugin)
    .get('/models', async ({ principal }) => toModelListDto(await gateway.models(principal)), {
      auth: 'gateway',
      response: { 200: modelListSchema, ...openaiErrors(401, 403, 429) },
      detail: { summary: 'List models (OpenAI)', description: "OpenAI's model list: `id` is the model's `name` in Hearth, `owned_by` its provider's name; models marked unavailable are left out, and so are those the caller's groups do not allow (docs/api.md §21). Authenticate with an API key (`hk_…`) or an access token." },
    })
    // The service answers with a Response of its own (relayed bytes, or a stream): the schemas document it and type it for Eden.
    .post(
      '/chat/completions',
      async ({ principal, body, request }) => {
        if (!body.stream) return gateway.complete(principal, body, request.signal)
        // a stream is one of the caller's subscriptions: 429 past the cap, ended by a revocation
        const sub = subscriptions.open(principal)
        let res: Response
        try {
          res = await gateway.complete(principal, body, request.signal)
        } catch (error) {
          sub.release()
          throw error
        }
        if (!res.body || !res.headers.get('content-type')?.startsWith('text/event-stream')) {
          sub.release()
          return res
        }
        return new Response(subscribedBody(res.body, sub, revokedChunk), { status: res.status, headers: res.headers })
      },
      {
        auth: 'gateway',
        body: chatCompletionRequest,
        response: { 200: chatCompletionSchema, ...openaiErrors(400, 401, 402, 403, 404, 413, 415, 422, 429, 500, 502, 504) },
        detail: {
          summary: 'Chat completions (OpenAI)',
          description:
            "OpenAI's request and answer. OpenAI and OpenAI-compatible providers are relayed (unknown fields included, `model` replaced by the upstream name); Anthropic and Google are translated. With `stream: true`, `chat.completion.chunk` events ending in `data: [DONE]`; a failure after the first byte ends the stream with `data: {\"error\": …}` then `[DONE]`. Errors use OpenAI's shape. Usage and cost are recorded and charged like chat.",
          responses: completionResponses,
        },
      },
    )
}
