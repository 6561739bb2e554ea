/** @module The auth module's errors: credentials, tokens, sessions, registration, email codes, API keys. */
import { AppError, forbidden, notFound, unauthorized, validationError } from '../../lib/errors.ts'

const retryAfter = (seconds: number) => ({ 'retry-after': String(seconds) })

export const invalidCredentials = () => new AppError(401, 'INVALID_CREDENTIALS', 'The username, email or password is wrong')
export const oldPasswordRequired = () => validationError('old_password is required: this account has a password', [{ path: 'old_password', message: 'required' }])
export const accountDisabled = () => forbidden('This account is disabled')
export const loginLocked = (seconds: number) => new AppError(429, 'RATE_LIMITED', 'Too many failed logins for this account; try again later', undefined, retryAfter(seconds))

export const tokenExpired = () => new AppError(401, 'TOKEN_EXPIRED', 'The access token has expired; refresh it')
export const badToken = () => new AppError(401, 'UNAUTHORIZED', 'The access token is not valid')
export const refreshTokenRequired = () => unauthorized('A refresh token is required')
export const refreshTokenInvalid = () => unauthorized('The refresh token is not valid')
export const refreshTokenReused = () => unauthorized('The refresh token was already used; the session has been revoked')
export const sessionEnded = () => unauthorized('The session has ended; log in again')
export const sessionRevoked = () => unauthorized('The session has been revoked')
export const sessionNotFound = () => notFound('Session')

export const registrationClosed = () => forbidden('Registration is closed')
export const registrationNeedsVerifiedEmail = () => forbidden('Registration needs a verified email: use /api/v1/auth/send-code and /api/v1/auth/verify-register')
export const inviteRequired = () => forbidden('Registration needs an invite code')
export const inviteInvalid = () => forbidden('The invite code is not valid')

export const badCode = () => validationError('The code is wrong, expired or already used', [{ path: 'code', message: 'wrong, expired or already used' }])
export const codeCooldown = (seconds: number) => new AppError(429, 'RATE_LIMITED', `A code was sent to this address moments ago; wait ${seconds} s`, undefined, retryAfter(seconds))
export const codeDailyCapReached = (seconds: number) => new AppError(429, 'RATE_LIMITED', 'The daily limit of codes for this address is reached', undefined, retryAfter(seconds))

export const apiKeyInvalid = () => unauthorized('The API key is not valid')
export const apiKeyExpired = () => unauthorized('The API key has expired')
export const apiKeyNotFound = () => notFound('API key')
export const apiKeyScopeMissing = (scope: 'gateway' | 'api') =>
  forbidden(scope === 'gateway' ? 'This API key does not have the `gateway` scope, which the /v1 gateway needs' : 'This API key does not have the `api` scope, which the native API (/api/v1) needs')
export const sessionRequired = () =>
  forbidden('Managing credentials (API keys, password, sessions) needs a signed-in session: use an access token or the session cookie, not an API key')
