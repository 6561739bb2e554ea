/**
 * @module Layer one of read-only queries: the SQL is parsed (node-sql-parser, the driver's dialect)
 * and refused unless it is one SELECT, WITH … SELECT or EXPLAIN of one, with no data-modifying part
 * and no dangerous function. PLACEHOLDER until the vetting lands: a crude prefix check, fail closed.
 */
import type { Driver } from './types.ts'

export type Vetted = { ok: true } | { ok: false; reason: string }

export function vetSql(sql: string, _driver: Driver): Vetted {
  return /^\s*(select|with|explain)\b[^;]*;?\s*$/i.test(sql) ? { ok: true } : { ok: false, reason: 'Only one SELECT statement may run' }
}
