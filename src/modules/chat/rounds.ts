/**
 * @module How a chat run's tool loop (src/generation/tool-loop.ts) is stored and announced. Round 1
 * is the placeholder answer stored with the question; a round whose model calls tools keeps its
 * text and `tool_calls`, its results follow it as a chain of `role: "tool"` messages (in the order
 * of the calls), and the next round is a new answer after the last of them. The branch so reads
 * question → answer with calls → results … → final answer, the active leaf. One message is
 * `streaming` at a time — the current round's answer, which the phase of calls keeps alive (written
 * every 10 s) while they run or wait for approval, and which lists the calls waiting for approval
 * (approvals.ts).
 */
import { eq, sql } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { withLock } from '../../db/lock.ts'
import type { TurnResult } from '../../generation/model-turn.ts'
import { MAX_RESULT_CHARS, type RanCall, type ToolLoopHooks } from '../../generation/tool-loop.ts'
import { newId } from '../../lib/ids.ts'
import type { Run } from '../../runs/index.ts'
import type { ResolvedModel } from '../providers/service.ts'
import type { Approvals } from './approvals.ts'
import { emitChatEvent as emit } from './model.ts'

/** How often the waiting answer is written while calls run, as a sign of life (model-turn.ts writes as often while a turn streams). */
const KEEPALIVE_MS = 10_000

/** The message metadata of an answer (stored as a JSON document and shown as is). */
export function answerMetadata(result: TurnResult, model: ResolvedModel, ran: RanCall[] = []) {
  const approvals = Object.fromEntries(ran.filter((r) => r.approval).map((r) => [r.call.id, r.approval]))
  return {
    model: model.model.name,
    provider_id: model.provider.id,
    input_tokens: result.usage.inputTokens,
    output_tokens: result.usage.outputTokens,
    cost: result.cost,
    latency_ms: result.latencyMs,
    ttft_ms: result.ttftMs,
    finish_reason: result.finishReason,
    ...(result.reasoning ? { reasoning: result.reasoning } : {}),
    ...(result.toolCalls.length ? { tool_calls: result.toolCalls } : {}),
    ...(Object.keys(approvals).length ? { approvals } : {}),
    ...(result.error ? { error: result.error.message, ...(result.error.code === 'QUOTA_EXCEEDED' ? { error_code: result.error.code } : {}) } : {}),
  }
}

/** A structured result small enough to show beside its text (larger ones are in the tool's log only). */
function smallStructured(r: RanCall): unknown {
  const value = r.outcome.result.structuredContent
  return value !== undefined && JSON.stringify(value).length <= MAX_RESULT_CHARS ? value : undefined
}

function toolMetadata(r: RanCall) {
  const structured = smallStructured(r)
  return {
    tool_call_id: r.call.id,
    name: r.call.name,
    is_error: r.outcome.result.isError,
    duration_ms: r.outcome.durationMs,
    log_id: r.outcome.logId || null,
    ...(r.approval ? { approval: r.approval } : {}),
    ...(structured === undefined ? {} : { structured_content: structured }),
  }
}

export function createChatRounds(ctx: { database: Database; approvals: Approvals; run: Run; conversationId: string; userId: string; model: ResolvedModel; firstAnswerId: string }) {
  const { database, run, model, conversationId } = ctx
  const { db, t } = database
  let current = ctx.firstAnswerId
  let keepAlive: Timer | undefined

  const hooks: ToolLoopHooks = {
    sink() {
      const id = current
      return {
        text: (text) => emit(run, 'delta', { text }),
        reasoning: (text) => emit(run, 'reasoning', { text }),
        toolCall: (call) => emit(run, 'tool_call', call),
        persist: (content) => db.update(t.messages).set({ content, updatedAt: new Date() }).where(eq(t.messages.id, id)),
      }
    },

    async callsStarting(_round, turn, _calls, needApproval) {
      const pending = needApproval.map((c) => ({ id: c.id, tool: c.name, arguments: c.arguments }))
      await db
        .update(t.messages)
        .set({ content: turn.text, metadata: { ...answerMetadata(turn, model), ...(pending.length ? { pending_approvals: pending } : {}) }, updatedAt: new Date() })
        .where(eq(t.messages.id, current))
      const id = current
      keepAlive = setInterval(() => void db.update(t.messages).set({ updatedAt: new Date() }).where(eq(t.messages.id, id)).catch(() => {}), KEEPALIVE_MS)
    },

    approval(call, signal) {
      emit(run, 'tool_approval_required', { id: call.id, tool: call.name, arguments: call.arguments })
      return ctx.approvals.wait(current, call.id, signal)
    },

    callEnded(r) {
      const structured = smallStructured(r)
      const result = { content: [{ type: 'text', text: r.text }], ...(structured === undefined ? {} : { structured_content: structured }) }
      emit(run, 'tool_result', { id: r.call.id, name: r.call.name, result, is_error: r.outcome.result.isError })
    },

    async roundEnded(_round, turn, ran, next) {
      clearInterval(keepAlive)
      const now = Date.now()
      const answer = { content: turn.text, status: next ? 'complete' : turn.status, metadata: answerMetadata(turn, model, ran), updatedAt: new Date(now) } as const
      if (!ran.length && !next) {
        // an answer: the branch already ends here
        await db.update(t.messages).set(answer).where(eq(t.messages.id, current))
        await db.update(t.conversations).set({ updatedAt: new Date(now) }).where(eq(t.conversations.id, conversationId))
        return
      }
      // under the lock that opens turns, so that no other answer starts between this one's rounds
      current = await withLock(database, `chat-runs:${ctx.userId}`, async (q) => {
        await q.update(t.messages).set(answer).where(eq(t.messages.id, current))
        let parentId = current
        const results = ran.map((r, i) => {
          const row = { id: newId(), conversationId, parentId, role: 'tool' as const, content: r.text, status: 'complete' as const, metadata: toolMetadata(r), createdAt: new Date(now + i + 1), updatedAt: new Date(now) }
          parentId = row.id
          return row
        })
        if (results.length) await q.insert(t.messages).values(results)
        let leaf = parentId
        if (next) {
          const [a] = await q
            .insert(t.messages)
            .values({ conversationId, parentId, role: 'assistant', content: '', status: 'streaming', metadata: { model: model.model.name }, createdAt: new Date(now + results.length + 1), updatedAt: new Date(now) })
            .returning({ id: t.messages.id })
          leaf = a!.id
        }
        await q
          .update(t.conversations)
          .set({ activeLeafId: leaf, messageCount: sql`${t.conversations.messageCount} + ${results.length + (next ? 1 : 0)}`, updatedAt: new Date(now) })
          .where(eq(t.conversations.id, conversationId))
        // a stop while calls ran: the answer that made them stays the run's message
        return next ? leaf : current
      })
    },
  }

  return {
    hooks,
    /** the current round's answer: at the end, the run's last answer (`done.message_id`) */
    get answerId() {
      return current
    },
  }
}
