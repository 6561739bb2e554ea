/**
 * @module The one error mapper: every failure leaves as RFC 9457 problem+json with a stable `code`.
 * Validation problems carry field paths and messages only, never the submitted values.
 */
import { Elysia, type ValidationError } from 'elysia'
import { isUniqueViolation } from '../db/errors.ts'
import { AppError, openaiError, type ErrorCode, type FieldProblem, toProblem } from '../lib/errors.ts'
import type { Logger } from '../lib/logger.ts'
import type { RouteIndex } from './route-index.ts'

export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

const OPENAI_TYPES: Partial<Record<ErrorCode, string>> = {
  UNAUTHORIZED: 'authentication_error',
  TOKEN_EXPIRED: 'authentication_error',
  FORBIDDEN: 'permission_error',
  RATE_LIMITED: 'rate_limit_error',
  QUOTA_EXCEEDED: 'insufficient_quota',
  UPSTREAM_ERROR: 'upstream_error',
  INTERNAL_ERROR: 'server_error',
}

export function errorsPlugin(deps: { logger: Logger; routes: RouteIndex }) {
  return new Elysia({ name: 'hearth.errors' }).onError({ as: 'global' }, ({ code, error: raised, set, request }) => {
    // Elysia wraps what a body parser throws (our size limit, bad JSON) in a ParseError.
    const error = code === 'PARSE' && (raised as Error).cause instanceof AppError ? ((raised as Error).cause as AppError) : raised
    const requestId = set.headers['x-request-id'] as string | undefined
    let status: number
    let errCode: ErrorCode
    let detail: string
    let errors: FieldProblem[] | undefined

    if (error instanceof AppError) {
      ;({ status, code: errCode, detail, errors } = error)
      if (error.headers) Object.assign(set.headers, error.headers)
    } else if (code === 'VALIDATION') {
      status = 422
      errCode = 'VALIDATION_ERROR'
      errors = fieldProblems(error as ValidationError)
      detail = `The request ${(error as ValidationError).type === 'body' ? 'body' : (error as ValidationError).type} is not valid`
    } else if (code === 'PARSE') {
      status = 400
      errCode = 'VALIDATION_ERROR'
      detail = 'The request body could not be parsed'
    } else if (code === 'NOT_FOUND') {
      const path = new URL(request.url).pathname
      const allowed = deps.routes.methodsFor(path)
      if (allowed.length > 0 && !allowed.includes(request.method)) {
        status = 405
        errCode = 'METHOD_NOT_ALLOWED'
        detail = `${request.method} is not allowed on ${path}`
        set.headers['allow'] = allowed.join(', ')
      } else {
        status = 404
        errCode = 'NOT_FOUND'
        detail = `No route for ${request.method} ${path}`
      }
    } else if (isUniqueViolation(error)) {
      status = 409
      errCode = 'CONFLICT'
      detail = 'A resource with the same unique value already exists'
    } else {
      status = 500
      errCode = 'INTERNAL_ERROR'
      detail = 'An unexpected error occurred; quote the request id when reporting it'
      deps.logger.error('unhandled error', { request_id: requestId, method: request.method, path: new URL(request.url).pathname, error })
    }

    set.status = status
    set.headers['cache-control'] = 'no-store'
    // The OpenAI-compatible gateway answers in OpenAI's error shape, so OpenAI SDKs understand it.
    if (request.url.includes('/v1/', 8) && new URL(request.url).pathname.startsWith('/v1/')) {
      set.headers['content-type'] = 'application/json'
      if (status === 422) set.status = 400 // OpenAI answers invalid requests with 400
      const message = errors?.length ? `${detail}: ${errors.map((e) => `${e.path || 'body'} ${e.message}`).join('; ')}` : detail
      return JSON.stringify(openaiError(message, OPENAI_TYPES[errCode] ?? 'invalid_request_error', errCode.toLowerCase()))
    }
    set.headers['content-type'] = PROBLEM_CONTENT_TYPE
    return JSON.stringify(toProblem(status, errCode, detail, errors, requestId))
  })
}

/** Map a validation error to `{ path, message }` rows. The submitted value is deliberately left out. */
function fieldProblems(error: ValidationError): FieldProblem[] {
  let issues: { path?: unknown; message?: unknown; summary?: unknown }[] = []
  try {
    issues = error.all as typeof issues
  } catch {}
  const seen = new Set<string>()
  const out: FieldProblem[] = []
  for (const issue of issues) {
    const path = normalisePath(issue.path)
    const message = typeof issue.message === 'string' ? issue.message : typeof issue.summary === 'string' ? issue.summary : 'Invalid value'
    const key = path + '\0' + message
    if (seen.has(key)) continue
    seen.add(key)
    out.push({ path, message })
  }
  return out.length ? out : [{ path: '', message: 'Invalid value' }]
}

function normalisePath(path: unknown): string {
  if (Array.isArray(path)) return path.map((p) => (typeof p === 'object' && p && 'key' in p ? String(p.key) : String(p))).join('.')
  if (typeof path === 'string') return path.replace(/^\//, '').replaceAll('/', '.')
  return ''
}
