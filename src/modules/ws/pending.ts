/**
 * @module Stand-ins for the sessions and workflows services until their modules land (issue 17,
 * items 2 and 4): the socket works, and what needs them answers `ERROR SERVICE_UNAVAILABLE`.
 * app.ts wires the real ones in their place when they are merged; then this file goes.
 */
import { AppError } from '../../lib/errors.ts'
import type { SessionsApi } from '../sessions/types.ts'
import type { WorkflowsApi } from '../workflows/types.ts'

const unavailable = (what: string) => () => Promise.reject(new AppError(503, 'SERVICE_UNAVAILABLE', `${what} are not available on this server yet`))

export const pendingSessions: SessionsApi = { send: unavailable('Sessions'), visible: unavailable('Sessions') }
export const pendingWorkflows: Pick<WorkflowsApi, 'get'> = { get: unavailable('Workflows') }
