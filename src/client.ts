/**
 * @module The Eden contract: `treaty<App>(app or url)`. In-process callers (tests, scripts) use it
 * as is; frontends install it as the `hearth-client` package (client/, README "Typed client").
 */
/// <reference path="./types.d.ts" />
export type { App } from './app.ts'
