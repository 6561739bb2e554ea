/**
 * @module A chat turn: the user message and a `streaming` assistant placeholder are stored under the
 * conversation's lock (one answer at a time, across instances), credits are held, and a run
 * (src/runs) streams the answer into the placeholder and out to the run's subscribers as chat
 * events. With tools (the conversation's, else its preset's), the answer is a tool loop
 * (src/generation/tool-loop.ts) whose rounds rounds.ts stores. In a conversation with a data
 * connection the answer is a question over SQL instead (sql-turn.ts). The first exchange titles an
 * untitled conversation.
 */
import { and, count, eq, gt, lt, sql } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { isUniqueViolation } from '../../db/errors.ts'
import { withLock } from '../../db/lock.ts'
import type { ModelTurns } from '../../generation/model-turn.ts'
import { createToolLoop, DEFAULT_MAX_TOOL_ROUNDS } from '../../generation/tool-loop.ts'
import { AppError } from '../../lib/errors.ts'
import type { Logger } from '../../lib/logger.ts'
import type { ChatRequest } from '../../llm/index.ts'
import type { Run, RunRegistry } from '../../runs/index.ts'
import type { Principal } from '../auth/service.ts'
import type { AgentsService, ExecutionOutcome } from '../agents/service.ts'
import type { ConfigsService } from '../configs/service.ts'
import type { Driver } from '../connections/types.ts'
import type { ResolvedModel } from '../providers/service.ts'
import type { ToolsService } from '../tools/service.ts'
import type { UsersService } from '../users/service.ts'
import type { Approvals } from './approvals.ts'
import { branchOf, buildContext } from './context.ts'
import { answerInProgress, parentNotInConversation, tooManyRuns, unusableConnection } from './errors.ts'
import { emitChatEvent as emit, toMessageDto, type ChatEventData, type ConversationRow, type MessageRow } from './model.ts'
import { createChatRounds } from './rounds.ts'
import { createSqlTurns, type SqlDeps } from './sql-turn.ts'

/** A streaming message not written for this long belongs to a run that died (live runs write at least every 10 s). */
export const STALE_STREAMING_MS = 20_000

/** The longest the title call may hold back `done` after the first exchange; then the question's first words are the title. */
const TITLE_TIMEOUT_MS = 5_000

/** What a conversation's agent contributes to its answers (agents module). */
export interface AgentLike {
  id: string
  modelId: string | null
  systemPrompt: string | null
  temperature: number | null
  maxTokens: number | null
  tools: string[]
  maxSteps: number | null
}

/** What a conversation's preset contributes to its answers. */
export interface PresetLike {
  systemPrompt: string | null
  modelId: string | null
  temperature: number | null
  maxTokens: number | null
  tools: string[]
}

export interface ChatTurnDeps {
  database: Database
  logger: Logger
  runs: RunRegistry
  turns: ModelTurns
  users: UsersService
  configs: ConfigsService
  tools: ToolsService
  approvals: Approvals
  /** the preset a conversation names, if the caller may see it */
  presetOf: (p: Principal, id: string) => Promise<PresetLike | undefined>
  /** the agent a conversation names, if the caller may use it now (visible and active) */
  agentOf: (p: Principal, id: string) => Promise<AgentLike | undefined>
  /** records each turn of a conversation with an agent (agents module) */
  agentExecutions: Pick<AgentsService['executions'], 'start' | 'finish'>
  /** the user's remembered facts, oldest first */
  memoriesOf: (userId: string) => Promise<string[]>
  /** the user's `title` prompt with these values (prompts module); without it, the built-in wording */
  titlePrompt?: (userId: string, values: { question: string; answer: string }) => Promise<string>
  /** answers one user may have generating at once, on all instances together */
  maxRunsPerUser: number
  /** questions over SQL (conversations with a `connection_id`); absent, no connection can be named */
  sql?: SqlDeps
}

export interface TurnInput {
  /** the new user message; absent when regenerating */
  content?: string
  /** where the new message goes in the tree; undefined: after the active leaf */
  parentId?: string | null
  /** regenerate: a new answer to this user message */
  regenerateOf?: MessageRow
  modelId?: string
  temperature?: number
  maxTokens?: number
  maxToolRounds?: number
  language?: 'zh' | 'en'
  /** the data connection this and later answers use (null: none any more); undefined: the conversation's */
  connectionId?: string | null
}

