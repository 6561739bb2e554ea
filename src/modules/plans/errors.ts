/** @module The plans module's errors. */
import { conflict, forbidden, notFound, validationError, type FieldProblem } from '../../lib/errors.ts'

export const planTypeNotFound = () => notFound('Plan type')
export const planNotFound = () => notFound('Plan')
export const builtinPlanTypeReadOnly = () => forbidden('Built-in plan types cannot be changed or deleted')
export const planTypeExists = (id: string) => conflict(`A plan type '${id}' already exists`)
export const unusableSchema = (field: 'input_schema' | 'output_schema') =>
  validationError(`${field} is not a JSON Schema that can be used`, [{ path: field, message: 'must be a JSON Schema (draft 2020-12) that compiles' }])
/** `POST /plans` naming a type that does not exist: a bad reference in the body, like an unknown model. */
export const unknownPlanType = (type: string) => validationError(`No plan type '${type}'`, [{ path: 'type', message: 'unknown plan type' }])
export const invalidPlanInput = (errors: FieldProblem[]) => validationError("The input does not match the plan type's input schema", errors)
export const planRunning = () => conflict('The plan is running: cancel its task first, or wait for it to finish')
