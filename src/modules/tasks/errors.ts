/** @module The tasks module's errors. */
import { AppError, conflict, notFound, validationError } from '../../lib/errors.ts'

/** Not the caller's, or gone: another user's task is 404 too. */
export const taskNotFound = () => notFound('Task')
export const stepNotFound = () => notFound('Step')
export const taskShareNotFound = () => notFound('Shared task')

export const unknownAgent = (id: string) => validationError(`No active agent '${id}' you can use`, [{ path: 'agent_id', message: 'unknown, disabled or not yours' }])
export const promptRequired = () => validationError('An agent task needs a prompt', [{ path: 'prompt', message: 'required (or input.prompt)' }])
export const taskRunning = () => conflict('The task is running: cancel it first')
export const taskFinished = (status: string) => conflict(`The task is already ${status}`)
export const notRetryable = (status: string) => conflict(`Only a failed or cancelled task can be retried; this one is ${status}`)
export const runByHearth = () => conflict('Steps can be posted to external tasks only: Hearth records the steps of the tasks it runs')
export const stepDataTooLarge = (max: number) => new AppError(413, 'PAYLOAD_TOO_LARGE', `A step's data may be at most ${max} characters of JSON`)
export const taskNotRunning = (status: string) => conflict(`Only a running task waits for tool approvals; this one is ${status}`)
export const noPendingApproval = () => notFound('Tool call waiting for approval')
