/** @module The chat module's errors. */
import { AppError, conflict, notFound, validationError } from '../../lib/errors.ts'
import { BUSY_RETRY_AFTER_S } from '../../runs/subscriptions.ts'

export const conversationNotFound = () => notFound('Conversation')
export const messageNotFound = () => notFound('Message')
export const shareNotFound = () => notFound('Share')
export const answerInProgress = () => conflict('An answer is already being generated in this conversation; stop it or wait')
export const unknownPreset = () => validationError('Unknown preset', [{ path: 'preset_id', message: 'no such preset' }])
/** A connection that is unknown, another user's, or gone: the same answer, so nothing is told about other users' connections. */
export const unusableConnection = () => validationError('connection_id names no data connection you can use', [{ path: 'connection_id', message: 'unknown connection' }])
export const parentNotInConversation = () => validationError('parent_id is not a message of this conversation', [{ path: 'parent_id', message: 'not in this conversation' }])
export const notAnAnswer = () => validationError('Only an answer to a question (or the question) can be regenerated', [{ path: 'message_id', message: 'not an answer' }])
export const answerFailed = (message: string) => new AppError(502, 'UPSTREAM_ERROR', message)
export const tooManyRuns = (max: number) =>
  new AppError(429, 'RATE_LIMITED', `You have ${max} answers being generated, the most allowed at once; wait for one to finish or stop one`, undefined, { 'retry-after': String(BUSY_RETRY_AFTER_S) })
export const noPendingApproval = () => notFound('Tool call waiting for approval')
