/** @module The errors of providers and models (docs/api.md §7). */
import { AppError, conflict, forbidden, notFound, validationError } from '../../lib/errors.ts'

/** Also for another user's personal provider: it is invisible, not forbidden. */
export const providerNotFound = () => notFound('Provider')
export const modelNotFound = () => notFound('Model')

export const globalProviderCreateAdminOnly = () => forbidden('Only admins create global providers')
export const globalProviderAdminOnly = () => forbidden('Only admins change global providers')
export const globalModelAdminOnly = () => forbidden('Only admins change models of global providers')

export const baseUrlRequired = () => validationError('An openai_compatible provider needs a base_url', [{ path: 'base_url', message: 'required for openai_compatible' }])

/** A `model_id` is unique per provider. */
export const modelIdTaken = () => conflict('This provider already has that model')

/** sync-models could not get the upstream's model list. */
export const modelListFailed = (detail: string) => new AppError(502, 'UPSTREAM_ERROR', detail)
