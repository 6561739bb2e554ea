/**
 * The tables that hold a user's rows, derived from the Drizzle schema (a foreign key to users, or to
 * such a table, transitively), and one row of the user's in each, inserted directly. A table added
 * to the schema joins the derived list at once, and `seedOneOfEach` refuses to go on until it has a
 * row for it: so the deletion and export tests cannot miss a new table.
 */
import { and, eq, getTableName, is, type SQL } from 'drizzle-orm'
import { getTableConfig as pgTableConfig, PgTable } from 'drizzle-orm/pg-core'
import { getTableConfig as sqliteTableConfig, SQLiteTable } from 'drizzle-orm/sqlite-core'
import type { Database } from '../../src/db/index.ts'

export interface ForeignKey {
  columns: string[]
  table: string
  onDelete: string | undefined
}

export interface SchemaTable {
  name: string
  table: PgTable
  foreignKeys: ForeignKey[]
}

export function schemaTables(database: Database): SchemaTable[] {
  return Object.values(database.t as Record<string, unknown>)
    .filter((x): x is PgTable => is(x, PgTable) || is(x, SQLiteTable))
    .map((table) => {
      const config = is(table, PgTable) ? pgTableConfig(table) : sqliteTableConfig(table as unknown as SQLiteTable)
      const foreignKeys = config.foreignKeys.map((fk) => {
        const ref = fk.reference()
        return { columns: ref.columns.map((c) => c.name), table: getTableName(ref.foreignTable), onDelete: fk.onDelete }
      })
      return { name: getTableName(table), table, foreignKeys }
    })
}

/** Every table but users itself with a foreign key to users or to such a table; `gone`: its rows go with the user (a chain of cascades). */
export function userTables(database: Database): (SchemaTable & { userColumns: string[]; gone: boolean })[] {
  const all = schemaTables(database)
  const holds = new Set(['users'])
  const cascades = new Set(['users'])
  for (let grew = true; grew; ) {
    grew = false
    for (const t of all) {
      if (!holds.has(t.name) && t.foreignKeys.some((fk) => holds.has(fk.table))) (holds.add(t.name), (grew = true))
      if (!cascades.has(t.name) && t.foreignKeys.some((fk) => fk.onDelete === 'cascade' && cascades.has(fk.table))) (cascades.add(t.name), (grew = true))
    }
  }
  return all
    .filter((t) => t.name !== 'users' && holds.has(t.name))
    .map((t) => ({ ...t, userColumns: t.foreignKeys.filter((fk) => fk.table === 'users').flatMap((fk) => fk.columns), gone: cascades.has(t.name) }))
}

const future = () => new Date(Date.now() + 3600_000)

/** Secrets stored in the user's rows: an export must contain none of them. */
export const SEEDED_SECRETS = ['seeded-provider-key', 'seeded-secret-config-value', 'seeded-connection-password', 'seeded-mcp-env', 'seeded-mcp-headers', 'seeded-user-var-values', 'seeded-key-hash', 'seeded-token-hash']

/**
 * One row of `userId`'s in every table userTables lists (and a group to be a member of). Returns,
 * per table name, the condition that finds the row seeded there.
 */
