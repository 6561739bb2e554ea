/** @module /api/v1/conversations, /api/v1/chat and /api/v1/share (API.md §7). */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { AppError } from '../../lib/errors.ts'
import { isoDate, listQuery, page, pageOf, problemSchema } from '../../lib/schemas.ts'
import { sseResponse } from '../../lib/sse.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import type { Run } from '../../runs/index.ts'
import { toConversation, toMessage, type ChatService } from './service.ts'

const conversationSchema = z
  .object({ id: z.string(), title: z.string().nullable(), model_id: z.string().nullable(), preset_id: z.string().nullable(), system_prompt: z.string().nullable(), is_favorite: z.boolean(), message_count: z.number().int(), created_at: isoDate, updated_at: isoDate })
  .meta({ id: 'Conversation' })
const messageSchema = z
  .object({
    id: z.string(),
    conversation_id: z.string(),
    parent_id: z.string().nullable(),
    role: z.enum(['system', 'user', 'assistant', 'tool']),
    content: z.string(),
    parts: z.array(z.unknown()).optional(),
    status: z.enum(['complete', 'streaming', 'stopped', 'error']),
    metadata: z.record(z.string(), z.unknown()),
    created_at: isoDate,
  })
  .meta({ id: 'Message' })
const idParams = z.object({ id: z.string().min(1).max(64) })
const optText = (max: number) => z.string().max(max).nullable().optional()
const sendBody = z.object({
  content: z.string().trim().min(1).max(200_000),
  model_id: z.string().max(200).optional(),
  parent_id: z.string().max(64).nullable().optional(),
  temperature: z.number().min(0).max(2).optional(),
  max_tokens: z.number().int().min(1).max(1_000_000).optional(),
})
/** OpenAPI description of an SSE answer (events: see the guide's chat events table). */
const sseDoc = (extra: Record<string, { description: string }> = {}) => ({
  200: { description: 'text/event-stream of chat events: message.created, delta, reasoning, tool_call, usage, error, done', content: { 'text/event-stream': { schema: { type: 'string' as const } } } },
  401: { description: 'Problem' },
  404: { description: 'Problem' },
  ...extra,
})
const problems = { 401: problemSchema, 403: problemSchema, 404: problemSchema, 409: problemSchema, 422: problemSchema, 402: problemSchema, 502: problemSchema }

