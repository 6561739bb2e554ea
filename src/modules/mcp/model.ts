/**
 * @module The wire of MCP servers (docs/api.md §15): request and response schemas, and the mapping
 * between the snake_case wire and the service's values.
 */
import { z } from 'zod'
import { isoDate, listQuery } from '../../lib/schemas.ts'
import type { McpTool } from '../tools/types.ts'
import { CATALOG, CATALOG_CATEGORIES, type CatalogServer } from './catalog.ts'
import type { ConnectResult, ImportOutcome, McpServerRow, ServerChanges, ServerInput, UserVarsState } from './service.ts'

/** MCP tools are named `<server>__<tool>`, at most 64 characters: a short server name leaves the room. */
export const MAX_SERVER_NAME = 32
/** how many servers one import may name */
export const MAX_IMPORT_ENTRIES = 100

const transport = z.enum(['stdio', 'http', 'sse'])
const scope = z.enum(['global', 'personal'])
export const serverName = z
  .string()
  .min(1)
  .max(MAX_SERVER_NAME)
  .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only')
  .refine((n) => !n.includes('__'), 'must not contain "__", which separates server and tool in tool names')
export const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'an environment variable name: letters, digits and _, not starting with a digit')
const limited = <T extends z.ZodType>(record: T, max: number) => record.refine((m) => Object.keys(m as object).length <= max, `at most ${max} entries`)
const envMap = limited(z.record(envName, z.string().max(8192)), 100)
const headerMap = limited(z.record(z.string().regex(/^[A-Za-z0-9-]{1,100}$/, 'a header name'), z.string().max(8192).regex(/^[^\r\n]*$/, 'one line, no CR or LF')), 50)
const httpUrl = z.url({ protocol: /^https?$/ }).max(2048)
const argList = z.array(z.string().max(4096)).max(100)
const command = z.string().trim().min(1).max(1000)
const userVarList = z.array(envName).max(50).refine((a) => new Set(a).size === a.length, 'each name once')

export const mcpServerSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    transport,
    command: z.string().nullable(),
    args: z.array(z.string()),
    env_keys: z.array(z.string()).meta({ description: 'the names in env; values are write-only' }),
    url: z.string().nullable(),
    header_keys: z.array(z.string()).meta({ description: 'the names in headers; values are write-only' }),
    user_vars: z.array(z.string()).meta({ description: 'the variables each user sets for themselves (PUT /mcp/servers/{id}/user-vars)' }),
    enabled: z.boolean(),
    scope,
    category: z.string().nullable(),
    description: z.string().nullable(),
    timeout_ms: z.number().int(),
    requires_approval: z.boolean(),
    status: z.enum(['unknown', 'connected', 'error']),
    last_error: z.string().nullable(),
    tools_count: z.number().int(),
    created_at: isoDate,
    updated_at: isoDate,
  })
  .meta({ id: 'McpServer' })

const serverFields = {
  name: serverName,
  transport: transport.optional(),
  command: command.nullable().optional(),
  args: argList.optional(),
  env: envMap.nullable().optional(),
  url: httpUrl.nullable().optional(),
  headers: headerMap.nullable().optional(),
  user_vars: userVarList.optional(),
  enabled: z.boolean().optional(),
  category: z.string().trim().min(1).max(50).nullable().optional(),
  description: z.string().trim().max(1000).nullable().optional(),
  timeout_ms: z.number().int().min(1000).max(600_000).optional(),
  requires_approval: z.boolean().optional(),
}

export const serverBody = z.object({ ...serverFields, scope: scope.optional() })
/** scope is fixed at creation */
export const serverPatch = z.object(serverFields).partial()

export const serverListQuery = listQuery.extend({ scope: scope.optional(), category: z.string().max(50).optional(), q: z.string().max(100).optional() })

export const connectResultSchema = z.object({
  ok: z.boolean(),
  latency_ms: z.number().int(),
  server_info: z.object({ name: z.string(), version: z.string() }).nullable().meta({ description: 'what the server says it is; null when it could not be reached' }),
  tools_count: z.number().int(),
  error: z.string().optional(),
})

export const toolSchema = z.object({ name: z.string(), description: z.string().nullable(), input_schema: z.record(z.string(), z.unknown()) })
export const toolListSchema = z.object({ items: z.array(toolSchema) })
export const toolsQuery = z.object({ refresh: z.enum(['true', 'false']).optional() })

// ---- import, install, export ----

/** One entry of a Claude Desktop / Cursor / VS Code `mcpServers` file: a command, or a URL. Fields Hearth does not know are ignored. */
const importEntry = z
  .object({
    command: command.optional(),
    args: argList.optional(),
    env: envMap.optional(),
    url: httpUrl.optional(),
    headers: headerMap.optional(),
    type: z.enum(['stdio', 'http', 'streamable-http', 'streamableHttp', 'sse']).optional(),
    disabled: z.boolean().optional(),
  })
  .superRefine((e, ctx) => {
    if (e.command === undefined && e.url === undefined) ctx.addIssue({ code: 'custom', path: ['command'], message: 'an entry needs a command (stdio) or a url (HTTP)' })
    if (e.command !== undefined && e.url !== undefined) ctx.addIssue({ code: 'custom', path: ['url'], message: 'an entry has a command or a url, not both' })
  })
export type ImportEntry = z.infer<typeof importEntry>

export const importBody = z.object({
  mcpServers: z
    .record(z.string().min(1).max(200), z.unknown())
    .refine((m) => Object.keys(m).length <= MAX_IMPORT_ENTRIES, `at most ${MAX_IMPORT_ENTRIES} servers per import`)
    .pipe(z.record(z.string(), importEntry)),
  scope: scope.optional(),
})

