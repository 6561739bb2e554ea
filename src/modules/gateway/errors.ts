/** @module The gateway's errors: answers in OpenAI's error shape (docs/api.md §8), which OpenAI SDKs understand. */
import { openaiError } from '../../lib/errors.ts'
import { UpstreamError } from '../../llm/index.ts'

const errorResponse = (status: number, message: string, type: string, code: string | null) => Response.json(openaiError(message, type, code), { status })

/** Unknown, unavailable, or another user's. */
export const modelNotFound = (model: string) => errorResponse(404, `The model '${model}' does not exist or you do not have access to it.`, 'invalid_request_error', 'model_not_found')

/** The caller's groups do not allow this model (docs/api.md §21). */
export const modelNotAllowed = (model: string) => errorResponse(403, `Your group does not allow model ${model}`, 'permission_error', 'model_not_allowed')

export const insufficientQuota = () => errorResponse(402, 'You exceeded your current quota: your credit balance is used up.', 'insufficient_quota', 'insufficient_quota')

/** Hearth's own failure, logged by the caller; no detail leaves the server. */
export const serverError = () => errorResponse(500, 'An unexpected error occurred', 'server_error', 'internal_error')

/** A non-streamed answer that broke off. */
export const upstreamBrokeOff = () => errorResponse(502, 'the provider broke off its answer', 'upstream_error', 'upstream_error')

/** An upstream failure before anything was sent: the client's fault passes through, the rest is 502/504. */
export function upstreamFailure(error: UpstreamError): Response {
  if (error.kind === 'timeout') return errorResponse(504, error.message, 'upstream_error', 'upstream_timeout')
  const s = error.status
  if (s === 400 || s === 404 || s === 413 || s === 422) return errorResponse(s, error.message, 'invalid_request_error', 'upstream_rejected')
  if (s === 429) return errorResponse(429, error.message, 'rate_limit_error', 'upstream_rate_limited')
  return errorResponse(502, error.message, 'upstream_error', 'upstream_error')
}

/** How a stream that fails after its first byte ends: an error event, then `[DONE]`. */
export const errorEvent = (message: string) => `data: ${JSON.stringify(openaiError(message, 'upstream_error', 'upstream_error'))}\n\ndata: [DONE]\n\n`
