/** @module Postgres schema. Must stay identical to schema.sqlite.ts (test/db/schema-parity.test.ts). */
import { sql } from 'drizzle-orm'
import { bigint, boolean, doublePrecision, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core'
import { newId } from '../lib/ids.ts'

const id = () => text('id').primaryKey().$defaultFn(newId)
const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().$defaultFn(() => new Date())
const updatedAt = () => timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().$defaultFn(() => new Date())
const time = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' })
const number = (name: string) => doublePrecision(name)
const json = <T>(name: string) => jsonb(name).$type<T>()
const table = pgTable

export const users = table(
  'users',
  {
    id: id(),
    username: text('username').notNull(),
    email: text('email').notNull(),
    passwordHash: text('password_hash').notNull(),
    displayName: text('display_name'),
    avatarUrl: text('avatar_url'),
    role: text('role', { enum: ['user', 'admin'] }).notNull().default('user'),
    isActive: boolean('is_active').notNull().default(true),
    emailVerified: boolean('email_verified').notNull().default(false),
    preferences: json<Record<string, unknown>>('preferences').notNull().default({}),
    creditBalance: number('credit_balance').notNull().default(0),
    creditUsed: number('credit_used').notNull().default(0),
    /** bytes of the user's files, plus what uploads in progress hold (files module) */
    storageUsed: bigint('storage_used', { mode: 'number' }).notNull().default(0),
    /** null: the instance's HEARTH_STORAGE_QUOTA_BYTES */
    storageQuota: bigint('storage_quota', { mode: 'number' }),
    /** access tokens issued before this are refused (role change, disable) */
    tokensValidAfter: time('tokens_valid_after'),
    /** false: made by a single sign-on; password_hash is a random one nobody knows */
    hasPassword: boolean('has_password').notNull().default(true),
    /** privacy: conversations and tasks untouched for this many days are deleted by the daily sweep; null keeps them */
    historyRetentionDays: integer('history_retention_days'),
    /** privacy: whether the admins of the user's groups see the user's usage */
    usageVisibleToGroupAdmins: boolean('usage_visible_to_group_admins').notNull().default(false),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex('users_username_lower_uq').on(sql`lower(${t.username})`),
    uniqueIndex('users_email_uq').on(t.email),
    index('users_created_at_idx').on(t.createdAt),
  ],
)

/** A login: one refresh-token family. Revoking it kills its refresh tokens and, at once, its access tokens. */
export const sessions = table(
  'sessions',
  {
    id: id(),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    userAgent: text('user_agent'),
    ip: text('ip'),
    /** how it signed in: a fresh `oidc` one may delete an account without a password */
    method: text('method', { enum: ['password', 'oidc', 'login_link'] }).notNull().default('password'),
    createdAt: createdAt(),
    lastUsedAt: time('last_used_at').notNull().$defaultFn(() => new Date()),
    expiresAt: time('expires_at').notNull(),
    revokedAt: time('revoked_at'),
  },
  (t) => [index('sessions_user_idx').on(t.userId), index('sessions_revoked_at_idx').on(t.revokedAt)],
)

/** Opaque refresh tokens, stored as SHA-256. A rotated token keeps its row (`used_at`) so reuse is detected. */
export const refreshTokens = table(
  'refresh_tokens',
  {
    id: id(),
    sessionId: text('session_id').notNull().references(() => sessions.id, { onDelete: 'cascade' }),
    tokenHash: text('token_hash').notNull(),
    createdAt: createdAt(),
    expiresAt: time('expires_at').notNull(),
    usedAt: time('used_at'),
  },
  (t) => [uniqueIndex('refresh_tokens_hash_uq').on(t.tokenHash), index('refresh_tokens_session_idx').on(t.sessionId)],
)

export const apiKeys = table(
  'api_keys',
  {
    id: id(),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    prefix: text('prefix').notNull(),
    keyHash: text('key_hash').notNull(),
    /** where the key is accepted: `gateway` (/v1), `api` (the native API, without credential management); keys older than scopes have both */
    scopes: json<('gateway' | 'api')[]>('scopes').notNull().default(['gateway', 'api']),
    createdAt: createdAt(),
    lastUsedAt: time('last_used_at'),
    expiresAt: time('expires_at'),
  },
  (t) => [uniqueIndex('api_keys_hash_uq').on(t.keyHash), index('api_keys_user_idx').on(t.userId)],
)

/** Emailed 6-digit codes, stored as SHA-256 of (email, type, code). */
export const emailCodes = table(
  'email_codes',
  {
    id: id(),
    email: text('email').notNull(),
    codeType: text('code_type', { enum: ['register', 'password_reset'] }).notNull(),
    codeHash: text('code_hash').notNull(),
    attempts: integer('attempts').notNull().default(0),
    createdAt: createdAt(),
    expiresAt: time('expires_at').notNull(),
    consumedAt: time('consumed_at'),
  },
  (t) => [index('email_codes_email_idx').on(t.email, t.codeType, t.createdAt)],
)

export const invites = table(
  'invites',
  {
    id: id(),
    prefix: text('prefix').notNull(),
    codeHash: text('code_hash').notNull(),
    note: text('note'),
    createdBy: text('created_by').references(() => users.id, { onDelete: 'set null' }),
    createdAt: createdAt(),
    expiresAt: time('expires_at'),
    usedAt: time('used_at'),
    usedBy: text('used_by').references(() => users.id, { onDelete: 'set null' }),
  },
  (t) => [uniqueIndex('invites_hash_uq').on(t.codeHash)],
)

/** Fixed-window rate-limit counters, shared by every instance on one database. */
export const rateLimits = table(
  'rate_limits',
  {
    key: text('key').notNull(),
    windowStart: bigint('window_start', { mode: 'number' }).notNull(),
    count: integer('count').notNull(),
  },
  (t) => [primaryKey({ columns: [t.key, t.windowStart] }), index('rate_limits_window_idx').on(t.windowStart)],
)

/** Model providers. `api_key_enc` and `headers_enc` are AES-256-GCM ciphertexts (lib/secrets.ts). */
export const providers = table(
  'providers',
  {
    id: id(),
    name: text('name').notNull(),
    type: text('type', { enum: ['openai', 'anthropic', 'google', 'openai_compatible'] }).notNull(),
    baseUrl: text('base_url'),
    apiKeyEnc: text('api_key_enc'),
    apiKeyHint: text('api_key_hint'),
    headersEnc: text('headers_enc'),
    scope: text('scope', { enum: ['global', 'personal'] }).notNull(),
    ownerId: text('owner_id').references(() => users.id, { onDelete: 'cascade' }),
    isDefault: boolean('is_default').notNull().default(false),
    timeoutMs: integer('timeout_ms').notNull().default(120000),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('providers_owner_idx').on(t.ownerId), index('providers_scope_idx').on(t.scope)],
)

export const models = table(
  'models',
  {
    id: id(),
    providerId: text('provider_id').notNull().references(() => providers.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    modelId: text('model_id').notNull(),
    contextWindow: integer('context_window'),
    maxOutputTokens: integer('max_output_tokens'),
    supportsStream: boolean('supports_stream').notNull().default(true),
    supportsTools: boolean('supports_tools').notNull().default(false),
    supportsVision: boolean('supports_vision').notNull().default(false),
    inputPrice: number('input_price').notNull().default(0),
    outputPrice: number('output_price').notNull().default(0),
    isDefault: boolean('is_default').notNull().default(false),
    isAvailable: boolean('is_available').notNull().default(true),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex('models_provider_model_uq').on(t.providerId, t.modelId), index('models_name_idx').on(t.name)],
)

/** One row per model call: chat, gateway or task. */
export const usage = table(
  'usage',
  {
    id: id(),
    userId: text('user_id').references(() => users.id, { onDelete: 'set null' }),
    providerId: text('provider_id').references(() => providers.id, { onDelete: 'set null' }),
    model: text('model').notNull(),
    source: text('source', { enum: ['chat', 'gateway', 'task'] }).notNull(),
    inputTokens: integer('input_tokens').notNull().default(0),
    outputTokens: integer('output_tokens').notNull().default(0),
    cost: number('cost').notNull().default(0),
    latencyMs: integer('latency_ms'),
    ttftMs: integer('ttft_ms'),
    status: text('status', { enum: ['ok', 'error', 'aborted'] }).notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('usage_user_created_idx').on(t.userId, t.createdAt), index('usage_created_idx').on(t.createdAt)],
)

/** Settings by group: global ones (no owner, admins') and each user's personal ones. Secret values are stored encrypted and never returned. */
export const configs = table(
  'configs',
  {
    id: id(),
    /** null: a global setting; else the user whose personal setting it is */
    userId: text('user_id').references(() => users.id, { onDelete: 'cascade' }),
    configGroup: text('config_group').notNull(),
    configName: text('config_name').notNull(),
    configValue: text('config_value'),
    isSecret: boolean('is_secret').notNull().default(false),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex('configs_global_uq').on(t.configGroup, t.configName).where(sql`user_id IS NULL`),
    uniqueIndex('configs_personal_uq').on(t.userId, t.configGroup, t.configName).where(sql`user_id IS NOT NULL`),
  ],
)

/** Saved assistants. Built-in ones (no owner) are seeded at start and read-only. */
export const presets = table(
  'presets',
  {
    id: id(),
    userId: text('user_id').references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    description: text('description'),
    systemPrompt: text('system_prompt'),
    modelId: text('model_id'),
    temperature: number('temperature'),
    maxTokens: integer('max_tokens'),
    tools: json<string[]>('tools').notNull().default([]),
    isBuiltin: boolean('is_builtin').notNull().default(false),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('presets_user_idx').on(t.userId)],
)

export const conversations = table(
  'conversations',
  {
    id: id(),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    title: text('title'),
    modelId: text('model_id'),
    presetId: text('preset_id').references(() => presets.id, { onDelete: 'set null' }),
    systemPrompt: text('system_prompt'),
    /** the tools its answers may call (names as GET /tools lists them) */
    tools: json<string[]>('tools').notNull().default([]),
    /** the agent whose model, prompt and tools its answers use */
    agentId: text('agent_id').references(() => agents.id, { onDelete: 'set null' }),
    /** the data connection its questions are answered from with SQL (section 11) */
    connectionId: text('connection_id').references(() => connections.id, { onDelete: 'set null' }),
    isFavorite: boolean('is_favorite').notNull().default(false),
    messageCount: integer('message_count').notNull().default(0),
    /** the last message of the active branch */
    activeLeafId: text('active_leaf_id'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('conversations_user_updated_idx').on(t.userId, t.updatedAt)],
)

/** Messages form a tree through parent_id; regenerating or editing adds a sibling. */
export const messages = table(
  'messages',
  {
    id: id(),
    conversationId: text('conversation_id').notNull().references(() => conversations.id, { onDelete: 'cascade' }),
    parentId: text('parent_id'),
    role: text('role', { enum: ['system', 'user', 'assistant', 'tool'] }).notNull(),
    content: text('content').notNull().default(''),
    parts: json<unknown[]>('parts'),
    status: text('status', { enum: ['complete', 'streaming', 'stopped', 'error'] }).notNull().default('complete'),
    metadata: json<Record<string, unknown>>('metadata').notNull().default({}),
    createdAt: createdAt(),
    /** while streaming: written with each batch, so a crashed run can be told from a live one */
    updatedAt: updatedAt(),
  },
  (t) => [
    index('messages_conversation_idx').on(t.conversationId, t.createdAt),
    // one generation per conversation at a time, whichever instance runs it
    uniqueIndex('messages_one_streaming_uq').on(t.conversationId).where(sql`status = 'streaming'`),
  ],
)

/** Frozen, public snapshots of a conversation, found by the SHA-256 of their token. */
export const shares = table(
  'shares',
  {
    id: id(),
    conversationId: text('conversation_id').notNull().references(() => conversations.id, { onDelete: 'cascade' }),
    tokenHash: text('token_hash').notNull(),
    snapshot: json<{ title: string | null; messages: { role: string; content: string; created_at: string }[] }>('snapshot').notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('shares_token_uq').on(t.tokenHash), index('shares_conversation_idx').on(t.conversationId)],
)

/** Short facts a user wants the assistant to remember. */
export const memories = table(
  'memories',
  {
    id: id(),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    content: text('content').notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('memories_user_idx').on(t.userId)],
)

/** Uploaded files: the bytes live in storage under `storage_key` (made from ids, never from `file_name`). */
export const files = table(
  'files',
  {
    id: id(),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    purpose: text('purpose', { enum: ['avatar', 'workflow', 'attachment', 'dataset', 'workflow_output'] }).notNull(),
    fileName: text('file_name').notNull(),
    fileSize: bigint('file_size', { mode: 'number' }).notNull(),
    contentType: text('content_type').notNull(),
    sha256: text('sha256').notNull(),
    storageKey: text('storage_key').notNull(),
    workflowId: text('workflow_id'),
    createdAt: createdAt(),
  },
  (t) => [index('files_user_created_idx').on(t.userId, t.createdAt)],
)

/** Bus messages too large for a NOTIFY payload: the notification carries only the row id (src/db/bus.ts). Swept after a minute. */
export const busPayloads = table(
  'bus_payloads',
  {
    id: id(),
    channel: text('channel').notNull(),
    payload: text('payload').notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('bus_payloads_created_at_idx').on(t.createdAt)],
)

/** MCP servers: global ones (no owner, admins') and users' personal ones. `env` and `headers` are encrypted JSON objects. */
export const mcpServers = table(
  'mcp_servers',
  {
    id: id(),
    userId: text('user_id').references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    transport: text('transport', { enum: ['stdio', 'http', 'sse'] }).notNull(),
    command: text('command'),
    args: json<string[]>('args').notNull().default([]),
    env: text('env'),
    envKeys: json<string[]>('env_keys').notNull().default([]),
    url: text('url'),
    headers: text('headers'),
    headerKeys: json<string[]>('header_keys').notNull().default([]),
    /** the names each user sets for themselves (PUT /mcp/servers/{id}/user-vars) */
    userVars: json<string[]>('user_vars').notNull().default([]),
    enabled: boolean('enabled').notNull().default(true),
    category: text('category'),
    description: text('description'),
    timeoutMs: integer('timeout_ms').notNull().default(60_000),
    requiresApproval: boolean('requires_approval').notNull().default(false),
    status: text('status', { enum: ['unknown', 'connected', 'error'] }).notNull().default('unknown'),
    lastError: text('last_error'),
    toolsCount: integer('tools_count').notNull().default(0),
    /** the tools it listed last: `{ name, description, input_schema }` */
    tools: json<{ name: string; description: string | null; input_schema: Record<string, unknown> }[]>('tools'),
    toolsAt: time('tools_at'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex('mcp_servers_global_name_uq').on(sql`lower(${t.name})`).where(sql`user_id IS NULL`),
    uniqueIndex('mcp_servers_personal_name_uq').on(t.userId, sql`lower(${t.name})`).where(sql`user_id IS NOT NULL`),
  ],
)

/** Each user's own values of a server's `user_vars`, an encrypted JSON object. */
export const mcpUserVars = table(
  'mcp_user_vars',
  {
    serverId: text('server_id').notNull().references(() => mcpServers.id, { onDelete: 'cascade' }),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    values: text('values').notNull(),
    keys: json<string[]>('keys').notNull().default([]),
    updatedAt: updatedAt(),
  },
  (t) => [primaryKey({ columns: [t.serverId, t.userId] })],
)

/** Every tool call, from any source: who, what, how long, and the start of the result. */
export const toolLogs = table(
  'tool_logs',
  {
    id: id(),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    tool: text('tool').notNull(),
    /** the MCP server, kept after it is deleted */
    serverId: text('server_id'),
    arguments: json<unknown>('arguments'),
    resultPreview: text('result_preview'),
    isError: boolean('is_error').notNull().default(false),
    durationMs: integer('duration_ms').notNull().default(0),
    source: text('source', { enum: ['api', 'chat', 'task', 'session'] }).notNull(),
    conversationId: text('conversation_id'),
    taskId: text('task_id'),
    createdAt: createdAt(),
  },
  (t) => [index('tool_logs_user_created_idx').on(t.userId, t.createdAt), index('tool_logs_created_idx').on(t.createdAt)],
)

/** Agents: a model, a prompt and tools under a name. Global ones (no owner) are admins'; users keep personal ones. */
export const agents = table(
  'agents',
  {
    id: id(),
    userId: text('user_id').references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    type: text('type', { enum: ['assistant', 'planner', 'sql', 'workflow', 'custom'] }).notNull().default('assistant'),
    description: text('description'),
    modelId: text('model_id'),
    systemPrompt: text('system_prompt'),
    temperature: number('temperature'),
    maxTokens: integer('max_tokens'),
    tools: json<string[]>('tools').notNull().default([]),
    maxSteps: integer('max_steps'),
    status: text('status', { enum: ['active', 'disabled'] }).notNull().default('active'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('agents_user_idx').on(t.userId)],
)

/**
 * Durable background work: the row is the job. Workers claim pending rows (run_after passed),
 * hold a lease (lease_owner, lease_until) renewed while they run, and see a cancel through it.
 */
export const tasks = table(
  'tasks',
  {
    id: id(),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    kind: text('kind', { enum: ['agent', 'plan', 'workflow', 'external'] }).notNull(),
    title: text('title'),
    agentId: text('agent_id').references(() => agents.id, { onDelete: 'set null' }),
    modelId: text('model_id'),
    input: json<Record<string, unknown>>('input').notNull().default({}),
    tools: json<string[]>('tools').notNull().default([]),
    maxSteps: integer('max_steps'),
    status: text('status', { enum: ['pending', 'running', 'completed', 'failed', 'cancelled'] }).notNull().default('pending'),
    progress: integer('progress').notNull().default(0),
    result: json<unknown>('result'),
    error: json<{ code: string; message: string }>('error'),
    attempts: integer('attempts').notNull().default(0),
    maxAttempts: integer('max_attempts').notNull().default(3),
    inputTokens: integer('input_tokens').notNull().default(0),
    outputTokens: integer('output_tokens').notNull().default(0),
    cost: number('cost').notNull().default(0),
    /** not claimed before this (a retry's backoff) */
    runAfter: time('run_after'),
    leaseOwner: text('lease_owner'),
    leaseUntil: time('lease_until'),
    cancelRequested: boolean('cancel_requested').notNull().default(false),
    /** the seq of its last step */
    lastSeq: integer('last_seq').notNull().default(0),
    createdAt: createdAt(),
    startedAt: time('started_at'),
    finishedAt: time('finished_at'),
    updatedAt: updatedAt(),
  },
  (t) => [
    index('tasks_user_created_idx').on(t.userId, t.createdAt),
    index('tasks_status_run_after_idx').on(t.status, t.runAfter),
    index('tasks_lease_idx').on(t.leaseUntil),
  ],
)

/** A task's events, stored before they are sent: `seq` counts up per task and is the SSE id. */
export const taskSteps = table(
  'task_steps',
  {
    id: id(),
    taskId: text('task_id').notNull().references(() => tasks.id, { onDelete: 'cascade' }),
    seq: integer('seq').notNull(),
    step: text('step').notNull(),
    data: json<unknown>('data'),
    timestamp: time('timestamp').notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('task_steps_task_seq_uq').on(t.taskId, t.seq)],
)

/** Frozen, public snapshots of a task and its steps, found by the SHA-256 of their token. */
export const taskShares = table(
  'task_shares',
  {
    id: id(),
    taskId: text('task_id').notNull().references(() => tasks.id, { onDelete: 'cascade' }),
    tokenHash: text('token_hash').notNull(),
    snapshot: json<Record<string, unknown>>('snapshot').notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('task_shares_token_uq').on(t.tokenHash), index('task_shares_task_idx').on(t.taskId)],
)

/** One row per task run, chat turn or session turn that used an agent. */
export const agentExecutions = table(
  'agent_executions',
  {
    id: id(),
    agentId: text('agent_id').notNull().references(() => agents.id, { onDelete: 'cascade' }),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    taskId: text('task_id'),
    conversationId: text('conversation_id'),
    sessionId: text('session_id'),
    executionType: text('execution_type', { enum: ['task', 'chat', 'session', 'plan'] }).notNull(),
    status: text('status', { enum: ['running', 'completed', 'failed', 'cancelled'] }).notNull().default('running'),
    durationMs: integer('duration_ms'),
    inputTokens: integer('input_tokens').notNull().default(0),
    outputTokens: integer('output_tokens').notNull().default(0),
    cost: number('cost').notNull().default(0),
    toolCalls: integer('tool_calls').notNull().default(0),
    startedAt: time('started_at').notNull(),
    finishedAt: time('finished_at'),
  },
  (t) => [index('agent_executions_agent_started_idx').on(t.agentId, t.startedAt)],
)

/** Plan types: input and output JSON Schemas and a prompt. Built-in ones are seeded at start. */
export const planTypes = table('plan_types', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  description: text('description'),
  inputSchema: json<Record<string, unknown>>('input_schema').notNull(),
  outputSchema: json<Record<string, unknown>>('output_schema').notNull(),
  prompt: text('prompt').notNull(),
  isBuiltin: boolean('is_builtin').notNull().default(false),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
})

/** A plan: structured generation run as a task (its status and result are the task's). */
export const plans = table(
  'plans',
  {
    id: id(),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    type: text('type').notNull(),
    taskId: text('task_id').notNull().references(() => tasks.id, { onDelete: 'cascade' }),
    title: text('title'),
    input: json<Record<string, unknown>>('input').notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('plans_user_created_idx').on(t.userId, t.createdAt)],
)

/**
 * Data connections (section 11): a database a user (or, global, an admin) asks questions of.
 * `password` is encrypted; a SQLite connection reads an uploaded dataset (`file_id`) or, admins only, a server `path`.
 */
export const connections = table(
  'connections',
  {
    id: id(),
    userId: text('user_id').references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    driver: text('driver', { enum: ['sqlite', 'postgres', 'mysql'] }).notNull(),
    host: text('host'),
    port: integer('port'),
    database: text('database'),
    username: text('username'),
    password: text('password'),
    ssl: boolean('ssl').notNull().default(false),
    fileId: text('file_id').references(() => files.id, { onDelete: 'set null' }),
    path: text('path'),
    isDefault: boolean('is_default').notNull().default(false),
    isConnected: boolean('is_connected').notNull().default(false),
    lastTestedAt: time('last_tested_at'),
    lastError: text('last_error'),
    /** the last schema read (GET /connections/{id}/schema), and when */
    schemaCache: json<unknown>('schema_cache'),
    schemaFetchedAt: time('schema_fetched_at'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex('connections_global_name_uq').on(sql`lower(${t.name})`).where(sql`user_id IS NULL`),
    uniqueIndex('connections_personal_name_uq').on(t.userId, sql`lower(${t.name})`).where(sql`user_id IS NOT NULL`),
  ],
)

/** A user's own version of a built-in prompt (sql_generation, sql_answer, chart, title); absent: the default. */
export const prompts = table(
  'prompts',
  {
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    content: text('content').notNull(),
    updatedAt: updatedAt(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.name] })],
)

/** Workflow engines (section 12), admin-managed; ComfyUI first. `status` is kept by the health check. */
export const services = table(
  'services',
  {
    id: id(),
    name: text('name').notNull(),
    kind: text('kind', { enum: ['comfyui'] }).notNull().default('comfyui'),
    url: text('url').notNull(),
    description: text('description'),
    status: text('status', { enum: ['online', 'offline', 'unknown'] }).notNull().default('unknown'),
    responseTimeMs: integer('response_time_ms'),
    version: text('version'),
    lastError: text('last_error'),
    lastCheckTime: time('last_check_time'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex('services_name_uq').on(sql`lower(${t.name})`)],
)

/**
 * A user's workflow for an engine. `workflow_data` is the current version's JSON. While an agent
 * edits it, it is locked: `locked_by` (the holder, e.g. the session turn), until `locked_until`
 * (a lock past it is free, so a dead instance cannot keep it).
 */
export const workflows = table(
  'workflows',
  {
    id: id(),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    serviceId: text('service_id').references(() => services.id, { onDelete: 'set null' }),
    name: text('name').notNull(),
    description: text('description'),
    workflowData: json<Record<string, unknown>>('workflow_data').notNull(),
    isFavorite: boolean('is_favorite').notNull().default(false),
    currentVersion: integer('current_version').notNull().default(1),
    lastUsedAt: time('last_used_at'),
    lockedBy: text('locked_by'),
    lockedReason: text('locked_reason'),
    lockedSince: time('locked_since'),
    lockedUntil: time('locked_until'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('workflows_user_updated_idx').on(t.userId, t.updatedAt), index('workflows_service_idx').on(t.serviceId)],
)

/** Every version of a workflow's JSON, 1, 2, 3 …; the workflow row holds the current one's data too. */
export const workflowVersions = table(
  'workflow_versions',
  {
    id: id(),
    workflowId: text('workflow_id').notNull().references(() => workflows.id, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    workflowData: json<Record<string, unknown>>('workflow_data').notNull(),
    note: text('note'),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('workflow_versions_workflow_version_uq').on(t.workflowId, t.version)],
)

/** A conversation about one workflow with its agent (section 12); table name avoids auth's `sessions`. */
export const workflowSessions = table(
  'workflow_sessions',
  {
    id: id(),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    workflowId: text('workflow_id').notNull().references(() => workflows.id, { onDelete: 'cascade' }),
    agentId: text('agent_id').references(() => agents.id, { onDelete: 'set null' }),
    title: text('title'),
    status: text('status', { enum: ['active', 'archived'] }).notNull().default('active'),
    lastMessageSummary: text('last_message_summary'),
    messageCount: integer('message_count').notNull().default(0),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('workflow_sessions_user_updated_idx').on(t.userId, t.updatedAt), index('workflow_sessions_workflow_idx').on(t.workflowId)],
)

/** A session's messages, oldest first; an assistant reply is written as it streams (status), like chat's. */
export const sessionMessages = table(
  'session_messages',
  {
    id: id(),
    sessionId: text('session_id').notNull().references(() => workflowSessions.id, { onDelete: 'cascade' }),
    role: text('role', { enum: ['user', 'assistant'] }).notNull(),
    content: text('content').notNull().default(''),
    status: text('status', { enum: ['complete', 'streaming', 'stopped', 'error'] }).notNull().default('complete'),
    metadata: json<Record<string, unknown>>('metadata').notNull().default({}),
    createdAt: createdAt(),
  },
  (t) => [index('session_messages_session_created_idx').on(t.sessionId, t.createdAt)],
)

/** An OpenID Connect provider added by an admin (those from HEARTH_OIDC_<ID>_* live in the environment only). */
export const oidcProviders = table('oidc_providers', {
  /** the provider's slug in URLs (`/auth/oidc/{id}/start`): 1-32 of a-z 0-9 - */
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  issuer: text('issuer').notNull(),
  clientId: text('client_id').notNull(),
  /** encrypted (lib/secrets.ts); null: a public client (PKCE only) */
  clientSecret: text('client_secret'),
  scopes: text('scopes').notNull().default('openid email profile'),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
})

/** A provider's account linked to a Hearth account: one (provider, subject) belongs to one user. */
export const userIdentities = table(
  'user_identities',
  {
    id: id(),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    /** an oidc_providers id or an environment provider's id (so no foreign key) */
    providerId: text('provider_id').notNull(),
    /** the ID token's `sub` */
    subject: text('subject').notNull(),
    email: text('email'),
    createdAt: createdAt(),
    lastUsedAt: time('last_used_at'),
  },
  (t) => [uniqueIndex('user_identities_provider_subject_uq').on(t.providerId, t.subject), index('user_identities_user_idx').on(t.userId)],
)

/** A sign-in sent to a provider and not back yet, by the SHA-256 of its `state`: used once, then deleted. */
export const oidcLogins = table(
  'oidc_logins',
  {
    stateHash: text('state_hash').primaryKey(),
    providerId: text('provider_id').notNull(),
    codeVerifier: text('code_verifier').notNull(),
    nonce: text('nonce').notNull(),
    /** the callback URL sent to the provider (sent again with the code) */
    redirectUri: text('redirect_uri').notNull(),
    /** where the browser goes once signed in: a same-origin path or an allowed origin's URL */
    returnTo: text('return_to').notNull(),
    /** set: link the identity to this signed-in user instead of signing in */
    linkUserId: text('link_user_id').references(() => users.id, { onDelete: 'cascade' }),
    createdAt: createdAt(),
    expiresAt: time('expires_at').notNull(),
  },
  (t) => [index('oidc_logins_expires_idx').on(t.expiresAt)],
)

/** Sign-in links handed out by an admin or `hearth admin login-link`, stored as SHA-256. */
export const loginLinks = table(
  'login_links',
  {
    id: id(),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    tokenHash: text('token_hash').notNull(),
    /** the admin who made it; null: the command line (or that admin is gone) */
    createdBy: text('created_by').references(() => users.id, { onDelete: 'set null' }),
    singleUse: boolean('single_use').notNull().default(true),
    /** null: until revoked (only for links that are not single use) */
    expiresAt: time('expires_at'),
    usedAt: time('used_at'),
    revokedAt: time('revoked_at'),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('login_links_hash_uq').on(t.tokenHash), index('login_links_user_idx').on(t.userId)],
)

/** A set of users with settings of their own (docs/api.md §21). */
export const groups = table(
  'groups',
  {
    id: id(),
    name: text('name').notNull(),
    description: text('description'),
    /** { default_model_id, allowed_model_ids, preset_id, system_prompt, tools, rate_limit }: unset fields are null */
    settings: json<Record<string, unknown>>('settings').notNull().default({}),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex('groups_name_lower_uq').on(sql`lower(${t.name})`)],
)

export const groupMembers = table(
  'group_members',
  {
    groupId: text('group_id').notNull().references(() => groups.id, { onDelete: 'cascade' }),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    role: text('role', { enum: ['member', 'group_admin'] }).notNull().default('member'),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.groupId, t.userId] }), index('group_members_user_idx').on(t.userId)],
)
