/** @module The sessions module's errors. */
import { AppError, conflict, notFound, validationError } from '../../lib/errors.ts'
import { BUSY_RETRY_AFTER_S } from '../../runs/subscriptions.ts'

/** Not the caller's (admins included), or gone. */
export const sessionNotFound = () => notFound('Session')

/** A session's workflow is named in the body: unknown or another user's is a field problem, not a 404 of the session route. */
export const unknownWorkflow = () => validationError('workflow_id names no workflow of yours', [{ path: 'workflow_id', message: 'unknown workflow' }])

export const unusableSessionAgent = () =>
  validationError('agent_id names no active agent of type workflow that you can use', [{ path: 'agent_id', message: 'unknown, disabled or not a workflow agent' }])

export const sessionArchived = () => conflict('The session is archived: set its status to active to send messages')

export const replyInProgress = () => conflict('The agent is still answering in this session; stop it or wait')

export const invalidSessionMessage = (max: number) => validationError(`A message is 1 to ${max} characters`, [{ path: 'content', message: `must be 1 to ${max} characters (after trimming)` }])

export const tooManyReplies = (max: number) =>
  new AppError(429, 'RATE_LIMITED', `You have ${max} session replies being generated, the most allowed at once; wait for one to finish or stop one`, undefined, { 'retry-after': String(BUSY_RETRY_AFTER_S) })

export const nulInSessionMessage = () => validationError('content must not contain the NUL character (U+0000)', [{ path: 'content', message: 'must not contain the NUL character (U+0000)' }])
