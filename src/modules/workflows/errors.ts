/** @module The errors of workflows and their versions (docs/api.md §20 "Workflows and versions"). */
import { conflict, notFound, validationError } from '../../lib/errors.ts'

/** Not the caller's, or gone: another user's workflow is 404, for admins too. */
export const workflowNotFound = () => notFound('Workflow')
export const versionNotFound = (version: number) => notFound(`Version ${version} of this workflow`)

/** Someone else (an agent's session) holds the lock: the write is refused, naming why it is held. */
export const workflowLocked = (reason: string | null) => conflict(`This workflow is locked${reason ? `: ${reason}` : ''}; try again once it is unlocked`)

export const unknownService = () => validationError('No such service', [{ path: 'service_id', message: 'must name an existing service' }])

/** `workflow_data` (or an uploaded workflow file) that is not a JSON object, or one Hearth cannot store. */
export const badWorkflowData = (message: string, path = 'workflow_data') => validationError('workflow_data must be a JSON object', [{ path, message }])
