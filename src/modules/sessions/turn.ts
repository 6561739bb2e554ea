/**
 * @module A session turn: the user's message and a `streaming` reply placeholder are stored under
 * one lock per user (one reply per session at a time, a cap per user, across instances), credits
 * are held, and a run keyed `session:<id>` (src/runs) drives the tool loop
 * (src/generation/tool-loop.ts) with the session's agent — its model, prompt, temperature, max
 * tokens and tools, plus the session's own `update_workflow` tool — or the built-in workflow
 * editor. The reply is written into its row as it streams, streamed to the run's subscribers
 * (GET /sessions/{id}/stream) and published as frames on the `session_frames` bus channel (the
 * WebSocket's, on every instance): MESSAGE_RECEIVED for the user message, MESSAGE_DELTA pieces,
 * MESSAGE_RECEIVED for the finished reply.
 */
import type { ModelMessage } from 'ai'
import { and, count, eq, gt, inArray, lt, sql } from 'drizzle-orm'
import type { Bus } from '../../db/bus.ts'
import type { Database } from '../../db/index.ts'
import { withLock } from '../../db/lock.ts'
import { DEFAULT_MAX_OUTPUT, type ModelTurns, type ToolCall } from '../../generation/model-turn.ts'
import { createToolLoop, DEFAULT_MAX_TOOL_ROUNDS, type ToolLoopResult } from '../../generation/tool-loop.ts'
import type { Logger } from '../../lib/logger.ts'
import type { ChatRequest } from '../../llm/index.ts'
import type { Run, RunRegistry } from '../../runs/index.ts'
import type { AgentRow, AgentsService, ExecutionOutcome } from '../agents/service.ts'
import type { Principal } from '../auth/service.ts'
import type { ResolvedModel } from '../providers/service.ts'
import type { ToolsService } from '../tools/service.ts'
import type { UsersService } from '../users/service.ts'
import type { WorkflowRow, WorkflowsApi } from '../workflows/types.ts'
import { replyInProgress, sessionArchived, sessionNotFound, tooManyReplies } from './errors.ts'
import { emitSessionEvent as emit, SUMMARY_LENGTH, toSessionMessageDto, type SessionMessageRow, type SessionRow } from './model.ts'
import { sessionFramesChannel, type SessionFrame, type SessionMessageDto } from './types.ts'
import { runUpdateWorkflow, UPDATE_WORKFLOW, updateWorkflowSpec, type EditHooks } from './update-workflow.ts'

/** A session whose reply is `streaming` but which was not written for this long belongs to a run that died (live replies write it every 5 s). */
export const STALE_REPLY_MS = 20_000
/** How often a running reply writes its session's `updated_at`, as a sign of life. */
const KEEPALIVE_MS = 5_000
/** MESSAGE_DELTA frames carry the pieces that came in this long, at most (one bus message per piece would be a NOTIFY per token). */
const DELTA_FRAME_MS = 40
/** The most of the workflow's JSON the model is sent (about 15,000 tokens); a larger one is cut, and then cannot be edited. */
export const MAX_WORKFLOW_CONTEXT_CHARS = 60_000
/** What a reply's metadata keeps of each call's arguments (update_workflow's are a whole workflow, which its version holds). */
const MAX_STORED_ARGUMENTS = 2_000

/** The built-in workflow editor's prompt: what answers a session with no agent (or whose agent has no prompt of its own). */
export const DEFAULT_SESSION_PROMPT = [
  'You are the workflow editor of Hearth. You help the user understand and change one ComfyUI workflow, shown below in API format:',
  'a JSON object whose keys are node ids ("3", "4", …) and whose values are { "class_type": …, "inputs": { … } }; an input wired to another node is [node_id, output_index].',
  'Answer questions about the workflow from its JSON. When the user asks for a change, call the update_workflow tool once with the COMPLETE new workflow',
  '(every node, also the unchanged ones) and a short note of what changed. Keep node ids and links consistent, and use only node classes you know exist.',
  'After the tool answers, tell the user in a sentence or two what you changed; if it reports an error, say so and do not claim the change was saved.',
].join(' ')

/** A model's text as it can be stored: Postgres refuses the NUL character in text. */
const storable = (text: string) => (text.includes('\0') ? text.replaceAll('\0', '') : text)

export const sessionRunKey = (sessionId: string) => `session:${sessionId}`

export const summaryOf = (text: string) => {
  const flat = text.trim().replace(/\s+/g, ' ')
  return flat.length > SUMMARY_LENGTH ? `${flat.slice(0, SUMMARY_LENGTH - 1)}…` : flat
}

