/**
 * /openapi.json says what each route really answers: its own error statuses (not a blanket list),
 * problems as application/problem+json, streams as text/event-stream, downloads in their formats.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, type TestApp } from './helpers/app.ts'

type Responses = Record<string, { content?: Record<string, unknown> }>

describe('the OpenAPI document', () => {
  let t: TestApp
  let doc: { paths: Record<string, Record<string, { responses: Responses }>> }
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
})
