/** @module The errors of MCP servers (docs/api.md §15). */
import { AppError, conflict, forbidden, notFound, validationError } from '../../lib/errors.ts'

/** Also for another user's personal server: it is invisible, not forbidden. */
export const mcpServerNotFound = () => notFound('MCP server')

export const stdioAdminOnly = () => forbidden('Only admins add or use stdio MCP servers: they run programs on the host')
export const globalServerCreateAdminOnly = () => forbidden('Only admins add global MCP servers')
export const globalServerAdminOnly = () => forbidden('Only admins change global MCP servers')

export const serverNameTaken = (name: string) => conflict(`You already have an MCP server named "${name}"`)
export const globalServerNameTaken = (name: string) => conflict(`"${name}" is the name of a global MCP server; choose another name`)

/** The fields a transport needs are missing, or fields of another transport are set. */
export const transportFieldsInvalid = (message: string, path: string) => validationError(message, [{ path, message }])

export const unknownUserVars = (names: string[]) =>
  validationError(`This server has no user variable ${names.map((n) => `"${n}"`).join(', ')}`, names.map((n) => ({ path: n, message: "not one of the server's user_vars" })))

export const userVarsMissing = (id: string, names: string[]) =>
  validationError(`Set your own ${names.join(', ')} for this MCP server first: PUT /api/v1/mcp/servers/${id}/user-vars`, names.map((n) => ({ path: n, message: 'not set' })))

export const catalogEntryUnknown = (id: string) => validationError(`The catalogue has no server "${id}"; see GET /api/v1/mcp/catalog`, [{ path: 'catalog_id', message: 'not in the catalogue' }])

export const envRequired = (names: string[]) =>
  validationError(`This server needs ${names.join(', ')}: set them in env, or name them in user_vars for each user to set`, names.map((n) => ({ path: `env.${n}`, message: 'required' })))

export const serverDisabled = () => new AppError(404, 'NOT_FOUND', 'This MCP server is disabled')

/** The server could not be reached, exited, or did not answer in time. */
export const serverFailed = (name: string, reason: string) => new AppError(502, 'UPSTREAM_ERROR', `MCP server "${name}": ${reason}`)
