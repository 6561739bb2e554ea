/**
 * @module Conversations and streaming chat. Messages form a tree; the conversation's active leaf
 * names the branch shown. Sending starts a run (src/runs) that streams from the model, writes the
 * assistant message as it grows, and records usage; clients subscribe to the run's events.
 */
import { and, asc, count, desc, eq, inArray, lt, or, sql, type SQL } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { isUniqueViolation } from '../../db/errors.ts'
import { withLock } from '../../db/lock.ts'
import { randomToken, sha256 } from '../../lib/crypto.ts'
import { conflict, notFound, validationError } from '../../lib/errors.ts'
import type { Logger } from '../../lib/logger.ts'
import { streamChat, UpstreamError, type FinishReason } from '../../llm/index.ts'
import type { Run, RunRegistry } from '../../runs/index.ts'
import type { Principal } from '../auth/service.ts'
import type { ConfigsService } from '../configs/service.ts'
import type { ProvidersService, ResolvedModel } from '../providers/service.ts'
import { costOf, type UsageService } from '../usage/service.ts'
import type { UsersService } from '../users/service.ts'

type ConversationRow = Database['t']['conversations']['$inferSelect']
type MessageRow = Database['t']['messages']['$inferSelect']

/** How often a growing answer is written to the database. */
const FLUSH_MS = 250
/** A streaming message not written for this long belongs to a run that died (live runs write at least every 10 s). */
export const STALE_STREAMING_MS = 20_000
const DEFAULT_MAX_OUTPUT = 4096

export interface PresetLike {
  systemPrompt: string | null
  modelId: string | null
  temperature: number | null
  maxTokens: number | null
}

export interface ChatDeps {
  database: Database
  logger: Logger
  runs: RunRegistry
  providers: ProvidersService
  usage: UsageService
  users: UsersService
  configs: ConfigsService
  /** the preset a conversation names, if the caller may see it */
  presetOf: (p: Principal, id: string) => Promise<PresetLike | undefined>
  /** the user's remembered facts, oldest first */
  memoriesOf: (userId: string) => Promise<string[]>
}

export function toConversation(c: ConversationRow) {
  return {
    id: c.id,
    title: c.title,
    model_id: c.modelId,
    preset_id: c.presetId,
    system_prompt: c.systemPrompt,
    is_favorite: c.isFavorite,
    message_count: c.messageCount,
    created_at: c.createdAt.toISOString(),
    updated_at: c.updatedAt.toISOString(),
  }
}

export function toMessage(m: MessageRow) {
  return {
    id: m.id,
    conversation_id: m.conversationId,
    parent_id: m.parentId,
    role: m.role,
    content: m.content,
    parts: m.parts ?? undefined,
    status: m.status,
    metadata: m.metadata,
    created_at: m.createdAt.toISOString(),
  }
}
export type MessageDto = ReturnType<typeof toMessage>

/** The path from the root to `leafId`, oldest first. */
export function branchOf(all: MessageRow[], leafId: string | null): MessageRow[] {
  const byId = new Map(all.map((m) => [m.id, m]))
  const path: MessageRow[] = []
  for (let m = leafId ? byId.get(leafId) : undefined; m; m = m.parentId ? byId.get(m.parentId) : undefined) path.push(m)
  return path.reverse()
}

/** The words of a search, lower-cased: letters, digits and _ only (so they are safe in any query syntax). */
const searchWords = (q: string) => (q.toLowerCase().match(/[\p{L}\p{N}_]+/gu) ?? []).slice(0, 16)
/** FTS5: every word must match, as a prefix. */
const ftsQuery = (words: string[]) => words.map((w) => `"${w}"*`).join(' ')
/** Postgres tsquery: the same. */
const tsQuery = (words: string[]) => words.map((w) => `${w}:*`).join(' & ')

