/**
 * @module The account export (docs/api.md §5 "Export"): one JSON document of everything a user owns,
 * written as it is read. Each table is read in keyset pages by id (PAGE rows a query); a page of
 * parents (conversations, tasks, …) gets its children (messages, steps, …) with one query per
 * CHILD_PAGE children over the whole page, merged in as they come. So the server holds about one
 * page at a time, whatever the account's size, and stops reading when the client goes.
 */
import { and, asc, eq, gt, inArray, or, sql, type SQL } from 'drizzle-orm'
import type { PgColumn, PgTable } from 'drizzle-orm/pg-core'
import type { Database } from '../../db/index.ts'
import type { Logger } from '../../lib/logger.ts'
import { toAgentDto, toExecutionDto } from '../agents/model.ts'
import { toApiKeyDto } from '../auth/model.ts'
import type { Principal } from '../auth/service.ts'
import { toConversationDto, toMessageDto } from '../chat/model.ts'
import { toConfigDto } from '../configs/model.ts'
import { toConnectionDto } from '../connections/model.ts'
import { toFileDto } from '../files/model.ts'
import type { FilesService } from '../files/service.ts'
import { toMcpServerDto } from '../mcp/model.ts'
import { toMemoryDto } from '../memories/model.ts'
import { toPlanDto } from '../plans/model.ts'
import { toPresetDto } from '../presets/model.ts'
import { toModelDto, toProviderDto } from '../providers/model.ts'
import { toSessionDto, toSessionMessageListItem } from '../sessions/model.ts'
import { toStepDto, toTaskDto } from '../tasks/model.ts'
import { toLogDto } from '../tools/model.ts'
import type { UsageService } from '../usage/service.ts'
import { toUserDto } from '../users/model.ts'
import { preferencesOf, type UserRow, type UsersService } from '../users/service.ts'
import { toWorkflowDto } from '../workflows/model.ts'
import { exportRunning } from './errors.ts'
import { EXPORT_FORMAT, type AccountExport } from './model.ts'

/** parent rows per query */
export const PAGE = 200
/** child rows per query (over a whole page of parents) */
export const CHILD_PAGE = 500
/** characters gathered before a chunk is handed to the response */
const CHUNK_CHARS = 64 * 1024
/**
 * A full garbage collection after every this many bytes written. Measured (bench/account-export.ts,
 * 459 MB export at loopback speed): without it the pages' strings are collected so late that the
 * server's RSS grows by ~274 MB (it follows the export's size); with it, by ~1 MB, at 150 MB/s
 * instead of 200, each collection taking 25–50 ms. Exports are rare; memory that follows an
 * account's size is not acceptable.
 */
const GC_EVERY_BYTES = 32 * 1024 * 1024

/**
 * Every table that holds a user's rows (a foreign key to users, or to such a table), and where its
 * rows are in the export — or why they are not. test/account.test.ts derives the list from the
 * schema, so a new table fails it until it is placed here.
 */
export const EXPORT_COVERAGE: Record<string, string> = {
  users: 'user, preferences, privacy, credits',
  sessions: 'sessions (no tokens)',
  refresh_tokens: 'left out: hashes of credentials',
  api_keys: 'api_keys (metadata, never the key)',
  invites: 'left out: the instance\'s invite codes (who made or used one is the admins\' record; the codes are hashed)',
  providers: 'providers (never the API key or headers; `api_key_hint` as the API shows it)',
  models: 'providers[].models',
  usage: 'usage (totals; the rows of single calls are left out — they are the instance\'s accounting, and stay, without the user, when the account is deleted)',
  configs: 'configs (a secret one without its value)',
  presets: 'presets',
  conversations: 'conversations',
  messages: 'conversations[].messages',
  shares: 'conversation_shares (not the link: only its hash is kept)',
  memories: 'memories',
  files: 'files (metadata and a signed download link)',
  mcp_servers: 'mcp_servers (names of env and header keys, never their values)',
  mcp_user_vars: 'mcp_user_vars (names only, never the values)',
  tool_logs: 'tool_logs',
  agents: 'agents',
  tasks: 'tasks',
  task_steps: 'tasks[].steps',
  task_shares: 'task_shares (not the link: only its hash is kept)',
  agent_executions: 'agent_executions',
  plans: 'plans',
  connections: 'connections (never the password)',
  prompts: 'prompts',
  workflows: 'workflows',
  workflow_versions: 'workflows[].versions',
  workflow_sessions: 'workflow_sessions',
  session_messages: 'workflow_sessions[].messages',
  user_identities: 'identities',
  oidc_logins: 'left out: a sign-in on its way to a provider, deleted within minutes',
  login_links: 'left out: sign-in links an admin made, credentials stored hashed',
  group_members: 'groups',
}

