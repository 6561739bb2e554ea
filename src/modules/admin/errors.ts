/** @module The admin module's errors. */
import { notFound } from '../../lib/errors.ts'

export const inviteNotFound = () => notFound('Invite')
