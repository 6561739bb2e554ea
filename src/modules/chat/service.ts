/**
 * @module Conversations and streaming chat. Messages form a tree; the conversation's active leaf
 * names the branch shown. Sending starts a turn (turns.ts) whose run streams the answer; clients
 * subscribe to the run's events. Search is in search.ts, what the model is sent in context.ts,
 * shared snapshots in shares.ts.
 */
import { and, count, desc, eq, gt, inArray, type SQL } from 'drizzle-orm'
import type { Bus } from '../../db/bus.ts'
import type { Database } from '../../db/index.ts'
import { pageWithTotal, type PageRequest } from '../../db/query.ts'
import { deletedEvent, type Subscriptions } from '../../runs/subscriptions.ts'
import type { Principal } from '../auth/service.ts'
import type { GroupEffect } from '../groups/service.ts'
import { unusableAgent } from '../agents/errors.ts'
import { unknownTools } from '../tools/errors.ts'
import { createApprovals } from './approvals.ts'
import { branchOf } from './context.ts'
import { conversationNotFound, messageNotFound, noPendingApproval, notAnAnswer, unknownPreset } from './errors.ts'
import type { ConversationRow } from './model.ts'
import { conversationMatches } from './search.ts'
import { createShares } from './shares.ts'
import { createChatTurns, type ChatTurnDeps } from './turns.ts'

export interface ConversationInput {
  title?: string | null
  modelId?: string | null
  presetId?: string | null
  agentId?: string | null
  connectionId?: string | null
  systemPrompt?: string | null
  tools?: string[]
  isFavorite?: boolean
}

export interface SendInput {
  content: string
  parentId?: string | null
  modelId?: string
  temperature?: number
  maxTokens?: number
  maxToolRounds?: number
  language?: 'zh' | 'en'
  /** sets the conversation's data connection (null clears it); undefined keeps it */
  connectionId?: string | null
}

/** How long after a question an EventSource reconnect can still find its run (longer runs are rare; a miss only means a 204). */
const RECONNECT_WINDOW_MS = 15 * 60_000

/** What a conversation's event streams follow (src/runs/subscriptions.ts). */
export const conversationTopic = (id: string) => `conversation:${id}`

