/** @module The tools module's errors. */
import { AppError, forbidden, notFound, validationError, type FieldProblem } from '../../lib/errors.ts'

/** No tool of that name among those the caller may use (another user's server's tools included). */
export const toolNotFound = (name: string) => notFound(`Tool '${name.slice(0, 80)}'`)

/** A conversation or preset names tools the caller cannot use (unknown, or another user's server's). */
export const unknownTools = (names: string[]) =>
  validationError(`No tool named ${names.map((n) => `'${n}'`).join(', ')} that you can use`, names.map((n) => ({ path: 'tools', message: `unknown tool '${n}'` })))

export const invalidArguments = (tool: string, errors: FieldProblem[]) => validationError(`The arguments do not match the input schema of ${tool}`, errors)

/** A built-in that needs something set up first (a search key, a data connection). */
export const toolNotConfigured = (detail: string, path: string) => validationError(detail, [{ path, message: 'not configured' }])

/** A tool that threw something that is not one of ours: a bug, logged where it happened; the caller gets no detail. */
export const toolFailed = () => new AppError(500, 'INTERNAL_ERROR', 'The tool failed')

export const othersLogsForbidden = () => forbidden("Only admins may read another user's tool logs")
