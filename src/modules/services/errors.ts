/** @module The errors of workflow services (docs/api.md §20 "Services"). */
import { conflict, notFound, validationError } from '../../lib/errors.ts'

export const serviceNotFound = () => notFound('Service')

/** Service names are unique, ignoring case. */
export const serviceNameTaken = () => conflict('A service with this name exists already')

/** The URL is not one the server may keep and call (see `cleanServiceUrl`). */
export const badServiceUrl = (message: string) => validationError('Not a usable service URL', [{ path: 'url', message }])
