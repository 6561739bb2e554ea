/** @module The long-lived services behind the routes, built once per process from the base dependencies. */
import type { Config } from './config.ts'
import { createBus } from './db/bus.ts'
import type { Database } from './db/index.ts'
import { deriveKeyBytes } from './lib/crypto.ts'
import type { Logger } from './lib/logger.ts'
import { createMailer, type Mailer } from './lib/mailer.ts'
import { createRateLimiter } from './lib/rate-limiter.ts'
import { createInvitesService } from './modules/admin/invites.ts'
import { createLoginLinksService } from './modules/login-links/service.ts'
import { createApiKeysService } from './modules/auth/api-keys.ts'
import { createRevocationsService } from './modules/auth/revocations.ts'
import { createAuthService } from './modules/auth/service.ts'
import { createAccessTokens } from './modules/auth/tokens.ts'
import { createUsersService } from './modules/users/service.ts'
import { createGroupsService } from './modules/groups/service.ts'
import { createSetupService, deriveSetupToken } from './modules/setup/service.ts'
import { createSecretBox } from './lib/secrets.ts'
import { createOutboundGuard, type OutboundGuard } from './lib/outbound.ts'
import { createProvidersService } from './modules/providers/service.ts'
import { createUsageService } from './modules/usage/service.ts'
import { createGatewayService } from './modules/gateway/service.ts'
import { createConfigsService } from './modules/configs/service.ts'
import { createSearchService } from './modules/search/service.ts'
import { createPresetsService } from './modules/presets/service.ts'
import { createMemoriesService } from './modules/memories/service.ts'
import { createPromptsService } from './modules/prompts/service.ts'
import { createPlansService } from './modules/plans/service.ts'
import { planKind } from './modules/plans/kind.ts'
import { createChatService } from './modules/chat/service.ts'
import { createAgentsService } from './modules/agents/service.ts'
import { createHistoryService } from './modules/history/service.ts'
import { STALE_STREAMING_MS } from './modules/chat/turns.ts'
import { createModelTurns, type ModelUsable } from './generation/model-turn.ts'
import { unlessNotFound } from './lib/errors.ts'
import { createRunRegistry } from './runs/index.ts'
import { startRunRelay } from './runs/relay.ts'
import { createSubscriptions } from './runs/subscriptions.ts'
import { createStorage } from './storage/create.ts'
import type { Storage } from './storage/index.ts'
import { createFilesService } from './modules/files/service.ts'
import { createMcpService, type McpStatusEvent } from './modules/mcp/service.ts'
import { createConnectionsService } from './modules/connections/service.ts'
import { createToolEvents } from './modules/tools/events.ts'
import { createToolsService } from './modules/tools/service.ts'
import { builtinTools } from './modules/tools/builtins/index.ts'
import type { BuiltinTool } from './modules/tools/types.ts'
import { createTaskEngine, TaskFailure } from './tasks/engine.ts'
import { createAgentRunner } from './modules/tasks/agent-runner.ts'
import { createTaskApprovals } from './modules/tasks/approvals.ts'
import { createTasksService } from './modules/tasks/service.ts'
import { createWorkflowServices } from './modules/services/service.ts'
import { createWorkflowsService } from './modules/workflows/service.ts'
import { workflowKind } from './modules/workflow-runs/runner.ts'
import { createWorkflowRunsService } from './modules/workflow-runs/service.ts'
import { createSessionsService } from './modules/sessions/service.ts'
import { STALE_REPLY_MS } from './modules/sessions/turn.ts'
import type { EditHooks } from './modules/sessions/update-workflow.ts'
import { createSocketHub } from './modules/ws/hub.ts'
import { createPrivacyService, type SweepOptions } from './modules/privacy/service.ts'
import { createProviderRegistry } from './modules/oidc/registry.ts'
import { createOidcService } from './modules/oidc/service.ts'
import { createAccountService } from './modules/account/service.ts'
import { createAccountExport } from './modules/account/export.ts'

