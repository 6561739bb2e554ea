/** @module The login links module's errors. */
import { notFound, unauthorized, validationError } from '../../lib/errors.ts'

export const loginLinkNotFound = () => notFound('Login link')

/** Unknown, used (single use), expired or revoked: one answer for all four, and nobody is signed in. */
export const loginLinkInvalid = () => unauthorized('This login link is not valid: it is unknown, already used, expired or revoked. Ask for a new one')

/** A link for a disabled account could never sign anyone in. */
export const loginLinkUserDisabled = () => validationError('The user is disabled: a login link for them would not work', [{ path: 'user_id', message: 'the user is disabled' }])
