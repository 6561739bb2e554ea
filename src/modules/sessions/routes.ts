/** @module /api/v1/sessions (docs/api.md §20 "Sessions"): workflow sessions, their messages, and the agent's replies as SSE. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { idParams, page, pageOf, problems } from '../../lib/schemas.ts'
import { asEventStream, sseResponse } from '../../lib/sse.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { eventStreamResponse } from '../../plugins/openapi-document.ts'
import type { Subscriptions } from '../../runs/subscriptions.ts'
import * as m from './model.ts'
import { sessionTopic, type SessionsService } from './service.ts'

/** The event id a reconnecting client saw last (0: none). */
function lastEventId(request: Request) {
  const last = Number(request.headers.get('last-event-id') ?? 0)
  return Number.isSafeInteger(last) && last > 0 ? last : 0
}

export function sessionRoutes(deps: { sessions: SessionsService; subscriptions: Subscriptions; authPlugin: ReturnType<typeof authPlugin>; shutdown: AbortSignal }) {
  const { sessions, subscriptions } = deps
  return new Elysia({ name: 'hearth.routes.sessions', prefix: '/api/v1', detail: { tags: ['Sessions'] } })
    .use(deps.authPlugin)
    .get(
      '/sessions',
      async ({ principal, query }) => {
        const { rows, total } = await sessions.list(principal, { workflowId: query.workflow_id, status: query.status, limit: query.limit, offset: query.offset })
        return pageOf(rows.map(m.toSessionDto), total, query)
      },
      {
        auth: true,
        query: m.listSessionsQuery,
        response: { 200: page(m.sessionSchema), ...problems(401, 403, 422, 429) },
        detail: { summary: 'List sessions', description: 'Your workflow sessions, most recently updated first; `workflow_id` and `status` filter.' },
      },
    )
    .post(
      '/sessions',
      async ({ principal, body, set }) => {
        const row = await sessions.create(principal, { workflowId: body.workflow_id, title: body.title, agentId: body.agent_id })
        set.status = 201
        set.headers.location = `/api/v1/sessions/${row.id}`
        return m.toSessionDto(row)
      },
      {
        auth: true,
        body: m.createSessionBody,
        response: { 201: m.sessionSchema, ...problems(401, 403, 422, 429) },
        detail: {
          summary: 'Create a session',
          description: '`201` with `Location`. `workflow_id` must be one of your workflows and `agent_id` (optional) an active agent of type `workflow` you can use: else `422` naming the field. Without `agent_id` the built-in workflow editor answers.',
        },
      },
    )
    .get('/sessions/:id', async ({ principal, params }) => m.toSessionDto(await sessions.get(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: m.sessionSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a session', description: "One of your sessions; another user's is `404`, for admins too." },
    })
    .patch('/sessions/:id', async ({ principal, params, body }) => m.toSessionDto(await sessions.update(principal, params.id, { title: body.title, status: body.status, agentId: body.agent_id })), {
      auth: true,
      params: idParams,
      body: m.patchSessionBody,
      response: { 200: m.sessionSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Change a session', description: 'The fields sent are set: `title`, `status` (`archived` refuses new messages with `409`), `agent_id` (`null`: the built-in workflow editor).' },
    })
    .delete(
      '/sessions/:id',
      async ({ principal, params, set }) => {
        await sessions.remove(principal, params.id)
        set.status = 204
      },
      {
        auth: true,
        params: idParams,
        response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) },
        detail: { summary: 'Delete a session', description: 'Its messages go with it; a reply being written is stopped, and its open streams end with `deleted`. The workflow stays.' },
      },
    )
    .get('/sessions/:id/messages', async ({ principal, params }) => (await sessions.messages(principal, params.id)).map(m.toSessionMessageListItem), {
      auth: true,
      params: idParams,
      response: { 200: z.array(m.sessionMessageListItem), ...problems(401, 403, 404, 422, 429) },
      detail: { summary: "List a session's messages", description: 'Every message, oldest first, as a plain array; `status` says how far a reply got (`streaming` while it is written).' },
    })
    .post(
      '/sessions/:id/messages',
      async ({ principal, params, body, set }) => {
        const { userMessage } = await sessions.start(principal, params.id, body.content)
        set.status = 201
        // spread: the route's type is then the message's fields, not the name of an interface of src/ (the client package has none)
        return { ...userMessage }
      },
      {
        auth: true,
        params: idParams,
        body: m.sendMessageBody,
        response: { 201: m.sessionMessageSchema, ...problems(401, 402, 403, 404, 409, 422, 429) },
        detail: {
          summary: 'Send a message',
          description:
            'Stores the message and answers `201` with it at once; the agent’s reply runs on the server and follows over the WebSocket and `GET /sessions/{id}/stream`. One reply per session at a time: `409` while one is written, or when the session is archived; `402` when credits are used up, `429` past the replies one user may have going.',
        },
      },
    )
    .get(
      '/sessions/:id/stream',
      async ({ principal, params, request, status }) => {
        const sub = subscriptions.open(principal)
        try {
          sub.watch(sessionTopic(params.id))
          const run = await sessions.runOf(principal, params.id)
          const last = lastEventId(request)
          if (!run || (run.done && last >= run.events.length)) {
            sub.release()
            return status(204, undefined)
          }
          return asEventStream<m.SessionStreamEvent>(sseResponse(run.feed(last), { shutdown: deps.shutdown, subscription: sub }))
        } catch (error) {
          sub.release()
          throw error
        }
      },
      {
        auth: true,
        params: idParams,
        response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) },
        detail: {
          summary: 'Follow the reply',
          description:
            'The events of the reply being written (or finished in the last 10 minutes), from after `Last-Event-ID`: the missed ones first, then the live ones, ending with `done`. `204` when there is none, or everything after `Last-Event-ID` was sent.',
          responses: { 200: eventStreamResponse('The reply as server-sent events: `message.received` (the question) first, `done` last; a `: connected` comment at once and a `: ping` every 15 s', m.sessionEventSchema) },
        },
      },
    )
    .post('/sessions/:id/stop', async ({ principal, params }) => ({ stopped: await sessions.stop(principal, params.id) }), {
      auth: true,
      params: idParams,
      response: { 200: z.object({ stopped: z.boolean() }), ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Stop the reply', description: 'Stops the reply being written, on whichever instance runs it; its text so far is kept with `status: stopped`. `stopped` says whether one was running.' },
    })
}
