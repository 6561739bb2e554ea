/**
 * @module MCP servers (docs/api.md §15): global ones (admins') that everyone may use, and personal
 * ones that only their owner sees (404 to everyone else). stdio servers run programs on the host,
 * so only admins add them. Env and header values, and each user's own user_vars, are encrypted at
 * rest and never leave the server. Calls go through the connection manager (connections.ts); this
 * service is also the tools layer's McpToolSource.
 */
import { ProtocolError, SdkError, SdkErrorCode, type Client } from '@modelcontextprotocol/client'
import { and, asc, eq, isNull, or, sql, type SQL } from 'drizzle-orm'
import { createChannelCache, defineChannel, type Bus } from '../../db/bus.ts'
import type { Database } from '../../db/index.ts'
import { isUniqueViolation } from '../../db/errors.ts'
import { withLock } from '../../db/lock.ts'
import { containsText, pageOfTable, type Page, type PageRequest } from '../../db/query.ts'
import { AppError } from '../../lib/errors.ts'
import type { Logger } from '../../lib/logger.ts'
import type { OutboundCaller, OutboundGuard } from '../../lib/outbound.ts'
import type { SecretBox } from '../../lib/secrets.ts'
import type { Principal } from '../auth/service.ts'
import type { McpServerTools, McpTool, McpToolSource, ToolResult } from '../tools/types.ts'
import { catalogEntry } from './catalog.ts'
import { createConnections, failureText, type ConnectionStatus, type ServerTarget } from './connections.ts'
import {
  catalogEntryUnknown,
  envRequired,
  globalServerAdminOnly,
  globalServerCreateAdminOnly,
  globalServerNameTaken,
  mcpServerNotFound,
  serverDisabled,
  serverFailed,
  serverNameTaken,
  stdioAdminOnly,
  transportFieldsInvalid,
  unknownUserVars,
  userVarsMissing,
} from './errors.ts'
import { serverName, type ImportEntry } from './model.ts'

export type McpServerRow = Database['t']['mcpServers']['$inferSelect']
type Transport = McpServerRow['transport']
type CachedTool = NonNullable<McpServerRow['tools']>[number]

export interface ServerInput {
  name: string
  scope?: 'global' | 'personal'
  transport?: Transport
  command?: string | null
  args?: string[]
  /** `null` on a change removes every variable */
  env?: Record<string, string> | null
  url?: string | null
  /** `null` on a change removes every header */
  headers?: Record<string, string> | null
  userVars?: string[]
  enabled?: boolean
  category?: string | null
  description?: string | null
  timeoutMs?: number
  requiresApproval?: boolean
}

/** What a change may set; the scope is fixed at creation. */
export type ServerChanges = Partial<Omit<ServerInput, 'scope'>>

/** POST /connect: a failing server is `ok: false` with a readable error, never a thrown one. */
export interface ConnectResult {
  ok: boolean
  latencyMs: number
  serverInfo: { name: string; version: string } | null
  toolsCount: number
  error?: string
}

export interface ImportOutcome {
  created: string[]
  updated: string[]
  skipped: { name: string; reason: string }[]
}

export interface UserVarsState {
  keys: string[]
  missing: string[]
}

/** What a server's owner learns when its status changes: `ownerId` is who may see it (null: everyone; a user, for a connection with their own user_vars). */
export interface McpStatusEvent {
  serverId: string
  ownerId: string | null
  status: 'connected' | 'error'
  error: string | null
}

/** A global server's URL is an admin's choice: it is reached with an admin's rights, whoever calls it. */
const GLOBAL_SERVER_SENDER: OutboundCaller = { role: 'admin' }
/** the PATH of a child when Hearth itself has none */
const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin'
/** the most tools kept of one server's listing */
const MAX_TOOLS = 500
/** how long the tools layer waits for a server never listed (the listing goes on and fills the cache); one whose last start failed is not waited for */
const FIRST_LISTING_WAIT_MS = 10_000
/** what a masked secret value looks like in GET /mcp/user */
const MASK = '********'

/** `${NAME}` in an argument or header value: replaced by NAME's value, left as written when there is none. */
const substitute = (text: string, values: Record<string, string>) => text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (m, name: string) => values[name] ?? m)

