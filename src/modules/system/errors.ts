/** @module The service endpoints' errors. */
import { AppError } from '../../lib/errors.ts'

/** `/ready` when the database does not answer in time. */
export const databaseUnavailable = () => new AppError(503, 'SERVICE_UNAVAILABLE', 'The database does not answer')
