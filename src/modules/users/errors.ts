/** @module The users module's errors. */
import { conflict, notFound } from '../../lib/errors.ts'

export const userNotFound = () => notFound('User')
export const usernameOrEmailTaken = (which: 'username' | 'email') => conflict(`That ${which} is already taken`)
export const lastActiveAdmin = () => conflict('This is the last active admin: make another user admin first')
