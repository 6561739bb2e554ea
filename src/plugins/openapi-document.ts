/**
 * @module What the OpenAPI plugin's document cannot say on its own, added once per document:
 * - a route's `detail.responses` beside its `response` schemas (the plugin drops them): a
 *   `text/event-stream` 200 beside a JSON 201, a download in two formats, a description;
 * - problem answers of the native API as `application/problem+json` (the plugin writes every schema
 *   as JSON; the /v1 gateway's OpenAI errors stay `application/json`);
 * - a 204 without a body.
 */
import type { InternalRoute } from 'elysia'

interface ResponseObject {
  description?: string
  content?: Record<string, unknown>
}
export type OpenAPIDocument = { paths: Record<string, Record<string, { responses?: Record<string, ResponseObject> }>> }

const PROBLEM_REF = '#/$defs/Problem'

export function finishDocument(doc: OpenAPIDocument, routes: InternalRoute[]) {
  for (const route of routes) {
    const declared = (route.hooks.detail as { responses?: Record<string, ResponseObject> } | undefined)?.responses
    if (!declared || !route.hooks.response) continue
    const operation = doc.paths[route.path.replace(/:([^/]+)/g, '{$1}')]?.[route.method.toLowerCase()]
    if (!operation?.responses) continue
    for (const [status, extra] of Object.entries(declared)) {
      const generated = operation.responses[status]
      operation.responses[status] = { ...generated, ...extra, content: { ...generated?.content, ...extra.content } }
    }
  }
  for (const [path, ops] of Object.entries(doc.paths))
    for (const op of Object.values(ops)) {
      const responses = op.responses ?? {}
      for (const [status, response] of Object.entries(responses)) {
        if (status === '204') responses[status] = { description: response.description?.startsWith('Response for') ? 'No content' : response.description }
        const json = response.content?.['application/json'] as { schema?: { $ref?: string } } | undefined
        if (path.startsWith('/api/') && json?.schema?.$ref === PROBLEM_REF) response.content = { 'application/problem+json': json }
      }
      op.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => a.localeCompare(b)))
    }
  return doc
}
