/**
 * /openapi.json says what each route really answers: its own error statuses (not a blanket list),
 * problems as application/problem+json, streams as text/event-stream, downloads in their formats.
 * And it is a valid document whose every body, query and path schema is there, taken from the
 * routes' own declarations: shared schemas under components/schemas, inputs as clients send them.
 */
import SwaggerParser from '@apidevtools/swagger-parser'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { z } from 'zod'
import { finishDocument, jsonSchemaOf } from '../src/plugins/openapi-document.ts'
import { createTestApp, type TestApp } from './helpers/app.ts'

type Schema = Record<string, any>
type Responses = Record<string, { description?: string; content?: Record<string, { schema?: Schema }> }>
interface Operation {
  summary?: string
  description?: string
  parameters?: { name: string; in: string; required?: boolean; schema?: Schema }[]
  requestBody?: { required?: boolean; content: Record<string, { schema?: Schema }> }
  responses: Responses
}

describe('the OpenAPI document', () => {
  let t: TestApp
  let doc: { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, Schema> } }
  beforeAll(async () => {
    t = await createTestApp('sqlite')
    doc = (await t.request('GET', '/openapi.json')).body
  })
  afterAll(() => t.close())

  const responses = (method: string, path: string) => doc.paths[path]![method]!.responses
  const statuses = (method: string, path: string) => Object.keys(responses(method, path))
  const types = (method: string, path: string, status: number) => Object.keys(responses(method, path)[status]?.content ?? {})

  test.each([
    ['get', '/api/v1/conversations', ['200', '401', '403', '422', '429']],
    ['post', '/api/v1/conversations', ['201', '401', '403', '422', '429']],
    ['get', '/api/v1/conversations/{id}', ['200', '401', '403', '404', '422', '429']],
    ['post', '/api/v1/conversations/{id}/messages', ['200', '201', '401', '402', '403', '404', '409', '422', '429', '502']],
    ['get', '/api/v1/conversations/{id}/stream', ['200', '204', '401', '403', '404', '422', '429']],
    ['get', '/api/v1/conversations/{id}/export', ['200', '401', '403', '404', '422', '429']],
    ['get', '/api/v1/chat/stream', ['200', '204', '401', '402', '403', '404', '409', '422', '429']],
    ['get', '/api/v1/share/{token}', ['200', '404', '422', '429']],
  ])('%s %s answers exactly %p', (method, path, expected) => {
    expect(statuses(method, path)).toEqual(expected)
  })

  test('chat streams are text/event-stream; sending in JSON mode is application/json', () => {
    for (const [method, path] of [['post', '/api/v1/conversations/{id}/messages'], ['post', '/api/v1/conversations/{id}/messages/{message_id}/regenerate'], ['get', '/api/v1/conversations/{id}/stream'], ['get', '/api/v1/chat/stream']] as const)
      expect({ path, types: types(method, path, 200) }).toEqual({ path, types: ['text/event-stream'] })
    expect(types('post', '/api/v1/conversations/{id}/messages', 201)).toEqual(['application/json'])
  })

  test('the export is a JSON or Markdown download; a 204 has no body; problems are application/problem+json', () => {
    expect(types('get', '/api/v1/conversations/{id}/export', 200)).toEqual(['application/json', 'text/markdown'])
    expect(responses('get', '/api/v1/conversations/{id}/stream')['204']!.content).toBeUndefined()
    expect(responses('delete', '/api/v1/conversations/{id}')['204']!.content).toBeUndefined()
    for (const [path, ops] of Object.entries(doc.paths))
      if (path.startsWith('/api/'))
        for (const [method, op] of Object.entries(ops))
          for (const [status, r] of Object.entries(op.responses))
            if (Number(status) >= 400) expect({ route: `${method} ${path} ${status}`, types: Object.keys(r.content ?? {}) }).toEqual({ route: `${method} ${path} ${status}`, types: ['application/problem+json'] })
  })

  const operations = () => Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ route: `${method} ${path}`, op })))
  /** The app's routes as the document lists them, with the schemas they declare. */
  const declared = () =>
    t.app.routes
      .filter((r) => !(r.hooks.detail as { hide?: boolean } | undefined)?.hide && r.method !== 'OPTIONS')
      .map((r) => ({ route: `${r.method.toLowerCase()} ${r.path.replace(/:([^/]+)/g, '{$1}')}`, hooks: r.hooks as { body?: unknown; query?: unknown; params?: unknown } }))

  test('is valid OpenAPI 3.1: every $ref resolves (@apidevtools/swagger-parser)', async () => {
    await SwaggerParser.validate(structuredClone(doc) as never)
  })

  test('every route that accepts a body documents its JSON schema', () => {
    const withBody = declared().filter((r) => r.hooks.body instanceof z.ZodType)
    expect(withBody.length).toBeGreaterThanOrEqual(30)
    const undocumented = withBody.filter(({ route }) => {
      const [method, path] = route.split(' ') as [string, string]
      const schema = doc.paths[path]?.[method]?.requestBody?.content['application/json']?.schema
      return !schema || Object.keys(schema).length === 0
    })
    expect(undocumented.map((r) => r.route)).toEqual([])
  })

  test('a body that may be left out is not required; one that may not, is', () => {
    expect(doc.paths['/api/v1/auth/refresh']!.post!.requestBody!.required).toBe(false)
    expect(doc.paths['/api/v1/conversations/{id}/messages/{message_id}/regenerate']!.post!.requestBody!.required).toBe(false)
    expect(doc.paths['/api/v1/auth/register']!.post!.requestBody!.required).toBe(true)
    // JSON only: Hearth's parser reads nothing else
    expect(Object.keys(doc.paths['/api/v1/auth/register']!.post!.requestBody!.content)).toEqual(['application/json'])
  })

  test('query and path parameters are those the route declares; one with a default is optional', () => {
    const params = (route: string, where: string) => {
      const [method, path] = route.split(' ') as [string, string]
      return Object.fromEntries((doc.paths[path]![method]!.parameters ?? []).filter((p) => p.in === where).map((p) => [p.name, p.required ?? false]))
    }
    for (const { route, hooks } of declared())
      for (const [where, schema] of [['query', hooks.query], ['path', hooks.params]] as const)
        if (schema instanceof z.ZodObject) {
          // required exactly when the parameter cannot be left out
          const expected = Object.fromEntries(Object.entries(schema.shape as Record<string, z.ZodType>).map(([name, field]) => [name, where === 'path' || !field.safeParse(undefined).success]))
          expect({ route, where, params: params(route, where) }).toEqual({ route, where, params: expected })
        }
    const limit = doc.paths['/api/v1/conversations']!.get!.parameters!.find((p) => p.name === 'limit')!
    expect(limit).toMatchObject({ in: 'query', required: false, schema: { type: 'integer', default: 50, minimum: 1, maximum: 100 } })
  })

  test('shared schemas are components: no $defs left, every $ref points into components/schemas', () => {
    const refs: string[] = []
    const defs: string[] = []
    const walk = (v: unknown, at: string) => {
      if (Array.isArray(v)) return v.forEach((x, i) => walk(x, `${at}/${i}`))
      if (!v || typeof v !== 'object') return
      for (const [k, x] of Object.entries(v)) {
        if (k === '$defs') defs.push(at)
        if (k === '$ref') refs.push(x as string)
        walk(x, `${at}/${k}`)
      }
    }
    walk(doc, '#')
    expect(defs).toEqual([])
    expect(refs.length).toBeGreaterThan(0)
    expect(refs.filter((r) => !doc.components.schemas[r.replace('#/components/schemas/', '')])).toEqual([])
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(['Problem', 'User', 'Tokens', 'Conversation', 'Message', 'ChatEvent']))
    expect(responses('post', '/api/v1/auth/register')[201]!.content!['application/json']!.schema).toMatchObject({ properties: { user: { $ref: '#/components/schemas/User' } } })
  })

  test('every operation has a summary and a description', () => {
    const missing = operations().filter(({ op }) => !op.summary?.trim() || !op.description?.trim())
    expect(missing.map((o) => o.route)).toEqual([])
    expect(operations().length).toBeGreaterThanOrEqual(79)
  })

  test('every answer has a description of its own, not a placeholder', () => {
    for (const { route, op } of operations())
      for (const [status, r] of Object.entries(op.responses)) expect({ route, status, description: r.description?.startsWith('Response for status') ? 'placeholder' : typeof r.description }).toEqual({ route, status, description: 'string' })
  })

  test("a chat stream's schema is the union of its events, each with its data", () => {
    const stream = responses('post', '/api/v1/conversations/{id}/messages')[200]!.content!['text/event-stream']!.schema!
    expect(stream).toEqual({ $ref: '#/components/schemas/ChatEvent' })
    const variants = (doc.components.schemas.ChatEvent!.oneOf ?? doc.components.schemas.ChatEvent!.anyOf) as Schema[]
    const events = Object.fromEntries(variants.map((v) => [v.properties.event.const, v]))
    expect(Object.keys(events).sort()).toEqual(['deleted', 'delta', 'done', 'error', 'message.created', 'progress', 'reasoning', 'result', 'revoked', 'shutdown', 'title', 'tool_approval_required', 'tool_call', 'tool_result', 'usage', 'visualization'])
    expect(events.tool_result!.properties.data.properties.result).toMatchObject({ $ref: '#/components/schemas/ToolResult' })
    expect(events['message.created']!.properties.data.properties.user_message).toEqual({ $ref: '#/components/schemas/Message' })
    expect(events.done!.properties.data.properties.finish_reason.enum).toContain('stopped')
    expect(events.delta!.required).toEqual(['id', 'event', 'data'])
    const gateway = responses('post', '/v1/chat/completions')[200]!.content!
    expect(Object.keys(gateway)).toEqual(['application/json', 'text/event-stream'])
    expect(gateway['text/event-stream']!.schema).toEqual({ $ref: '#/components/schemas/ChatCompletionStreamEvent' })
  })

  test('another app in the same process gets the same document (the routes\' declarations are shared, not finished in place)', async () => {
    const other = await createTestApp('sqlite')
    try {
      expect((await other.request('GET', '/openapi.json')).body).toEqual(doc)
    } finally {
      await other.close()
    }
  })
})

test('finishDocument: a schema whose input differs from its output is a component twice, the input as <Name>Input', () => {
  const thing = z.object({ size: z.number().default(1) }).meta({ id: 'OpenapiTestThing' })
  const doc = { paths: { '/things': { post: { responses: { 201: { content: { 'application/json': { schema: jsonSchemaOf(thing, 'output') } } } } } } } }
  const routes = [{ method: 'POST', path: '/things', hooks: { body: thing, response: { 201: thing } } }] as never
  const done = finishDocument(doc, routes) as unknown as { components: { schemas: Record<string, Schema> }; paths: Record<string, Record<string, Operation>> }
  expect(done.components.schemas).toEqual({
    OpenapiTestThing: { type: 'object', properties: { size: { type: 'number', default: 1 } }, required: ['size'], additionalProperties: false },
    OpenapiTestThingInput: { type: 'object', properties: { size: { type: 'number', default: 1 } } },
  })
  const op = done.paths['/things']!.post!
  expect(op.requestBody).toEqual({ required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/OpenapiTestThingInput' } } } })
  expect(op.responses[201]!.content!['application/json']!.schema).toEqual({ $ref: '#/components/schemas/OpenapiTestThing' })
})
