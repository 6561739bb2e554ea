/**
 * @module What the OpenAPI plugin cannot say on its own, added to its document once:
 * - responses a route's `response` map cannot hold — a `text/event-stream` 200 beside a JSON 201,
 *   a download in two formats — declared with `extraResponses(...)` in the route's `detail`;
 * - problem answers as `application/problem+json` (the plugin writes every schema as JSON);
 * - a 204 without a body.
 */

type ResponseObject = { description: string; content?: Record<string, { schema: unknown }> }
type Operation = { responses?: Record<string, ResponseObject>; [EXTRA]?: Record<string, ResponseObject> }

const EXTRA = 'x-hearth-responses'
const PROBLEM_REF = '#/$defs/Problem'

/** `detail: { summary, ...extraResponses({ 200: { description, content: { 'text/event-stream': … } } }) }` */
export const extraResponses = (responses: Record<number, ResponseObject>) => ({ [EXTRA]: responses }) as Record<string, unknown>

const finished = new WeakSet<object>()

/** Apply the additions to the plugin's document (cached by the plugin: done once per document object). */
export function finishDocument(doc: { paths?: Record<string, Record<string, Operation>> }) {
  if (finished.has(doc)) return doc
  finished.add(doc)
  for (const ops of Object.values(doc.paths ?? {}))
    for (const op of Object.values(ops)) {
      const responses = { ...op[EXTRA], ...op.responses }
      delete op[EXTRA]
      for (const [status, response] of Object.entries(responses)) {
        if (status === '204') responses[status] = { description: response.description.startsWith('Response for') ? 'No content' : response.description }
        const json = response.content?.['application/json'] as { schema?: { $ref?: string } } | undefined
        if (json?.schema?.$ref === PROBLEM_REF) response.content = { 'application/problem+json': json as { schema: unknown } }
      }
      op.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => a.localeCompare(b)))
    }
  return doc
}