export function chatRoutes(deps: { chat: ChatService; authPlugin: ReturnType<typeof authPlugin>; shutdown: AbortSignal }) {
  const { chat } = deps

  /** A run as SSE from after `Last-Event-ID`. */
  const stream = (run: Run, request: Request) => {
    const last = Number(request.headers.get('last-event-id') ?? 0)
    return sseResponse(run.feed(Number.isSafeInteger(last) && last > 0 ? last : 0), { shutdown: deps.shutdown })
  }

  const wantsStream = (request: Request) => request.headers.get('accept')?.includes('text/event-stream') ?? false

  /** The JSON answer of a turn: waits for the run, then both messages (502 when the model failed). */
  async function turnResult(started: { run: Run; userMessage: Parameters<typeof toMessage>[0]; assistantId: string }, set: { status?: number | string }) {
    await started.run.completed
    const assistant = await chat.getMessage(started.assistantId)
    if (assistant.status === 'error') throw new AppError(502, 'UPSTREAM_ERROR', String(assistant.metadata.error ?? 'The model call failed'))
    set.status = 201
    return { user_message: toMessage(started.userMessage), assistant_message: toMessage(assistant) }
  }

  return new Elysia({ name: 'hearth.routes.chat', prefix: '/api/v1', detail: { tags: ['Chat'] } })
    .use(deps.authPlugin)
    .get(
      '/conversations',
      async ({ principal, query }) => {
        const { rows, total } = await chat.list(principal, { q: query.q, favorites: query.favorites === 'true', limit: query.limit, offset: query.offset })
        return pageOf(rows.map(toConversation), total, query)
      },
      {
        auth: true,
        query: listQuery.extend({ q: z.string().max(200).optional(), favorites: z.enum(['true', 'false']).optional() }),
        response: { 200: page(conversationSchema), ...problems },
        detail: { summary: 'Your conversations, most recently updated first; `q` searches titles and message text' },
      },
    )
    .post(
      '/conversations',
      async ({ principal, body, set }) => {
        const row = await chat.create(principal, body)
        set.status = 201
        set.headers.location = `/api/v1/conversations/${row.id}`
        return toConversation(row)
      },
      { auth: true, body: z.object({ title: optText(200), model_id: optText(200), preset_id: optText(64), system_prompt: optText(20_000) }), response: { 201: conversationSchema, ...problems } },
    )
    .get(
      '/conversations/:id',
      async ({ principal, params }) => {
        const { conversation, messages } = await chat.get(principal, params.id)
        return { ...toConversation(conversation), messages: messages.map(toMessage) }
      },
      { auth: true, params: idParams, response: { 200: conversationSchema.extend({ messages: z.array(messageSchema) }), ...problems }, detail: { summary: 'A conversation with its active branch, oldest first' } },
    )
    .patch('/conversations/:id', async ({ principal, params, body }) => toConversation(await chat.update(principal, params.id, body)), {
      auth: true,
      params: idParams,
      body: z.object({ title: optText(200), is_favorite: z.boolean().optional(), model_id: optText(200), system_prompt: optText(20_000) }),
      response: { 200: conversationSchema, ...problems },
    })
    .delete(
      '/conversations/:id',
      async ({ principal, params, set }) => {
        await chat.remove(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems }, detail: { summary: 'Delete a conversation and its messages' } },
    )
    .post('/conversations/:id/favorite', async ({ principal, params }) => ({ is_favorite: await chat.toggleFavorite(principal, params.id) }), {
      auth: true,
      params: idParams,
      response: { 200: z.object({ is_favorite: z.boolean() }), ...problems },
    })
    .post(
      '/conversations/:id/messages',
      async ({ principal, params, body, request, set }) => {
        const started = await chat.send(principal, params.id, body)
        return wantsStream(request) ? stream(started.run, request) : turnResult(started, set)
      },
      {
        auth: true,
        params: idParams,
        body: sendBody,
        response: { 201: z.object({ user_message: messageSchema, assistant_message: messageSchema }), ...problems },
        detail: { summary: 'Send a message: SSE with `Accept: text/event-stream`, else waits and returns both messages' },
      },
    )
    .post(
      '/conversations/:id/messages/:message_id/regenerate',
      async ({ principal, params, body, request, set }) => {
        const started = await chat.regenerate(principal, params.id, params.message_id, body ?? {})
        return wantsStream(request) ? stream(started.run, request) : turnResult(started, set)
      },
      {
        auth: true,
        params: z.object({ id: z.string().min(1).max(64), message_id: z.string().min(1).max(64) }),
        body: sendBody.omit({ content: true, parent_id: true }).optional(),
        response: { 201: z.object({ user_message: messageSchema, assistant_message: messageSchema }), ...problems },
        detail: { summary: 'A new answer as a sibling; the active branch switches to it' },
      },
    )
    .get(
      '/conversations/:id/stream',
      async ({ principal, params, request, set }) => {
        const run = await chat.runOf(principal, params.id)
        const last = Number(request.headers.get('last-event-id') ?? 0)
        if (!run || (run.done && last >= run.events.length)) {
          set.status = 204
          return
        }
        return stream(run, request)
      },
      { auth: true, params: idParams, detail: { summary: 'Re-attach to the generation in progress (honours Last-Event-ID); 204 when nothing runs', responses: sseDoc({ 204: { description: 'Nothing is being generated' } }) } },
    )
    .post('/conversations/:id/stop', async ({ principal, params }) => ({ stopped: await chat.stop(principal, params.id) }), {
      auth: true,
      params: idParams,
      response: { 200: z.object({ stopped: z.boolean() }), ...problems },
      detail: { summary: 'Stop the generation; the partial answer is kept with status stopped' },
    })
    .post(
      '/conversations/:id/share',
      async ({ principal, params, set }) => {
        const token = await chat.share(principal, params.id)
        set.status = 201
        return { share_token: token, url: `/api/v1/share/${token}` }
      },
      { auth: true, params: idParams, response: { 201: z.object({ share_token: z.string(), url: z.string() }), ...problems }, detail: { summary: 'A frozen public snapshot of the conversation as it is now (replaces an earlier one)' } },
    )
    .delete(
      '/conversations/:id/share',
      async ({ principal, params, set }) => {
        await chat.unshare(principal, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems } },
    )
    .get(
      '/conversations/:id/export',
      async ({ principal, params, query }) => {
        const { conversation, messages } = await chat.get(principal, params.id)
        const name = (conversation.title ?? 'conversation').replace(/[^\w\- ]+/g, '').trim().slice(0, 60) || 'conversation'
        if (query.format === 'markdown') {
          const body = `# ${conversation.title ?? 'Conversation'}\n\n` + messages.map((m) => `**${m.role === 'user' ? 'User' : m.role === 'assistant' ? 'Assistant' : m.role}** (${m.createdAt.toISOString()})\n\n${m.content}\n`).join('\n')
          return new Response(body, { headers: { 'content-type': 'text/markdown; charset=utf-8', 'content-disposition': `attachment; filename="${name}.md"` } })
        }
        return new Response(JSON.stringify({ ...toConversation(conversation), messages: messages.map(toMessage) }, null, 2), {
          headers: { 'content-type': 'application/json', 'content-disposition': `attachment; filename="${name}.json"` },
        })
      },
      {
        auth: true,
        params: idParams,
        query: z.object({ format: z.enum(['json', 'markdown']).default('json') }),
        detail: {
          summary: 'Export the active branch as JSON or Markdown (a download)',
          responses: { 200: { description: 'The conversation', content: { 'application/json': { schema: { type: 'object' as const } }, 'text/markdown': { schema: { type: 'string' as const } } } }, 401: { description: 'Problem' }, 404: { description: 'Problem' } },
        },
      },
    )
    .get(
      '/chat/stream',
      async ({ principal, query, request }) => {
        const conversationId = query.conversation_id ?? (await chat.create(principal, {})).id
        const started = await chat.send(principal, conversationId, { content: query.query, model_id: query.model, language: query.language })
        return stream(started.run, request)
      },
      {
        auth: true,
        query: z.object({ query: z.string().trim().min(1).max(20_000), model: z.string().max(200).optional(), conversation_id: z.string().max(64).optional(), language: z.enum(['zh', 'en']).optional() }),
        detail: { summary: 'Chat SSE for EventSource clients (GET, cookie auth); creates a conversation when none is given', responses: sseDoc({ 409: { description: 'Problem: an answer is already being generated' } }) },
      },
    )
    .post('/chat/stop', async ({ principal, body }) => ({ stopped: await chat.stop(principal, body.conversation_id) }), {
      auth: true,
      body: z.object({ conversation_id: z.string().min(1).max(64) }),
      response: { 200: z.object({ stopped: z.boolean() }), ...problems },
    })
    .get('/share/:token', ({ params }) => chat.shared(params.token), {
      params: z.object({ token: z.string().min(1).max(100) }),
      response: { 200: z.object({ title: z.string().nullable(), messages: z.array(z.object({ role: z.string(), content: z.string(), created_at: isoDate })), created_at: isoDate }), 404: problemSchema },
      detail: { summary: 'A shared conversation (no auth)' },
    })
}

