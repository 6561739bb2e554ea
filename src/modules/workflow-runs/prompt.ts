/**
 * @module A workflow's JSON as a ComfyUI prompt: which format it is in, and the run's overrides
 * (`{ "<node_id>.<input>": value }`) applied to a copy. Only the API format (`{ "3": { class_type,
 * inputs } }`) can be sent to `POST /prompt`; the UI (editor) format, with `nodes` and `links`
 * arrays, cannot, and is named as such so the user knows to export it with "Save (API Format)".
 */
import type { FieldProblem } from '../../lib/errors.ts'

export type ApiNode = { class_type: string; inputs?: Record<string, unknown>; _meta?: { title?: string } }
export type ApiPrompt = Record<string, ApiNode>

export type Format = { format: 'api'; prompt: ApiPrompt } | { format: 'ui' } | { format: 'unknown'; problem: FieldProblem }

/** The most overrides one run may carry. */
export const MAX_OVERRIDES = 500

/** Which format the workflow JSON is in. */
export function formatOf(data: unknown): Format {
  if (!data || typeof data !== 'object' || Array.isArray(data)) return { format: 'unknown', problem: { path: 'workflow_data', message: 'is not a JSON object' } }
  const w = data as Record<string, unknown>
  if (Array.isArray(w.nodes) && Array.isArray(w.links)) return { format: 'ui' }
  const entries = Object.entries(w)
  if (!entries.length) return { format: 'unknown', problem: { path: 'workflow_data', message: 'has no nodes' } }
  for (const [id, node] of entries) {
    if (!node || typeof node !== 'object' || Array.isArray(node) || typeof (node as ApiNode).class_type !== 'string')
      return { format: 'unknown', problem: { path: `workflow_data.${id}`, message: 'is not an API-format node (an object with a class_type)' } }
    const inputs = (node as ApiNode).inputs
    if (inputs !== undefined && (!inputs || typeof inputs !== 'object' || Array.isArray(inputs)))
      return { format: 'unknown', problem: { path: `workflow_data.${id}.inputs`, message: 'is not an object' } }
  }
  return { format: 'api', prompt: w as ApiPrompt }
}

/** The node id and input name an override key names: the longest node id of the prompt followed by `.` and an input. */
function splitKey(prompt: ApiPrompt, key: string): { node: string; input: string } | undefined {
  for (let i = key.lastIndexOf('.'); i > 0; i = key.lastIndexOf('.', i - 1)) {
    const node = key.slice(0, i)
    if (Object.hasOwn(prompt, node)) return { node, input: key.slice(i + 1) }
  }
  return undefined
}

/**
 * A deep copy of `prompt` with each override set, or the problems (paths `inputs.<key>`): a key
 * that names no node of the workflow, or an input that node does not have.
 */
export function applyOverrides(prompt: ApiPrompt, overrides: Record<string, unknown>): { prompt: ApiPrompt } | { problems: FieldProblem[] } {
  const problems: FieldProblem[] = []
  const keys = Object.keys(overrides)
  if (keys.length > MAX_OVERRIDES) return { problems: [{ path: 'inputs', message: `has more than ${MAX_OVERRIDES} entries` }] }
  const copy = structuredClone(prompt)
  for (const key of keys) {
    const path = `inputs.${key}`
    const at = splitKey(copy, key)
    if (!at) {
      const dot = key.indexOf('.')
      problems.push({ path, message: dot < 1 || dot === key.length - 1 ? 'must be "<node_id>.<input>"' : `the workflow has no node '${key.slice(0, key.lastIndexOf('.'))}'` })
      continue
    }
    const node = copy[at.node]!
    if (!at.input || !node.inputs || !Object.hasOwn(node.inputs, at.input)) {
      const known = Object.keys(node.inputs ?? {})
      problems.push({ path, message: `node ${at.node} (${node.class_type}) has no input '${at.input}'${known.length ? `; its inputs: ${known.slice(0, 20).join(', ')}` : ''}` })
      continue
    }
    node.inputs[at.input] = structuredClone(overrides[key])
  }
  return problems.length ? { problems } : { prompt: copy }
}

/** `3 (KSampler)`, or with its title: `3 "Sampler" (KSampler)`. */
export function nodeLabel(prompt: ApiPrompt, id: string): string {
  const node = prompt[id]
  if (!node) return id
  const title = node._meta?.title
  return title && title !== node.class_type ? `${id} "${title}" (${node.class_type})` : `${id} (${node.class_type})`
}
