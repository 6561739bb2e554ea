/** @module The groups module's errors. */
import { conflict, forbidden, notFound, validationError } from '../../lib/errors.ts'

/** Unknown; and, on the group-admin routes, a group the caller does not administer (it is not their resource). */
export const groupNotFound = () => notFound('Group')

export const groupMemberNotFound = () => notFound('Group member')

export const groupNameTaken = () => conflict('A group with that name already exists')

/** `user_id` of the body names no user. */
export const unknownGroupUser = () => validationError('user_id names no user', [{ path: 'user_id', message: 'unknown user' }])

/** A settings field naming a global model (by id or name) that does not exist. */
export const unknownGroupModel = (path: string, ref: string) => validationError(`No global model '${ref.slice(0, 100)}'`, [{ path, message: 'unknown model: name a global model by id or name' }])

export const unknownGroupPreset = (path: string) => validationError('preset_id names no global preset', [{ path, message: 'unknown preset: name a global preset' }])

/** The group's own default model is outside its own allowed list. */
export const defaultModelNotAllowed = (path: string) => validationError('default_model_id is not among allowed_model_ids', [{ path, message: 'must be one of the allowed models' }])

/** A member's model is outside what their groups allow (chat, tasks, plans, sessions; the gateway answers in OpenAI's shape). */
export const modelNotAllowed = (name: string) => forbidden(`Your group does not allow model ${name}`)

/** A restricted member whose groups allow no model that is available. */
export const noAllowedModel = () => forbidden('Your group allows no model that is available now')
