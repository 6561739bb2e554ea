/** @module The prompts module's errors: all 422, each naming the prompt (as `path`) it is about. */
import { validationError, type FieldProblem } from '../../lib/errors.ts'
import { PROMPT_NAMES } from './defaults.ts'

const known = PROMPT_NAMES.join(', ')

/** Names that are no prompt of this server. */
export const unknownPrompts = (names: string[]) =>
  validationError(
    `Unknown prompt${names.length > 1 ? 's' : ''}: ${names.map((n) => JSON.stringify(n.slice(0, 60))).join(', ')}; the prompts are ${known}`,
    names.map((n) => ({ path: n.slice(0, 60), message: `not a prompt (the prompts are ${known})` })),
  )

/** Empty, too long, an unknown `{{variable}}`, unbalanced sections: one field problem per prompt and problem. */
export const invalidPrompts = (problems: FieldProblem[]) =>
  validationError(problems.length === 1 ? `Prompt ${problems[0]!.path}: ${problems[0]!.message}` : `${problems.length} problems in the prompts sent`, problems)

export const nothingToChange = () => validationError('Send at least one prompt: { "<name>": "<content>" }', [{ path: '', message: 'no prompt named' }])
