/** @module The one application error, and the RFC 9457 problem body it becomes. */

export type ErrorCode =
  | 'VALIDATION_ERROR'
  | 'UNAUTHORIZED'
  | 'TOKEN_EXPIRED'
  | 'INVALID_CREDENTIALS'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'CONFLICT'
  | 'RATE_LIMITED'
  | 'QUOTA_EXCEEDED'
  | 'PAYLOAD_TOO_LARGE'
  | 'STORAGE_QUOTA_EXCEEDED'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'RANGE_NOT_SATISFIABLE'
  | 'UPSTREAM_ERROR'
  | 'SERVICE_UNAVAILABLE'
  | 'INTERNAL_ERROR'

export const TITLES: Record<ErrorCode, string> = {
  VALIDATION_ERROR: 'Validation failed',
  UNAUTHORIZED: 'Unauthorized',
  TOKEN_EXPIRED: 'Token expired',
  INVALID_CREDENTIALS: 'Invalid credentials',
  FORBIDDEN: 'Forbidden',
  NOT_FOUND: 'Not found',
  METHOD_NOT_ALLOWED: 'Method not allowed',
  CONFLICT: 'Conflict',
  RATE_LIMITED: 'Too many requests',
  QUOTA_EXCEEDED: 'Quota exceeded',
  PAYLOAD_TOO_LARGE: 'Payload too large',
  STORAGE_QUOTA_EXCEEDED: 'Storage quota exceeded',
  UNSUPPORTED_MEDIA_TYPE: 'Unsupported media type',
  RANGE_NOT_SATISFIABLE: 'Range not satisfiable',
  UPSTREAM_ERROR: 'Upstream error',
  SERVICE_UNAVAILABLE: 'Service unavailable',
  INTERNAL_ERROR: 'Internal error',
}

export interface FieldProblem {
  path: string
  message: string
}

export interface Problem {
  type: string
  title: string
  status: number
  code: ErrorCode
  detail: string
  errors?: FieldProblem[]
  request_id?: string
}

export class AppError extends Error {
  override name = 'AppError'
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    readonly detail: string,
    readonly errors?: FieldProblem[],
    /** extra response headers, e.g. Retry-After or Allow */
    readonly headers?: Record<string, string>,
  ) {
    super(detail)
  }
}

export const notFound = (what = 'Resource') => new AppError(404, 'NOT_FOUND', `${what} not found`)
export const conflict = (detail: string) => new AppError(409, 'CONFLICT', detail)
export const forbidden = (detail = 'You are not allowed to do this') => new AppError(403, 'FORBIDDEN', detail)
export const unauthorized = (detail = 'Authentication required') => new AppError(401, 'UNAUTHORIZED', detail)
export const validationError = (detail: string, errors?: FieldProblem[]) => new AppError(422, 'VALIDATION_ERROR', detail, errors)
export const payloadTooLarge = (limit: number) => new AppError(413, 'PAYLOAD_TOO_LARGE', `The request body is larger than ${limit} bytes`)
const MEDIA_TYPE = /^[\w.+-]{1,60}\/[\w.+-]{1,60}$/
/** A body in another format than JSON; the type is named only when it looks like one (a header is not echoed blindly). */
export const unsupportedMediaType = (type: string) =>
  new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', `The request body must be application/json${!type ? ' (no Content-Type was sent)' : MEDIA_TYPE.test(type) ? `, not ${type}` : ''}`)

/** For `.catch(unlessNotFound)`: a 404 becomes `undefined`; any other failure (a database outage) stays a failure. */
export function unlessNotFound(error: unknown): undefined {
  if (error instanceof AppError && error.status === 404) return undefined
  throw error
}

export function toProblem(status: number, code: ErrorCode, detail: string, errors?: FieldProblem[], requestId?: string): Problem {
  const problem: Problem = { type: `urn:hearth:problem:${code.toLowerCase().replaceAll('_', '-')}`, title: TITLES[code], status, code, detail }
  if (errors?.length) problem.errors = errors
  if (requestId) problem.request_id = requestId
  return problem
}

/** OpenAI's error body, for the `/v1` gateway. */
export const openaiError = (message: string, type: string, code: string | null) => ({ error: { message, type, param: null, code } })
