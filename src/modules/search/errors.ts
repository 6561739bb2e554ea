/** @module The search module's errors. */
import { AppError, validationError } from '../../lib/errors.ts'

/** A key the search needs is not set for the caller (neither personally nor globally, or not usable with the caller's own base URL). */
export const searchNotConfigured = (engine: string, config: string, why = 'is not set') =>
  validationError(`Web search with ${engine} needs ${config}, which ${why}: set a personal one with POST /api/v1/configs, or ask an admin for a global one`, [{ path: config, message: 'not configured' }])

/** The web_search tool found no engine configured for the caller. */
export const webSearchNotConfigured = () =>
  validationError('Web search needs search.google_api_key and search.google_cse_id, or search.exa_api_key: set personal ones with POST /api/v1/configs, or ask an admin for global ones', [
    { path: 'search.google_api_key', message: 'not configured' },
    { path: 'search.exa_api_key', message: 'not configured' },
  ])

/** Google or Exa failed, could not be reached, or answered something that is not a result list. */
export const searchUpstreamFailed = (detail: string) => new AppError(502, 'UPSTREAM_ERROR', detail)
