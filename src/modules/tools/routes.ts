/** @module /api/v1/tools (docs/api.md §15): the tools a caller may use, calling one, the call logs and the live tool activity. */
import { Elysia } from 'elysia'
import { page, pageOf, problems } from '../../lib/schemas.ts'
import { asEventStream, sseResponse } from '../../lib/sse.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { eventStreamResponse } from '../../plugins/openapi-document.ts'
import type { Subscriptions } from '../../runs/subscriptions.ts'
import { othersLogsForbidden } from './errors.ts'
import type { ToolEvents } from './events.ts'
import { callBody, callResultSchema, logQuery, logSchema, toCallDto, toLogDto, toolEventSchema, toolListSchema, toToolDto, type ToolStreamEvent } from './model.ts'
import type { ToolsService } from './service.ts'

export function toolRoutes(deps: { tools: ToolsService; events: ToolEvents; subscriptions: Subscriptions; authPlugin: ReturnType<typeof authPlugin>; shutdown: AbortSignal }) {
  const { tools } = deps
  return new Elysia({ name: 'hearth.routes.tools', prefix: '/api/v1', detail: { tags: ['Tools'] } })
    .use(deps.authPlugin)
    .get('/tools', async ({ principal }) => ({ items: (await tools.list(principal)).map(toToolDto) }), {
      auth: true,
      response: { 200: toolListSchema, ...problems(401, 403, 429) },
      detail: {
        summary: 'List tools',
        description:
          'The tools you may use: the built-ins (`web_search`, `http_fetch`, `sql_query`, `current_time`), then the tools of the enabled MCP servers you can reach (yours and the global ones), named `<server>__<tool>`. A server is listed with the tools it listed last.',
      },
    })
    .post('/tools/call', async ({ principal, body }) => toCallDto(await tools.call(principal, body.tool, body.arguments ?? {}, { source: 'api' })), {
      auth: true,
      body: callBody,
      response: { 200: callResultSchema, ...problems(401, 403, 404, 422, 429, 502) },
      detail: {
        summary: 'Call a tool',
        description:
          "Calls one tool and waits for its result. Unknown tool `404`; arguments failing its input schema `422` with field errors (paths `arguments.…`); a built-in that is not configured `422`; an MCP server that cannot be reached or does not answer within its `timeout_ms` `502`. A tool that reports failure is `200` with `is_error: true`. Every call is logged (`log_id`).",
      },
    })
    .get(
      '/tools/logs',
      async ({ principal, query }) => {
        const userId = query.user_id ?? principal.userId
        if (userId !== principal.userId && principal.role !== 'admin') throw othersLogsForbidden()
        const { rows, total } = await tools.logs({
          userId,
          tool: query.tool,
          source: query.source,
          isError: query.is_error === undefined ? undefined : query.is_error === 'true',
          from: query.from ? new Date(query.from) : undefined,
          to: query.to ? new Date(query.to) : undefined,
          limit: query.limit,
          offset: query.offset,
        })
        return pageOf(rows.map(toLogDto), total, query)
      },
      {
        auth: true,
        query: logQuery,
        response: { 200: page(logSchema), ...problems(401, 403, 422, 429) },
        detail: {
          summary: 'Tool call logs',
          description:
            'Your tool calls from every source (`api`, `chat`, `task`, `session`), newest first, with their arguments, the start of their result (at most 2 KB), duration and whether they failed. Filters: `tool`, `source`, `is_error`, `from`/`to` (date-times, inclusive). Admins may pass `user_id`; for anyone else another user id is `403`.',
        },
      },
    )
    .get(
      '/tools/events',
      ({ principal }) => {
        const sub = deps.subscriptions.open(principal)
        return asEventStream<ToolStreamEvent>(sseResponse(deps.events.feed(principal.userId), { shutdown: deps.shutdown, subscription: sub }))
      },
      {
        auth: true,
        response: { ...problems(401, 403, 429) },
        detail: {
          summary: 'Tool activity (SSE)',
          description:
            'Your tool activity as it happens, on every instance: `tool_started` and `tool_finished` for each call from any source, `server_status` when an MCP server you can use connects or fails. Live only (the logs are the record); `: ping` every 15 s. Counts as one of your open streams.',
          responses: { 200: eventStreamResponse('Tool events as server-sent events', toolEventSchema) },
        },
      },
    )
}
