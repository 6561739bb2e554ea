/** @module The agents module's errors. */
import { forbidden, notFound, validationError } from '../../lib/errors.ts'

/** No such agent, or another user's personal one: 404 either way. */
export const agentNotFound = () => notFound('Agent')

export const globalAgentCreateAdminOnly = () => forbidden('Only admins create global agents; leave out scope (or send "personal") to keep an agent of your own')
export const globalAgentAdminOnly = () => forbidden('Only admins change or delete global agents')

/** Unknown, unavailable, or on another user's provider: the same answer, so nothing is told about other users' models. */
export const unusableAgentModel = () => validationError('model_id names no model you can use', [{ path: 'model_id', message: 'unknown or unavailable model' }])

export const unknownAgentTools = (names: string[]) =>
  validationError(`No tool named ${names.map((n) => `'${n}'`).join(', ')} that you can use`, names.map((n) => ({ path: 'tools_config.tools', message: `unknown tool '${n}'` })))

/** A conversation (or task) naming an agent that is unknown, another user's, or disabled. */
export const unusableAgent = () => validationError('agent_id names no active agent you can use', [{ path: 'agent_id', message: 'unknown or disabled agent' }])