const isTimeout = (error: unknown) => error instanceof SdkError && error.code === SdkErrorCode.RequestTimeout

/** Something about MCP servers changed (a server, its tools or status, someone's user_vars): cached lookups are dropped, on every instance. */
const serversChannel = defineChannel<Record<string, never>>('mcp_servers')

/** Fields that change what a connection is: changing one resets the status and the tool list. */
const CONNECTION_FIELDS = ['transport', 'command', 'args', 'env', 'url', 'headers'] as const

export function createMcpService(deps: {
  database: Database
  bus: Bus
  secrets: SecretBox
  outbound: OutboundGuard
  logger: Logger
  version: string
  /** tests shorten the 5 idle minutes after which a connection closes */
  idleMs?: number
  /** tests shorten the wait between failing starts */
  backoffMs?: (failures: number) => number
  onStatus?: (e: McpStatusEvent) => void
}) {
  const { database, secrets, outbound, logger } = deps
  const { db, t } = database
  const s = t.mcpServers

  const connections = createConnections({ logger, version: deps.version, idleMs: deps.idleMs, backoffMs: deps.backoffMs, onStatus: (e) => void statusChanged(e) })

  const visible = (p: Principal): SQL => or(isNull(s.userId), eq(s.userId, p.userId))!

  // what calls and tool listings read, per caller, kept until anything about MCP servers changes on any instance
  type ServerWithVars = { server: McpServerRow; vars: { values: string; updatedAt: Date } | null }
  const forUse = createChannelCache<string, ServerWithVars | undefined, Record<string, never>>(deps.bus, serversChannel, { maxSize: 10_000 })
  const forList = createChannelCache<string, ServerWithVars[], Record<string, never>>(deps.bus, serversChannel, { maxSize: 10_000 })
  const changed = () => forUse.changed({})

  const serverForUse = db
    .select({ server: s, vars: { values: t.mcpUserVars.values, updatedAt: t.mcpUserVars.updatedAt } })
    .from(s)
    .leftJoin(t.mcpUserVars, and(eq(t.mcpUserVars.serverId, s.id), eq(t.mcpUserVars.userId, sql.placeholder('user'))))
    .where(and(eq(s.id, sql.placeholder('id')), or(isNull(s.userId), eq(s.userId, sql.placeholder('user')))))
    .prepare('mcp_server_for_use')

  async function getVisible(p: Principal, id: string): Promise<McpServerRow> {
    const [row] = await db.select().from(s).where(and(eq(s.id, id), visible(p)))
    if (!row) throw mcpServerNotFound()
    return row
  }

  /** visible and changeable by p: personal ones by their owner, global ones by admins */
  async function getWritable(p: Principal, id: string): Promise<McpServerRow> {
    const row = await getVisible(p, id)
    if (row.userId === null && p.role !== 'admin') throw globalServerAdminOnly()
    return row
  }

  /** A personal stdio server whose owner is no longer an admin stays, but does not run. */
  const mayRun = (row: McpServerRow, p: Principal) => row.transport !== 'stdio' || row.userId === null || p.role === 'admin'

  /** The fields each transport needs, and stdio for admins only. */
  function checkTransport(p: Principal, transport: Transport, command: string | null | undefined, url: string | null | undefined) {
    if (transport === 'stdio') {
      if (p.role !== 'admin') throw stdioAdminOnly()
      if (!command) throw transportFieldsInvalid('A stdio server needs a command', 'command')
      if (url) throw transportFieldsInvalid('A stdio server has no url', 'url')
    } else {
      if (!url) throw transportFieldsInvalid(`An ${transport} server needs a url`, 'url')
      if (command) throw transportFieldsInvalid(`An ${transport} server has no command`, 'command')
    }
  }

  /** A personal name may not be a global server's: tool names `<server>__<tool>` must say which one they mean. */
  async function assertNotGlobalName(name: string, exceptId?: string) {
    const [hit] = await db.select({ id: s.id }).from(s).where(and(isNull(s.userId), sql`lower(${s.name}) = ${name.toLowerCase()}`))
    if (hit && hit.id !== exceptId) throw globalServerNameTaken(name)
  }

  const seal = async (values: Record<string, string> | null | undefined) => (values && Object.keys(values).length ? secrets.encrypt(JSON.stringify(values)) : null)
  const open = async (sealed: string | null): Promise<Record<string, string>> => (sealed ? (JSON.parse(await secrets.decrypt(sealed)) as Record<string, string>) : {})

  async function create(p: Principal, input: ServerInput): Promise<McpServerRow> {
    const global = (input.scope ?? (p.role === 'admin' ? 'global' : 'personal')) === 'global'
    if (global && p.role !== 'admin') throw globalServerCreateAdminOnly()
    const transport = input.transport ?? (input.command ? 'stdio' : 'http')
    checkTransport(p, transport, input.command, input.url)
    await outbound.check(p, input.url, 'url')
    if (!global) await assertNotGlobalName(input.name)
    try {
      const [row] = await db
        .insert(s)
        .values({
          userId: global ? null : p.userId,
          name: input.name,
          transport,
          command: input.command ?? null,
          args: input.args ?? [],
          env: await seal(input.env),
          envKeys: Object.keys(input.env ?? {}),
          url: input.url ?? null,
          headers: await seal(input.headers),
          headerKeys: Object.keys(input.headers ?? {}),
          userVars: input.userVars ?? [],
          enabled: input.enabled ?? true,
          category: input.category ?? null,
          description: input.description ?? null,
          timeoutMs: input.timeoutMs ?? 60_000,
          requiresApproval: input.requiresApproval ?? false,
        })
        .returning()
      await changed()
      return row!
    } catch (error) {
      throw isUniqueViolation(error) ? serverNameTaken(input.name) : error
    }
  }

  async function update(p: Principal, id: string, changes: ServerChanges): Promise<McpServerRow> {
    const row = await getWritable(p, id)
    if (!mayRun(row, p)) throw stdioAdminOnly()
    const transport = changes.transport ?? row.transport
    // moving between stdio and HTTP drops what the old transport needed, unless it is sent again
    const switched = transport !== row.transport && (transport === 'stdio' || row.transport === 'stdio')
    const command = changes.command !== undefined ? changes.command : switched ? null : row.command
    const url = changes.url !== undefined ? changes.url : switched ? null : row.url
    checkTransport(p, transport, command, url)
    if (changes.url !== undefined) await outbound.check(p, changes.url, 'url')
    if (changes.name !== undefined && row.userId !== null) await assertNotGlobalName(changes.name, row.id)

    const values: Partial<McpServerRow> = { updatedAt: new Date(), transport, command, url }
    if (changes.name !== undefined) values.name = changes.name
    if (changes.args !== undefined) values.args = changes.args
    if (changes.env !== undefined) Object.assign(values, { env: await seal(changes.env), envKeys: Object.keys(changes.env ?? {}) })
    if (changes.headers !== undefined) Object.assign(values, { headers: await seal(changes.headers), headerKeys: Object.keys(changes.headers ?? {}) })
    if (changes.userVars !== undefined) values.userVars = changes.userVars
    if (changes.enabled !== undefined) values.enabled = changes.enabled
    if (changes.category !== undefined) values.category = changes.category
    if (changes.description !== undefined) values.description = changes.description
    if (changes.timeoutMs !== undefined) values.timeoutMs = changes.timeoutMs
    if (changes.requiresApproval !== undefined) values.requiresApproval = changes.requiresApproval
    const reconnect = switched || CONNECTION_FIELDS.some((f) => changes[f] !== undefined)
    if (reconnect) Object.assign(values, { status: 'unknown', lastError: null, tools: null, toolsCount: 0, toolsAt: null })
    try {
      const [updated] = await db.update(s).set(values).where(eq(s.id, id)).returning()
      await changed()
      if (reconnect || changes.enabled === false || changes.userVars !== undefined) await forget(id)
      return updated!
    } catch (error) {
      throw isUniqueViolation(error) ? serverNameTaken(changes.name ?? row.name) : error
    }
  }

  /** Close a server's connections and forget what was known of them. */
  async function forget(serverId: string) {
    for (const key of lastStatus.keys()) if (key.startsWith(`${serverId}\0`)) lastStatus.delete(key)
    await connections.drop(serverId)
  }

  // ---- connections ----

  /** decrypted targets, by server version, caller and the caller's user_vars version */
  const targets = new Map<string, { target: ServerTarget; missing: string[] }>()

  /**
   * What to connect to for `p`: the server's env and headers, with `p`'s own user_vars (only the
   * names the server lists) over them, `${NAME}` replaced in args and header values. A stdio
   * child's environment is exactly these variables plus PATH — never Hearth's own.
   */
  async function targetFor(row: McpServerRow, vars: { values: string; updatedAt: Date } | null, p: Principal) {
    const cacheKey = `${row.id}\0${row.updatedAt.getTime()}\0${p.userId}\0${p.role}\0${vars?.updatedAt.getTime() ?? ''}`
    const hit = targets.get(cacheKey)
    if (hit) return hit
    const [env, headers, own] = await Promise.all([open(row.env), open(row.headers), open(vars?.values ?? null)])
    const mine = Object.fromEntries(Object.entries(own).filter(([name]) => row.userVars.includes(name)))
    const values = { ...env, ...mine }
    const target: ServerTarget = {
      serverId: row.id,
      ownerId: row.userId,
      transport: row.transport,
      command: row.command,
      args: row.args.map((a) => substitute(a, values)),
      env: row.transport === 'stdio' ? { PATH: process.env.PATH || DEFAULT_PATH, ...values } : {},
      url: row.url,
      headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, substitute(v, values)])),
      timeoutMs: row.timeoutMs,
      userId: Object.keys(mine).length ? p.userId : null,
      fetch: outbound.fetchFor(row.userId === null ? GLOBAL_SERVER_SENDER : p),
    }
    const resolved = { target, missing: row.userVars.filter((n) => values[n] === undefined) }
    if (targets.size >= 10_000) targets.clear()
    targets.set(cacheKey, resolved)
    return resolved
  }

  /** The server `p` may use, with `p`'s user_vars; 404 when invisible (or disabled, unless `evenDisabled`), 403 for a stdio server `p` may not run. */
  async function usable(p: Principal, id: string, evenDisabled = false) {
    const hit = await forUse.load(`${id}\0${p.userId}`, async () => (await serverForUse.execute({ id, user: p.userId }))[0])
    if (!hit) throw mcpServerNotFound()
    if (!hit.server.enabled && !evenDisabled) throw serverDisabled()
    if (!mayRun(hit.server, p)) throw stdioAdminOnly()
    return { server: hit.server, ...(await targetFor(hit.server, hit.vars, p)) }
  }

  /** status writes under way: connect waits for them, so its answer and the row agree */
  let statusWrites: Promise<unknown> = Promise.resolve()
  const lastStatus = new Map<string, string>()

  /**
   * A connection's status changed. The row keeps the status of the connections without anyone's
   * user_vars (one user's bad token is not the server's state, and their error text is theirs);
   * each change is also reported (onStatus) to whoever may see it.
   */
  function statusChanged(e: ConnectionStatus) {
    const key = `${e.serverId}\0${e.userId ?? ''}`
    const now = `${e.status}\0${e.error ?? ''}`
    if (lastStatus.get(key) === now) return
    lastStatus.set(key, now)
    if (e.userId === null) {
      const write = db
        .update(s)
        .set({ status: e.status, lastError: e.error })
        .where(eq(s.id, e.serverId))
        .then(changed)
        .catch((error) => logger.warn('mcp status not saved', { server_id: e.serverId, error }))
      statusWrites = Promise.all([statusWrites, write])
    }
    deps.onStatus?.({ serverId: e.serverId, ownerId: e.userId ?? e.ownerId, status: e.status, error: e.error })
  }

  /** List the server's tools and keep the list in its row. */
  async function listTools(server: McpServerRow, target: ServerTarget, fresh = false): Promise<{ tools: CachedTool[]; info: ReturnType<Client['getServerVersion']> }> {
    const { tools, info } = await connections.use(target, async (client) => ({ tools: (await client.listTools(undefined, { timeout: server.timeoutMs })).tools, info: client.getServerVersion() }), { fresh })
    const kept = tools.slice(0, MAX_TOOLS).map((tool) => ({ name: tool.name, description: tool.description ?? null, input_schema: tool.inputSchema as Record<string, unknown> }))
    await db.update(s).set({ tools: kept, toolsCount: kept.length, toolsAt: new Date() }).where(and(eq(s.id, server.id), eq(s.updatedAt, server.updatedAt)))
    await changed()
    return { tools: kept, info }
  }

  const toMcpTool = (tool: CachedTool): McpTool => ({ name: tool.name, description: tool.description, inputSchema: tool.input_schema })

  /** The enabled servers `p` may use, ordered by name; a personal server hides a global one of the same name. */
  async function usableServers(p: Principal): Promise<ServerWithVars[]> {
    return forList.load(`${p.userId}\0${p.role}`, () => loadUsableServers(p))
  }

  async function loadUsableServers(p: Principal): Promise<ServerWithVars[]> {
    const rows = await db
      .select({ server: s, vars: { values: t.mcpUserVars.values, updatedAt: t.mcpUserVars.updatedAt } })
      .from(s)
      .leftJoin(t.mcpUserVars, and(eq(t.mcpUserVars.serverId, s.id), eq(t.mcpUserVars.userId, p.userId)))
      .where(and(visible(p), eq(s.enabled, true)))
      .orderBy(sql`CASE WHEN ${s.userId} IS NULL THEN 1 ELSE 0 END`, asc(s.name))
    const byName = new Map<string, (typeof rows)[number]>()
    for (const row of rows) if (mayRun(row.server, p) && !byName.has(row.server.name.toLowerCase())) byName.set(row.server.name.toLowerCase(), row)
    return [...byName.values()].sort((a, b) => a.server.name.localeCompare(b.server.name))
  }

  // ---- the tools layer's view ----

  async function servers(p: Principal): Promise<McpServerTools[]> {
    const rows = await usableServers(p)
    return Promise.all(
      rows.map(async ({ server, vars }) => {
        let tools = server.tools
        if (!tools) {
          const { target, missing } = await targetFor(server, vars, p)
          const listing = missing.length ? Promise.resolve([]) : listTools(server, target).then((r) => r.tools, () => [])
          // one that failed last time is not waited for: its listing fills the cache if it comes back
          tools = server.status === 'error' ? [] : await Promise.race([listing, Bun.sleep(FIRST_LISTING_WAIT_MS).then(() => [])])
        }
        return { id: server.id, name: server.name, requiresApproval: server.requiresApproval, timeoutMs: server.timeoutMs, tools: tools.map(toMcpTool) }
      }),
    )
  }

  async function call(p: Principal, serverId: string, tool: string, args: Record<string, unknown>, signal: AbortSignal): Promise<ToolResult> {
    const { server, target, missing } = await usable(p, serverId)
    if (missing.length) throw userVarsMissing(server.id, missing)
    try {
      const result = await connections.use(target, (client) => client.callTool({ name: tool, arguments: args }, { signal, timeout: server.timeoutMs }))
      const content = Array.isArray(result.content) ? result.content : [{ type: 'text', text: JSON.stringify(result.toolResult ?? null) }]
      return { content: content as ToolResult['content'], structuredContent: result.structuredContent, isError: result.isError === true }
    } catch (error) {
      if (signal.aborted) throw signal.reason
      // the server refused the call itself (an unknown tool, bad arguments): the tool's failure
      if (error instanceof ProtocolError) return { content: [{ type: 'text', text: error.message }], isError: true }
      if (isTimeout(error)) throw serverFailed(server.name, `${tool} did not answer within ${server.timeoutMs} ms; the call was cancelled`)
      throw serverFailed(server.name, failureText(error))
    }
  }

  const toolSource: McpToolSource = { servers, call }

  return {
    toolSource,
    servers,
    call,

    /** the servers p can see: the global ones and their own; `q` searches names and descriptions */
    list(p: Principal, query: PageRequest & { scope?: 'global' | 'personal'; category?: string; q?: string }): Promise<Page<McpServerRow>> {
      const where = and(
        visible(p),
        query.scope === 'global' ? isNull(s.userId) : query.scope === 'personal' ? eq(s.userId, p.userId) : undefined,
        query.category ? sql`lower(${s.category}) = ${query.category.toLowerCase()}` : undefined,
        query.q ? or(containsText(s.name, query.q), containsText(s.description, query.q)) : undefined,
      )
      return pageOfTable(db, s, where, [sql`lower(${s.name})`, asc(s.id)], query)
    },

    get: getVisible,
    create,
    update,

    async remove(p: Principal, id: string) {
      await getWritable(p, id)
      await db.delete(s).where(eq(s.id, id))
      await changed()
      await forget(id)
    },

    /** Connect (now, even while a failing server waits out its backoff) and list the tools. Never throws for the server's own failure. */
    async connect(p: Principal, id: string): Promise<ConnectResult> {
      const started = performance.now()
      const { server, target, missing } = await usable(p, id, true)
      const latency = () => Math.round(performance.now() - started)
      if (missing.length) return { ok: false, latencyMs: latency(), serverInfo: null, toolsCount: 0, error: userVarsMissing(id, missing).detail }
      try {
        const { tools, info } = await listTools(server, target, true)
        await statusWrites
        return { ok: true, latencyMs: latency(), serverInfo: { name: info?.name ?? '', version: info?.version ?? '' }, toolsCount: tools.length }
      } catch (error) {
        await statusWrites
        return { ok: false, latencyMs: latency(), serverInfo: null, toolsCount: 0, error: isTimeout(error) ? `the server did not list its tools within ${server.timeoutMs} ms` : failureText(error) }
      }
    },

    /** The tools the server listed last; listed now when asked (`refresh`) or never listed. */
    async tools(p: Principal, id: string, refresh: boolean): Promise<McpTool[]> {
      const { server, target, missing } = await usable(p, id, true)
      if (server.tools && !refresh) return server.tools.map(toMcpTool)
      if (missing.length) throw userVarsMissing(id, missing)
      try {
        return (await listTools(server, target, refresh)).tools.map(toMcpTool)
      } catch (error) {
        throw serverFailed(server.name, isTimeout(error) ? `it did not list its tools within ${server.timeoutMs} ms` : failureText(error))
      }
    },

    /**
     * Servers from a Claude Desktop / Cursor `mcpServers` document: a new name is created, a name
     * already in the scope is updated (its command or URL, args, env and headers replaced), and an
     * entry that cannot be is skipped with the reason — a user's stdio entries, a bad name, a
     * refused URL. Entries are taken one by one: what was done stays done when a later one fails.
     */
    async importServers(p: Principal, doc: Record<string, ImportEntry>, scope?: 'global' | 'personal'): Promise<ImportOutcome> {
      const global = (scope ?? (p.role === 'admin' ? 'global' : 'personal')) === 'global'
      if (global && p.role !== 'admin') throw globalServerCreateAdminOnly()
      const outcome: ImportOutcome = { created: [], updated: [], skipped: [] }
      const seen = new Set<string>()
      for (const [name, entry] of Object.entries(doc)) {
        const skip = (reason: string) => void outcome.skipped.push({ name, reason })
        if (!serverName.safeParse(name).success) {
          skip('a server name is 1 to 32 letters, digits, _ and - (and no "__")')
          continue
        }
        if (seen.has(name.toLowerCase())) {
          skip('the document names it twice (names are case-insensitive)')
          continue
        }
        seen.add(name.toLowerCase())
        const transport: Transport = entry.command !== undefined ? 'stdio' : entry.type === 'sse' ? 'sse' : 'http'
        if (transport === 'stdio' && p.role !== 'admin') {
          skip('stdio servers run programs on the host: only admins add them')
          continue
        }
        const fields = { transport, command: entry.command ?? null, args: entry.args ?? [], env: entry.env ?? null, url: entry.url ?? null, headers: entry.headers ?? null, enabled: entry.disabled === undefined ? undefined : !entry.disabled }
        try {
          const [existing] = await db.select({ id: s.id }).from(s).where(and(global ? isNull(s.userId) : eq(s.userId, p.userId), sql`lower(${s.name}) = ${name.toLowerCase()}`))
          if (existing) {
            await update(p, existing.id, fields)
            outcome.updated.push(name)
          } else {
            await create(p, { ...fields, name, scope: global ? 'global' : 'personal' })
            outcome.created.push(name)
          }
        } catch (error) {
          if (!(error instanceof AppError) || error.status >= 500) throw error
          skip(error.errors?.length ? `${error.detail}: ${error.errors.map((e) => `${e.path} ${e.message}`).join('; ')}` : error.detail)
        }
      }
      return outcome
    },

    /** An admin's stdio server from a command, or from a catalogue entry (whose required env must be set, or left to each user as user_vars). */
    async install(p: Principal, catalogId: string | undefined, input: Omit<ServerInput, 'name'> & { name?: string }): Promise<McpServerRow> {
      if (catalogId === undefined) return create(p, { ...input, name: input.name! })
      const entry = catalogEntry(catalogId)
      if (!entry) throw catalogEntryUnknown(catalogId)
      const missing = entry.envRequired.filter((n) => input.env?.[n] === undefined && !input.userVars?.includes(n))
      if (missing.length) throw envRequired(missing)
      return create(p, { ...input, name: input.name ?? entry.id, transport: 'stdio', command: entry.command, args: entry.args, category: input.category ?? entry.category, description: input.description ?? entry.description })
    },

    /** The servers p can use, as an `mcpServers` document with every secret value masked. */
    async userDocument(p: Principal) {
      const rows = await usableServers(p)
      const entries = await Promise.all(
        rows.map(async ({ server, vars }) => {
          const mine = vars ? Object.keys(await open(vars.values)).filter((n) => server.userVars.includes(n)) : []
          const masked = (keys: string[]) => Object.fromEntries([...new Set(keys)].map((k) => [k, MASK]))
          const entry =
            server.transport === 'stdio'
              ? { command: server.command!, args: server.args, env: masked([...server.envKeys, ...mine]) }
              : { type: server.transport as 'http' | 'sse', url: server.url!, headers: masked(server.headerKeys) }
          return [server.name, entry] as const
        }),
      )
      return { mcpServers: Object.fromEntries(entries) }
    },

    async userVars(p: Principal, id: string): Promise<UserVarsState> {
      const row = await getVisible(p, id)
      const [mine] = await db.select({ keys: t.mcpUserVars.keys }).from(t.mcpUserVars).where(and(eq(t.mcpUserVars.serverId, id), eq(t.mcpUserVars.userId, p.userId)))
      return userVarsState(row, mine?.keys ?? [])
    },

    /** Set (a value) or remove (`null`) some of p's own user_vars of a server; names not sent are kept. */
    async setUserVars(p: Principal, id: string, changes: Record<string, string | null>): Promise<UserVarsState> {
      const row = await getVisible(p, id)
      const unknown = Object.keys(changes).filter((n) => !row.userVars.includes(n))
      if (unknown.length) throw unknownUserVars(unknown)
      const own = and(eq(t.mcpUserVars.serverId, id), eq(t.mcpUserVars.userId, p.userId))
      const keys = await withLock(database, `mcp-user-vars:${id}:${p.userId}`, async (q) => {
        const [current] = await q.select({ values: t.mcpUserVars.values }).from(t.mcpUserVars).where(own)
        const values = await open(current?.values ?? null)
        for (const [name, value] of Object.entries(changes)) {
          if (value === null) delete values[name]
          else values[name] = value
        }
        const names = Object.keys(values).sort()
        if (!names.length) await q.delete(t.mcpUserVars).where(own)
        else {
          const sealed = { values: (await seal(values))!, keys: names, updatedAt: new Date() }
          await q.insert(t.mcpUserVars).values({ serverId: id, userId: p.userId, ...sealed }).onConflictDoUpdate({ target: [t.mcpUserVars.serverId, t.mcpUserVars.userId], set: sealed })
        }
        return names
      })
      await changed()
      return userVarsState(row, keys)
    },

    /** Close every connection: every stdio process group is killed. */
    close: () => connections.close(),

    /** the connections now open (tests, the bench) */
    connections: () => connections.live(),
  }
}

/** The user_vars p has set (of those the server still names), and those neither p nor the server's env set. */
function userVarsState(row: McpServerRow, keys: string[]): UserVarsState {
  const set = row.userVars.filter((n) => keys.includes(n))
  return { keys: set, missing: row.userVars.filter((n) => !set.includes(n) && !row.envKeys.includes(n)) }
}

export type McpService = ReturnType<typeof createMcpService>
