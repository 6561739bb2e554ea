/** @module The usage module's errors. */
import { AppError } from '../../lib/errors.ts'

export const quotaExceeded = () => new AppError(402, 'QUOTA_EXCEEDED', 'Your credit balance is used up')