export async function seedOneOfEach(database: Database, userId: string, tag: string): Promise<Record<string, SQL>> {
  const { db, t } = database
  const one = async <T extends PgTable & { id: any }>(table: T, values: T['$inferInsert']): Promise<string> => {
    const [row] = await db.insert(table as PgTable).values(values as never).returning({ id: (table as any).id })
    return (row as { id: string }).id
  }
  const where: Record<string, SQL> = {}
  const byId = (name: string, table: { id: any }, id: string) => ((where[name] = eq(table.id, id)), id)

  const session = byId('sessions', t.sessions, await one(t.sessions, { userId, method: 'oidc', userAgent: 'seed', expiresAt: future() }))
  byId('refresh_tokens', t.refreshTokens, await one(t.refreshTokens, { sessionId: session, tokenHash: `seeded-token-hash-${tag}`, expiresAt: future() }))
  byId('api_keys', t.apiKeys, await one(t.apiKeys, { userId, name: 'seeded', prefix: 'hk_seed', keyHash: `seeded-key-hash-${tag}` }))
  byId('invites', t.invites, await one(t.invites, { prefix: 'inv_seed', codeHash: `seeded-invite-${tag}`, createdBy: userId, usedBy: userId }))
  const provider = byId('providers', t.providers, await one(t.providers, { name: `seeded ${tag}`, type: 'openai_compatible', scope: 'personal', ownerId: userId, baseUrl: 'http://127.0.0.1:9', apiKeyEnc: 'seeded-provider-key' }))
  byId('models', t.models, await one(t.models, { providerId: provider, name: `seeded-model-${tag}`, modelId: 'seeded' }))
  byId('usage', t.usage, await one(t.usage, { userId, providerId: provider, model: 'seeded', source: 'chat', status: 'ok', inputTokens: 7, outputTokens: 5, cost: 0.25 }))
  byId('configs', t.configs, await one(t.configs, { userId, configGroup: 'search', configName: 'exa_api_key', configValue: `seeded-secret-config-value`, isSecret: true }))
  const preset = byId('presets', t.presets, await one(t.presets, { userId, name: `seeded ${tag}` }))
  const agent = byId('agents', t.agents, await one(t.agents, { userId, name: `seeded ${tag}` }))
  const file = byId('files', t.files, await one(t.files, { userId, purpose: 'dataset', fileName: 'seeded.db', fileSize: 1, contentType: 'application/octet-stream', sha256: 'x', storageKey: `${userId}/seeded-${tag}` }))
  const connection = byId('connections', t.connections, await one(t.connections, { userId, name: `seeded ${tag}`, driver: 'postgres', host: '127.0.0.1', password: 'seeded-connection-password', fileId: file }))
  const conversation = byId('conversations', t.conversations, await one(t.conversations, { userId, title: 'seeded', presetId: preset, agentId: agent, connectionId: connection }))
  byId('messages', t.messages, await one(t.messages, { conversationId: conversation, role: 'user', content: 'seeded message' }))
  byId('shares', t.shares, await one(t.shares, { conversationId: conversation, tokenHash: `seeded-share-${tag}`, snapshot: { title: null, messages: [] } }))
  byId('memories', t.memories, await one(t.memories, { userId, content: 'seeded memory' }))
  const server = byId('mcp_servers', t.mcpServers, await one(t.mcpServers, { userId, name: `seeded ${tag}`, transport: 'http', url: 'http://127.0.0.1:9/mcp', env: 'seeded-mcp-env', envKeys: ['E'], headers: 'seeded-mcp-headers', headerKeys: ['Authorization'] }))
  await db.insert(t.mcpUserVars).values({ serverId: server, userId, values: 'seeded-user-var-values', keys: ['TOKEN'] })
  where.mcp_user_vars = and(eq(t.mcpUserVars.serverId, server), eq(t.mcpUserVars.userId, userId))!
  byId('tool_logs', t.toolLogs, await one(t.toolLogs, { userId, tool: 'current_time', source: 'api' }))
  const task = byId('tasks', t.tasks, await one(t.tasks, { userId, kind: 'external', status: 'completed', agentId: agent }))
  byId('task_steps', t.taskSteps, await one(t.taskSteps, { taskId: task, seq: 1, step: 'log', data: { text: 'seeded step' }, timestamp: new Date() }))
  byId('task_shares', t.taskShares, await one(t.taskShares, { taskId: task, tokenHash: `seeded-task-share-${tag}`, snapshot: {} }))
  byId('agent_executions', t.agentExecutions, await one(t.agentExecutions, { agentId: agent, userId, executionType: 'task', taskId: task, startedAt: new Date() }))
  byId('plans', t.plans, await one(t.plans, { userId, type: 'seeded', taskId: task, input: { topic: 'seeded' } }))
  await db.insert(t.prompts).values({ userId, name: 'title', content: 'seeded prompt' })
  where.prompts = and(eq(t.prompts.userId, userId), eq(t.prompts.name, 'title'))!
  const workflow = byId('workflows', t.workflows, await one(t.workflows, { userId, name: `seeded ${tag}`, workflowData: { '1': { class_type: 'Seed', inputs: {} } } }))
  byId('workflow_versions', t.workflowVersions, await one(t.workflowVersions, { workflowId: workflow, version: 1, workflowData: { '1': { class_type: 'Seed', inputs: {} } } }))
  const wfSession = byId('workflow_sessions', t.workflowSessions, await one(t.workflowSessions, { userId, workflowId: workflow, agentId: agent, title: 'seeded' }))
  byId('session_messages', t.sessionMessages, await one(t.sessionMessages, { sessionId: wfSession, role: 'user', content: 'seeded session message' }))
  byId('user_identities', t.userIdentities, await one(t.userIdentities, { userId, providerId: 'seeded', subject: `seeded-${tag}`, email: 'seeded@example.com' }))
  await db.insert(t.oidcLogins).values({ stateHash: `seeded-state-${tag}`, providerId: 'seeded', codeVerifier: 'v', nonce: 'n', redirectUri: 'http://localhost/cb', returnTo: '/', linkUserId: userId, expiresAt: future() })
  where.oidc_logins = eq(t.oidcLogins.stateHash, `seeded-state-${tag}`)
  byId('login_links', t.loginLinks, await one(t.loginLinks, { userId, tokenHash: `seeded-link-${tag}`, createdBy: userId }))
  const group = await one(t.groups, { name: `seeded ${tag}` })
  await db.insert(t.groupMembers).values({ groupId: group, userId, role: 'group_admin' })
  where.group_members = and(eq(t.groupMembers.groupId, group), eq(t.groupMembers.userId, userId))!

  const missing = userTables(database).filter((table) => !where[table.name])
  if (missing.length) throw new Error(`no seeded row for ${missing.map((m) => m.name).join(', ')}: add one here, and place the table in the export (EXPORT_COVERAGE)`)
  return where
}
