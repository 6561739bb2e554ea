/**
 * @module The `hearth-client` package: the `App` type a frontend hands to Eden's `treaty<App>(url)`.
 * `npm run build:client` turns this file into dist/index.d.ts, which imports nothing but `elysia` —
 * the frontend's own copy (a peer dependency), so Eden and App agree on one Elysia.
 */
import type { AnyElysia, Elysia } from 'elysia'
import type { App as Server } from '../src/client.ts'

/**
 * Types only: the value is never read. Declaration emit writes an inferred type out in full, so the
 * built declaration holds every route itself instead of pointing into the server's sources.
 */
const routesOf = <A extends AnyElysia>() => undefined as unknown as A['~Routes']
const routes = routesOf<Server>()

/** The server's routes and nothing else of it (no plugins, macros or services): all `treaty<App>` reads. */
export type App = Elysia<
  '',
  { decorator: {}; store: {}; derive: {}; resolve: {} },
  { typebox: {}; error: {} },
  { schema: {}; standaloneSchema: {}; macro: {}; macroFn: {}; parser: {}; response: {} },
  typeof routes
>
