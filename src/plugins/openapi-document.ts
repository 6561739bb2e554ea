/**
 * @module The OpenAPI document as clients need it, finished once from the routes' own declarations
 * (their zod schemas stay the single source). The OpenAPI plugin's document lacks, and this adds:
 * - request bodies: the plugin names a body's media types after the route's parsers and skips any
 *   parser that is a function, as every `onParse` hook is (plugins/request-context.ts has Hearth's
 *   JSON parser), so each body came out with `content: {}`; bodies are written here from `hooks.body`;
 * - inputs as clients send them: the plugin's schema mapper is not told whether a schema is an input
 *   or an output, so it converts every schema as an output, where a field with a `.default()` is
 *   required; bodies, query and path parameters are converted here as inputs;
 * - shared schemas: zod writes each schema with its own `$defs` and refs to `#/$defs/X`, which do not
 *   resolve from the document's root; every `$defs` entry moves to `components/schemas` and its refs
 *   follow (an input that differs from the output of the same name is `XInput`);
 * - a route's `detail.responses` beside its `response` schemas (the plugin drops them): a
 *   `text/event-stream` 200 beside a JSON 201, a download in two formats;
 * - problem answers of the native API as `application/problem+json` (the plugin writes every schema
 *   as JSON; the /v1 gateway's OpenAI errors stay `application/json`), a 204 without a body, and a
 *   description for each answer.
 */
import type { InternalRoute } from 'elysia'
import { z } from 'zod'

type Schema = Record<string, unknown>
interface MediaObject {
  schema?: Schema
}
interface ResponseObject {
  description?: string
  content?: Record<string, MediaObject>
}
interface Parameter {
  name: string
  in: string
  required?: boolean
  description?: string
  schema?: Schema
}
interface Operation {
  summary?: string
  description?: string
  parameters?: Parameter[]
  requestBody?: { description?: string; required?: boolean; content: Record<string, MediaObject> }
  responses?: Record<string, ResponseObject>
}
export type OpenAPIDocument = { paths: Record<string, Record<string, Operation>>; components?: { schemas?: Record<string, Schema> } }

/** JSON Schema of a zod schema as the document carries it: as a client sends it (`input`) or receives it (`output`). */
export function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): Schema {
  const json = z.toJSONSchema(schema, { unrepresentable: 'any', io, override: dropSafeIntegerBounds }) as Schema
  delete json.$schema
  return json
}

/** zod bounds every `.int()` by ±(2^53 − 1): noise in the document, and the examples /docs shows would be those bounds. */
function dropSafeIntegerBounds({ jsonSchema }: { jsonSchema: Schema }) {
  if (jsonSchema.minimum === Number.MIN_SAFE_INTEGER) delete jsonSchema.minimum
  if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum
}

/**
 * A `text/event-stream` answer whose events are described one by one: each event is an object of
 * the SSE fields (`id`, `event`, `data`, the `data` line being one line of JSON), the union of them
 * the stream's schema. Comments (`: ping`) are not events and are not listed.
 */
export function eventStreamResponse(description: string, events: z.ZodType) {
  return { description, content: { 'text/event-stream': { schema: jsonSchemaOf(events, 'output') as { type: 'object' } } } }
}

/** What each status means (docs/api.md §2), for answers that declare no description of their own. */
const STATUS_DESCRIPTIONS: Record<string, string> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  204: 'No content',
  400: 'The body is not valid JSON (`VALIDATION_ERROR`)',
  401: 'No or bad credentials (`UNAUTHORIZED`), or an access token to refresh (`TOKEN_EXPIRED`)',
  402: 'Credits are used up (`QUOTA_EXCEEDED`)',
  403: 'Not allowed (`FORBIDDEN`)',
  404: 'No such resource visible to the caller (`NOT_FOUND`)',
  409: 'A uniqueness or state conflict (`CONFLICT`)',
  302: 'A redirect to `Location`',
  304: 'Not modified: the `If-None-Match` ETag is current',
  206: 'Part of the content (the `Range` asked for)',
  413: 'The body is too large (`PAYLOAD_TOO_LARGE`), or an upload would pass the storage quota (`STORAGE_QUOTA_EXCEEDED`)',
  415: 'The body is not of a type the route reads (`UNSUPPORTED_MEDIA_TYPE`)',
  416: 'The `Range` cannot be served (`RANGE_NOT_SATISFIABLE`)',
  422: 'The body, query or path fails its schema (`VALIDATION_ERROR`); `errors` lists the fields',
  429: 'A rate limit was hit (`RATE_LIMITED`); `Retry-After` says when to try again',
  500: 'An unexpected failure (`INTERNAL_ERROR`)',
  502: 'A model provider or another upstream failed (`UPSTREAM_ERROR`)',
  503: 'The database does not answer (`SERVICE_UNAVAILABLE`)',
  504: 'The upstream sent nothing in time',
}

