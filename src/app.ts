/** @module createApp(deps): the one Elysia app, composed of named route-group plugins. */
import { Elysia, type AnyElysia } from 'elysia'
import { adminRoutes } from './modules/admin/routes.ts'
import { apiKeyRoutes, authRoutes } from './modules/auth/routes.ts'
import { loginLinkRoutes } from './modules/login-links/routes.ts'
import { serviceRoutes } from './modules/system/routes.ts'
import { setupRoutes } from './modules/setup/routes.ts'
import { userRoutes } from './modules/users/routes.ts'
import { privacyRoutes } from './modules/privacy/routes.ts'
import { groupRoutes } from './modules/groups/routes.ts'
import { accountRoutes } from './modules/account/routes.ts'
import { providerRoutes } from './modules/providers/routes.ts'
import { configRoutes } from './modules/configs/routes.ts'
import { searchRoutes } from './modules/search/routes.ts'
import { gatewayRoutes } from './modules/gateway/routes.ts'
import { presetRoutes } from './modules/presets/routes.ts'
import { memoryRoutes } from './modules/memories/routes.ts'
import { promptRoutes } from './modules/prompts/routes.ts'
import { planRoutes } from './modules/plans/routes.ts'
import { agentRoutes } from './modules/agents/routes.ts'
import { historyRoutes } from './modules/history/routes.ts'
import { chatRoutes } from './modules/chat/routes.ts'
import { fileRoutes } from './modules/files/routes.ts'
import { mcpRoutes } from './modules/mcp/routes.ts'
import { connectionRoutes } from './modules/connections/routes.ts'
import { toolRoutes } from './modules/tools/routes.ts'
import { createTaskEvents, taskRoutes } from './modules/tasks/routes.ts'
import { workflowServiceRoutes } from './modules/services/routes.ts'
import { workflowRoutes } from './modules/workflows/routes.ts'
import { workflowRunRoutes } from './modules/workflow-runs/routes.ts'
import { sessionRoutes } from './modules/sessions/routes.ts'
import { socketRoutes, socketServer } from './modules/ws/routes.ts'
import { oidcAdminRoutes, oidcRoutes } from './modules/oidc/routes.ts'
import type { ClientSide, ServerDefault } from './lib/schemas.ts'
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
  // a member's request limit is their groups' (docs/api.md §21), read from memory
  const userLimit = services.groups.rateLimitOf
  const auth = authPlugin({ auth: services.auth, limiter: services.limiter, config, userLimit })
  const counters = [
    { countsOf: services.chat.countsOf, totals: services.chat.totals },
    { countsOf: services.tasks.countsOf, totals: services.tasks.totals },
    { countsOf: async (userId: string) => ({ storage_bytes: await services.files.bytesOf(userId) }), totals: async () => ({ storage_bytes: await services.files.bytesOf(undefined) }) },
  ]
  // Accounts' routes are two plugins: each `.use` in one chain costs the app's type a level of
  // instantiation, and TypeScript's depth limit (TS2589) is near; a sub-chain has its own depth.
  const signIn = new Elysia({ name: 'hearth.routes.sign-in' })
    .use(authRoutes({ auth: services.auth, users: services.users, limiter: services.limiter, config, authPlugin: auth }))
    .use(apiKeyRoutes({ apiKeys: services.apiKeys, authPlugin: auth }))
    .use(oidcRoutes({ oidc: services.oidc, limiter: services.limiter, config, authPlugin: auth }))
    .use(oidcAdminRoutes({ registry: services.oidcProviders, config, authPlugin: auth }))
    .use(loginLinkRoutes({ loginLinks: services.loginLinks, auth: services.auth, limiter: services.limiter, config, authPlugin: auth }))
  const accounts = new Elysia({ name: 'hearth.routes.accounts' })
    .use(userRoutes({ users: services.users, usage: services.usage, files: services.files, counters, authPlugin: auth }))
    .use(privacyRoutes({ privacy: services.privacy, authPlugin: auth }))
    .use(groupRoutes({ groups: services.groups, users: services.users, turns: services.turns, config, authPlugin: auth }))
    .use(accountRoutes({ account: services.account, accountExport: services.accountExport, config, authPlugin: auth }))
    .use(adminRoutes({ database: deps.database, users: services.users, auth: services.auth, runs: services.runs, account: services.account, invites: services.invites, usage: services.usage, counters, version: deps.version, authPlugin: auth }))
  const app = new Elysia({ name: 'hearth' })
    .use(requestContextPlugin({ logger: deps.logger, routes }))
    .use(errorsPlugin({ logger: deps.logger, routes }))
    .use(corsPlugin({ origins: config.corsOrigins, logger: deps.logger }))
    .use(auth)
    .use(serviceRoutes(deps))
    .use(setupRoutes({ setup: services.setup, version: deps.version }))
    .use(signIn)
    .use(accounts)
    .use(providerRoutes({ providers: services.providers, authPlugin: auth }))
    .use(configRoutes({ configs: services.configs, authPlugin: auth }))
    .use(searchRoutes({ search: services.search, authPlugin: auth }))
    .use(gatewayRoutes({ gateway: services.gateway, subscriptions: services.subscriptions, authPlugin: auth }))
    .use(presetRoutes({ presets: services.presets, authPlugin: auth }))
    .use(memoryRoutes({ memories: services.memories, authPlugin: auth }))
    .use(promptRoutes({ prompts: services.prompts, authPlugin: auth }))
    .use(planRoutes({ plans: services.plans, taskEvents: createTaskEvents({ engine: services.taskEngine, subscriptions: services.subscriptions, shutdown: deps.shutdown }), authPlugin: auth }))
    .use(agentRoutes({ agents: services.agents, authPlugin: auth }))
    .use(historyRoutes({ history: services.history, authPlugin: auth }))
    .use(fileRoutes({ files: services.files, users: services.users, workflows: services.workflows, uploadMaxBytes: config.uploadMaxBytes, authPlugin: auth }))
    .use(mcpRoutes({ mcp: services.mcp, authPlugin: auth }))
    .use(connectionRoutes({ connections: services.connections, maxRows: config.sqlMaxRows, timeoutMs: config.sqlTimeoutMs, authPlugin: auth }))
    .use(chatRoutes({ chat: services.chat, subscriptions: services.subscriptions, authPlugin: auth, shutdown: deps.shutdown, sharedTask: services.tasks.shared }))
    .use(taskRoutes({ tasks: services.tasks, engine: services.taskEngine, subscriptions: services.subscriptions, authPlugin: auth, shutdown: deps.shutdown }))
    .use(toolRoutes({ tools: services.tools, events: services.toolEvents, subscriptions: services.subscriptions, authPlugin: auth, shutdown: deps.shutdown }))
    .use(workflowServiceRoutes({ workflowServices: services.workflowServices, authPlugin: auth }))
    .use(workflowRoutes({ workflows: services.workflows, authPlugin: auth }))
    .use(workflowRunRoutes({ runs: services.workflowRuns, authPlugin: auth }))
    .use(sessionRoutes({ sessions: services.sessions, subscriptions: services.subscriptions, authPlugin: auth, shutdown: deps.shutdown }))
    .use(
      socketRoutes({
        hub: services.socketHub,
        auth: services.auth,
        limiter: services.limiter,
        config,
        userLimit,
        subscriptions: services.subscriptions,
        sessions: services.sessions,
        workflows: services.workflows,
        logger: deps.logger,
      }),
    )
  routes.load(app.routes)
  // Typed as its clients see it (ClientView): only the routes' types differ, not the instance.
  return app as unknown as ClientView<typeof app>
}

