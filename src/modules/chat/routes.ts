/** @module /api/v1/conversations, /api/v1/chat and /api/v1/share (docs/api.md §11). */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { idParams, listQuery, page, pageOf, problems } from '../../lib/schemas.ts'
import { asEventStream, sseResponse } from '../../lib/sse.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import type { Run } from '../../runs/index.ts'
import { answerFailed } from './errors.ts'
import * as m from './model.ts'
import type { ChatService } from './service.ts'

/** The OpenAPI entry of a 200 that is a stream of chat events. */
const chatEventStream = {
  responses: { 200: { description: `text/event-stream of chat events (docs/api.md §11): ${m.CHAT_EVENTS}`, content: { 'text/event-stream': { schema: { type: 'string' as const } } } } },
}
/** Sending: SSE with `Accept: text/event-stream`, else JSON once the answer is complete. */
const turnResponses = { 201: m.turnSchema, ...problems(401, 402, 404, 409, 422, 429, 502) }

export function chatRoutes(deps: { chat: ChatService; authPlugin: ReturnType<typeof authPlugin>; shutdown: AbortSignal }) {
  const { chat } = deps

  /** A run as SSE from after `Last-Event-ID` (typed for Eden as the chat events it carries). */
  const stream = (run: Run, request: Request) => {
    const last = Number(request.headers.get('last-event-id') ?? 0)
    return asEventStream<m.ChatStreamEvent>(sseResponse(run.feed(Number.isSafeInteger(last) && last > 0 ? last : 0), { shutdown: deps.shutdown }))
  }

  const wantsStream = (request: Request) => request.headers.get('accept')?.includes('text/event-stream') ?? false

  /** The JSON answer of a turn: waits for the run, then both messages (502 when the model failed). */
  async function turnResult(started: { run: Run; userMessage: m.MessageRow; assistantId: string }) {
    await started.run.completed
    const assistant = await chat.getMessage(started.assistantId)
    if (assistant.status === 'error') throw answerFailed(String(assistant.metadata.error ?? 'The model call failed'))
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
        response: { 200: page(m.conversationSchema), ...problems(401, 422, 429) },
        detail: { summary: 'Your conversations, most recently updated first; `q` searches titles and message text' },
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
      { auth: true, body: m.conversationBody, response: { 201: m.conversationSchema, ...problems(401, 422, 429) } },
    )
    .get(
      '/conversations/:id',
      async ({ principal, params }) => {
        const { conversation, messages } = await chat.get(principal, params.id)
        return { ...m.toConversationDto(conversation), messages: messages.map(m.toMessageDto) }
      },
      { auth: true, params: idParams, response: { 200: m.conversationWithMessages, ...problems(401, 404, 422, 429) }, detail: { summary: 'A conversation with its active branch, oldest first' } },
    )
    .patch('/conversations/:id', async ({ principal, params, body }) => m.toConversationDto(await chat.update(principal, params.id, m.fromConversationBody(body))), {
      auth: true,
      params: idParams,
      body: m.conversationPatch,
      response: { 200: m.conversationSchema, ...problems(401, 404, 422, 429) },
    })
    .delete(
      '/conversations/:id',
      async ({ principal, params, set }) => {
        await chat.remove(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 404, 422, 429) }, detail: { summary: 'Delete a conversation and its messages' } },
    )
    .post('/conversations/:id/favorite', async ({ principal, params }) => ({ is_favorite: await chat.toggleFavorite(principal, params.id) }), {
      auth: true,
      params: idParams,
      response: { 200: z.object({ is_favorite: z.boolean() }), ...problems(401, 404, 422, 429) },
    })
    .post(
      '/conversations/:id/messages',
      async ({ principal, params, body, request, status }) => {
        const started = await chat.send(principal, params.id, m.fromSendBody(body))
        return wantsStream(request) ? stream(started.run, request) : status(201, await turnResult(started))
      },
      {
        auth: true,
        params: idParams,
        body: m.sendBody,
        response: turnResponses,
        detail: { summary: 'Send a message: SSE (200) with `Accept: text/event-stream`, else waits and returns both messages (201)', ...chatEventStream },
      },
    )
    .post(
      '/conversations/:id/messages/:message_id/regenerate',
      async ({ principal, params, body, request, status }) => {
        const started = await chat.regenerate(principal, params.id, params.message_id, { modelId: body?.model_id, temperature: body?.temperature, maxTokens: body?.max_tokens })
        return wantsStream(request) ? stream(started.run, request) : status(201, await turnResult(started))
      },
      {
        auth: true,
        params: m.messageParams,
        body: m.regenerateBody,
        response: turnResponses,
        detail: { summary: 'A new answer as a sibling; the active branch switches to it', ...chatEventStream },
      },
    )
    .get(
      '/conversations/:id/stream',
      async ({ principal, params, request, status }) => {
        const run = await chat.runOf(principal, params.id)
        const last = Number(request.headers.get('last-event-id') ?? 0)
        if (!run || (run.done && last >= run.events.length)) return status(204, undefined)
        return stream(run, request)
      },
      {
        auth: true,
        params: idParams,
        response: { 204: z.void(), ...problems(401, 404, 422, 429) },
        detail: { summary: 'Re-attach to the generation in progress (honours Last-Event-ID); 204 when nothing runs', ...chatEventStream },
      },
    )
    .post('/conversations/:id/stop', async ({ principal, params }) => ({ stopped: await chat.stop(principal, params.id) }), {
      auth: true,
      params: idParams,
      response: { 200: z.object({ stopped: z.boolean() }), ...problems(401, 404, 422, 429) },
      detail: { summary: 'Stop the generation; the partial answer is kept with status stopped' },
    })
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
        response: { 201: z.object({ share_token: z.string(), url: z.string() }), ...problems(401, 404, 422, 429) },
        detail: { summary: 'A frozen public snapshot of the conversation as it is now (replaces an earlier one)' },
      },
    )
    .delete(
      '/conversations/:id/share',
      async ({ principal, params, set }) => {
        await chat.unshare(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 404, 422, 429) } },
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
        query: z.object({ format: z.enum(['json', 'markdown']).default('json') }),
        response: problems(401, 404, 422, 429),
        detail: {
          summary: 'Export the active branch as JSON or Markdown (a download)',
          responses: {
            200: {
              description: 'The conversation as a download: JSON (`format=json`, the conversation with its messages) or Markdown (`format=markdown`)',
              content: { 'application/json': { schema: z.toJSONSchema(m.conversationWithMessages, { unrepresentable: 'any' }) as { type: 'object' } }, 'text/markdown': { schema: { type: 'string' as const } } },
            },
          },
        },
      },
    )
    .get(
      '/chat/stream',
      async ({ principal, query, request }) => {
        const conversationId = query.conversation_id ?? (await chat.create(principal, {})).id
        const started = await chat.send(principal, conversationId, { content: query.query, modelId: query.model, language: query.language })
        return stream(started.run, request)
      },
      {
        auth: true,
        query: m.chatStreamQuery,
        response: problems(401, 402, 404, 409, 422, 429),
        detail: { summary: 'Chat SSE for EventSource clients (GET, cookie auth); creates a conversation when none is given', ...chatEventStream },
      },
    )
    .post('/chat/stop', async ({ principal, body }) => ({ stopped: await chat.stop(principal, body.conversation_id) }), {
      auth: true,
      body: z.object({ conversation_id: z.string().min(1).max(64) }),
      response: { 200: z.object({ stopped: z.boolean() }), ...problems(401, 404, 422, 429) },
    })
    .get(
      '/share/:token',
      async ({ params }) => {
        const { title, messages, createdAt } = await chat.shared(params.token)
        return { title, messages, created_at: createdAt.toISOString() }
      },
      {
        params: z.object({ token: z.string().min(1).max(100) }),
        response: { 200: m.sharedSchema, ...problems(404, 422, 429) },
        detail: { summary: 'A shared conversation (no auth)' },
      },
    )
}
