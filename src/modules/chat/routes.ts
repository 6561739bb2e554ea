/** @module /api/v1/conversations, /api/v1/chat and /api/v1/share (docs/api.md §11). */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { idParams, listQuery, page, pageOf, problems, rawQueryText, withDefault } from '../../lib/schemas.ts'
import { asEventStream, sseResponse } from '../../lib/sse.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { eventStreamResponse, jsonSchemaOf } from '../../plugins/openapi-document.ts'
import type { Run } from '../../runs/index.ts'
import type { Subscription, Subscriptions } from '../../runs/subscriptions.ts'
import type { Principal } from '../auth/service.ts'
import { quotaExceeded } from '../usage/errors.ts'
import { answerFailed } from './errors.ts'
import * as m from './model.ts'
import { sharedTaskSchema } from '../tasks/model.ts'
import { conversationTopic, type ChatService } from './service.ts'

/** The OpenAPI entry of a 200 that is a stream of chat events. */
const chatEventStream = {
  responses: {
    200: eventStreamResponse(
      'The answer as server-sent events (docs/api.md §11): `message.created` first, `done` last; a `: connected` comment at once and a `: ping` comment every 15 s',
      m.chatEventSchema,
    ),
  },
}
/** Sending: SSE with `Accept: text/event-stream`, else JSON once the answer is complete. */
const turnResponses = { 201: m.turnSchema, ...problems(401, 402, 403, 404, 409, 422, 429, 502) }

/** The event id a reconnecting client saw last (0: none). */
function lastEventId(request: Request) {
  const last = Number(request.headers.get('last-event-id') ?? 0)
  return Number.isSafeInteger(last) && last > 0 ? last : 0
}

/** Whether `run` is the answer to the user message `messageId` (its first event names the question). */
const startedBy = (run: Run, messageId: string) => (run.events[0]?.data as { user_message?: { id?: string } } | undefined)?.user_message?.id === messageId