export const importResultSchema = z.object({ created: z.array(z.string()), updated: z.array(z.string()), skipped: z.array(z.object({ name: z.string(), reason: z.string() })) })

const installExtras = { user_vars: userVarList.optional(), scope: scope.optional(), category: serverFields.category, description: serverFields.description, timeout_ms: serverFields.timeout_ms, requires_approval: serverFields.requires_approval, enabled: serverFields.enabled }
export const installBody = z.union([
  z.object({ catalog_id: z.string().min(1).max(100), name: serverName.optional(), env: envMap.optional(), ...installExtras }),
  z.object({ name: serverName, command, args: argList.optional(), env: envMap.optional(), ...installExtras }),
])

const catalogServerSchema = z.object({ id: z.string(), name: z.string(), description: z.string(), transport: z.literal('stdio'), command: z.string(), args: z.array(z.string()), env_required: z.array(z.string()), homepage: z.string() })
export const catalogSchema = z.object({ categories: z.array(z.object({ id: z.string(), name: z.string(), servers: z.array(catalogServerSchema) })) })
export const categoriesSchema = z.object({ categories: z.array(z.object({ id: z.string(), name: z.string(), servers_count: z.number().int() })) })

const stdioDocEntry = z.object({ command: z.string(), args: z.array(z.string()), env: z.record(z.string(), z.string()) })
const httpDocEntry = z.object({ type: z.enum(['http', 'sse']), url: z.string(), headers: z.record(z.string(), z.string()) })
export const userDocumentSchema = z.object({ mcpServers: z.record(z.string(), z.union([stdioDocEntry, httpDocEntry])) }).meta({ description: 'secret values are masked' })

export const userVarsBody = z.record(envName, z.string().min(1).max(8192).nullable()).meta({ description: '`{ NAME: "value" }` sets, `{ NAME: null }` removes; names not sent are kept' })
export const userVarsSchema = z.object({
  keys: z.array(z.string()).meta({ description: 'the user_vars you have set' }),
  missing: z.array(z.string()).meta({ description: 'the user_vars neither you nor the server set: calls need them' }),
})

// ---- mapping ----

export const toMcpServerDto = (s: McpServerRow): z.infer<typeof mcpServerSchema> => ({
  id: s.id,
  name: s.name,
  transport: s.transport,
  command: s.command,
  args: s.args,
  env_keys: s.envKeys,
  url: s.url,
  header_keys: s.headerKeys,
  user_vars: s.userVars,
  enabled: s.enabled,
  scope: s.userId === null ? 'global' : 'personal',
  category: s.category,
  description: s.description,
  timeout_ms: s.timeoutMs,
  requires_approval: s.requiresApproval,
  status: s.status,
  last_error: s.lastError,
  tools_count: s.toolsCount,
  created_at: s.createdAt.toISOString(),
  updated_at: s.updatedAt.toISOString(),
})

export const fromServerPatch = (b: z.infer<typeof serverPatch>): ServerChanges => ({
  name: b.name,
  transport: b.transport,
  command: b.command,
  args: b.args,
  env: b.env,
  url: b.url,
  headers: b.headers,
  userVars: b.user_vars,
  enabled: b.enabled,
  category: b.category,
  description: b.description,
  timeoutMs: b.timeout_ms,
  requiresApproval: b.requires_approval,
})

export const fromServerBody = (b: z.infer<typeof serverBody>): ServerInput => ({ ...fromServerPatch(b), name: b.name, scope: b.scope })

export const fromInstallBody = (b: z.infer<typeof installBody>): { catalogId?: string; input: Omit<ServerInput, 'name'> & { name?: string } } => {
  const extras = { env: b.env, userVars: b.user_vars, scope: b.scope, category: b.category, description: b.description, timeoutMs: b.timeout_ms, requiresApproval: b.requires_approval, enabled: b.enabled }
  return 'catalog_id' in b ? { catalogId: b.catalog_id, input: { ...extras, name: b.name } } : { input: { ...extras, name: b.name, transport: 'stdio', command: b.command, args: b.args } }
}

export const toToolDto = (tool: McpTool): z.infer<typeof toolSchema> => ({ name: tool.name, description: tool.description, input_schema: tool.inputSchema })

export const toConnectDto = (r: ConnectResult): z.infer<typeof connectResultSchema> => ({ ok: r.ok, latency_ms: r.latencyMs, server_info: r.serverInfo, tools_count: r.toolsCount, error: r.error })

export const toImportDto = (r: ImportOutcome): z.infer<typeof importResultSchema> => r

export const toUserVarsDto = (s: UserVarsState): z.infer<typeof userVarsSchema> => s

const toCatalogServerDto = (s: CatalogServer): z.infer<typeof catalogServerSchema> => ({ id: s.id, name: s.name, description: s.description, transport: s.transport, command: s.command, args: s.args, env_required: s.envRequired, homepage: s.homepage })

export const catalogDto = (): z.infer<typeof catalogSchema> => ({
  categories: CATALOG_CATEGORIES.map((c) => ({ id: c.id, name: c.name, servers: CATALOG.filter((s) => s.category === c.id).map(toCatalogServerDto) })),
})

export const categoriesDto = (): z.infer<typeof categoriesSchema> => ({
  categories: CATALOG_CATEGORIES.map((c) => ({ id: c.id, name: c.name, servers_count: CATALOG.filter((s) => s.category === c.id).length })),
})
