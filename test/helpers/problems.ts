/** Assertions on error answers: RFC 9457 problems on the native API, OpenAI's error shape on /v1. */
import { expect } from 'bun:test'
import type { TestResponse } from './app.ts'

/** A problem+json answer with this status (and code, when given). */
export function expectProblem(res: TestResponse, status: number, code?: string) {
  expect({ status: res.status, body: res.body }).toMatchObject({ status, body: { status, ...(code ? { code } : {}) } })
  expect(res.headers.get('content-type')).toStartWith('application/problem+json')
}

/** An OpenAI-shaped error answer (the /v1 gateway) with this status (and error code, when given). */
export function expectOpenAIError(res: TestResponse, status: number, code?: string) {
  expect({ status: res.status, body: res.body }).toMatchObject({ status, body: { error: { message: expect.any(String), type: expect.any(String), ...(code ? { code } : {}) } } })
  expect(res.headers.get('content-type')).toStartWith('application/json')
}
