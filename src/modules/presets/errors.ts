/** @module The presets module's errors. */
import { forbidden, notFound, validationError } from '../../lib/errors.ts'

/** No such preset, or another user's: 404 either way. */
export const presetNotFound = () => notFound('Preset')

export const builtinPresetReadOnly = () => forbidden('Built-in presets cannot be changed; create your own preset instead')

/** Unknown, unavailable, or on another user's provider: the same answer, so nothing is told about other users' models. */
export const unusablePresetModel = () => validationError('model_id names no model you can use', [{ path: 'model_id', message: 'unknown or unavailable model' }])
