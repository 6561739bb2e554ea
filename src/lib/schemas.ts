/** @module Schemas shared by every module: problems and list pages. */
import { z } from 'zod'

export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    code: z.string(),
    detail: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    request_id: z.string().optional(),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details' })

/** The `{id}` of a resource path. */
export const idParams = z.object({ id: z.string().min(1).max(64) })

/**
 * The problem answers a route can give, by status — `problems(401, 404, 429)` — so that each route
 * lists the statuses it can really answer with, in its OpenAPI document and its Eden type.
 * (Any route with a body can also answer 400 for unparseable JSON, 413 for a body over 1 MiB and
 * 415 for one that is not JSON, and any route behind the auth macro 403 to a cookie sent from
 * another site; docs/api.md §1 says so once instead of every route.)
 */
export const problems = <S extends number>(...statuses: S[]) => responsesOf(problemSchema, statuses)

/** One error schema for each of these statuses (the /v1 gateway's answers use OpenAI's shape instead of problems). */
export const responsesOf = <T extends z.ZodType, S extends number>(schema: T, statuses: S[]) => Object.fromEntries(statuses.map((s) => [s, schema])) as { [K in S]: T }

/**
 * A whole number in a query string, in decimal digits only: `10` — never `0x10`, `1e1`, ` 5`, `+5`,
 * `5.0` or `` (all of which `z.coerce.number()` took). Every numeric query parameter uses it.
 */
export const queryInteger = (min: number, max: number) =>
  z
    .string()
    .regex(/^[0-9]{1,15}$/, 'Expected a whole number in decimal digits')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))

export const listQuery = z.object({
  limit: queryInteger(1, 100).default(50),
  offset: queryInteger(0, Number.MAX_SAFE_INTEGER).default(0),
})

/** The list envelope (docs/api.md §1) for one page of `items` out of `total`. */
export const pageOf = <T>(items: T[], total: number, q: { limit: number; offset: number }) => ({ items, total, limit: q.limit, offset: q.offset, has_more: q.offset + items.length < total })

export const page = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), total: z.number().int(), limit: z.number().int(), offset: z.number().int(), has_more: z.boolean() })

export const isoDate = z.string().meta({ format: 'date-time' })

/** The list envelope of a list that is never cut into pages (sessions, API keys): every item, one page. */
export const wholePage = <T>(items: T[]) => pageOf(items, items.length, { limit: items.length, offset: 0 })

/**
 * An expiry sent by a client (API keys, invites): a date-time with an offset, later than the
 * server's clock. One in the past would make a credential that never works, so it is refused
 * (422 naming the field) rather than stored; there is no allowance for clock skew: a time that has
 * passed by the server's clock has passed.
 */
export const expiryTime = z.iso.datetime({ offset: true }).refine((v) => Date.parse(v) > Date.now(), { message: 'must be in the future' })
