/**
 * @module JSON Schemas given at run time (tool inputs now, plan types next), checked with ajv.
 * Draft 2020-12 rules for every schema (a `$schema` naming draft 7 is dropped: the drafts agree on
 * what tools use), formats known to ajv-formats checked, unknown keywords ignored. Compiled
 * validators are kept by the schema's text, so a tool's schema is compiled once, not per call.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import type { FieldProblem } from './errors.ts'

const ajv = new Ajv2020({ allErrors: true, strict: false, validateSchema: false })
addFormats.default(ajv)

const MAX_COMPILED = 500
const compiled = new Map<string, ValidateFunction | null>()

/** A schema that does not compile is `null`: it checks nothing, and the tool checks its own input. */
function compile(schema: Record<string, unknown>): ValidateFunction | null {
  const key = JSON.stringify(schema)
  let v = compiled.get(key)
  if (v !== undefined) {
    // keep the most used ones: a hit moves to the end of the map's order
    compiled.delete(key)
    compiled.set(key, v)
    return v
  }
  const { $schema: _, ...rest } = schema
  try {
    v = ajv.compile(rest)
  } catch {
    v = null
  }
  compiled.set(key, v)
  if (compiled.size > MAX_COMPILED) compiled.delete(compiled.keys().next().value!)
  return v
}

/** Whether `schema` can be used to check values at all. */
export const isUsableSchema = (schema: Record<string, unknown>) => compile(schema) !== null

/** `value` checked against `schema`: the problems, each with a path under `base` (`arguments.city`), or none. */
export function schemaProblems(schema: Record<string, unknown>, value: unknown, base: string): FieldProblem[] {
  const validate = compile(schema)
  if (!validate || validate(value)) return []
  return (validate.errors ?? []).slice(0, 20).map((e) => ({ path: pathOf(base, e), message: e.message ?? 'is invalid' }))
}

function pathOf(base: string, e: ErrorObject): string {
  const segments = e.instancePath.split('/').slice(1).map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'))
  // a missing property is reported on its parent: name the property itself
  if (e.keyword === 'required') segments.push(String((e.params as { missingProperty: string }).missingProperty))
  if (e.keyword === 'additionalProperties') segments.push(String((e.params as { additionalProperty: string }).additionalProperty))
  return [base, ...segments].join('.')
}