/**
 * Serve the app on Bun.serve: HTTP through its `fetch`, WebSockets (`/ws/chat`) through Elysia's
 * handlers with their limits. Elysia reads `app.server` to upgrade a socket and to tell a
 * request's client address, so it is set here.
 */
export function serveApp(app: App, options: Omit<Bun.Serve.Options<unknown>, 'fetch' | 'websocket' | 'routes'>) {
  const server = Bun.serve({ ...options, fetch: app.fetch, websocket: socketServer } as Bun.Serve.Options<unknown>)
  app.server = server
  return server
}

/** The app, typed as its clients see it (Eden's `treaty<App>`): what they send, with server defaults optional. */
export type App = ReturnType<typeof createApp>

/**
 * Elysia 1.4 types a route's query and body from its schema's output, for the handler and for Eden
 * alike (upstream keeps the two apart only on an unreleased branch), so a field with a `.default()`
 * is required of Eden's callers. Fields marked ServerDefault (lib/schemas.ts) become optional here.
 */
// The parts are read by the instance's `~` properties: inferring all seven from the class instead
// passed TypeScript's instantiation depth limit (TS2589) once the app had one more plugin.
type ClientView<A extends AnyElysia> = Elysia<A['~Prefix'], A['~Singleton'], A['~Definitions'], A['~Metadata'], ClientRoutes<A['~Routes']>, A['~Ephemeral'], A['~Volatile']>

type ClientRoutes<R> = {
  [K in keyof R]: R[K] extends { body: infer B; query: infer Q; response: unknown } ? Without<R[K], 'body' | 'query'> & { body: ClientFields<B>; query: ClientFields<Q> } : ClientRoutes<R[K]>
}

type Defaulted<T> = { [K in keyof T]: T[K] extends ServerDefault<unknown> ? K : never }[keyof T]
type ClientFields<T> = T extends Record<string, unknown>
  ? [Defaulted<T>] extends [never]
    ? T
    : Without<T, Defaulted<T>> & { [K in Defaulted<T>]?: ClientSide<T[K]> }
  : T

/** `Omit`, but a key-remapping mapped type: declaration emit writes out what is left, not the whole of `T` (the client package must not name ServerDefault). */
type Without<T, K> = { [P in keyof T as P extends K ? never : P]: T[P] }