export function chatRoutes(deps: {
  chat: ChatService
  subscriptions: Subscriptions
  authPlugin: ReturnType<typeof authPlugin>
  shutdown: AbortSignal
  /** a task share behind a token that is not a conversation's (one route answers both kinds) */
  sharedTask?: (token: string) => Promise<z.infer<typeof sharedTaskSchema> | undefined>
}) {
  const { chat, subscriptions } = deps


  /**
   * A run as SSE from after `Last-Event-ID`, as one of the caller's subscriptions: its place is
   * taken first (429 past the per-user cap, before anything starts), `follow` then starts or finds
   * the run (undefined: nothing to stream, 204). A revoked session or key, or the conversation's
   * deletion, ends the stream at once with a final event.
   */
  async function stream(principal: Principal, request: Request, follow: (sub: Subscription) => Promise<Run | undefined>) {
    const sub = subscriptions.open(principal)
    let run: Run | undefined
    try {
      run = await follow(sub)
    } catch (error) {
      sub.release()
      throw error
    }
    if (!run) {
      sub.release()
      return undefined
    }
    return asEventStream<m.ChatStreamEvent>(sseResponse(run.feed(lastEventId(request)), { shutdown: deps.shutdown, subscription: sub }))
  }

  /** Start a turn and stream it, following its conversation. */
  const streamTurn = (principal: Principal, request: Request, conversationId: string, start: () => Promise<{ run: Run }>) =>
    stream(principal, request, async (sub) => {
      sub.watch(conversationTopic(conversationId))
      return (await start()).run
    }) as Promise<NonNullable<Awaited<ReturnType<typeof stream>>>>

  const wantsStream = (request: Request) => request.headers.get('accept')?.includes('text/event-stream') ?? false

  /**
   * The JSON answer of a turn: waits for the run (the whole tool loop, approvals included), then the
   * question and the last answer (502 when the model failed, 402 when a later round found the credits used up).
   */
  async function turnResult(started: { run: Run; userMessage: m.MessageRow; assistantId: string }) {
    await started.run.completed
    const done = started.run.events.at(-1)
    const answerId = done?.event === 'done' ? (done.data as m.ChatEventData['done']).message_id : started.assistantId
    const assistant = await chat.getMessage(answerId)
    if (assistant.status === 'error') throw assistant.metadata.error_code === 'QUOTA_EXCEEDED' ? quotaExceeded() : answerFailed(String(assistant.metadata.error ?? 'The model call failed'))
    return { user_message: m.toMessageDto(started.userMessage), assistant_message: m.toMessageDto(assistant) }
  }

  return new Elysia({ name: 'hearth.routes.chat', prefix: '/api/v1', detail: { tags: ['Chat'] } })
    .use(deps.authPlugin)
    .get(
      '/conversations',
      async ({ principal, query }) => {
        const { rows, total } = await chat.list(principal, { q: query.q, favorites: query.favorites === 'true', limit: query.limit, offset: query.offset })
        return pageOf(rows.map(m.toConversationDto), total, query)
      },
      {
        auth: true,
        query: listQuery.extend(m.listConversationsQuery),
        transform: rawQueryText('q'),
        response: { 200: page(m.conversationSchema), ...problems(401, 403, 422, 429) },
        detail: { summary: 'List conversations', description: 'Your conversations, most recently updated first. `q` searches titles and message text; `favorites=true` keeps the favourites only.' },
      },
    )
    .post(
      '/conversations',
      async ({ principal, body, set }) => {
        const row = await chat.create(principal, m.fromConversationBody(body))
        set.status = 201
        set.headers.location = `/api/v1/conversations/${row.id}`
        return m.toConversationDto(row)
      },
      {
        auth: true,
        body: m.conversationBody,
        response: { 201: m.conversationSchema, ...problems(401, 403, 422, 429) },
        detail: { summary: 'Create a conversation', description: '`201` with `Location`. An untitled conversation gets a title from its first exchange.' },
      },
    )
    .get(
      '/conversations/:id',
      async ({ principal, params }) => {
        const { conversation, messages } = await chat.get(principal, params.id)
        return { ...m.toConversationDto(conversation), messages: messages.map(m.toMessageDto) }
      },
      { auth: true, params: idParams, response: { 200: m.conversationWithMessages, ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Get a conversation', description: "The conversation with `messages`: its active branch, oldest first. Another user's conversation is `404`, for admins too." } },
    )
    .patch('/conversations/:id', async ({ principal, params, body }) => m.toConversationDto(await chat.update(principal, params.id, m.fromConversationBody(body))), {
      auth: true,
      params: idParams,
      body: m.conversationPatch,
      response: { 200: m.conversationSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Change a conversation', description: 'The fields sent are set; `null` clears the title, model or system prompt.' },
    })
    .delete(
      '/conversations/:id',
      async ({ principal, params, set }) => {
        await chat.remove(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Delete a conversation', description: 'Its messages and share link go with it; an answer being generated is stopped.' } },
    )
    .post('/conversations/:id/favorite', async ({ principal, params }) => ({ is_favorite: await chat.toggleFavorite(principal, params.id) }), {
      auth: true,
      params: idParams,
      response: { 200: z.object({ is_favorite: z.boolean() }), ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Toggle favourite', description: 'Flips `is_favorite` and answers with the new value.' },
    })
    .post(
      '/conversations/:id/messages',
      async ({ principal, params, body, request, status }) => {
        const send = () => chat.send(principal, params.id, m.fromSendBody(body))
        return wantsStream(request) ? streamTurn(principal, request, params.id, send) : status(201, await turnResult(await send()))
      },
      {
        auth: true,
        params: idParams,
        body: m.sendBody,
        response: turnResponses,
        detail: {
          summary: 'Send a message',
          description:
            'Stores the message and starts the answer (in a conversation with a `connection_id`, a question over SQL: `progress`, `result` and `visualization` events before the answer’s `delta`s). With `Accept: text/event-stream` the answer streams as server-sent events (`200`); otherwise the request waits and returns both messages (`201`; `502` when the model failed, both messages stored either way). Without `parent_id` the active branch continues; with one the conversation forks there. One answer per conversation at a time (`409`).',
          ...chatEventStream,
        },
      },
    )
    .post(
      '/conversations/:id/messages/:message_id/regenerate',
      async ({ principal, params, body, request, status }) => {
        const regenerate = () => chat.regenerate(principal, params.id, params.message_id, { modelId: body?.model_id, temperature: body?.temperature, maxTokens: body?.max_tokens, maxToolRounds: body?.max_tool_rounds })
        return wantsStream(request) ? streamTurn(principal, request, params.id, regenerate) : status(201, await turnResult(await regenerate()))
      },
      {
        auth: true,
        params: m.messageParams,
        body: m.regenerateBody,
        response: turnResponses,
        detail: {
          summary: 'Regenerate an answer',
          description:
            'A new answer with the same parent as the old one (`message_id` is the answer or its question); the active branch switches to it and older answers are kept. SSE or JSON as for sending.',
          ...chatEventStream,
        },
      },
    )
    .get(
      '/conversations/:id/stream',
      async ({ principal, params, request, status }) => {
        const res = await stream(principal, request, async (sub) => {
          sub.watch(conversationTopic(params.id))
          const run = await chat.runOf(principal, params.id)
          return !run || (run.done && lastEventId(request) >= run.events.length) ? undefined : run
        })
        return res ?? status(204, undefined)
      },
      {
        auth: true,
        params: idParams,
        response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) },
        detail: {
          summary: 'Re-attach to an answer',
          description:
            'The events of the answer being generated, from after `Last-Event-ID`: the missed ones first, exactly once, then the live ones. `204` when nothing is running, or everything after `Last-Event-ID` was sent. A finished answer stays replayable for 10 minutes.',
          ...chatEventStream,
        },
      },
    )
    .post('/conversations/:id/stop', async ({ principal, params }) => ({ stopped: await chat.stop(principal, params.id) }), {
      auth: true,
      params: idParams,
      response: { 200: z.object({ stopped: z.boolean() }), ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Stop the answer', description: 'Stops the answer being generated, on whichever instance runs it: the partial answer is kept with `status: stopped`. `stopped` says whether one was running.' },
    })
    .post(
      '/conversations/:id/tool-approvals',
      async ({ principal, params, body }) => {
        const decided = await chat.decideApproval(principal, params.id, body.tool_call_id, body.approve)
        return { tool_call_id: decided.id, tool: decided.tool, arguments: decided.arguments, approved: decided.approved }
      },
      {
        auth: true,
        params: idParams,
        body: m.approvalBody,
        response: { 200: m.approvalSchema, ...problems(401, 403, 404, 422, 429) },
        detail: {
          summary: 'Approve or refuse a tool call',
          description:
            'The decision on a call the answer being generated waits for (`tool_approval_required`), from any instance. `approve: false` refuses it: the model is told the user declined. `404` when no such call waits in this conversation — never asked, already decided, timed out — or the conversation is another user’s.',
        },
      },
    )
    .post(
      '/conversations/:id/share',
      async ({ principal, params, set }) => {
        const token = await chat.share(principal, params.id)
        set.status = 201
        return { share_token: token, url: `/api/v1/share/${token}` }
      },
      {
        auth: true,
        params: idParams,
        response: { 201: z.object({ share_token: z.string(), url: z.string() }), ...problems(401, 403, 404, 422, 429) },
        detail: { summary: 'Share a conversation', description: 'A frozen copy of the active branch as it is now, readable without auth at `url`. Sharing again replaces the earlier link.' },
      },
    )
    .delete(
      '/conversations/:id/share',
      async ({ principal, params, set }) => {
        await chat.unshare(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Revoke the share link', description: 'The shared copy is gone: its link answers `404`.' } },
    )
    .get(
      '/conversations/:id/export',
      async ({ principal, params, query }) => {
        const { conversation, messages } = await chat.get(principal, params.id)
        const name = (conversation.title ?? 'conversation').replace(/[^\w\- ]+/g, '').trim().slice(0, 60) || 'conversation'
        if (query.format === 'markdown') {
          const body = `# ${conversation.title ?? 'Conversation'}\n\n` + messages.map((x) => `**${x.role === 'user' ? 'User' : x.role === 'assistant' ? 'Assistant' : x.role}** (${x.createdAt.toISOString()})\n\n${x.content}\n`).join('\n')
          return new Response(body, { headers: { 'content-type': 'text/markdown; charset=utf-8', 'content-disposition': `attachment; filename="${name}.md"` } })
        }
        return new Response(JSON.stringify({ ...m.toConversationDto(conversation), messages: messages.map(m.toMessageDto) }, null, 2), {
          headers: { 'content-type': 'application/json', 'content-disposition': `attachment; filename="${name}.json"` },
        })
      },
      {
        auth: true,
        params: idParams,
        query: z.object({ format: withDefault(z.enum(['json', 'markdown']), 'json') }),
        response: problems(401, 403, 404, 422, 429),
        detail: {
          summary: 'Export a conversation',
          description: 'The active branch as a download (`Content-Disposition: attachment`): JSON by default, Markdown with `format=markdown`.',
          responses: {
            200: {
              description: 'The conversation as a download: JSON (`format=json`, the conversation with its messages) or Markdown (`format=markdown`)',
              content: { 'application/json': { schema: jsonSchemaOf(m.conversationWithMessages, 'output') as { type: 'object' } }, 'text/markdown': { schema: { type: 'string' as const } } },
            },
          },
        },
      },
    )
    .get(
      '/chat/stream',
      async ({ principal, query, request, status }) => {
        // An EventSource reconnects by itself (with Last-Event-ID) after the stream ends or drops:
        // that re-attaches to the run its question started, or is a 204 (which makes it stop) —
        // never a second run.
        if (request.headers.has('last-event-id')) {
          const res = await stream(principal, request, async (sub) => {
            const asked = await chat.recentQuestion(principal, query.query, query.conversation_id)
            if (!asked) return undefined
            sub.watch(conversationTopic(asked.conversationId))
            const run = await chat.runOf(principal, asked.conversationId)
            return !run || !startedBy(run, asked.messageId) || (run.done && lastEventId(request) >= run.events.length) ? undefined : run
          })
          return res ?? status(204, undefined)
        }
        return stream(principal, request, async (sub) => {
          const conversationId = query.conversation_id ?? (await chat.create(principal, { connectionId: query.connection_id })).id
          sub.watch(conversationTopic(conversationId))
          return (await chat.send(principal, conversationId, { content: query.query, modelId: query.model, language: query.language, connectionId: query.conversation_id ? query.connection_id : undefined })).run
        })
      },
      {
        auth: 'same-site', // a GET that starts an answer: a link on another site must not (docs/api.md §1)
        query: m.chatStreamQuery,
        transform: rawQueryText('query', 'model'),
        response: { 204: z.void(), ...problems(401, 402, 403, 404, 409, 422, 429) },
        detail: {
          summary: 'Chat stream (EventSource)',
          description:
            'The same events as sending with `Accept: text/event-stream`, for `EventSource` clients: a GET, authenticated by the `hearth_access` cookie. Creates a conversation when `conversation_id` is absent (its id is in `message.created`); `language` asks for answers in Chinese or English; `connection_id` makes the answer a question over SQL on that data connection (`progress`, `result`, `visualization` events; kept as the conversation’s). A request with `Last-Event-ID` (an EventSource reconnecting) never starts a run: it re-attaches to the run of the same question asked in the last 15 minutes, or answers `204` once that run is over (which makes EventSource stop).',
          ...chatEventStream,
        },
      },
    )
    .post('/chat/stop', async ({ principal, body }) => ({ stopped: await chat.stop(principal, body.conversation_id) }), {
      auth: true,
      body: z.object({ conversation_id: z.string().min(1).max(64) }),
      response: { 200: z.object({ stopped: z.boolean() }), ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Stop an answer (EventSource)', description: 'The same as `POST /conversations/{id}/stop`, for clients of the chat stream.' },
    })
    .get(
      '/share/:token',
      async ({ params }) => {
        const conversation = await chat.shared(params.token).catch(async (error: unknown) => {
          const task = await deps.sharedTask?.(params.token)
          if (task) return task
          throw error
        })
        if ('task' in conversation) return conversation
        const { title, messages, createdAt } = conversation
        return { title, messages, created_at: createdAt.toISOString() }
      },
      {
        params: z.object({ token: z.string().min(1).max(100) }),
        response: { 200: z.union([m.sharedSchema, sharedTaskSchema]), ...problems(404, 422, 429) },
        detail: { summary: 'Read a shared conversation or task', description: 'No auth: the frozen copy taken when the link was made — a conversation (title, roles, texts, times) or a task (`task` and its `steps`). `404` once revoked or replaced.' },
      },
    )
}
