/** @module /api/v1/agents (docs/api.md §17): global agents for everyone (admin-managed), each user's own, and their executions. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { idParams, page, pageOf, problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { agentBody, agentListQuery, agentPatch, agentSchema, executionListQuery, executionSchema, fromAgentBody, toAgentDto, toExecutionDto } from './model.ts'
import type { AgentsService } from './service.ts'

export function agentRoutes(deps: { agents: AgentsService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { agents } = deps
  return new Elysia({ name: 'hearth.routes.agents', prefix: '/api/v1', detail: { tags: ['Agents'] } })
    .use(deps.authPlugin)
    .get(
      '/agents',
      async ({ principal, query }) => {
        const { rows, total } = await agents.list(principal, query)
        return pageOf(rows.map(toAgentDto), total, query)
      },
      {
        auth: true,
        query: agentListQuery,
        response: { 200: page(agentSchema), ...problems(401, 403, 422, 429) },
        detail: { summary: 'List agents', description: 'The global agents and your own, newest first; `type`, `status` and `scope` filter.' },
      },
    )
    .post(
      '/agents',
      async ({ principal, body, set }) => {
        const row = await agents.create(principal, fromAgentBody(body))
        set.status = 201
        set.headers.location = `/api/v1/agents/${row.id}`
        return toAgentDto(row)
      },
      {
        auth: true,
        body: agentBody,
        response: { 201: agentSchema, ...problems(401, 403, 422, 429) },
        detail: {
          summary: 'Create an agent',
          description:
            '`scope` defaults to `global` for admins and `personal` for everyone else; only admins create `global` agents (`403`). `model_id` must name a model you can use and `tools_config.tools` tools you have (`422` naming the field); `tools_config.max_steps` is 1–50 (default 10).',
        },
      },
    )
    .get('/agents/:id', async ({ principal, params }) => toAgentDto(await agents.get(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: agentSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get an agent', description: "A global agent or one of yours; another user's is `404`, for admins too." },
    })
    .patch('/agents/:id', async ({ principal, params, body }) => toAgentDto(await agents.update(principal, params.id, fromAgentBody(body))), {
      auth: true,
      params: idParams,
      body: agentPatch,
      response: { 200: agentSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Change an agent', description: 'The fields sent are set and `null` clears one; `scope` is fixed at creation. Global agents are changed by admins only (`403`).' },
    })
    .delete(
      '/agents/:id',
      async ({ principal, params, set }) => {
        await agents.remove(principal, params.id)
        set.status = 204
      },
      {
        auth: true,
        params: idParams,
        response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) },
        detail: { summary: 'Delete an agent', description: 'Its executions go with it; conversations and tasks that used it keep going without it. Global agents are deleted by admins only (`403`).' },
      },
    )
    .get(
      '/agents/:id/executions',
      async ({ principal, params, query }) => {
        const { rows, total } = await agents.executions.list(principal, params.id, {
          status: query.status,
          sessionId: query.session_id,
          conversationId: query.conversation_id,
          from: query.from ? new Date(query.from) : undefined,
          to: query.to ? new Date(query.to) : undefined,
          limit: query.limit,
          offset: query.offset,
        })
        return pageOf(rows.map(toExecutionDto), total, query)
      },
      {
        auth: true,
        params: idParams,
        query: executionListQuery,
        response: { 200: page(executionSchema), ...problems(401, 403, 404, 422, 429) },
        detail: {
          summary: "List an agent's executions",
          description: 'One row per chat turn or task run of yours that used the agent, newest first; `status`, `session_id`, `conversation_id` and `from`/`to` (on `started_at`) filter. Your own executions only, admins included.',
        },
      },
    )
}