/** A session's title from its first message: its first words. */
const firstWords = (text: string) => {
  const words = text.trim().replace(/\s+/g, ' ').slice(0, 60)
  return words.length < text.trim().length ? words.replace(/\s\S*$/, '') + '…' : words
}

export interface SessionTurnDeps {
  database: Database
  logger: Logger
  bus: Bus
  runs: RunRegistry
  turns: ModelTurns
  tools: ToolsService
  users: Pick<UsersService, 'profile'>
  agents: { usable: AgentsService['usable']; executions: Pick<AgentsService['executions'], 'start' | 'finish'> }
  workflows: WorkflowsApi
  /** replies one user may have generating at once, in all their sessions, on all instances together */
  maxRunsPerUser: number
  /** tests hold an edit while it has the lock, or shorten the lock (BaseDeps.sessionEdits) */
  editHooks?: EditHooks
}

/** The agent a session names, when the caller may use it now and it is a workflow agent: else the built-in editor answers. */
export async function sessionAgent(deps: Pick<SessionTurnDeps, 'agents'>, p: Pick<Principal, 'userId'>, agentId: string | null): Promise<AgentRow | undefined> {
  if (!agentId) return undefined
  const agent = await deps.agents.usable(p, agentId)
  return agent?.type === 'workflow' ? agent : undefined
}

/** The system prompt: the agent's (or the built-in one), then the workflow's current JSON (cut past MAX_WORKFLOW_CONTEXT_CHARS). */
export function systemPromptFor(agent: AgentRow | undefined, workflow: WorkflowRow): { system: string; cut: boolean } {
  const json = JSON.stringify(workflow.workflowData)
  const cut = json.length > MAX_WORKFLOW_CONTEXT_CHARS
  const about = `The workflow of this session: "${workflow.name}"${workflow.description ? ` (${workflow.description})` : ''}, version ${workflow.currentVersion}. Its current JSON:`
  const body = cut
    ? `${json.slice(0, MAX_WORKFLOW_CONTEXT_CHARS)}\n[… cut: the workflow has ${json.length} characters, these are the first ${MAX_WORKFLOW_CONTEXT_CHARS}. It is too large to be edited here: the update_workflow tool is not available; answer about the part shown.]`
    : json
  return { system: `${agent?.systemPrompt || DEFAULT_SESSION_PROMPT}\n\n${about}\n${body}`, cut }
}

const estimateTokens = (text: string) => Math.ceil(text.length / 4) + 4

/**
 * The history the model is sent: the session's earlier messages (failed and empty ones left out),
 * the last `contextRounds` exchanges, then as many as the model's context window allows (oldest go
 * first; the system prompt and the new message always stay), then the new message.
 */
export function historyFor(earlier: SessionMessageRow[], content: string, opts: { contextRounds: number; model: ResolvedModel; maxTokens?: number; system: string }): ModelMessage[] {
  let kept = earlier.filter((m) => m.content && (m.status === 'complete' || m.status === 'stopped'))
  let seen = 0
  let start = kept.length
  while (start > 0 && seen < opts.contextRounds) {
    start--
    if (kept[start]!.role === 'user') seen++
  }
  kept = kept.slice(start)
  const window = opts.model.model.contextWindow
  if (window) {
    const budget = window - (opts.maxTokens ?? Math.min(DEFAULT_MAX_OUTPUT, Math.floor(window / 4)))
    let used = estimateTokens(opts.system) + estimateTokens(content)
    let from = kept.length
    while (from > 0 && used + estimateTokens(kept[from - 1]!.content) <= budget) used += estimateTokens(kept[--from]!.content)
    kept = kept.slice(from)
  }
  // a history starts with a question (providers that alternate roles refuse an answer first)
  while (kept[0]?.role === 'assistant') kept = kept.slice(1)
  return [...kept.map((m): ModelMessage => ({ role: m.role, content: m.content })), { role: 'user', content }]
}

interface ReplyInput {
  session: SessionRow
  agent: AgentRow | undefined
  model: ResolvedModel
  assistantId: string
  request: Omit<ChatRequest, 'model' | 'tools' | 'toolChoice'>
  tools: Awaited<ReturnType<ToolsService['forModel']>>
  maxRounds: number
  held: number
  inputChars: number
}

