/**
 * @module Approvals of chat tool calls, across instances. A run whose model calls a tool that needs
 * approval lists the call under `pending_approvals` in the metadata of its waiting (`streaming`)
 * assistant message, and waits. A decision — `POST …/tool-approvals` on any instance — is written
 * to that message's `approvals` under a lock, then announced on the bus's `tool_approvals` channel,
 * which wakes the instance running the run; that instance reads the decision from the database (so
 * a missed bus message only delays it: a resync or the timeout reads it too). No decision within
 * the timeout is written as `timeout` under the same lock, and a stop as `stopped`: the first
 * decision written is the one that holds, and a late one is refused.
 */
import { and, eq } from 'drizzle-orm'
import { defineChannel, type Bus } from '../../db/bus.ts'
import type { Database } from '../../db/index.ts'
import { withLock } from '../../db/lock.ts'
import { APPROVAL_TIMEOUT_MS, waitForDecision } from '../../generation/approval-wait.ts'
import type { ApprovalDecision } from '../../generation/tool-loop.ts'

export { APPROVAL_TIMEOUT_MS }

/** A call waiting for approval, as the waiting message's metadata lists it. */
export interface PendingApproval {
  id: string
  tool: string
  arguments: string
}

/** The approval state in an answer's metadata. */
interface ApprovalMetadata {
  pending_approvals?: PendingApproval[]
  approvals?: Record<string, ApprovalDecision>
}

/** A decision was written for call `call` of message `message`. */
const approvalsChannel = defineChannel<{ message: string; call: string }>('tool_approvals')

const keyOf = (messageId: string, callId: string) => `${messageId}\0${callId}`

export function createApprovals(deps: { database: Database; bus: Bus; timeoutMs?: number }) {
  const { database, bus } = deps
  const { db, t } = database
  const timeoutMs = deps.timeoutMs ?? APPROVAL_TIMEOUT_MS
  /** the calls waiting here: wakes them to read the database */
  const waiting = new Map<string, () => void>()

  const unsubscribe = bus.subscribe(approvalsChannel, (m) => waiting.get(keyOf(m.message, m.call))?.(), {
    // messages may have been missed: every waiting call looks again
    onResync: () => {
      for (const wake of waiting.values()) wake()
    },
  })

  /**
   * Under the message's lock: the decision that holds for call `callId` after `choose` — which is
   * given the message and the decision written so far, and returns the one to write, if any.
   */
  function settle(messageId: string, callId: string, choose: (row: { status: string; metadata: ApprovalMetadata }, decided: ApprovalDecision | undefined) => ApprovalDecision | undefined) {
    return withLock(database, `tool-approvals:${messageId}`, async (q) => {
      const [row] = await q.select({ status: t.messages.status, metadata: t.messages.metadata }).from(t.messages).where(eq(t.messages.id, messageId))
      if (!row) return undefined
      const metadata = row.metadata as ApprovalMetadata
      const decided = metadata.approvals?.[callId]
      const write = choose({ status: row.status, metadata }, decided)
      if (!write) return decided
      await q
        .update(t.messages)
        .set({ metadata: { ...row.metadata, approvals: { ...metadata.approvals, [callId]: write } } })
        .where(eq(t.messages.id, messageId))
      return write
    })
  }

  return {
    /** The run's side: wait for the decision on `callId` of its message `messageId`; `signal` aborts it (`stopped`). */
    wait(messageId: string, callId: string, signal: AbortSignal): Promise<ApprovalDecision> {
      const key = keyOf(messageId, callId)
      return waitForDecision({
        deadline: Date.now() + timeoutMs,
        signal,
        listen(wake) {
          waiting.set(key, wake)
          return () => waiting.delete(key)
        },
        settle: (fallback) => settle(messageId, callId, (_, decided) => (decided ? undefined : fallback)),
      })
    },

    /**
     * The user's decision on a call waiting in conversation `conversationId` (whose owner the
     * caller checked), from any instance. Undefined when no such call waits (never asked, or
     * decided already, or timed out): the caller answers 404.
     */
    async decide(conversationId: string, callId: string, approve: boolean): Promise<PendingApproval | undefined> {
      const [waitingMessage] = await db
        .select({ id: t.messages.id, metadata: t.messages.metadata })
        .from(t.messages)
        .where(and(eq(t.messages.conversationId, conversationId), eq(t.messages.status, 'streaming')))
      const call = (waitingMessage?.metadata as ApprovalMetadata | undefined)?.pending_approvals?.find((c) => c.id === callId)
      if (!waitingMessage || !call) return undefined
      const decision = approve ? 'approved' : 'declined'
      let written = false
      await settle(waitingMessage.id, callId, (row, decided) => {
        written = !decided && row.status === 'streaming' && !!row.metadata.pending_approvals?.some((c) => c.id === callId)
        return written ? decision : undefined
      })
      if (!written) return undefined
      await bus.publish(approvalsChannel, { message: waitingMessage.id, call: callId })
      return call
    },

    close: unsubscribe,
  }
}

export type Approvals = ReturnType<typeof createApprovals>
