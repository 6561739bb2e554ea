/** @module createApp(deps): the one Elysia app, composed of named route-group plugins. */
import { Elysia } from 'elysia'
import { adminRoutes } from './modules/admin/routes.ts'
import { apiKeyRoutes, authRoutes } from './modules/auth/routes.ts'
import { serviceRoutes } from './modules/system/routes.ts'
import { setupRoutes } from './modules/setup/routes.ts'
import { userRoutes } from './modules/users/routes.ts'
import { providerRoutes } from './modules/providers/routes.ts'
import { configRoutes } from './modules/configs/routes.ts'
import { gatewayRoutes } from './modules/gateway/routes.ts'
import { presetRoutes } from './modules/presets/routes.ts'
import { memoryRoutes } from './modules/memories/routes.ts'
import { chatRoutes } from './modules/chat/routes.ts'
import { authPlugin } from './plugins/auth.ts'
import { corsPlugin } from './plugins/cors.ts'
import { errorsPlugin } from './plugins/errors.ts'
import { requestContextPlugin } from './plugins/request-context.ts'
import { createRouteIndex } from './plugins/route-index.ts'
import type { BaseDeps, Services } from './services.ts'

export type AppDeps = BaseDeps & { services: Services }

export function createApp(deps: AppDeps) {
  const { config, services } = deps
  const routes = createRouteIndex()
  const auth = authPlugin({ auth: services.auth, limiter: services.limiter, config })
  const counters = [{ countsOf: services.chat.countsOf, totals: services.chat.totals }]
  const app = new Elysia({ name: 'hearth' })
    .use(requestContextPlugin(deps))
    .use(errorsPlugin({ logger: deps.logger, routes }))
    .use(corsPlugin({ origins: config.corsOrigins, logger: deps.logger }))
    .use(auth)
    .use(serviceRoutes(deps))
    .use(setupRoutes({ setup: services.setup, version: deps.version }))
    .use(authRoutes({ auth: services.auth, users: services.users, limiter: services.limiter, config, authPlugin: auth }))
    .use(apiKeyRoutes({ apiKeys: services.apiKeys, authPlugin: auth }))
    .use(userRoutes({ users: services.users, usage: services.usage, counters, authPlugin: auth }))
    .use(adminRoutes({ database: deps.database, users: services.users, auth: services.auth, invites: services.invites, usage: services.usage, counters, version: deps.version, authPlugin: auth }))
    .use(providerRoutes({ providers: services.providers, authPlugin: auth }))
    .use(configRoutes({ configs: services.configs, authPlugin: auth }))
    .use(gatewayRoutes({ gateway: services.gateway, authPlugin: auth }))
    .use(presetRoutes({ presets: services.presets, authPlugin: auth }))
    .use(memoryRoutes({ memories: services.memories, authPlugin: auth }))
    .use(chatRoutes({ chat: services.chat, authPlugin: auth, shutdown: deps.shutdown }))
  routes.load(app.routes)
  return app
}

export type App = ReturnType<typeof createApp>