export interface BaseDeps {
  config: Config
  database: Database
  logger: Logger
  /** HEARTH_SECRET or the generated one: signs tokens, derives encryption keys */
  secret: string
  version: string
  /** aborted when the server starts shutting down: open streams end with a final event */
  shutdown: AbortSignal
  /** tests pass a mailer that talks to their own SMTP server; default: from HEARTH_SMTP_URL */
  mailer?: Mailer
  /** tests pass a guard with their own resolver; default: the system resolver, private addresses per HEARTH_ALLOW_PRIVATE_UPSTREAMS */
  outbound?: OutboundGuard
  /** tests pass their own store; default: createStorage (the data dir's files/, or HEARTH_S3_URL) */
  storage?: Storage
  /** tests shorten the refresh-token grace window (default 10 s) */
  refreshGraceMs?: number
  /** tests shorten how long a tool call (a chat's, an agent task's) waits for approval (default 10 minutes) */
  toolApprovalTimeoutMs?: number
  /** tests add built-in tools of their own (a slow one, say) after the real ones */
  extraBuiltins?: BuiltinTool[]
  /** tests shorten how long an MCP connection stays open without calls (default 5 minutes) and the wait between failing starts */
  mcp?: { idleMs?: number; backoffMs?: (failures: number) => number; onStatus?: (e: McpStatusEvent) => void }
  /** tests shorten the 5 s connect timeout of data connections and the 5 idle minutes after which a pool closes */
  connections?: { connectTimeoutMs?: number; idleMs?: number }
  /** tests shorten the workflow services' health check (timeout 5 s, every minute) and the sweep of expired workflow locks (30 s) */
  workflowServices?: { checkTimeoutMs?: number; healthIntervalMs?: number; lockSweepMs?: number }
  /** tests hold a session agent's workflow edit while it has the lock, or shorten the lock (default: no hold, WORKFLOW_LOCK_TTL_MS) */
  sessionEdits?: EditHooks
  /** tests run the history retention sweep themselves (a long first delay) or shorten its batches (default: 1 minute, then hourly, 500 rows) */
  retentionSweep?: SweepOptions
  /** tests shorten how long one request to a single sign-on provider may take (default 10 s) */
  oidc?: { timeoutMs?: number }
}

export const ACCESS_TTL_SECONDS = 15 * 60