/** What an answer's run is given: the model, its request and tools, what was held, the question. */
interface AnswerInput {
  conversation: ConversationRow
  /** the conversation's agent: the turn is recorded as one of its executions */
  agentId?: string
  model: ResolvedModel
  assistantId: string
  request: Omit<ChatRequest, 'model' | 'tools' | 'toolChoice'>
  tools: Awaited<ReturnType<ToolsService['forModel']>>
  maxToolRounds: number
  held: number
  inputChars: number
  question: string
}

export function createChatTurns(deps: ChatTurnDeps) {
  const { database, logger, runs, turns, users, configs } = deps
  const { db, t } = database
  const runToolLoop = createToolLoop({ turns, tools: deps.tools })
  const sqlTurns = deps.sql ? createSqlTurns({ ...deps.sql, database, logger, turns }) : undefined

  const messagesOf = (conversationId: string) => db.select().from(t.messages).where(eq(t.messages.conversationId, conversationId)).orderBy(t.messages.createdAt, t.messages.id)

  /** Which model a new answer uses: the request's, the conversation's, its agent's, its preset's, the user's default, the default. */
  async function pickModel(p: Principal, requested: string | undefined, conversation: ConversationRow, agent: AgentLike | undefined, preset: PresetLike | undefined): Promise<ResolvedModel> {
    const ref = requested ?? conversation.modelId ?? agent?.modelId ?? preset?.modelId
    return ref ? turns.model(p, ref) : turns.defaultModel(p, (await users.profile(p.userId)).preferences.default_model_id)
  }

  /**
   * Insert the user message (unless regenerating) and the streaming assistant placeholder; 409 when
   * a run is going in this conversation, 429 when the user has `maxRunsPerUser` going. Under one
   * lock per user (across instances on Postgres), so concurrent sends cannot pass either check together.
   */
  async function openTurn(conversation: ConversationRow, userContent: string | null, parentId: string | null, regenerateOf: MessageRow | null, modelName: string, connectionId: string | null | undefined) {
    try {
      return await withLock(database, `chat-runs:${conversation.userId}`, async (q) => {
        const [busy] = await q.select({ id: t.messages.id, updatedAt: t.messages.updatedAt }).from(t.messages).where(and(eq(t.messages.conversationId, conversation.id), eq(t.messages.status, 'streaming')))
        if (busy) {
          // an answer whose run died with its process: close it here rather than wait for the sweep
          if (Date.now() - busy.updatedAt.getTime() < STALE_STREAMING_MS) throw answerInProgress()
          await q.update(t.messages).set({ status: 'error', updatedAt: new Date() }).where(eq(t.messages.id, busy.id))
        }
        // live runs write at least every 10 s: a streaming answer older than that belongs to a dead process and is not counted
        const [running] = await q
          .select({ n: count() })
          .from(t.messages)
          .innerJoin(t.conversations, eq(t.conversations.id, t.messages.conversationId))
          .where(and(eq(t.conversations.userId, conversation.userId), eq(t.messages.status, 'streaming'), gt(t.messages.updatedAt, new Date(Date.now() - STALE_STREAMING_MS))))
        if (Number(running?.n ?? 0) >= deps.maxRunsPerUser) throw tooManyRuns(deps.maxRunsPerUser)
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
          .set({ activeLeafId: assistant!.id, messageCount: sql`${t.conversations.messageCount} + ${regenerateOf ? 1 : 2}`, updatedAt: new Date(now), ...(connectionId === undefined ? {} : { connectionId }) })
          .where(eq(t.conversations.id, conversation.id))
        return { userMessage, assistant: assistant! }
      })
    } catch (error) {
      if (isUniqueViolation(error)) throw answerInProgress()
      throw error
    }
  }

  /**
   * The answer: its model turns (one, or a tool loop's), streamed into their rows and the run; then
   * usage (every turn's, added up), a title (the first exchange) and `done` naming the last answer.
   */
  async function answer(p: Principal, run: Run, ctx: AnswerInput) {
    const { conversation, model } = ctx
    const rounds = createChatRounds({ database, approvals: deps.approvals, run, conversationId: conversation.id, userId: conversation.userId, model, firstAnswerId: ctx.assistantId })
    const execution = ctx.agentId ? await recordStart(ctx.agentId, conversation) : undefined
    let toolCalls = 0
    const finish = async (outcome: Omit<ExecutionOutcome, 'toolCalls'>) => {
      if (execution) await deps.agentExecutions.finish(execution, { ...outcome, toolCalls }).catch((error) => logger.warn('agent execution not finished', { error, execution_id: execution }))
    }
    let loop
    try {
      loop = await runToolLoop({
        principal: p,
        model,
        request: ctx.request,
        tools: ctx.tools,
        maxRounds: ctx.maxToolRounds,
        held: ctx.held,
        inputChars: ctx.inputChars,
        source: 'chat',
        origin: { source: 'chat', conversationId: conversation.id },
        signal: run.signal,
        logFields: { conversation_id: conversation.id },
        hooks: { ...rounds.hooks, roundEnded: (round, turn, ran, next) => ((toolCalls += ran.length), rounds.hooks.roundEnded(round, turn, ran, next)) },
      })
    } catch (error) {
      await finish({ status: 'failed', inputTokens: 0, outputTokens: 0, cost: 0 })
      throw error
    }
    const { last } = loop
    const { inputTokens, outputTokens } = loop.usage
    await finish({ status: last.status === 'complete' ? 'completed' : last.status === 'stopped' ? 'cancelled' : 'failed', inputTokens, outputTokens, cost: loop.cost })
    await conclude(p, run, { conversation, model, question: ctx.question, messageId: rounds.answerId, ...last, usage: loop.usage, cost: loop.cost, settled: loop.settled })
  }

  /**
   * The end of every answer: `usage` (all its model calls added up), `error`, the title of the first
   * exchange, `done` naming its last message; the run ends once the usage is written too.
   */
  async function conclude(
    p: Principal,
    run: Run,
    end: { conversation: ConversationRow; model: ResolvedModel; question: string; messageId: string; status: string; finishReason: ChatEventData['done']['finish_reason']; text: string; error?: { code: string; message: string }; usage: { inputTokens: number; outputTokens: number }; cost: number; settled: Promise<void> },
  ) {
    const { conversation } = end
    if (end.usage.inputTokens || end.usage.outputTokens) emit(run, 'usage', { input_tokens: end.usage.inputTokens, output_tokens: end.usage.outputTokens, cost: end.cost })
    if (end.error) emit(run, 'error', end.error)
    // the first exchange titles the conversation before `done`, so clients that stop reading there have it too
    if (!conversation.title && end.status === 'complete') {
      const title = await giveTitle(p, conversation.id, end.question, end.text, end.model, run.signal).catch((error) => logger.warn('could not title the conversation', { error }))
      if (title) emit(run, 'title', { conversation_id: conversation.id, title })
    }
    emit(run, 'done', { conversation_id: conversation.id, message_id: end.messageId, finish_reason: end.finishReason })
    // the run ends (and a waiting JSON request answers) once usage is written too
    await end.settled
  }

  /** A data connection the caller may use, for a turn; 422 naming `connection_id` otherwise. */
  async function usableConnection(p: Principal, id: string): Promise<{ id: string; name: string; driver: Driver }> {
    if (!deps.sql) throw unusableConnection()
    try {
      return await deps.sql.connections.usable(p, id)
    } catch (error) {
      if (error instanceof AppError && error.status === 404) throw unusableConnection()
      throw error
    }
  }

  /** The execution of the conversation's agent that this turn is; a failure to record it is logged, never the turn's failure. */
  async function recordStart(agentId: string, conversation: ConversationRow): Promise<string | undefined> {
    try {
      return await deps.agentExecutions.start({ agentId, userId: conversation.userId, executionType: 'chat', conversationId: conversation.id })
    } catch (error) {
      logger.warn('agent execution not recorded', { error, agent_id: agentId })
      return undefined
    }
  }

  /**
   * A short title from the model (the configured title model, else the conversation's) within
   * TITLE_TIMEOUT_MS, else the first words of the question. Returns it when it was given (a title
   * set meanwhile is never replaced).
   */
  async function giveTitle(p: Principal, conversationId: string, question: string, answerText: string, model: ResolvedModel, runSignal: AbortSignal): Promise<string | undefined> {
    let title = ''
    try {
      const titleRef = await configs.value('chat', 'title_model')
      const titleModel = titleRef ? await turns.model(p, titleRef) : model
      const values = { question: question.slice(0, 2000), answer: answerText.slice(0, 2000) }
      const prompt = deps.titlePrompt
        ? await deps.titlePrompt(p.userId, values)
        : `Write a title of at most six words for this conversation. Reply with the title only.\n\nUser: ${values.question}\nAssistant: ${values.answer}`
      const signal = AbortSignal.any([runSignal, AbortSignal.timeout(TITLE_TIMEOUT_MS)])
      const result = await turns.run({ principal: p, model: titleModel, request: { messages: [{ role: 'user', content: prompt }], maxTokens: 24 }, source: 'chat', held: 0, signal, sink: {}, record: false })
      if (result.status === 'complete') title = result.text
    } catch {}
    title = title.replace(/^["'\s#*]+|["'\s*]+$/g, '').split('\n')[0]!.slice(0, 100)
    if (!title) title = firstWords(question)
    const set = await db
      .update(t.conversations)
      .set({ title })
      .where(and(eq(t.conversations.id, conversationId), sql`${t.conversations.title} IS NULL`))
      .returning({ id: t.conversations.id })
    return set.length ? title : undefined
  }

  return {
    messagesOf,
    usableConnection,

    /** Start a turn: pick the model, hold credits, store the messages, start the run. 409 while another answer is being generated. */
    async start(p: Principal, conversation: ConversationRow, input: TurnInput) {
      const preset = conversation.presetId ? await deps.presetOf(p, conversation.presetId) : undefined
      // an agent disabled (or gone) since the conversation named it contributes nothing, and the turn is no execution of it
      const agent = conversation.agentId ? await deps.agentOf(p, conversation.agentId) : undefined
      const model = await pickModel(p, input.modelId, conversation, agent, preset)
      const maxTokens = input.maxTokens ?? agent?.maxTokens ?? preset?.maxTokens ?? undefined
      const temperature = input.temperature ?? agent?.temperature ?? preset?.temperature ?? undefined
      const all = await messagesOf(conversation.id)
      let parentId: string | null
      if (input.regenerateOf) parentId = input.regenerateOf.id
      else {
        parentId = input.parentId === undefined ? (conversation.activeLeafId ?? null) : input.parentId
        if (parentId && !all.some((m) => m.id === parentId)) throw parentNotInConversation()
      }
      const connectionId = input.connectionId === undefined ? conversation.connectionId : input.connectionId
      const connection = connectionId ? await usableConnection(p, connectionId) : undefined
      // a question over SQL calls no tools: the query it runs is its one
      const toolNames = connection ? [] : conversation.tools.length ? conversation.tools : agent?.tools.length ? agent.tools : (preset?.tools ?? [])
      const tools = await deps.tools.forModel(p, toolNames)
      const historyBefore = parentId ? branchOf(all, parentId) : []
      const inputChars = historyBefore.reduce((n, m) => n + m.content.length, 0) + (input.content?.length ?? 0)
      const held = await turns.reserve(p, model, { inputChars, maxTokens })
      let opened
      try {
        opened = await openTurn(conversation, input.content ?? null, input.regenerateOf ? null : parentId, input.regenerateOf ?? null, model.model.name, input.connectionId)
      } catch (error) {
        await turns.release(p, held)
        throw error
      }
      const { userMessage, assistant } = opened
      const history = input.regenerateOf ? branchOf(all, input.regenerateOf.id) : [...historyBefore, userMessage]
      const { preferences } = await users.profile(p.userId)
      const context = buildContext({
        basePrompt: conversation.systemPrompt ?? agent?.systemPrompt ?? preset?.systemPrompt ?? (await configs.value('chat', 'default_system_prompt')),
        memories: preferences.memory_enabled ? await deps.memoriesOf(p.userId) : [],
        language: input.language,
        history,
        contextRounds: preferences.context_rounds,
        model,
        maxTokens,
        withTools: tools.specs.length > 0,
      })
      const request = { ...context, temperature, maxTokens }
      const maxToolRounds = input.maxToolRounds ?? agent?.maxSteps ?? DEFAULT_MAX_TOOL_ROUNDS
      const run = runs.start(conversation.id, async (r) => {
        emit(r, 'message.created', { conversation_id: conversation.id, user_message: toMessageDto(userMessage), assistant_message_id: assistant.id })
        if (!connection || !sqlTurns) return answer(p, r, { conversation, agentId: agent?.id, model, assistantId: assistant.id, request, tools, maxToolRounds, held, inputChars, question: userMessage.content })
        const outcome = await sqlTurns.answer(p, r, {
          conversation,
          connection,
          model,
          assistantId: assistant.id,
          held,
          question: userMessage.content,
          language: input.language ?? preferences.language,
          earlier: history.slice(0, -1),
          contextRounds: preferences.context_rounds,
          temperature,
          maxTokens,
        })
        await conclude(p, r, { conversation, model, question: userMessage.content, messageId: assistant.id, ...outcome })
      })
      if (!run) throw answerInProgress()
      run.ownerId = p.userId
      return { run, userMessage, assistantId: assistant.id }
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
  }
}

export const firstWords = (text: string) => {
  const words = text.trim().replace(/\s+/g, ' ').slice(0, 60)
  return words.length < text.trim().length ? words.replace(/\s\S*$/, '') + '…' : words || 'New conversation'
}