export function createChatService(
  deps: Omit<ChatTurnDeps, 'approvals'> & {
    subscriptions: Subscriptions
    bus: Bus
    approvalTimeoutMs?: number
    /** what the user's groups set: the defaults of a new conversation (docs/api.md §21) */
    groupEffectOf?: (userId: string) => GroupEffect | Promise<GroupEffect>
  },
) {
  const { database, runs, turns, subscriptions } = deps
  const { db, t } = database
  const approvals = createApprovals({ database, bus: deps.bus, timeoutMs: deps.approvalTimeoutMs })
  const chatTurns = createChatTurns({ ...deps, approvals })
  const shares = createShares({ database })
  const { messagesOf } = chatTurns

  async function owned(p: Principal, id: string): Promise<ConversationRow> {
    const [row] = await db.select().from(t.conversations).where(and(eq(t.conversations.id, id), eq(t.conversations.userId, p.userId)))
    if (!row) throw conversationNotFound()
    return row
  }

  async function getMessage(id: string) {
    const [m] = await db.select().from(t.messages).where(eq(t.messages.id, id))
    if (!m) throw messageNotFound()
    return m
  }

  /** The conversation and its active branch, oldest first. */
  async function get(p: Principal, id: string) {
    const conversation = await owned(p, id)
    return { conversation, messages: branchOf(await messagesOf(id), conversation.activeLeafId) }
  }

  const checkModel = async (p: Principal, modelId: string | null | undefined) => {
    if (modelId) await turns.model(p, modelId)
  }

  /** the tools named, each once; 422 naming `tools` for any the caller cannot use */
  async function checkedTools(p: Principal, names: string[] | undefined) {
    if (!names) return undefined
    const unique = [...new Set(names)]
    const unknown = await deps.tools.unknownOf(p, unique)
    if (unknown.length) throw unknownTools(unknown)
    return unique
  }

  /** an agent the caller may use now (global or theirs, active); 422 naming `agent_id` otherwise */
  async function checkAgent(p: Principal, agentId: string | null | undefined) {
    if (agentId && !(await deps.agentOf(p, agentId))) throw unusableAgent()
  }

  /**
   * A new conversation that names no agent and no preset takes its groups' preset, and their system
   * prompt and tools for the fields not sent (their default model applies when a turn picks one);
   * a group preset or tool the caller cannot use (any more) is left out rather than refused.
   */
  async function withGroupDefaults(p: Principal, input: ConversationInput): Promise<ConversationInput> {
    if (!deps.groupEffectOf || input.agentId || input.presetId) return input
    const e = await deps.groupEffectOf(p.userId)
    const out = { ...input }
    if (e.presetId && (await deps.presetOf(p, e.presetId.value))) out.presetId = e.presetId.value
    if (input.systemPrompt === undefined && e.systemPrompt) out.systemPrompt = e.systemPrompt.value
    if (input.tools === undefined && e.tools) {
      const unknown = new Set(await deps.tools.unknownOf(p, e.tools.value))
      out.tools = e.tools.value.filter((n) => !unknown.has(n))
    }
    return out
  }

  return {
    getMessage,
    get,

    async list(p: Principal, filter: PageRequest & { q?: string; favorites?: boolean }) {
      const conditions: SQL[] = [eq(t.conversations.userId, p.userId)]
      if (filter.favorites) conditions.push(eq(t.conversations.isFavorite, true))
      const q = filter.q?.trim()
      if (q) conditions.push(conversationMatches(database, q))
      const where = and(...conditions)
      return pageWithTotal(
        db.select().from(t.conversations).where(where).orderBy(desc(t.conversations.updatedAt), desc(t.conversations.id)).limit(filter.limit).offset(filter.offset),
        db.select({ n: count() }).from(t.conversations).where(where),
      )
    },

    async create(p: Principal, sent: ConversationInput) {
      const input = await withGroupDefaults(p, sent)
      if (input.presetId && !(await deps.presetOf(p, input.presetId))) throw unknownPreset()
      await checkModel(p, input.modelId)
      await checkAgent(p, input.agentId)
      if (input.connectionId) await chatTurns.usableConnection(p, input.connectionId)
      const tools = (await checkedTools(p, input.tools)) ?? []
      const [row] = await db
        .insert(t.conversations)
        .values({ userId: p.userId, title: input.title ?? null, modelId: input.modelId ?? null, presetId: input.presetId ?? null, agentId: input.agentId ?? null, connectionId: input.connectionId ?? null, systemPrompt: input.systemPrompt ?? null, tools })
        .returning()
      return row!
    },

    async update(p: Principal, id: string, input: Omit<ConversationInput, 'presetId'>) {
      await owned(p, id)
      await checkModel(p, input.modelId)
      await checkAgent(p, input.agentId)
      if (input.connectionId) await chatTurns.usableConnection(p, input.connectionId)
      const tools = await checkedTools(p, input.tools)
      const values: Partial<Database['t']['conversations']['$inferInsert']> = { updatedAt: new Date() }
      if (tools) values.tools = tools
      if (input.title !== undefined) values.title = input.title
      if (input.isFavorite !== undefined) values.isFavorite = input.isFavorite
      if (input.modelId !== undefined) values.modelId = input.modelId
      if (input.agentId !== undefined) values.agentId = input.agentId
      if (input.connectionId !== undefined) values.connectionId = input.connectionId
      if (input.systemPrompt !== undefined) values.systemPrompt = input.systemPrompt
      const [row] = await db.update(t.conversations).set(values).where(eq(t.conversations.id, id)).returning()
      return row!
    },

    /**
     * Delete a conversation: its run is stopped and forgotten wherever it runs (so a re-attach is
     * 404 at once), and its open streams end now with `deleted`, on every instance.
     */
    async remove(p: Principal, id: string) {
      await owned(p, id)
      // streams first, so they end with `deleted` rather than with the stopped run's `done`
      await subscriptions.endTopic(conversationTopic(id), deletedEvent('conversation_deleted'))
      await runs.discard(id)
      await db.delete(t.conversations).where(eq(t.conversations.id, id))
    },

    async toggleFavorite(p: Principal, id: string) {
      const c = await owned(p, id)
      await db.update(t.conversations).set({ isFavorite: !c.isFavorite }).where(eq(t.conversations.id, id))
      return !c.isFavorite
    },

    /** Send a message: 409 when an answer is being generated. */
    async send(p: Principal, conversationId: string, input: SendInput) {
      return chatTurns.start(p, await owned(p, conversationId), input)
    },

    /**
     * A new answer to the question of `messageId` (an answer, or its question), as a sibling of the
     * old answer. An answer that used tools is the last of a chain (answer → results → … → answer):
     * the question is found above all of it, so the whole loop runs again.
     */
    async regenerate(p: Principal, conversationId: string, messageId: string, input: Pick<SendInput, 'modelId' | 'temperature' | 'maxTokens' | 'maxToolRounds'> = {}) {
      const conversation = await owned(p, conversationId)
      const target = await getMessage(messageId)
      if (target.conversationId !== conversationId) throw messageNotFound()
      let question: typeof target | undefined = target
      while (question && (question.role === 'assistant' || question.role === 'tool')) question = question.parentId ? await getMessage(question.parentId) : undefined
      if (!question || question.role !== 'user') throw notAnAnswer()
      return chatTurns.start(p, conversation, { ...input, regenerateOf: question })
    },

    /**
     * The user's decision on a tool call that waits for approval in the conversation's run, from
     * any instance (approvals.ts); 404 when no such call waits.
     */
    async decideApproval(p: Principal, conversationId: string, toolCallId: string, approve: boolean) {
      await owned(p, conversationId)
      const call = await approvals.decide(conversationId, toolCallId, approve)
      if (!call) throw noPendingApproval()
      return { ...call, approved: approve }
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

    /**
     * The caller's latest question with exactly this text, asked in the last `RECONNECT_WINDOW_MS`
     * (in `conversationId` when given): what an EventSource reconnecting to `GET /chat/stream`
     * asked, so the reconnect re-attaches to that run instead of starting another.
     */
    async recentQuestion(p: Principal, content: string, conversationId?: string) {
      const since = new Date(Date.now() - RECONNECT_WINDOW_MS)
      const conditions = [eq(t.conversations.userId, p.userId), gt(t.conversations.updatedAt, since), eq(t.messages.role, 'user'), eq(t.messages.content, content), gt(t.messages.createdAt, since)]
      if (conversationId) conditions.push(eq(t.conversations.id, conversationId))
      const [row] = await db
        .select({ conversationId: t.messages.conversationId, messageId: t.messages.id })
        .from(t.messages)
        .innerJoin(t.conversations, eq(t.conversations.id, t.messages.conversationId))
        .where(and(...conditions))
        .orderBy(desc(t.messages.createdAt))
        .limit(1)
      return row
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
      const { conversation, messages } = await get(p, conversationId)
      return shares.create(conversation, messages)
    },

    async unshare(p: Principal, conversationId: string) {
      await owned(p, conversationId)
      await shares.remove(conversationId)
    },

    shared: (token: string) => shares.byToken(token),

    recoverInterrupted: chatTurns.recoverInterrupted,

    /** The chat counts of /users/me/stats. */
    async countsOf(userId: string) {
      const [c] = await db.select({ n: count() }).from(t.conversations).where(eq(t.conversations.userId, userId))
      const [m] = await db
        .select({ n: count() })
        .from(t.messages)
        .where(inArray(t.messages.conversationId, db.select({ id: t.conversations.id }).from(t.conversations).where(eq(t.conversations.userId, userId))))
      return { conversations: Number(c?.n ?? 0), messages: Number(m?.n ?? 0) }
    },

    /** The chat counts of /system/status. */
    async totals() {
      const [c] = await db.select({ n: count() }).from(t.conversations)
      const [m] = await db.select({ n: count() }).from(t.messages)
      return { conversations: Number(c?.n ?? 0), messages: Number(m?.n ?? 0) }
    },
  }
}

export type ChatService = ReturnType<typeof createChatService>