const openapiPath = (path: string) => path.replace(/:([^/]+)/g, '{$1}')

export function finishDocument(doc: OpenAPIDocument, routes: InternalRoute[]) {
  const components = new Components((doc.components ??= {}).schemas ??= {})
  const documented: [Operation, InternalRoute['hooks']][] = []
  for (const route of routes) {
    const operation = doc.paths[openapiPath(route.path)]?.[route.method.toLowerCase()]
    if (!operation) continue
    documented.push([operation, route.hooks])
    mergeDeclaredResponses(operation, route.hooks)
  }
  // A WebSocket route (Elysia's method `WS`) is a GET that upgrades; OpenAPI has no `ws` method.
  for (const ops of Object.values(doc.paths) as Record<string, Operation>[]) {
    const socket = ops.ws
    if (!socket) continue
    delete ops.ws
    ops.get ??= { ...socket, responses: { 101: { description: 'Switching Protocols: the WebSocket is open — also for a refused credential, which is then closed with 4401, 4403 or 4429' } } }
  }
  // Outputs first, so that a schema's output keeps its plain name and a different input is `XInput`.
  for (const [path, ops] of Object.entries(doc.paths))
    for (const op of Object.values(ops)) {
      const responses = op.responses ?? {}
      for (const [status, generated] of Object.entries(responses)) {
        // no body: 204, and the redirects and 304 (`z.void()` would otherwise be documented as an empty JSON schema)
        const response = status === '204' || status.startsWith('3') ? { description: generated.description } : generated
        responses[status] = response
        if (!response.description || response.description.startsWith('Response for status')) response.description = STATUS_DESCRIPTIONS[status] ?? `Status ${status}`
        for (const media of Object.values(response.content ?? {})) if (media.schema) media.schema = components.hoist(media.schema, 'output')
        const json = response.content?.['application/json']
        if (path.startsWith('/api/') && json?.schema?.$ref === components.ref('Problem')) response.content = { 'application/problem+json': json }
      }
      op.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => a.localeCompare(b)))
    }
  for (const [operation, hooks] of documented) describeInputs(operation, hooks, components)
  for (const ops of Object.values(doc.paths))
    for (const op of Object.values(ops)) for (const p of op.parameters ?? []) if (p.schema) p.schema = components.hoist(p.schema, 'input')
  return doc
}

/** A route's `detail.responses` merged into the generated answers of the same status (content types added, not replaced). */
function mergeDeclaredResponses(operation: Operation, hooks: InternalRoute['hooks']) {
  const declared = (hooks.detail as { responses?: Record<string, ResponseObject> } | undefined)?.responses
  if (!declared || !hooks.response) return
  operation.responses ??= {}
  for (const [status, extra] of Object.entries(declared)) {
    const generated = operation.responses[status]
    // a copy: the declaration is shared by every app built in this process, and each document is finished in place
    const copy = structuredClone(extra)
    operation.responses[status] = { ...generated, ...copy, content: { ...generated?.content, ...copy.content } }
  }
}

