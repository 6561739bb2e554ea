/** @module /api/v1/mcp (docs/api.md §15): MCP servers, their connections and tools, import and export, the catalogue, per-user credentials. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { idParams, page, pageOf, problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import {
  catalogDto,
  catalogSchema,
  categoriesDto,
  categoriesSchema,
  connectResultSchema,
  fromInstallBody,
  fromServerBody,
  fromServerPatch,
  importBody,
  importResultSchema,
  installBody,
  MAX_IMPORT_ENTRIES,
  mcpServerSchema,
  serverBody,
  serverListQuery,
  serverPatch,
  toConnectDto,
  toImportDto,
  toMcpServerDto,
  toToolDto,
  toolListSchema,
  toolsQuery,
  toUserVarsDto,
  userDocumentSchema,
  userVarsBody,
  userVarsSchema,
} from './model.ts'
import type { McpService } from './service.ts'

export function mcpRoutes(deps: { mcp: McpService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { mcp } = deps
  const created = (set: { status?: number | string; headers: Record<string, unknown> }, id: string) => {
    set.status = 201
    set.headers.location = `/api/v1/mcp/servers/${id}`
  }
  return new Elysia({ name: 'hearth.routes.mcp', prefix: '/api/v1/mcp', detail: { tags: ['Tools and MCP'] } })
    .use(deps.authPlugin)
    .get(
      '/servers',
      async ({ principal, query }) => {
        const { rows, total } = await mcp.list(principal, query)
        return pageOf(rows.map(toMcpServerDto), total, query)
      },
      {
        auth: true,
        query: serverListQuery,
        response: { 200: page(mcpServerSchema), ...problems(401, 403, 422, 429) },
        detail: { summary: 'List MCP servers', description: 'The global servers and your own personal ones, by name; `scope` and `category` filter, `q` searches names and descriptions. Env and header values never come back: only their names.' },
      },
    )
    .post(
      '/servers',
      async ({ principal, body, set }) => {
        const row = await mcp.create(principal, fromServerBody(body))
        created(set, row.id)
        return toMcpServerDto(row)
      },
      {
        auth: true,
        body: serverBody,
        response: { 201: mcpServerSchema, ...problems(401, 403, 409, 422, 429) },
        detail: {
          summary: 'Add an MCP server',
          description:
            '`transport` defaults to `stdio` when a `command` is sent, else `http`. **stdio servers are admin-only** (`403`): they run programs on the host. `scope` defaults to `global` for admins and `personal` for everyone else; only admins add global servers (`403`). A user\'s `url` may not be a loopback or private address (`422`) unless the instance allows it. `env` and `headers` are write-only (encrypted). Names are 1–32 of `[A-Za-z0-9_-]`, unique case-insensitively in their scope (`409`), and a personal name may not be a global server\'s (`409`).',
        },
      },
    )
    .get('/servers/:id', async ({ principal, params }) => toMcpServerDto(await mcp.get(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: mcpServerSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get an MCP server', description: "A global server, or one of yours; another user's personal server is `404`, for admins too." },
    })
    .patch('/servers/:id', async ({ principal, params, body }) => toMcpServerDto(await mcp.update(principal, params.id, fromServerPatch(body))), {
      auth: true,
      params: idParams,
      body: serverPatch,
      response: { 200: mcpServerSchema, ...problems(401, 403, 404, 409, 422, 429) },
      detail: {
        summary: 'Change an MCP server',
        description: 'The fields sent are set; `env: null` / `headers: null` remove them all. A change of transport, command, args, env, url or headers closes its connections and resets `status` and the tool list. Global servers: admins only (`403`).',
      },
    })
    .delete(
      '/servers/:id',
      async ({ principal, params, set }) => {
        await mcp.remove(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Delete an MCP server', description: 'Its connections close (a stdio process is stopped). Global servers: admins only (`403`).' } },
    )
    .post('/servers/:id/connect', async ({ principal, params }) => toConnectDto(await mcp.connect(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: connectResultSchema, ...problems(401, 403, 404, 422, 429) },
      detail: {
        summary: 'Connect to an MCP server',
        description: 'Connects (with your own user_vars) and lists its tools, now, even while a failing server waits before its next start. A server that fails — cannot start, exits, prints garbage, does not answer within `timeout_ms` — is `ok: false` with a readable `error`, never a 5xx.',
      },
    })
    .get('/servers/:id/tools', async ({ principal, params, query }) => ({ items: (await mcp.tools(principal, params.id, query.refresh === 'true')).map(toToolDto) }), {
      auth: true,
      params: idParams,
      query: toolsQuery,
      response: { 200: toolListSchema, ...problems(401, 403, 404, 422, 429, 502) },
      detail: { summary: "List an MCP server's tools", description: 'The tools it listed last; `refresh=true` (or a server never listed) asks it now: `502` when it cannot be reached, `422` when it needs user_vars you have not set.' },
    })
    .put('/servers/:id/user-vars', async ({ principal, params, body }) => toUserVarsDto(await mcp.setUserVars(principal, params.id, body)), {
      auth: true,
      params: idParams,
      body: userVarsBody,
      response: { 200: userVarsSchema, ...problems(401, 403, 404, 422, 429) },
      detail: {
        summary: 'Set your own user_vars of a server',
        description: "`{ NAME: \"value\" }` for names in the server's `user_vars` (another name is `422`); `null` removes one, names not sent are kept. Values are write-only (encrypted): the answer says only which are set. Your calls run with your values only, in their own connection.",
      },
    })
    .get('/servers/:id/user-vars', async ({ principal, params }) => toUserVarsDto(await mcp.userVars(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: userVarsSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Which of your user_vars are set', description: 'The names only, never the values.' },
    })
    .post('/import', async ({ principal, body }) => toImportDto(await mcp.importServers(principal, body.mcpServers, body.scope)), {
      auth: true,
      body: importBody,
      response: { 200: importResultSchema, ...problems(401, 403, 422, 429) },
      detail: {
        summary: 'Import an mcpServers file',
        description: `A Claude Desktop / Cursor / VS Code \`{ "mcpServers": { "<name>": { command, args, env } | { url, headers, type } } }\` document as is (other fields ignored), at most ${MAX_IMPORT_ENTRIES} servers. New names are created, names already in the scope updated; entries that cannot be imported are \`skipped\` with the reason (a user's stdio entries, a bad name, a refused URL). An entry of the wrong shape (no command and no url, wrong types) is \`422\` naming it, and nothing is imported.`,
      },
    })
    .post(
      '/install',
      async ({ principal, body, set }) => {
        const { catalogId, input } = fromInstallBody(body)
        const row = await mcp.install(principal, catalogId, input)
        created(set, row.id)
        return toMcpServerDto(row)
      },
      {
        auth: 'admin',
        body: installBody,
        response: { 201: mcpServerSchema, ...problems(401, 403, 409, 422, 429) },
        detail: {
          summary: 'Install a stdio MCP server',
          description: 'Admins: `{ name, command, args, env }`, or `{ catalog_id, env }` from GET /mcp/catalog (each of its `env_required` set in `env` or named in `user_vars`, else `422`). Global unless `scope: "personal"`.',
        },
      },
    )
    .get('/catalog', () => catalogDto(), {
      auth: true,
      response: { 200: catalogSchema, ...problems(401, 403, 429) },
      detail: { summary: 'The MCP server catalogue', description: 'Well-known servers by category, with what each runs and the environment it needs; admins install one with POST /mcp/install { catalog_id }.' },
    })
    .get('/categories', () => categoriesDto(), {
      auth: true,
      response: { 200: categoriesSchema, ...problems(401, 403, 429) },
      detail: { summary: 'The catalogue categories', description: 'The categories of GET /mcp/catalog, with how many servers each has.' },
    })
    .get('/user', ({ principal }) => mcp.userDocument(principal), {
      auth: true,
      response: { 200: userDocumentSchema, ...problems(401, 403, 429) },
      detail: { summary: 'Your MCP servers as an mcpServers document', description: 'The enabled servers you can use, in the Claude Desktop / Cursor format; every env and header value is masked.' },
    })
}
