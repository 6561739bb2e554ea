/** @module The users module's errors. */
import { conflict, notFound, validationError } from '../../lib/errors.ts'

export const userNotFound = () => notFound('User')
export const usernameOrEmailTaken = (which: 'username' | 'email') => conflict(`That ${which} is already taken`)
export const lastActiveAdmin = () => conflict('This is the last active admin: make another user admin first')
/** Unknown, unavailable, or on another user's provider: the same answer, so nothing is told about other users' models. */
export const unusableDefaultModel = () => validationError('default_model_id names no model you can use', [{ path: 'default_model_id', message: 'unknown or unavailable model' }])