/** Build every service, load what must be known before the first request, start background work. */
export async function createServices(deps: BaseDeps) {
  const { config, database, logger } = deps
  const [jwtKey, codeKey, successorKey, fileLinkKey] = await Promise.all([
    deriveKeyBytes(deps.secret, 'jwt'),
    deriveKeyBytes(deps.secret, 'email-codes'),
    deriveKeyBytes(deps.secret, 'refresh-successor'),
    deriveKeyBytes(deps.secret, 'file-links'),
  ])
  const mailer = deps.mailer ?? createMailer({ smtpUrl: config.smtpUrl, logger })
  const limiter = createRateLimiter({ database, logger })
  const bus = createBus({ database, logger })
  const revocations = createRevocationsService({ database, bus, logger, ttlMs: ACCESS_TTL_SECONDS * 1000 })
  const tokens = createAccessTokens(jwtKey, ACCESS_TTL_SECONDS)
  // a model reference is checked where it is saved (preferences, presets); `turns` is built below, and this runs only on requests
  const modelUsable: ModelUsable = (p, ref) => turns.isUsable(p, ref)
  // a default model preference must also be one the user's groups allow (docs/api.md §21)
  const users = createUsersService({ database, bus, modelUsable: (p, ref) => turns.isUsable(p, ref, true) })
  const setup = createSetupService({ database, logger, dataDir: config.dataDir, token: await deriveSetupToken(deps.secret) })
  const apiKeys = createApiKeysService({ database, revocations, logger })
  const auth = createAuthService({ database, config, logger, mailer, tokens, revocations, limiter, apiKeys, users, setup, codeKey, successorKey, refreshGraceMs: deps.refreshGraceMs })
  const invites = createInvitesService({ database })
  const loginLinks = createLoginLinksService({ database })
  const secrets = await createSecretBox(deps.secret)
  const outbound = deps.outbound ?? createOutboundGuard({ allowPrivate: config.allowPrivateUpstreams })
  // issuers are chosen by the operator or an admin: private addresses allowed, so no outbound guard
  const oidcProviders = createProviderRegistry({ database, bus, secrets, logger, envProviders: config.oidcProviders, timeoutMs: deps.oidc?.timeoutMs })
  const oidc = createOidcService({ database, config, logger, registry: oidcProviders, auth, users, setup })
  const providers = createProvidersService({ database, bus, secrets, outbound })
  const usage = createUsageService({ database, logger, enforced: config.creditsEnforced })
  const groups = createGroupsService({ database, bus, usage, instanceRateLimit: config.rateLimit, unknownTools: (p, names) => tools.unknownOf(p, names) })
  const gateway = createGatewayService({ providers, usage, logger, groupEffectOf: groups.effectOf })
  const configs = createConfigsService({ database, bus, secrets, outbound })
  const search = createSearchService({ configs, outbound, logger })
  // a preset's tools are checked where they are saved, by the tools layer built below (this runs only on requests, like modelUsable)
  const presets = createPresetsService({ database, modelUsable, unknownTools: (p, names) => tools.unknownOf(p, names) })
  const memories = createMemoriesService({ database })
  const prompts = createPromptsService({ database })
  const storage = deps.storage ?? createStorage({ dataDir: config.dataDir, s3: config.s3 })
  const files = createFilesService({ database, storage, logger, linkKey: fileLinkKey, uploadMaxBytes: config.uploadMaxBytes, defaultQuotaBytes: config.storageQuotaBytes })
  const runs = createRunRegistry()
  const subscriptions = createSubscriptions({ bus, maxPerUser: config.maxStreamsPerUser })
  // a signed-out session, a deleted key or a cut-off ends the streams it opened, on every instance
  revocations.onInvalidate(subscriptions.revoke)
  const turns = createModelTurns({ providers, usage, logger, groupEffectOf: groups.effectOf })
  const toolEvents = createToolEvents({ bus })
  const mcp = createMcpService({
    database,
    bus,
    secrets,
    outbound,
    logger,
    version: deps.version,
    idleMs: deps.mcp?.idleMs,
    backoffMs: deps.mcp?.backoffMs,
    // a server's status reaches whoever may see it: everyone for a global server (ownerId null), else its owner, or the user whose own user_vars the connection runs with
    onStatus: (e) => {
      deps.mcp?.onStatus?.(e)
      void toolEvents.publish(e.ownerId, { event: 'server_status', data: { server_id: e.serverId, status: e.status, error: e.error } }).catch((error) => logger.warn('mcp status event not sent', { error }))
    },
  })
  const connections = createConnectionsService({
    database,
    bus,
    secrets,
    outbound,
    files,
    logger,
    preferredConnectionOf: async (userId) => (await users.profile(userId)).preferences.default_connection_id,
    options: { timeoutMs: config.sqlTimeoutMs, maxRows: config.sqlMaxRows, ...deps.connections },
  })
  const tools = createToolsService({ database, logger, events: toolEvents, builtins: [...builtinTools({ outbound, search, connections, sqlMaxRows: config.sqlMaxRows }), ...(deps.extraBuiltins ?? [])], mcp: mcp.toolSource, settingFor: configs.valueFor })
  const agents = createAgentsService({ database, logger, modelUsable, unknownTools: tools.unknownOf })
  const chat = createChatService({
    database,
    logger,
    bus,
    runs,
    subscriptions,
    turns,
    users,
    configs,
    tools,
    approvalTimeoutMs: deps.toolApprovalTimeoutMs,
    presetOf: (p, id) => presets.get(p, id).catch(unlessNotFound),
    agentOf: (p, id) => agents.usable(p, id),
    agentExecutions: agents.executions,
    memoriesOf: (userId) => memories.contextFor(userId),
    titlePrompt: (userId, values) => prompts.render(userId, 'title', values),
    sql: { connections, prompts, maxRows: config.sqlMaxRows },
    maxRunsPerUser: config.maxRunsPerUser,
    groupEffectOf: groups.effectOf,
  })

  const taskEngine = createTaskEngine({ database, bus, logger, concurrency: config.taskConcurrency, userConcurrency: config.taskUserConcurrency, leaseMs: config.taskLeaseMs, retryBaseMs: config.taskRetryMs })
  // a tool call that needs approval waits for a decision recorded as a step, from any instance
  const taskApprovals = createTaskApprovals({ database, engine: taskEngine, timeoutMs: deps.toolApprovalTimeoutMs })
  taskEngine.registerKind('agent', createAgentRunner({ database, turns, tools, approvals: taskApprovals, executions: agents.executions }))
  const tasks = createTasksService({ database, engine: taskEngine, turns, subscriptions, approvals: taskApprovals })
  // a plan is a `plan` task beside its plans row: the engine runs it (modules/plans/kind.ts), a new one wakes the workers,
  // and deleting one goes through the tasks service (its open streams end with `task_deleted`)
  taskEngine.registerKind('plan', planKind({ database, turns, failure: (code, message, retryable) => new TaskFailure(code, message, retryable) }))
  const plans = createPlansService({ database, turns, announce: () => taskEngine.announce(), removeTask: tasks.remove })
  const workflowServices = createWorkflowServices({ database, outbound, logger, checkTimeoutMs: deps.workflowServices?.checkTimeoutMs, healthIntervalMs: deps.workflowServices?.healthIntervalMs })
  const workflows = createWorkflowsService({ database, bus, logger, services: workflowServices, lockSweepMs: deps.workflowServices?.lockSweepMs })
  // a workflow run is a `workflow` task: the engine runs it on the workflow's ComfyUI service (modules/workflow-runs/runner.ts)
  taskEngine.registerKind('workflow', workflowKind({ database, workflows, files, outbound, logger, requestTimeoutMs: config.workflowRequestTimeoutMs, runTimeoutMs: config.workflowRunTimeoutMs, failure: (code, message, retryable) => new TaskFailure(code, message, retryable) }))
  const workflowRuns = createWorkflowRunsService({ database, workflows, announce: () => taskEngine.announce() })
  const sessions = createSessionsService({ database, logger, bus, runs, subscriptions, turns, tools, users, agents, workflows, maxRunsPerUser: config.maxRunsPerUser, editHooks: deps.sessionEdits })
  // the /ws/chat sockets of this instance, fed by the bus's session and workflow-lock frames; closed (1001) when shutdown starts
  const socketHub = createSocketHub({ bus, logger })
  // deletes conversations and tasks past their owner's history_retention_days: on every instance, one at a time on Postgres
  const privacy = createPrivacyService({ database, users, logger, sweep: deps.retentionSweep })
  // deleting an account (yours or, by an admin, anyone's) and exporting yours
  const account = createAccountService({ database, users, files, auth, runs, limiter })
  const accountExport = createAccountExport({ database, users, usage, files, logger })
  deps.shutdown.addEventListener('abort', () => socketHub.close(), { once: true })

  await revocations.start()
  limiter.start()
  await presets.seedBuiltins()
  await plans.seedBuiltins()
  // what uploads cut by a crash left in storage; on SQLite no other instance is uploading, so the quota holds they left go too
  await storage.sweep()
  if (database.dialect === 'sqlite') await files.reconcile()
  // while no admin exists, the setup token is written to the data dir (and logged by the caller)
  await setup.prepare()
  // answers left streaming by a process that died; on SQLite this process is the only writer
  await chat.recoverInterrupted(database.dialect === 'sqlite')
  await sessions.recoverInterrupted(database.dialect === 'sqlite')
  // on SQLite this process is the only server: runs have no one else to reach
  const relay = database.dialect === 'postgres' ? startRunRelay({ runs, bus, logger }) : undefined
  await bus.ready()
  taskEngine.start()
  workflowServices.start()
  workflows.start()
  privacy.start()
  const recovery = database.dialect === 'postgres' ? setInterval(() => void chat.recoverInterrupted(false).catch((error) => logger.warn('recovery sweep failed', { error })), STALE_STREAMING_MS / 2) : undefined
  recovery?.unref?.()
  const sessionRecovery = database.dialect === 'postgres' ? setInterval(() => void sessions.recoverInterrupted(false).catch((error) => logger.warn('session recovery sweep failed', { error })), STALE_REPLY_MS / 2) : undefined
  sessionRecovery?.unref?.()

  return {
    bus,
    mailer,
    outbound,
    limiter,
    revocations,
    tokens,
    users,
    groups,
    setup,
    apiKeys,
    auth,
    invites,
    loginLinks,
    oidcProviders,
    oidc,
    providers,
    usage,
    gateway,
    configs,
    search,
    presets,
    memories,
    prompts,
    plans,
    workflowRuns,
    storage,
    files,
    runs,
    subscriptions,
    turns,
    toolEvents,
    tools,
    agents,
    history: createHistoryService({ database }),
    chat,
    mcp,
    connections,
    taskEngine,
    tasks,
    socketHub,
    workflowServices,
    workflows,
    sessions,
    privacy,
    account,
    accountExport,
    /** Stop background work and write what is pending; the database is closed by the caller. */
    async close(runGraceMs = 0) {
      clearInterval(recovery)
      clearInterval(sessionRecovery)
      socketHub.close()
      await privacy.close()
      workflows.close()
      await workflowServices.close()
      // running tasks go back to the queue at once, for another instance or the next start
      await taskEngine.close()
      await runs.stopAll(runGraceMs)
      await mcp.close()
      await connections.close()
      await relay?.close()
      await usage.flush()
      revocations.close()
      subscriptions.close()
      toolEvents.close()
      await Promise.allSettled([auth.close(), apiKeys.close(), limiter.close()])
      await bus.close()
    },
  }
}

export type Services = Awaited<ReturnType<typeof createServices>>