export function createSessionTurns(deps: SessionTurnDeps) {
  const { database, logger, bus, runs, turns, tools, workflows } = deps
  const { db, t } = database
  const m = t.sessionMessages
  const s = t.workflowSessions

  const messagesOf = (sessionId: string) => db.select().from(m).where(eq(m.sessionId, sessionId)).orderBy(m.createdAt, m.id)

  const publish = (frame: SessionFrame) => bus.publish(sessionFramesChannel, frame).catch((error) => logger.warn('session frame not published', { error, session_id: frame.session_id, type: frame.type }))

  /** Pick the model: the agent's, else the user's default model, else the instance's default. */
  async function modelFor(p: Principal, agent: AgentRow | undefined): Promise<ResolvedModel> {
    return agent?.modelId ? turns.model(p, agent.modelId) : turns.defaultModel(p, (await deps.users.profile(p.userId)).preferences.default_model_id)
  }

  /**
   * Store the question and the reply's placeholder: 409 while the session is archived or a reply is
   * live in it (a stale one, of a dead process, is closed here instead), 429 past the user's cap.
   */
  async function openTurn(session: SessionRow, content: string, modelName: string) {
    return withLock(database, `session-replies:${session.userId}`, async (q) => {
      const [fresh] = await q.select().from(s).where(eq(s.id, session.id))
      if (!fresh) throw sessionNotFound()
      if (fresh.status === 'archived') throw sessionArchived()
      const now = Date.now()
      const cutoff = new Date(now - STALE_REPLY_MS)
      const [busy] = await q.select({ id: m.id }).from(m).where(and(eq(m.sessionId, session.id), eq(m.status, 'streaming')))
      if (busy) {
        if (fresh.updatedAt > cutoff) throw replyInProgress()
        await q.update(m).set({ status: 'error' }).where(and(eq(m.sessionId, session.id), eq(m.status, 'streaming')))
      }
      const [running] = await q
        .select({ n: count() })
        .from(m)
        .innerJoin(s, eq(s.id, m.sessionId))
        .where(and(eq(s.userId, session.userId), eq(m.status, 'streaming'), gt(s.updatedAt, cutoff)))
      if (Number(running?.n ?? 0) >= deps.maxRunsPerUser) throw tooManyReplies(deps.maxRunsPerUser)
      const [userMessage] = await q.insert(m).values({ sessionId: session.id, role: 'user', content, status: 'complete', createdAt: new Date(now) }).returning()
      const [assistant] = await q.insert(m).values({ sessionId: session.id, role: 'assistant', content: '', status: 'streaming', metadata: { model: modelName }, createdAt: new Date(now + 1) }).returning()
      await q
        .update(s)
        .set({ messageCount: sql`${s.messageCount} + 2`, lastMessageSummary: summaryOf(content), updatedAt: new Date(now), ...(fresh.title ? {} : { title: firstWords(content) }) })
        .where(eq(s.id, session.id))
      return { userMessage: userMessage!, assistant: assistant! }
    })
  }

  /** The reply: the tool loop streamed into its row, the run and the frames; then the row, the session and the last frames and events. */
  async function reply(p: Principal, run: Run, ctx: ReplyInput) {
    const { session, model } = ctx
    const sessionId = session.id
    const messageId = ctx.assistantId
    const frame = { user_id: session.userId, session_id: sessionId }

    // MESSAGE_DELTA frames: the pieces of up to DELTA_FRAME_MS in one
    let pending = ''
    let timer: Timer | undefined
    const flushDeltas = () => {
      clearTimeout(timer)
      timer = undefined
      if (pending) void publish({ type: 'MESSAGE_DELTA', ...frame, message_id: messageId, text: pending })
      pending = ''
    }
    const delta = (text: string) => {
      emit(run, 'delta', { session_id: sessionId, message_id: messageId, text })
      pending += text
      timer ??= setTimeout(flushDeltas, DELTA_FRAME_MS)
    }

    // the reply's text: the finished rounds', then the current round's
    let written = ''
    let round = ''
    const calls: { id: string; name: string; arguments: string; is_error?: boolean }[] = []
    const execution = ctx.agent ? await deps.agents.executions.start({ agentId: ctx.agent.id, userId: session.userId, executionType: 'session', sessionId }).catch((error) => void logger.warn('agent execution not recorded', { error, agent_id: ctx.agent?.id })) : undefined

    const editor = {
      workflows,
      logger,
      userId: session.userId,
      workflowId: session.workflowId,
      sessionId,
      hooks: deps.editHooks,
      onLocked: (reason: string) => emit(run, 'workflow_locked', { workflow_id: session.workflowId, reason }),
      onUnlocked: () => emit(run, 'workflow_unlocked', { workflow_id: session.workflowId }),
    }
    // the session's own tool beside the agent's: runs here, not through the tools layer. Its calls of
    // one reply take turns (a model may ask for two at once): each holds the lock for its whole edit.
    let editing: Promise<unknown> = Promise.resolve()
    const edit = (args: string, signal: AbortSignal) => {
      const next = editing.then(() => runUpdateWorkflow(editor, args, signal))
      editing = next.catch(() => {})
      return next
    }
    const runToolLoop = createToolLoop({
      turns,
      tools: { execute: (pp, name, args, origin) => (name === UPDATE_WORKFLOW ? edit(args, origin.signal ?? run.signal) : tools.execute(pp, name, args, origin)) },
    })

    const keepAlive = setInterval(() => void db.update(s).set({ updatedAt: new Date() }).where(eq(s.id, sessionId)).catch(() => {}), KEEPALIVE_MS)
    let loop: ToolLoopResult | undefined
    let failure: { code: string; message: string } | undefined
    try {
      loop = await runToolLoop({
        principal: p,
        model,
        request: ctx.request,
        tools: ctx.tools,
        maxRounds: ctx.maxRounds,
        held: ctx.held,
        inputChars: ctx.inputChars,
        source: 'chat',
        origin: { source: 'session' },
        signal: run.signal,
        logFields: { session_id: sessionId },
        hooks: {
          sink() {
            let started = false
            return {
              text(piece) {
                // rounds' texts are one reply: a later round's text starts on a new paragraph
                if (!started && written && !/\s$/.test(written)) {
                  written += '\n\n'
                  delta('\n\n')
                }
                started = true
                round += piece
                delta(piece)
              },
              toolCall: (call: ToolCall) => emit(run, 'tool_call', call),
              persist: (text) => db.update(m).set({ content: storable(written + text) }).where(eq(m.id, messageId)),
            }
          },
          async callsStarting(_round, _turn, started) {
            for (const c of started) calls.push({ id: c.id, name: c.name, arguments: c.arguments.length > MAX_STORED_ARGUMENTS ? `${c.arguments.slice(0, MAX_STORED_ARGUMENTS)}…` : c.arguments })
            await db.update(m).set({ content: storable(written + round) }).where(eq(m.id, messageId))
          },
          // tools that wait for approval are not offered in sessions (there is no one to ask)
          approval: async () => 'declined' as const,
          callEnded(r) {
            const call = calls.find((c) => c.id === r.call.id)
            if (call) call.is_error = r.outcome.result.isError
            const structured = r.outcome.result.structuredContent
            emit(run, 'tool_result', { id: r.call.id, name: r.call.name, result: { content: [{ type: 'text', text: r.text }], ...(structured === undefined ? {} : { structured_content: structured }) }, is_error: r.outcome.result.isError })
          },
          async roundEnded(_round, turn) {
            written += turn.text
            round = ''
          },
        },
      })
    } catch (error) {
      logger.error('session reply failed', { error, session_id: sessionId })
      failure = { code: 'INTERNAL_ERROR', message: 'The reply failed' }
    } finally {
      clearInterval(keepAlive)
      // the last pieces go out before the reply is stored complete
      flushDeltas()
    }

    const last = loop?.last
    const content = storable(written + round)
    const status = failure ? 'error' : last!.status
    const error = failure ?? last?.error
    const inputTokens = loop?.usage.inputTokens ?? 0
    const outputTokens = loop?.usage.outputTokens ?? 0
    const cost = loop?.cost ?? 0
    const metadata = {
      model: model.model.name,
      provider_id: model.provider.id,
      input_tokens: inputTokens,
      output_tokens: outputTokens,
      cost,
      finish_reason: failure ? 'error' : last!.finishReason,
      ...(calls.length ? { tool_calls: calls } : {}),
      ...(error ? { error: error.message, error_code: error.code } : {}),
    }
    let stored: SessionMessageRow | undefined
    try {
      ;[stored] = await db.update(m).set({ content, status, metadata: JSON.parse(JSON.stringify(metadata, (_k, v: unknown) => (typeof v === 'string' ? storable(v) : v))) }).where(eq(m.id, messageId)).returning()
      if (stored) await db.update(s).set({ updatedAt: new Date(), ...(content ? { lastMessageSummary: summaryOf(content) } : {}) }).where(eq(s.id, sessionId))
    } catch (e) {
      logger.error('session reply not stored', { error: e, session_id: sessionId })
    }
    // recorded before `done`, so that a client reading the executions then finds it finished
    if (execution) {
      const outcome: ExecutionOutcome = { status: status === 'complete' ? 'completed' : status === 'stopped' ? 'cancelled' : 'failed', inputTokens, outputTokens, cost, toolCalls: calls.length }
      await deps.agents.executions.finish(execution, outcome).catch((e) => logger.warn('agent execution not finished', { error: e, execution_id: execution }))
    }
    // a session deleted meanwhile has no reply to announce
    if (stored) {
      const message = toSessionMessageDto(stored)
      await publish({ type: 'MESSAGE_RECEIVED', ...frame, message })
      emit(run, 'message.received', { session_id: sessionId, message })
    }
    if (inputTokens || outputTokens) emit(run, 'usage', { input_tokens: inputTokens, output_tokens: outputTokens, cost })
    if (error) emit(run, 'error', error)
    emit(run, 'done', { session_id: sessionId, message_id: messageId, finish_reason: metadata.finish_reason })
    await loop?.settled
  }

  return {
    messagesOf,

    /**
     * Store the user's message and start the reply. 409 archived or answering, 422 no model, 402
     * credits used up, 429 too many replies of this user: all before anything is stored.
     */
    async start(p: Principal, session: SessionRow, content: string, opts: { clientMsgId?: string } = {}): Promise<{ run: Run; userMessage: SessionMessageDto; assistantId: string }> {
      if (session.status === 'archived') throw sessionArchived()
      const agent = await sessionAgent(deps, p, session.agentId)
      const model = await modelFor(p, agent)
      const workflow = await workflows.get(session.userId, session.workflowId)
      const { system, cut } = systemPromptFor(agent, workflow)
      const { preferences } = await deps.users.profile(p.userId)
      const maxTokens = agent?.maxTokens ?? undefined
      const messages = historyFor(await messagesOf(session.id), content, { contextRounds: preferences.context_rounds, model, maxTokens, system })
      const offered = await tools.forModel(p, (agent?.tools ?? []).filter((n) => n !== UPDATE_WORKFLOW))
      const specs = offered.specs.filter((spec) => !offered.needsApproval.has(spec.name))
      if (!cut) specs.push(updateWorkflowSpec)
      const request = { system, messages, temperature: agent?.temperature ?? undefined, maxTokens }
      const inputChars = system.length + messages.reduce((n, x) => n + (typeof x.content === 'string' ? x.content.length : 0), 0)
      const held = await turns.reserve(p, model, { inputChars, maxTokens })
      let opened
      try {
        opened = await openTurn(session, content, model.model.name)
      } catch (error) {
        await turns.release(p, held)
        throw error
      }
      const userMessage = toSessionMessageDto(opened.userMessage)
      const assistantId = opened.assistant.id
      await publish({ type: 'MESSAGE_RECEIVED', user_id: session.userId, session_id: session.id, message: userMessage, ...(opts.clientMsgId ? { client_msg_id: opts.clientMsgId } : {}) })
      void workflows.touch(session.workflowId).catch((error) => logger.warn('workflow not touched', { error, workflow_id: session.workflowId }))
      const input: ReplyInput = { session, agent, model, assistantId, request, tools: { specs, needsApproval: new Set() }, maxRounds: agent?.maxSteps ?? DEFAULT_MAX_TOOL_ROUNDS, held, inputChars }
      const produce = (r: Run) => {
        emit(r, 'message.received', { session_id: session.id, message: userMessage, ...(opts.clientMsgId ? { client_msg_id: opts.clientMsgId } : {}) })
        return reply(p, r, input)
      }
      const key = sessionRunKey(session.id)
      let run = runs.start(key, produce)
      if (!run) {
        // the previous reply is stored but its run is still finishing here: it ends in moments
        const previous = runs.get(key)
        await Promise.race([previous?.ended(), Bun.sleep(2_000)])
        run = runs.start(key, produce)
      }
      if (!run) {
        await db.update(m).set({ status: 'error' }).where(eq(m.id, assistantId))
        await turns.release(p, held)
        throw replyInProgress()
      }
      run.ownerId = p.userId
      return { run, userMessage, assistantId }
    },

    /** Replies left `streaming` by a process that died: marked `error`, their text kept (`all`: every one, for a lone SQLite process at start). */
    async recoverInterrupted(all: boolean) {
      const stale = db.select({ id: s.id }).from(s).where(lt(s.updatedAt, new Date(Date.now() - STALE_REPLY_MS)))
      const rows = await db
        .update(m)
        .set({ status: 'error' })
        .where(and(eq(m.status, 'streaming'), all ? undefined : inArray(m.sessionId, stale)))
        .returning({ id: m.id })
      if (rows.length) logger.warn('session replies interrupted by a stop were marked error', { count: rows.length })
      return rows.length
    },
  }
}

export type SessionTurns = ReturnType<typeof createSessionTurns>
