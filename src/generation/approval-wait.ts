/**
 * @module Waiting for the decision on a tool call that needs approval, for any driver of the tool
 * loop whose decisions are written to the database by whichever instance receives them (chat's
 * answers, agent tasks). The waiter sleeps until it is woken (a bus message, a heartbeat), its
 * deadline passes or its signal aborts, then asks `settle` — which reads the decision under the
 * driver's lock (first at once, then after each wake) and, when there is none yet, writes the fallback given (`timeout`, `stopped`), so
 * that the first decision written is the one that holds.
 */
import type { ApprovalDecision } from './tool-loop.ts'

/** How long a call waits for its approval unless the deps say otherwise. */
export const APPROVAL_TIMEOUT_MS = 10 * 60_000

export interface DecisionWait {
  /** when the call stops waiting (ms since the epoch): then it is `timeout` */
  deadline: number
  /** aborted: `stopped` */
  signal: AbortSignal
  /** start waking the waiter (it re-reads); returns how to stop */
  listen(wake: () => void): () => void
  /** the decision written for the call, after writing `fallback` when there is none (undefined: none, keep waiting) */
  settle(fallback: 'timeout' | 'stopped' | undefined): Promise<ApprovalDecision | undefined>
}

/** The decision on the call: one written already is read at once; otherwise the waiter sleeps until woken, and reads again. */
export async function waitForDecision(w: DecisionWait): Promise<ApprovalDecision> {
  for (;;) {
    const fallback = w.signal.aborted ? 'stopped' : Date.now() >= w.deadline ? 'timeout' : undefined
    const decision = await w.settle(fallback)
    if (decision) return decision
    let timer: Timer | undefined
    let onAbort: (() => void) | undefined
    let unlisten: (() => void) | undefined
    await new Promise<void>((resolve) => {
      unlisten = w.listen(resolve)
      timer = setTimeout(resolve, Math.max(0, w.deadline - Date.now()))
      onAbort = resolve
      w.signal.addEventListener('abort', onAbort, { once: true })
      if (w.signal.aborted) resolve()
    })
    clearTimeout(timer)
    unlisten?.()
    w.signal.removeEventListener('abort', onAbort!)
  }
}
