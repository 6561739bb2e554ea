/** @module The memories module's errors. */
import { conflict, notFound, validationError } from '../../lib/errors.ts'

/** Not the caller's, or gone: another user's memory is 404 too. */
export const memoryNotFound = () => notFound('Memory')

/** Empty after trimming, or longer than `max` characters. */
export const invalidMemoryContent = (max: number) =>
  validationError(`A memory is 1 to ${max} characters`, [{ path: 'content', message: `must be 1 to ${max} characters (after trimming)` }])

export const memoryLimitReached = (max: number) => conflict(`You already have ${max} memories, the most there may be; delete or edit one first`)
