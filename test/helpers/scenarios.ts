/**
 * Table-driven API scenarios, one row per caller kind (PocketBase's ApiScenario): each row names
 * who calls, the request, the expected status and what the body must and must not contain. An error
 * answer must be a problem+json, or under /v1/ OpenAI's error shape.
 */
import { expect, test } from 'bun:test'
import type { RequestOptions, TestApp, TestResponse } from './app.ts'
import { expectOpenAIError, expectProblem } from './problems.ts'

export type Caller = 'guest' | 'user' | 'other' | 'admin'

/** `K`: the caller kinds of a table (by default guest, user, other user, admin; a table may name its own, e.g. kinds of credential). */
export interface Scenario<C, K extends string = Caller> {
  name: string
  as: K
  method: string
  path: string | ((ctx: C) => string)
  body?: unknown | ((ctx: C) => unknown)
  raw?: string
  headers?: Record<string, string>
  /** how the caller's token travels: `Authorization: Bearer` (default) or the `hearth_access` cookie, as a browser sends it */
  via?: 'bearer' | 'cookie'
  status: number
  /** the problem's `code` expected in the body; under /v1/, the OpenAI `error.code` */
  code?: string
  /** substrings the response text must contain */
  contains?: string[]
  /** substrings the response text must never contain (passwords, tokens, hashes) */
  notContains?: string[] | ((ctx: C) => string[])
  check?: (res: TestResponse, ctx: C) => void | Promise<void>
}

export interface ScenarioContext<K extends string = Caller> {
  t: TestApp
  /** the bearer token each caller kind uses; guest has none */
  tokens: Partial<Record<K, string>>
}

export function scenarios<C extends ScenarioContext<K>, K extends string = Caller>(getCtx: () => C, rows: Scenario<C, K>[]) {
  for (const row of rows) {
    test(`${row.as}${row.via === 'cookie' ? ' (cookie)' : ''}: ${row.method} ${typeof row.path === 'string' ? row.path : '…'} — ${row.name}`, async () => {
      const ctx = getCtx()
      const token = ctx.tokens[row.as]
      const init: RequestOptions = row.via === 'cookie' ? { headers: { ...row.headers, ...(token ? { cookie: `hearth_access=${token}` } : {}) } } : { headers: row.headers, token }
      if (row.raw !== undefined) init.raw = row.raw
      else if (row.body !== undefined) init.body = typeof row.body === 'function' ? (row.body as (c: C) => unknown)(ctx) : row.body
      const path = typeof row.path === 'function' ? row.path(ctx) : row.path
      const res = await ctx.t.request(row.method, path, init)
      expect({ status: res.status, body: res.body }).toMatchObject({ status: row.status })
      if (row.status >= 400) (path.startsWith('/v1/') ? expectOpenAIError : expectProblem)(res, row.status, row.code)
      else if (row.code) expect(res.body.code).toBe(row.code)
      for (const s of row.contains ?? []) expect(res.text).toContain(s)
      const never = typeof row.notContains === 'function' ? row.notContains(ctx) : (row.notContains ?? [])
      for (const s of never) expect(res.text).not.toContain(s)
      await row.check?.(res, ctx)
    })
  }
}