type Row = Record<string, unknown>

/** What one array of the document holds: the user's rows in pages by a unique, ordered cursor, each mapped to its wire form. */
interface Section {
  key: keyof AccountExport
  /** up to PAGE rows after `after`, in cursor order */
  page(userId: string, after: string | undefined): Promise<Row[]>
  cursor(row: Row): string
  dto(row: Row): unknown
  /** children written inside each row, under `key` */
  children?: {
    key: string
    /** up to CHILD_PAGE children of `parentIds`, ordered by (parent id, id), after `after` in that order */
    page(parentIds: string[], after: { parent: string; id: string } | undefined): Promise<Row[]>
    parentOf(child: Row): string
    dto(child: Row, parent: Row): unknown
  }
}

export function createAccountExport(deps: { database: Database; users: UsersService; usage: UsageService; files: FilesService; logger: Logger }) {
  const { database, users, usage, files, logger } = deps
  const { db, t } = database
  /** users with an export being written by this instance */
  const running = new Set<string>()

  /** The rows of `table` whose `owner` is the user, by id. */
  const owned =
    (table: PgTable, owner: PgColumn, id: PgColumn, where?: SQL) =>
    (userId: string, after: string | undefined) =>
      db
        .select()
        .from(table)
        .where(and(eq(owner, userId), after === undefined ? undefined : gt(id, after), where))
        .orderBy(asc(id))
        .limit(PAGE) as unknown as Promise<Row[]>

  /** The rows of `table` whose `parent` is one of `parentIds`, by (parent, id). */
  const childrenIn = (table: PgTable, parent: PgColumn, id: PgColumn) => (parentIds: string[], after: { parent: string; id: string } | undefined) =>
    db
      .select()
      .from(table)
      .where(and(inArray(parent, parentIds), after === undefined ? undefined : or(gt(parent, after.parent), and(eq(parent, after.parent), gt(id, after.id)))))
      .orderBy(asc(parent), asc(id))
      .limit(CHILD_PAGE) as unknown as Promise<Row[]>

  const byId = (r: Row) => r.id as string
  const iso = (d: unknown) => (d instanceof Date ? d.toISOString() : null)

  function sections(user: UserRow, origin: string): Section[] {
    const owner: Principal = { userId: user.id, role: user.role, via: 'session', sessionId: null, apiKeyId: null, scopes: [] }
    const sharesOf = (shares: typeof t.shares | typeof t.taskShares, parentTable: typeof t.conversations | typeof t.tasks, parentId: PgColumn, parentKey: string): Section['page'] => (userId, after) =>
      db
        .select({ id: shares.id, [parentKey]: parentId, createdAt: shares.createdAt })
        .from(shares)
        .innerJoin(parentTable, eq(parentTable.id, parentId))
        .where(and(eq(parentTable.userId, userId), after === undefined ? undefined : gt(shares.id, after)))
        .orderBy(asc(shares.id))
        .limit(PAGE) as unknown as Promise<Row[]>
    const shareDto = (parentKey: string, wireKey: string) => (r: Row) => ({ id: r.id, [wireKey]: r[parentKey], created_at: iso(r.createdAt) })
    return [
      {
        key: 'sessions',
        page: owned(t.sessions, t.sessions.userId, t.sessions.id),
        cursor: byId,
        dto: (s) => ({ id: s.id, method: s.method, user_agent: s.userAgent, ip: s.ip, created_at: iso(s.createdAt), last_used_at: iso(s.lastUsedAt), expires_at: iso(s.expiresAt), revoked_at: iso(s.revokedAt) }),
      },
      { key: 'api_keys', page: owned(t.apiKeys, t.apiKeys.userId, t.apiKeys.id), cursor: byId, dto: ({ keyHash: _, ...k }) => toApiKeyDto(k as never) },
      {
        key: 'identities',
        page: owned(t.userIdentities, t.userIdentities.userId, t.userIdentities.id),
        cursor: byId,
        dto: (i) => ({ provider_id: i.providerId, subject: i.subject, email: i.email, created_at: iso(i.createdAt), last_used_at: iso(i.lastUsedAt) }),
      },
      {
        key: 'groups',
        page: (userId, after) =>
          db
            .select({ groupId: t.groupMembers.groupId, name: t.groups.name, role: t.groupMembers.role, createdAt: t.groupMembers.createdAt })
            .from(t.groupMembers)
            .innerJoin(t.groups, eq(t.groups.id, t.groupMembers.groupId))
            .where(and(eq(t.groupMembers.userId, userId), after === undefined ? undefined : gt(t.groupMembers.groupId, after)))
            .orderBy(asc(t.groupMembers.groupId))
            .limit(PAGE),
        cursor: (g) => g.groupId as string,
        dto: (g) => ({ group_id: g.groupId, name: g.name, role: g.role, joined_at: iso(g.createdAt) }),
      },
      {
        key: 'conversations',
        page: owned(t.conversations, t.conversations.userId, t.conversations.id),
        cursor: byId,
        dto: (c) => toConversationDto(c as never),
        children: { key: 'messages', page: childrenIn(t.messages, t.messages.conversationId, t.messages.id), parentOf: (m) => m.conversationId as string, dto: (m) => toMessageDto(m as never) },
      },
      { key: 'conversation_shares', page: sharesOf(t.shares, t.conversations, t.shares.conversationId, 'conversationId'), cursor: byId, dto: shareDto('conversationId', 'conversation_id') },
      {
        key: 'tasks',
        page: owned(t.tasks, t.tasks.userId, t.tasks.id),
        cursor: byId,
        dto: (r) => toTaskDto(r as never),
        children: { key: 'steps', page: childrenIn(t.taskSteps, t.taskSteps.taskId, t.taskSteps.id), parentOf: (s) => s.taskId as string, dto: (s) => toStepDto(s as never) },
      },
      { key: 'task_shares', page: sharesOf(t.taskShares, t.tasks, t.taskShares.taskId, 'taskId'), cursor: byId, dto: shareDto('taskId', 'task_id') },
      {
        key: 'plans',
        page: (userId, after) =>
          db
            .select({ plan: t.plans, task: { id: t.tasks.id, status: t.tasks.status, result: t.tasks.result, error: t.tasks.error } })
            .from(t.plans)
            .innerJoin(t.tasks, eq(t.tasks.id, t.plans.taskId))
            .where(and(eq(t.plans.userId, userId), after === undefined ? undefined : gt(t.plans.id, after)))
            .orderBy(asc(t.plans.id))
            .limit(PAGE) as unknown as Promise<Row[]>,
        cursor: (r) => (r.plan as Row).id as string,
        dto: (r) => toPlanDto(r as never),
      },
      { key: 'agents', page: owned(t.agents, t.agents.userId, t.agents.id), cursor: byId, dto: (a) => toAgentDto(a as never) },
      { key: 'agent_executions', page: owned(t.agentExecutions, t.agentExecutions.userId, t.agentExecutions.id), cursor: byId, dto: (e) => toExecutionDto(e as never) },
      { key: 'presets', page: owned(t.presets, t.presets.userId, t.presets.id), cursor: byId, dto: (p) => toPresetDto(p as never) },
      { key: 'memories', page: owned(t.memories, t.memories.userId, t.memories.id), cursor: byId, dto: (m) => toMemoryDto(m as never) },
      { key: 'prompts', page: owned(t.prompts, t.prompts.userId, t.prompts.name), cursor: (p) => p.name as string, dto: (p) => ({ name: p.name, content: p.content, updated_at: iso(p.updatedAt) }) },
      {
        key: 'configs',
        page: owned(t.configs, t.configs.userId, t.configs.id),
        cursor: byId,
        dto: (c) => toConfigDto({ ...(c as never as typeof t.configs.$inferSelect), scope: 'personal', shownValue: c.isSecret ? null : (c.configValue as string | null) }),
      },
      {
        key: 'providers',
        page: owned(t.providers, t.providers.ownerId, t.providers.id),
        cursor: byId,
        dto: (p) => toProviderDto(p as never, owner),
        children: { key: 'models', page: childrenIn(t.models, t.models.providerId, t.models.id), parentOf: (m) => m.providerId as string, dto: (m, p) => toModelDto(m as never, p.name as string) },
      },
      { key: 'mcp_servers', page: owned(t.mcpServers, t.mcpServers.userId, t.mcpServers.id), cursor: byId, dto: (s) => toMcpServerDto(s as never) },
      {
        key: 'mcp_user_vars',
        page: owned(t.mcpUserVars, t.mcpUserVars.userId, t.mcpUserVars.serverId),
        cursor: (v) => v.serverId as string,
        dto: (v) => ({ server_id: v.serverId, keys: v.keys, updated_at: iso(v.updatedAt) }),
      },
      { key: 'connections', page: owned(t.connections, t.connections.userId, t.connections.id), cursor: byId, dto: (c) => toConnectionDto(c as never, owner) },
      {
        key: 'files',
        page: owned(t.files, t.files.userId, t.files.id),
        cursor: byId,
        dto: (f) => toFileDto(f as never, origin + files.accessUrl(f as never)),
      },
      {
        key: 'workflows',
        page: (userId, after) =>
          db
            .select({
              workflow: t.workflows,
              serviceName: t.services.name,
              sessionCount: sql<number>`(SELECT count(*) FROM ${t.workflowSessions} WHERE ${t.workflowSessions.workflowId} = ${t.workflows.id})`.mapWith(Number),
              versionCount: sql<number>`(SELECT count(*) FROM ${t.workflowVersions} WHERE ${t.workflowVersions.workflowId} = ${t.workflows.id})`.mapWith(Number),
            })
            .from(t.workflows)
            .leftJoin(t.services, eq(t.services.id, t.workflows.serviceId))
            .where(and(eq(t.workflows.userId, userId), after === undefined ? undefined : gt(t.workflows.id, after)))
            .orderBy(asc(t.workflows.id))
            .limit(PAGE)
            .then((rows) => rows.map((r) => ({ ...r.workflow, serviceName: r.serviceName, sessionCount: r.sessionCount, versionCount: r.versionCount }))),
        cursor: byId,
        dto: (w) => toWorkflowDto(w as never),
        children: {
          key: 'versions',
          page: childrenIn(t.workflowVersions, t.workflowVersions.workflowId, t.workflowVersions.id),
          parentOf: (v) => v.workflowId as string,
          dto: (v) => ({ version: v.version, workflow_data: v.workflowData, created_at: iso(v.createdAt), note: v.note }),
        },
      },
      {
        key: 'workflow_sessions',
        page: owned(t.workflowSessions, t.workflowSessions.userId, t.workflowSessions.id),
        cursor: byId,
        dto: (s) => toSessionDto(s as never),
        children: { key: 'messages', page: childrenIn(t.sessionMessages, t.sessionMessages.sessionId, t.sessionMessages.id), parentOf: (m) => m.sessionId as string, dto: (m) => toSessionMessageListItem(m as never) },
      },
      { key: 'tool_logs', page: owned(t.toolLogs, t.toolLogs.userId, t.toolLogs.id), cursor: byId, dto: (l) => toLogDto(l as never) },
    ]
  }

  /** A page of parents, each with its children merged in from queries over the whole page. */
  async function* withChildren(rows: Row[], section: Section, children: NonNullable<Section['children']>, first: boolean): AsyncGenerator<string> {
    const ids = rows.map(section.cursor)
    let batch: Row[] = []
    let at = 0
    let more = true
    /** the next child in (parent, id) order, or undefined when there are no more */
    const peek = async (): Promise<Row | undefined> => {
      if (at < batch.length) return batch[at]
      if (!more) return undefined
      const last = batch[batch.length - 1]
      batch = await children.page(ids, last ? { parent: children.parentOf(last), id: last.id as string } : undefined)
      at = 0
      more = batch.length === CHILD_PAGE
      return batch[0]
    }
    for (const [i, parent] of rows.entries()) {
      const head = JSON.stringify(section.dto(parent))
      yield `${first && !i ? '' : ','}\n${head.slice(0, -1)},${JSON.stringify(children.key)}:[`
      let n = 0
      for (let child = await peek(); child && children.parentOf(child) === ids[i]; at++, child = await peek()) yield `${n++ ? ',' : ''}${JSON.stringify(children.dto(child, parent))}`
      yield ']}'
    }
  }

  /** The document, in pieces, read as it is written. */
  async function* document(user: UserRow, origin: string): AsyncGenerator<string> {
    const preferences = preferencesOf(user)
    const totals = await usage.statsOf(user.id)
    const head: Partial<AccountExport> = {
      exported_at: new Date().toISOString(),
      format: EXPORT_FORMAT,
      user: toUserDto(user),
      preferences,
      privacy: { history_retention_days: user.historyRetentionDays, memory_enabled: preferences.memory_enabled, usage_visible_to_group_admins: user.usageVisibleToGroupAdmins },
      credits: { balance: user.creditBalance, used: user.creditUsed },
      usage: { input_tokens: totals.inputTokens, output_tokens: totals.outputTokens, cost: totals.cost },
    }
    yield JSON.stringify(head).slice(0, -1)
    for (const section of sections(user, origin)) {
      yield `,\n${JSON.stringify(section.key)}:[`
      let after: string | undefined
      for (let first = true; ; first = false) {
        const rows = await section.page(user.id, after)
        if (section.children) yield* withChildren(rows, section, section.children, first)
        else for (const [i, row] of rows.entries()) yield `${first && !i ? '' : ','}\n${JSON.stringify(section.dto(row))}`
        if (rows.length < PAGE) break
        after = section.cursor(rows[rows.length - 1]!)
      }
      yield '\n]'
    }
    yield '\n}\n'
  }

  return {
    /**
     * The export of `userId` as a stream of UTF-8 JSON, written as the client reads it. One at a
     * time per user on this instance (429 while one is being written). `origin` makes the files'
     * links absolute.
     */
    async open(userId: string, origin: string): Promise<{ username: string; stream: ReadableStream<Uint8Array> }> {
      const user = await users.get(userId)
      if (running.has(userId)) throw exportRunning()
      running.add(userId)
      const parts = document(user, origin)
      const encoder = new TextEncoder()
      let finished = false
      let written = 0
      let collectedAt = 0
      const finish = () => {
        if (finished) return
        finished = true
        running.delete(userId)
      }
      const stream = new ReadableStream<Uint8Array>(
        {
          async pull(controller) {
            try {
              let text = ''
              while (text.length < CHUNK_CHARS) {
                const next = await parts.next()
                if (next.done) break
                text += next.value
              }
              // `<` only occurs inside strings: escaped, the document can never close a <script> it is pasted into
              if (text) {
                const bytes = encoder.encode(text.replaceAll('<', '\\u003c'))
                controller.enqueue(bytes)
                written += bytes.length
                if (written - collectedAt >= GC_EVERY_BYTES) {
                  collectedAt = written
                  Bun.gc(true)
                }
              }
              if (text.length < CHUNK_CHARS) {
                finish()
                controller.close()
              }
            } catch (error) {
              logger.error('account export failed', { error, user_id: userId })
              finish()
              controller.error(error)
            }
          },
          async cancel() {
            finish()
            await parts.return(undefined)
          },
        },
        { highWaterMark: 0 },
      )
      return { username: user.username, stream }
    },
  }
}

export type AccountExportService = ReturnType<typeof createAccountExport>