export function createChatService(deps: ChatDeps) {
  const { database, logger, runs, providers, usage, users, configs } = deps
  const { db, t } = database

  async function owned(p: Principal, id: string): Promise<ConversationRow> {
    const [row] = await db.select().from(t.conversations).where(and(eq(t.conversations.id, id), eq(t.conversations.userId, p.userId)))
    if (!row) throw notFound('Conversation')
    return row
  }

  const messagesOf = (conversationId: string) => db.select().from(t.messages).where(eq(t.messages.conversationId, conversationId)).orderBy(asc(t.messages.createdAt), asc(t.messages.id))

  /** A model by catalogue id or by name. */
  async function resolveModel(p: Principal, ref: string): Promise<ResolvedModel> {
    const found = (await providers.resolve(p, ref)) ?? (await providers.modelOf(p, ref).catch(() => undefined))
    if (!found || !found.model.isAvailable) throw validationError(`No model '${ref}' you can use`, [{ path: 'model_id', message: 'unknown or unavailable model' }])
    return found
  }

  /** Which model a new answer uses: the request's, the conversation's, its preset's, the user's default, the default. */
  async function pickModel(p: Principal, requested: string | undefined, conversation: ConversationRow, preset: PresetLike | undefined): Promise<ResolvedModel> {
    const ref = requested ?? conversation.modelId ?? preset?.modelId ?? (await users.profile(p.userId)).preferences.default_model_id
    if (ref) return resolveModel(p, ref)
    const fallback = await providers.defaultModel(p)
    if (!fallback) throw validationError('No model is configured: add a provider and a model first', [{ path: 'model_id', message: 'no model available' }])
    return fallback
  }

  /** System prompt, memories and as much history as the user's preference and the model's window allow. */
  async function buildContext(p: Principal, conversation: ConversationRow, preset: PresetLike | undefined, history: MessageRow[], model: ResolvedModel, maxTokens: number | undefined, language?: 'zh' | 'en') {
    const { preferences } = await users.profile(p.userId)
    const system: string[] = []
    const base = conversation.systemPrompt ?? preset?.systemPrompt ?? (await configs.value('chat', 'default_system_prompt'))
    if (base) system.push(base)
    if (preferences.memory_enabled) {
      const facts = await deps.memoriesOf(p.userId)
      if (facts.length) system.push(`Things the user asked you to remember:\n${facts.map((f) => `- ${f}`).join('\n')}`)
    }
    if (language) system.push(language === 'zh' ? 'Answer in Chinese.' : 'Answer in English.')
    const newest = history[history.length - 1]!
    let earlier = history.slice(0, -1).filter((m) => (m.role === 'user' || m.role === 'assistant') && m.content && m.status !== 'error')
    // context_rounds: the last N user→assistant exchanges (0: only the new message)
    const rounds = preferences.context_rounds
    let seen = 0
    let start = earlier.length
    while (start > 0 && seen < rounds) {
      start--
      if (earlier[start]!.role === 'user') seen++
    }
    earlier = earlier.slice(start)
    // the model's context window: drop the oldest turns (never the system prompt or the new message)
    const window = model.model.contextWindow
    if (window) {
      const estimate = (text: string) => Math.ceil(text.length / 4) + 4
      const budget = window - (maxTokens ?? Math.min(DEFAULT_MAX_OUTPUT, Math.floor(window / 4)))
      let used = estimate(system.join('\n')) + estimate(newest.content)
      let keepFrom = earlier.length
      while (keepFrom > 0 && used + estimate(earlier[keepFrom - 1]!.content) <= budget) used += estimate(earlier[--keepFrom]!.content)
      earlier = earlier.slice(keepFrom)
    }
    return {
      system: system.length ? system.join('\n\n') : undefined,
      messages: [...earlier, newest].map((m) => ({ role: m.role as 'user' | 'assistant', content: m.content })),
    }
  }

  /**
   * Generate an assistant answer to `userMessage` in a run. The assistant row already exists
   * (status streaming); it is written as the text grows and settled at the end.
   */
  function generate(p: Principal, run: Run, ctx: { conversation: ConversationRow; model: ResolvedModel; assistantId: string; request: Awaited<ReturnType<typeof buildContext>>; temperature?: number; maxTokens?: number; held: number; userMessage: MessageRow }) {
    return (async () => {
      const { conversation, model, assistantId } = ctx
      const started = performance.now()
      let text = ''
      let reasoning = ''
      let ttft: number | null = null
      let dirty = false
      let lastWrite = Date.now()
      const toolCalls: { id: string; name: string; arguments: string }[] = []
      let finishReason: FinishReason | 'stopped' = 'stop'
      let usageSeen = { inputTokens: 0, outputTokens: 0 }
      let status: 'complete' | 'stopped' | 'error' = 'complete'
      let errorInfo: { code: string; message: string } | undefined

      const write = async () => {
        dirty = false
        lastWrite = Date.now()
        await db.update(t.messages).set({ content: text, updatedAt: new Date() }).where(eq(t.messages.id, assistantId))
      }
      // writes the growing text every FLUSH_MS, and at least every 10 s as a heartbeat
      const flusher = setInterval(() => {
        if (dirty || Date.now() - lastWrite > 10_000) void write().catch((error) => logger.warn('could not write the growing answer', { error }))
      }, FLUSH_MS)

      try {
        const events = streamChat(await providers.connection(model.provider, p), { model: model.model.modelId, ...ctx.request, temperature: ctx.temperature, maxTokens: ctx.maxTokens }, run.signal)
        for await (const e of events) {
          ttft ??= Math.round(performance.now() - started)
          if (e.type === 'text') {
            text += e.text
            dirty = true
            run.emit('delta', { text: e.text })
          } else if (e.type === 'reasoning') {
            reasoning += e.text
            run.emit('reasoning', { text: e.text })
          } else if (e.type === 'tool_call') {
            toolCalls.push(e)
            run.emit('tool_call', { id: e.id, name: e.name, arguments: e.arguments })
          } else {
            finishReason = e.reason
            usageSeen = e.usage
          }
        }
        if (run.signal.aborted) {
          status = 'stopped'
          finishReason = 'stopped'
        }
      } catch (error) {
        if (run.signal.aborted) {
          status = 'stopped'
          finishReason = 'stopped'
        } else {
          status = 'error'
          finishReason = 'error'
          errorInfo = { code: 'UPSTREAM_ERROR', message: error instanceof UpstreamError ? error.message : 'The model call failed' }
          if (!(error instanceof UpstreamError)) logger.error('chat generation failed', { error, conversation_id: conversation.id })
        }
      } finally {
        clearInterval(flusher)
      }

      const cost = costOf(usageSeen.inputTokens, usageSeen.outputTokens, model.model)
      const metadata = {
        model: model.model.name,
        provider_id: model.provider.id,
        input_tokens: usageSeen.inputTokens,
        output_tokens: usageSeen.outputTokens,
        cost,
        latency_ms: Math.round(performance.now() - started),
        ttft_ms: ttft,
        finish_reason: finishReason,
        ...(reasoning ? { reasoning } : {}),
        ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
        ...(errorInfo ? { error: errorInfo.message } : {}),
      }
      await db.update(t.messages).set({ content: text, status, metadata, updatedAt: new Date() }).where(eq(t.messages.id, assistantId))
      await db.update(t.conversations).set({ updatedAt: new Date() }).where(eq(t.conversations.id, conversation.id))
      const settled = usage.settle(
        { userId: p.userId, providerId: model.provider.id, model: model.model.name, source: 'chat', inputTokens: usageSeen.inputTokens, outputTokens: usageSeen.outputTokens, cost, latencyMs: metadata.latency_ms, ttftMs: ttft, status: status === 'complete' ? 'ok' : status === 'stopped' ? 'aborted' : 'error' },
        ctx.held,
      )
      if (usageSeen.inputTokens || usageSeen.outputTokens) run.emit('usage', { input_tokens: usageSeen.inputTokens, output_tokens: usageSeen.outputTokens, cost })
      if (errorInfo) run.emit('error', errorInfo)
      run.emit('done', { conversation_id: conversation.id, message_id: assistantId, finish_reason: finishReason })
      // the run ends (and a waiting JSON request answers) once usage is written too
      await settled
      if (!conversation.title && status === 'complete') void giveTitle(p, conversation.id, ctx.userMessage.content, text, model).catch((error) => logger.warn('could not title the conversation', { error }))
    })()
  }

  /** A short title from the model, else the first words of the question. */
  async function giveTitle(p: Principal, conversationId: string, question: string, answer: string, model: ResolvedModel) {
    let title = ''
    try {
      const titleRef = await configs.value('chat', 'title_model')
      const titleModel = titleRef ? await resolveModel(p, titleRef) : model
      const prompt = `Write a title of at most six words for this conversation. Reply with the title only.\n\nUser: ${question.slice(0, 2000)}\nAssistant: ${answer.slice(0, 2000)}`
      for await (const e of streamChat(await providers.connection(titleModel.provider, p), { model: titleModel.model.modelId, messages: [{ role: 'user', content: prompt }], maxTokens: 24 })) if (e.type === 'text') title += e.text
    } catch {}
    title = title.replace(/^["'\s#*]+|["'\s*]+$/g, '').split('\n')[0]!.slice(0, 100)
    if (!title) title = firstWords(question)
    await db.update(t.conversations).set({ title }).where(and(eq(t.conversations.id, conversationId), sql`${t.conversations.title} IS NULL`))
  }

  /** Insert the user message (unless regenerating) and the streaming assistant placeholder; 409 when a run is going. */
  async function openTurn(conversation: ConversationRow, userContent: string | null, parentId: string | null, regenerateOf: MessageRow | null, modelName: string) {
    try {
      return await withLock(database, `conversation:${conversation.id}`, async (q) => {
        const [busy] = await q.select({ id: t.messages.id, updatedAt: t.messages.updatedAt }).from(t.messages).where(and(eq(t.messages.conversationId, conversation.id), eq(t.messages.status, 'streaming')))
        if (busy) {
          // an answer whose run died with its process: close it here rather than wait for the sweep
          if (Date.now() - busy.updatedAt.getTime() < STALE_STREAMING_MS) throw conflict('An answer is already being generated in this conversation; stop it or wait')
          await q.update(t.messages).set({ status: 'error', updatedAt: new Date() }).where(eq(t.messages.id, busy.id))
        }
        const now = Date.now()
        let userMessage: MessageRow
        if (regenerateOf) userMessage = regenerateOf
        else {
          const [u] = await q.insert(t.messages).values({ conversationId: conversation.id, parentId, role: 'user', content: userContent!, status: 'complete', createdAt: new Date(now), updatedAt: new Date(now) }).returning()
          userMessage = u!
        }
        const [assistant] = await q
          .insert(t.messages)
          .values({ conversationId: conversation.id, parentId: userMessage.id, role: 'assistant', content: '', status: 'streaming', metadata: { model: modelName }, createdAt: new Date(now + 1), updatedAt: new Date(now + 1) })
          .returning()
        await q
          .update(t.conversations)
          .set({ activeLeafId: assistant!.id, messageCount: sql`${t.conversations.messageCount} + ${regenerateOf ? 1 : 2}`, updatedAt: new Date(now) })
          .where(eq(t.conversations.id, conversation.id))
        return { userMessage, assistant: assistant! }
      })
    } catch (error) {
      if (isUniqueViolation(error)) throw conflict('An answer is already being generated in this conversation; stop it or wait')
      throw error
    }
  }

  /** Start a turn: pick the model, hold credits, store messages, start the run. */
  async function startTurn(p: Principal, conversation: ConversationRow, input: { content?: string; parentId?: string | null; regenerateOf?: MessageRow; modelId?: string; temperature?: number; maxTokens?: number; language?: 'zh' | 'en' }) {
    const preset = conversation.presetId ? await deps.presetOf(p, conversation.presetId) : undefined
    const model = await pickModel(p, input.modelId, conversation, preset)
    const maxTokens = input.maxTokens ?? preset?.maxTokens ?? undefined
    const temperature = input.temperature ?? preset?.temperature ?? undefined
    const all = await messagesOf(conversation.id)
    let parentId: string | null
    if (input.regenerateOf) parentId = input.regenerateOf.id
    else {
      parentId = input.parentId === undefined ? (conversation.activeLeafId ?? null) : input.parentId
      if (parentId && !all.some((m) => m.id === parentId)) throw validationError('parent_id is not a message of this conversation', [{ path: 'parent_id', message: 'not in this conversation' }])
    }
    const historyBefore = parentId ? branchOf(all, parentId) : []
    const estimateIn = Math.ceil((historyBefore.reduce((n, m) => n + m.content.length, 0) + (input.content?.length ?? 0)) / 4)
    const held = await usage.reserve(p.userId, costOf(estimateIn, maxTokens ?? model.model.maxOutputTokens ?? DEFAULT_MAX_OUTPUT, model.model))
    let opened
    try {
      opened = await openTurn(conversation, input.content ?? null, input.regenerateOf ? null : parentId, input.regenerateOf ?? null, model.model.name)
    } catch (error) {
      await usage.release(p.userId, held)
      throw error
    }
    const { userMessage, assistant } = opened
    const history = input.regenerateOf ? branchOf(all, input.regenerateOf.id) : [...historyBefore, userMessage]
    const request = await buildContext(p, conversation, preset, history, model, maxTokens, input.language)
    const run = runs.start(conversation.id, (r) => {
      r.emit('message.created', { conversation_id: conversation.id, user_message: toMessage(userMessage), assistant_message_id: assistant.id })
      return generate(p, r, { conversation, model, assistantId: assistant.id, request, temperature, maxTokens, held, userMessage })
    })
    if (!run) throw conflict('An answer is already being generated in this conversation; stop it or wait')
    run.ownerId = p.userId
    return { run, userMessage, assistantId: assistant.id }
  }

  async function getMessage(id: string) {
    const [m] = await db.select().from(t.messages).where(eq(t.messages.id, id))
    if (!m) throw notFound('Message')
    return m
  }

  return {
    owned,
    messagesOf,
    getMessage,

    async list(p: Principal, filter: { q?: string; favorites?: boolean; limit: number; offset: number }) {
      const conditions: SQL[] = [eq(t.conversations.userId, p.userId)]
      if (filter.favorites) conditions.push(eq(t.conversations.isFavorite, true))
      const q = filter.q?.trim()
      if (q) {
        const like = `%${q.toLowerCase().replace(/[\\%_]/g, (c) => '\\' + c)}%`
        const inTitle = sql`lower(coalesce(${t.conversations.title}, '')) LIKE ${like} ESCAPE '\\'`
        const words = searchWords(q)
        const inMessages = !words.length
          ? undefined
          : database.dialect === 'postgres'
            ? sql`EXISTS (SELECT 1 FROM ${t.messages} m WHERE m.conversation_id = ${t.conversations.id} AND to_tsvector('simple', m.content) @@ to_tsquery('simple', ${tsQuery(words)}))`
            : sql`EXISTS (SELECT 1 FROM messages_fts JOIN ${t.messages} m ON m.rowid = messages_fts.rowid WHERE messages_fts MATCH ${ftsQuery(words)} AND m.conversation_id = ${t.conversations.id})`
        conditions.push(inMessages ? or(inTitle, inMessages)! : inTitle)
      }
      const where = and(...conditions)
      const [rows, [total]] = await Promise.all([
        db.select().from(t.conversations).where(where).orderBy(desc(t.conversations.updatedAt), desc(t.conversations.id)).limit(filter.limit).offset(filter.offset),
        db.select({ n: count() }).from(t.conversations).where(where),
      ])
      return { rows, total: Number(total?.n ?? 0) }
    },

    async create(p: Principal, input: { title?: string | null; model_id?: string | null; preset_id?: string | null; system_prompt?: string | null }) {
      if (input.preset_id && !(await deps.presetOf(p, input.preset_id))) throw validationError('Unknown preset', [{ path: 'preset_id', message: 'no such preset' }])
      if (input.model_id) await resolveModel(p, input.model_id)
      const [row] = await db.insert(t.conversations).values({ userId: p.userId, title: input.title ?? null, modelId: input.model_id ?? null, presetId: input.preset_id ?? null, systemPrompt: input.system_prompt ?? null }).returning()
      return row!
    },

    /** The conversation and its active branch, oldest first. */
    async get(p: Principal, id: string) {
      const conversation = await owned(p, id)
      return { conversation, messages: branchOf(await messagesOf(id), conversation.activeLeafId) }
    },

    async update(p: Principal, id: string, input: { title?: string | null; is_favorite?: boolean; model_id?: string | null; system_prompt?: string | null }) {
      await owned(p, id)
      if (input.model_id) await resolveModel(p, input.model_id)
      const values: Partial<Database['t']['conversations']['$inferInsert']> = { updatedAt: new Date() }
      if (input.title !== undefined) values.title = input.title
      if (input.is_favorite !== undefined) values.isFavorite = input.is_favorite
      if (input.model_id !== undefined) values.modelId = input.model_id
      if (input.system_prompt !== undefined) values.systemPrompt = input.system_prompt
      const [row] = await db.update(t.conversations).set(values).where(eq(t.conversations.id, id)).returning()
      return row!
    },

    async remove(p: Principal, id: string) {
      await owned(p, id)
      await runs.stop(id)
      await db.delete(t.conversations).where(eq(t.conversations.id, id))
    },

    async toggleFavorite(p: Principal, id: string) {
      const c = await owned(p, id)
      await db.update(t.conversations).set({ isFavorite: !c.isFavorite }).where(eq(t.conversations.id, id))
      return !c.isFavorite
    },

    /** Send a message: 409 when an answer is being generated. */
    async send(p: Principal, conversationId: string, input: { content: string; parent_id?: string | null; model_id?: string; temperature?: number; max_tokens?: number; language?: 'zh' | 'en' }) {
      const conversation = await owned(p, conversationId)
      return startTurn(p, conversation, { content: input.content, parentId: input.parent_id, modelId: input.model_id, temperature: input.temperature, maxTokens: input.max_tokens, language: input.language })
    },

    /** A new answer to the question of `messageId` (an assistant message), as its sibling. */
    async regenerate(p: Principal, conversationId: string, messageId: string, input: { model_id?: string; temperature?: number; max_tokens?: number } = {}) {
      const conversation = await owned(p, conversationId)
      const target = await getMessage(messageId)
      if (target.conversationId !== conversationId) throw notFound('Message')
      const question = target.role === 'assistant' ? (target.parentId ? await getMessage(target.parentId) : undefined) : target
      if (!question || question.role !== 'user') throw validationError('Only an answer to a question (or the question) can be regenerated', [{ path: 'message_id', message: 'not an answer' }])
      return startTurn(p, conversation, { regenerateOf: question, modelId: input.model_id, temperature: input.temperature, maxTokens: input.max_tokens })
    },

    /** Stop the generation in progress, keeping the partial answer — on whichever instance runs it. */
    async stop(p: Principal, conversationId: string) {
      await owned(p, conversationId)
      if (await runs.stop(conversationId)) return true
      if (database.dialect !== 'postgres') return false
      const [busy] = await db.select({ id: t.messages.id }).from(t.messages).where(and(eq(t.messages.conversationId, conversationId), eq(t.messages.status, 'streaming')))
      if (busy) await runs.stopElsewhere(conversationId)
      return !!busy
    },

    /** The conversation's run, when one is going or finished moments ago. */
    async runOf(p: Principal, conversationId: string) {
      const run = runs.get(conversationId)
      // a run started here knows its owner: thousands of re-attaching clients cost no query
      if (run?.ownerId === p.userId) return run
      await owned(p, conversationId)
      return run
    },

    async share(p: Principal, conversationId: string) {
      const { conversation, messages } = await this.get(p, conversationId)
      const token = randomToken(24)
      const snapshot = { title: conversation.title, messages: messages.filter((m) => m.role !== 'system').map((m) => ({ role: m.role, content: m.content, created_at: m.createdAt.toISOString() })) }
      await db.delete(t.shares).where(eq(t.shares.conversationId, conversationId))
      await db.insert(t.shares).values({ conversationId, tokenHash: sha256(token), snapshot })
      return token
    },

    async unshare(p: Principal, conversationId: string) {
      await owned(p, conversationId)
      const gone = await db.delete(t.shares).where(eq(t.shares.conversationId, conversationId)).returning({ id: t.shares.id })
      if (!gone.length) throw notFound('Share')
    },

    async shared(token: string) {
      const [row] = await db.select().from(t.shares).where(eq(t.shares.tokenHash, sha256(token)))
      if (!row) throw notFound('Share')
      return { title: row.snapshot.title, messages: row.snapshot.messages, created_at: row.createdAt.toISOString() }
    },

    /** Answers left `streaming` by a process that died: marked `error`, their text kept. */
    async recoverInterrupted(all: boolean) {
      const cutoff = new Date(Date.now() - STALE_STREAMING_MS)
      const rows = await db
        .update(t.messages)
        .set({ status: 'error', updatedAt: new Date() })
        .where(and(eq(t.messages.status, 'streaming'), all ? undefined : lt(t.messages.updatedAt, cutoff)))
        .returning({ id: t.messages.id })
      if (rows.length) logger.warn('answers interrupted by a stop were marked error', { count: rows.length })
      return rows.length
    },

    /** Stats for /users/me/stats. */
    async countsOf(userId: string) {
      const [c] = await db.select({ n: count() }).from(t.conversations).where(eq(t.conversations.userId, userId))
      const [m] = await db
        .select({ n: count() })
        .from(t.messages)
        .where(inArray(t.messages.conversationId, db.select({ id: t.conversations.id }).from(t.conversations).where(eq(t.conversations.userId, userId))))
      return { conversations: Number(c?.n ?? 0), messages: Number(m?.n ?? 0) }
    },

    async totals() {
      const [c] = await db.select({ n: count() }).from(t.conversations)
      const [m] = await db.select({ n: count() }).from(t.messages)
      return { conversations: Number(c?.n ?? 0), messages: Number(m?.n ?? 0) }
    },
  }
}

export const firstWords = (text: string) => {
  const words = text.trim().replace(/\s+/g, ' ').slice(0, 60)
  return words.length < text.trim().length ? words.replace(/\s\S*$/, '') + '…' : words || 'New conversation'
}

export type ChatService = ReturnType<typeof createChatService>