/** Path and query parameters and the JSON body, from the route's schemas converted as inputs. */
function describeInputs(operation: Operation, hooks: InternalRoute['hooks'], components: Components) {
  const fields = (schema: unknown, where: 'path' | 'query'): Parameter[] => {
    if (!isZod(schema)) return []
    const json = components.hoist(jsonSchemaOf(schema, 'input'), 'input')
    const properties = (json.properties ?? {}) as Record<string, Schema>
    const required = new Set((json.required as string[] | undefined) ?? [])
    return Object.entries(properties).map(([name, { description, ...rest }]) => ({
      name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(typeof description === 'string' ? { description } : {}),
      schema: rest,
    }))
  }
  const replaced = new Set([...(isZod(hooks.params) ? ['path'] : []), ...(isZod(hooks.query) ? ['query'] : [])])
  const parameters = [...(operation.parameters ?? []).filter((p) => !replaced.has(p.in)), ...fields(hooks.params, 'path'), ...fields(hooks.query, 'query')]
  if (parameters.length) operation.parameters = parameters
  if (isZod(hooks.body)) {
    const schema = components.hoist(jsonSchemaOf(hooks.body, 'input'), 'input')
    const description = typeof schema.description === 'string' ? schema.description : undefined
    operation.requestBody = { ...(description ? { description } : {}), required: !hooks.body.safeParse(undefined).success, content: { 'application/json': { schema } } }
  } else {
    // a route that reads its body itself (`parse: 'none'`, the uploads) declares the form it reads: `detail.multipart`
    const form = (hooks.detail as { multipart?: unknown } | undefined)?.multipart
    delete (operation as { multipart?: unknown }).multipart // the plugin copies every detail field into the operation
    if (isZod(form)) operation.requestBody = { required: true, content: { 'multipart/form-data': { schema: components.hoist(jsonSchemaOf(form, 'input'), 'input') } } }
  }
}

const isZod = (schema: unknown): schema is z.ZodType => schema instanceof z.ZodType

/**
 * `components/schemas`, filled from the `$defs` of each schema put in the document. Each definition
 * is kept once under its name; the same name with different content is an input variant (`XInput`),
 * or — for two different outputs — a mistake in the schemas, reported at once.
 */
class Components {
  constructor(private readonly schemas: Record<string, Schema>) {}

  ref = (name: string) => `#/components/schemas/${name}`

  /** The schema with its `$defs` moved to the components and its `#/$defs/…` refs pointing there. */
  hoist(schema: Schema, io: 'input' | 'output'): Schema {
    const { $defs, ...rest } = schema as Schema & { $defs?: Record<string, Schema> }
    if (!$defs) return schema
    const names = new Map<string, string>()
    for (const name of Object.keys($defs)) names.set(name, name)
    // a definition's name may depend on the names of those it refers to: settle them until none changes
    let changed = true
    while (changed) {
      changed = false
      for (const [name, def] of Object.entries($defs)) {
        const chosen = this.nameFor(name, rewrite(def, names, this.ref) as Schema, io)
        if (chosen === names.get(name)) continue
        names.set(name, chosen)
        changed = true
      }
    }
    for (const [name, def] of Object.entries($defs)) this.schemas[names.get(name)!] = rewrite(def, names, this.ref) as Schema
    return rewrite(rest, names, this.ref) as Schema
  }

  private nameFor(name: string, def: Schema, io: 'input' | 'output'): string {
    const candidates = io === 'output' ? [name] : [name, `${name}Input`]
    for (const candidate of candidates) {
      const existing = this.schemas[candidate]
      if (!existing || Bun.deepEquals(existing, def, true)) return candidate
    }
    throw new Error(`two different schemas share the id "${name}" in the OpenAPI document: give one of them another id`)
  }
}

/** A deep copy with each `$ref` to `#/$defs/X` pointing at X's component. */
function rewrite(value: unknown, names: Map<string, string>, ref: (name: string) => string): unknown {
  if (Array.isArray(value)) return value.map((v) => rewrite(v, names, ref))
  if (!value || typeof value !== 'object') return value
  const out: Schema = {}
  for (const [key, v] of Object.entries(value)) {
    if (key === '$ref' && typeof v === 'string' && !v.startsWith('#/components/')) {
      if (!v.startsWith('#/$defs/')) throw new Error(`a schema refers to "${v}", which the OpenAPI document cannot resolve: give the recursive schema an id`)
      out.$ref = ref(names.get(v.slice('#/$defs/'.length)) ?? v.slice('#/$defs/'.length))
    } else out[key] = rewrite(v, names, ref)
  }
  return out
}
