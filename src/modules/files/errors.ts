/** @module The files module's errors. */
import { AppError, forbidden, notFound, validationError } from '../../lib/errors.ts'

/** Not the caller's, or gone: another user's file is 404 too, for admins as well. */
export const fileNotFound = () => notFound('File')

const field = (path: string, message: string) => [{ path, message }]

export const malformedForm = (why: string) => validationError(`The multipart form cannot be read: ${why}`, field('', why))
export const missingFileField = () => validationError('The form has no `file` part', field('file', 'required'))
export const twoFileFields = () => validationError('The form has more than one file: send one `file` per upload', field('file', 'only one file per upload'))
export const unexpectedFileField = (name: string) => validationError('Only the `file` part may hold a file', field(name.slice(0, 40), 'not a file field; the file goes in `file`'))
export const fieldAfterFile = (name: string) => validationError('The `file` part must be the last part of the form (send the other fields first)', field(name.slice(0, 40), 'must come before `file`'))
export const tooManyParts = (max: number) => validationError(`The form has more than ${max} fields`, field('', `at most ${max} fields`))
export const notMultipart = () => new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', 'An upload is a multipart/form-data body with a `file` part')
export const emptyFile = () => validationError('The file is empty', field('file', 'must not be empty (0 bytes)'))

export const fileTooLarge = (limit: number, what = 'A file') => new AppError(413, 'PAYLOAD_TOO_LARGE', `${what} may be at most ${limit} bytes`)
export const storageQuotaExceeded = (quota: number) => new AppError(413, 'STORAGE_QUOTA_EXCEEDED', `This upload would pass your storage quota of ${quota} bytes; delete files to make room`)

export const notAnImage = () => validationError('An avatar must be a PNG, JPEG, GIF or WebP image (judged by its bytes, not its name or type)', field('file', 'not a PNG, JPEG, GIF or WebP image'))
export const notJson = (why: string) => validationError('A workflow file must be valid JSON', field('file', why))

export const badLink = () => forbidden('This file link is not valid: its signature does not match')
export const expiredLink = () => forbidden('This file link has expired: fetch the file object again for a fresh `access_url`')

export const rangeNotSatisfiable = (size: number) =>
  new AppError(416, 'RANGE_NOT_SATISFIABLE', 'The Range cannot be served: one range of bytes within the file, e.g. `bytes=0-1023`', undefined, { 'content-range': `bytes */${size}` })
