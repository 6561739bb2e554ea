/** @module The presets module's errors. */
import { forbidden, notFound } from '../../lib/errors.ts'

/** No such preset, or another user's: 404 either way. */
export const presetNotFound = () => notFound('Preset')

export const builtinPresetReadOnly = () => forbidden('Built-in presets cannot be changed; create your own preset instead')
