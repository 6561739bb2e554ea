/** @module createApp(deps): the one Elysia app, composed of named route-group plugins. */
import { cors } from '@elysiajs/cors'
import { Elysia } from 'elysia'
import type { Config } from './config.ts'
import type { Database } from './db/index.ts'
import type { Logger } from './lib/logger.ts'
import { serviceRoutes } from './modules/system/routes.ts'
import { errorsPlugin } from './plugins/errors.ts'
import { requestContextPlugin } from './plugins/request-context.ts'
import { createRouteIndex } from './plugins/route-index.ts'

export interface AppDeps {
  config: Config
  database: Database
  logger: Logger
  /** HEARTH_SECRET or the generated one: signs tokens, derives encryption keys */
  secret: string
  version: string
  /** aborted when the server starts shutting down: open streams end with a final event */
  shutdown: AbortSignal
}

export function createApp(deps: AppDeps) {
  const routes = createRouteIndex()
  const app = new Elysia({ name: 'hearth' })
    .use(requestContextPlugin(deps))
    .use(errorsPlugin({ logger: deps.logger, routes }))
    .use(corsPlugin(deps.config.corsOrigins))
    .use(serviceRoutes(deps))
  routes.load(app.routes)
  return app
}

/** CORS only for the configured origins; `*` allows any origin but never with credentials. */
function corsPlugin(origins: string[]) {
  if (origins.length === 0) return new Elysia({ name: 'hearth.cors-off' })
  const any = origins.includes('*')
  return cors({
    origin: any ? '*' : origins,
    credentials: !any,
    exposeHeaders: ['X-Request-Id', 'Location', 'Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'],
    maxAge: 600,
  })
}

export type App = ReturnType<typeof createApp>
