/** @module Recognise driver errors the same way on both dialects. */

/** True for a unique-constraint violation from bun:sqlite or Postgres, however Drizzle wraps it. */
export function isUniqueViolation(error: unknown): boolean {
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return true
  }
  return false
}

/** The constraint or index that a unique violation names, when the driver tells it. */
export function violatedConstraint(error: unknown): string | undefined {
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const pg = (e as { constraint_name?: unknown }).constraint_name
    if (typeof pg === 'string') return pg
    const message = (e as { message?: unknown }).message
    if ((e as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE' && typeof message === 'string') {
      const m = /index '([^']+)'/.exec(message) ?? /UNIQUE constraint failed: (\S+)/.exec(message)
      return m?.[1]
    }
  }
  return undefined
}
