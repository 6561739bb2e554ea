/** @module The errors of data connections (docs/api.md §19). */
import { AppError, conflict, forbidden, notFound, validationError } from '../../lib/errors.ts'

/** Also another user's personal connection: it is invisible, not forbidden. */
export const connectionNotFound = () => notFound('Connection')

export const globalConnectionCreateAdminOnly = () => forbidden('Only admins add global connections')
export const globalConnectionAdminOnly = () => forbidden('Only admins change global connections')
export const serverPathAdminOnly = () => forbidden('Only admins may open a SQLite file by its path on the server; upload it as a dataset (POST /api/v1/files, purpose dataset) and use its file_id')

export const connectionNameTaken = (name: string) => conflict(`You already have a connection named "${name}"`)
export const globalConnectionNameTaken = (name: string) => conflict(`"${name}" is the name of a global connection; choose another name`)

/** A field the driver needs is missing, or one it does not take is set. */
export const connectionFieldInvalid = (path: string, message: string) => validationError(`${path}: ${message}`, [{ path, message }])

export const datasetNotFound = () => connectionFieldInvalid('file_id', 'no such file of yours with purpose "dataset" (upload one with POST /api/v1/files)')
export const notASqliteFile = (path: 'file_id' | 'path') => connectionFieldInvalid(path, 'is not a SQLite database file')

/** Refused by the vetting (layer a) or by the database itself: what chat gives back to the model. */
export const sqlRefused = (reason: string) => validationError(`The query was refused: ${reason}`, [{ path: 'sql', message: reason }])
export const sqlFailed = (message: string) => validationError(`The database could not run the query: ${message}`, [{ path: 'sql', message }])

export const databaseUnreachable = (name: string, reason: string) => new AppError(502, 'UPSTREAM_ERROR', `The database of connection "${name}" could not be reached: ${reason}`)
export const schemaUnreadable = (name: string, reason: string) => new AppError(502, 'UPSTREAM_ERROR', `The schema of connection "${name}" could not be read: ${reason}`)
