/**
 * @module Workflow sessions: conversations about one of the user's workflows with its agent. Each
 * session and its messages belong to one user and are invisible (404) to everyone else, admins
 * included. Sending starts a reply (turn.ts) that runs on the server whatever happens to the
 * request; its run can be followed over SSE, and its frames reach the WebSocket (SessionsApi).
 */
import { and, desc, eq, type SQL } from 'drizzle-orm'
import { pageOfTable, type Page, type PageRequest } from '../../db/query.ts'
import { unlessNotFound } from '../../lib/errors.ts'
import { deletedEvent, type Subscriptions } from '../../runs/subscriptions.ts'
import type { Principal } from '../auth/service.ts'
import { invalidSessionMessage, nulInSessionMessage, sessionNotFound, unknownWorkflow, unusableSessionAgent } from './errors.ts'
import { MAX_SESSION_MESSAGE_LENGTH, toSessionMessageDto, type SessionRow } from './model.ts'
import { createSessionTurns, sessionAgent, sessionRunKey, type SessionTurnDeps } from './turn.ts'
import type { SessionMessageDto, SessionsApi } from './types.ts'

export interface SessionFilter extends PageRequest {
  workflowId?: string
  status?: SessionRow['status']
}

export interface SessionInput {
  workflowId: string
  title?: string | null
  agentId?: string | null
}

export interface SessionPatch {
  title?: string
  status?: SessionRow['status']
  agentId?: string | null
}

/** What a session's event streams follow (src/runs/subscriptions.ts): its deletion ends them. */
export const sessionTopic = (id: string) => `session:${id}`

export function createSessionsService(deps: SessionTurnDeps & { subscriptions: Subscriptions }) {
  const { database, runs, subscriptions } = deps
  const { db, t } = database
  const s = t.workflowSessions
  const sessionTurns = createSessionTurns(deps)

  const own = (userId: string, id: string) => and(eq(s.id, id), eq(s.userId, userId))

  async function owned(p: Pick<Principal, 'userId'>, id: string): Promise<SessionRow> {
    const [row] = await db.select().from(s).where(own(p.userId, id))
    if (!row) throw sessionNotFound()
    return row
  }

  /** an agent the caller may use now, of type workflow; 422 naming agent_id otherwise */
  async function checkAgent(p: Principal, agentId: string | null | undefined) {
    if (agentId && !(await sessionAgent(deps, p, agentId))) throw unusableSessionAgent()
  }

  /** The message as sent: trimmed, 1 to MAX_SESSION_MESSAGE_LENGTH characters (the WebSocket relies on this check). */
  function cleanContent(content: unknown): string {
    const text = typeof content === 'string' ? content.trim() : ''
    if (!text || text.length > MAX_SESSION_MESSAGE_LENGTH) throw invalidSessionMessage(MAX_SESSION_MESSAGE_LENGTH)
    // the HTTP boundary refuses it for every body; the WebSocket's frames come here unchecked (Postgres cannot store it)
    if (text.includes('\0')) throw nulInSessionMessage()
    return text
  }

  async function start(p: Principal, id: string, content: unknown, opts: { clientMsgId?: string } = {}) {
    const text = cleanContent(content)
    return sessionTurns.start(p, await owned(p, id), text, opts)
  }

  const service = {
    /** the user's sessions, most recently updated first; `workflowId` and `status` filter */
    list(p: Principal, f: SessionFilter): Promise<Page<SessionRow>> {
      const where: SQL | undefined = and(eq(s.userId, p.userId), f.workflowId ? eq(s.workflowId, f.workflowId) : undefined, f.status ? eq(s.status, f.status) : undefined)
      return pageOfTable(db, s, where, [desc(s.updatedAt), desc(s.id)], f)
    },

    get: owned,

    /** 422 naming the field for a workflow that is not the caller's or an agent they may not use. */
    async create(p: Principal, input: SessionInput): Promise<SessionRow> {
      const workflow = await deps.workflows.get(p.userId, input.workflowId).catch(unlessNotFound)
      if (!workflow) throw unknownWorkflow()
      await checkAgent(p, input.agentId)
      const [row] = await db.insert(s).values({ userId: p.userId, workflowId: workflow.id, title: input.title ?? null, agentId: input.agentId ?? null }).returning()
      return row!
    },

    async update(p: Principal, id: string, patch: SessionPatch): Promise<SessionRow> {
      await owned(p, id)
      await checkAgent(p, patch.agentId)
      const [row] = await db.update(s).set({ title: patch.title, status: patch.status, agentId: patch.agentId, updatedAt: new Date() }).where(own(p.userId, id)).returning()
      if (!row) throw sessionNotFound()
      return row
    },

    /** Its messages go with it; a reply being written is stopped and forgotten everywhere; its open streams end with `deleted`. */
    async remove(p: Principal, id: string) {
      await owned(p, id)
      await subscriptions.endTopic(sessionTopic(id), deletedEvent('session_deleted'))
      await runs.discard(sessionRunKey(id))
      await db.delete(s).where(own(p.userId, id))
    },

    /** Every message of the session, oldest first. */
    async messages(p: Principal, id: string) {
      await owned(p, id)
      return sessionTurns.messagesOf(id)
    },

    /** Send and start the reply; the route answers with the user message, a stream follows the run. */
    start,

    /** SessionsApi.send: the stored user message (the WebSocket's SEND_MESSAGE). */
    async send(p: Principal, id: string, content: string, opts: { clientMsgId?: string } = {}): Promise<SessionMessageDto> {
      return (await start(p, id, content, opts)).userMessage
    },

    /** SessionsApi.visible: the principal's own session. */
    async visible(p: Principal, id: string): Promise<boolean> {
      const [row] = await db.select({ id: s.id }).from(s).where(own(p.userId, id))
      return !!row
    },

    /** Stop the reply being written, keeping its text (`stopped`), on whichever instance runs it. */
    async stop(p: Principal, id: string): Promise<boolean> {
      await owned(p, id)
      const key = sessionRunKey(id)
      if (await runs.stop(key)) return true
      if (database.dialect !== 'postgres') return false
      const [busy] = await db.select({ id: t.sessionMessages.id }).from(t.sessionMessages).where(and(eq(t.sessionMessages.sessionId, id), eq(t.sessionMessages.status, 'streaming')))
      if (busy) await runs.stopElsewhere(key)
      return !!busy
    },

    /** The session's reply run, when one is going or finished moments ago. */
    async runOf(p: Principal, id: string) {
      const run = runs.get(sessionRunKey(id))
      // a run started here knows its owner: re-attaching clients cost no query
      if (run?.ownerId === p.userId) return run
      await owned(p, id)
      return run
    },

    recoverInterrupted: sessionTurns.recoverInterrupted,

    toMessage: toSessionMessageDto,
  }
  return service satisfies SessionsApi & Record<string, unknown>
}

export type SessionsService = ReturnType<typeof createSessionsService>
