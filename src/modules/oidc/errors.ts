/** @module The single sign-on module's errors: problems for the API, and the failure codes a callback redirects with. */
import { AppError, conflict, notFound, validationError } from '../../lib/errors.ts'

export const oidcProviderNotFound = () => notFound('Single sign-on provider')
export const oidcProviderTaken = (id: string) => conflict(`A single sign-on provider with the id ${JSON.stringify(id)} already exists`)
export const envProviderReadOnly = () => conflict('This provider is set in the environment (HEARTH_OIDC_*): change it there')
export const identityNotFound = () => notFound('Linked identity')
export const lastIdentity = () => conflict('This is the only way into an account without a password: set a password (PUT /api/v1/auth/password) or link another identity first')

export const badRedirect = () =>
  validationError('redirect must be a path on this site (starting with a single /) or a URL on an origin in HEARTH_CORS_ORIGINS', [{ path: 'redirect', message: 'not a path on this site or an allowed origin' }])
export const callbackParamMissing = (name: 'code' | 'state') => validationError(`The provider's answer has no ${name}`, [{ path: name, message: 'required' }])
export const unknownState = () =>
  validationError('No sign-in is waiting for this state: it expired (10 minutes), was already used, or was started elsewhere. Start again.', [{ path: 'state', message: 'no pending sign-in' }])
export const stateCookieMissing = () =>
  new AppError(403, 'FORBIDDEN', 'This sign-in was not started in this browser (its cookie is missing): start again from this browser')

/** The provider could not be reached, was too slow, or answered something other than OpenID Connect (at start: a 502 problem). */
export const providerUnavailable = (detail = 'The single sign-on provider could not be reached or answered something unexpected') => new AppError(502, 'UPSTREAM_ERROR', detail)

/**
 * Why a callback did not sign anyone in, once its pending sign-in was found: the browser is sent
 * back to the sign-in's redirect with `?error=<reason>` (docs/api.md §4 "Single sign-on").
 */
export type SignInFailureReason =
  | 'provider_error'
  | 'upstream_error'
  | 'invalid_token'
  | 'expired'
  | 'provider_unknown'
  | 'email_missing'
  | 'email_not_verified'
  | 'account_unverified'
  | 'registration_closed'
  | 'setup_required'
  | 'account_disabled'
  | 'identity_taken'

export class SignInFailure extends Error {
  override name = 'SignInFailure'
  constructor(
    readonly reason: SignInFailureReason,
    /** where the browser goes with the error */
    readonly returnTo: string,
    detail: string,
  ) {
    super(detail)
  }
}
