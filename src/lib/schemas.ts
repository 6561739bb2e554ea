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
    // coerced rather than transformed: zod keeps a `.default()` in the document only when nothing transforms
    .pipe(z.coerce.number<string>().int().min(min).max(max))
    .meta({ type: 'integer', minimum: min, maximum: max })

/**
 * The type of a field the server fills in when the client leaves it out (a zod `.default()`). Elysia
 * 1.4 types a route's query and body once, from the schema's output, for its handler and for Eden
 * alike, so a defaulted field would be required of Eden's callers; this mark lets `App` (app.ts)
 * make it optional there, while the handler keeps the type of the value filled in. (A string key,
 * not a unique symbol: the client package's declaration must be able to spell it.)
 */
export type ServerDefault<T> = T & { readonly '~serverDefault': T }
/** The type of a ServerDefault field for a client, who may leave it out. */
export type ClientSide<T> = T extends { readonly '~serverDefault': infer V } ? V : T

/** `schema.default(value)`, its output marked as filled in by the server (ServerDefault). */
export const withDefault = <T extends z.ZodType>(schema: T, value: z.util.NoUndefined<z.output<T>>) =>
  schema.default(value) as unknown as z.ZodDefault<T> & { _zod: { output: ServerDefault<z.output<T>> } }

export const listQuery = z.object({
  limit: withDefault(queryInteger(1, 100), 50),
  offset: withDefault(queryInteger(0, Number.MAX_SAFE_INTEGER), 0),
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

/**
 * The events of a server-sent stream (docs/api.md §13) as one schema, for the OpenAPI document: each
 * event an object of its SSE fields — `id` (increasing per stream), `event`, and `data`, one line of
 * JSON — one per event name; then the events without an id that end any stream early: `shutdown`
 * (the server stops), `revoked` (the credential that opened it stopped working) and `deleted` (what
 * it follows is gone).
 */
/** The events without an id that end any stream early (eventStreamOf), as a client reads them. */
export type FinalStreamEvent =
  | { event: 'shutdown'; data: { reason: 'server_shutdown' } }
  | { event: 'revoked'; data: { code: string; reason: 'session_revoked' | 'api_key_revoked' | 'access_changed' } }
  | { event: 'deleted'; data: { code: string; reason: 'conversation_deleted' | 'task_deleted' | 'session_deleted' } }

export function eventStreamOf(data: Record<string, z.ZodType>) {
  const event = (name: string, schema: z.ZodType) => z.object({ id: z.number().int().positive(), event: z.literal(name), data: schema }).meta({ title: name })
  const final = (name: string, schema: z.ZodType, description: string) => z.object({ event: z.literal(name), data: schema }).meta({ title: name, description })
  const events = Object.entries(data).map(([name, schema]) => event(name, schema))
  const ended = (reasons: [string, ...string[]]) => z.object({ code: z.string(), reason: z.enum(reasons) })
  // the stream's own events first: /docs shows the first one as the example
  return z.discriminatedUnion('event', [
    events[0]!,
    ...events.slice(1),
    final('shutdown', z.object({ reason: z.literal('server_shutdown') }), 'The server is stopping: reconnect'),
    final('revoked', ended(['session_revoked', 'api_key_revoked', 'access_changed']), 'The session or API key that opened the stream stopped working (`code` UNAUTHORIZED, or TOKEN_EXPIRED: refresh, then reconnect)'),
    final('deleted', ended(['conversation_deleted', 'task_deleted', 'session_deleted']), 'What the stream follows was deleted: a re-attach is 404'),
  ])
}
