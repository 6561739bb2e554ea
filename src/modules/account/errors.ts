/** @module The account module's errors: the export guard and the checks before deleting your own account. */
import { AppError, forbidden, validationError } from '../../lib/errors.ts'

export const exportRunning = () => new AppError(429, 'RATE_LIMITED', 'An export of your account is already being downloaded; wait for it to finish', undefined, { 'retry-after': '10' })

export const passwordRequired = () => validationError('Deleting your account needs your password', [{ path: 'password', message: 'required' }])

export const wrongPassword = () => new AppError(401, 'INVALID_CREDENTIALS', 'The password is wrong')

export const deletionLocked = (seconds: number) =>
  new AppError(429, 'RATE_LIMITED', 'Too many wrong passwords for deleting this account; try again later', undefined, { 'retry-after': String(seconds) })

export const freshSignInRequired = () =>
  forbidden('This account has no password: sign in again with your single sign-on provider, then delete the account within 10 minutes of that sign-in')
