/**
 * @module Agents: a model, a prompt, settings and tools under a name. Global agents (no owner) are
 * managed by admins and visible to and usable by everyone; a user's personal agents are invisible
 * (404) to everyone else, admins included. Conversations, tasks and workflow sessions use an agent;
 * each chat turn or task run that does is recorded as an execution (`executions`), which its user
 * reads back per agent.
 */
import { and, desc, eq, gte, isNull, lt, or, type SQL } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { pageOfTable, type Page, type PageRequest } from '../../db/query.ts'
import type { Logger } from '../../lib/logger.ts'
import type { ModelUsable } from '../../generation/model-turn.ts'
import type { Principal } from '../auth/service.ts'
import { agentNotFound, globalAgentAdminOnly, globalAgentCreateAdminOnly, unknownAgentTools, unusableAgentModel } from './errors.ts'

export type AgentRow = Database['t']['agents']['$inferSelect']
export type ExecutionRow = Database['t']['agentExecutions']['$inferSelect']
export type AgentType = AgentRow['type']
export type ExecutionType = ExecutionRow['executionType']
export type ExecutionStatus = ExecutionRow['status']

/** Model turns an agent's task may take when the agent names no other number. */
export const DEFAULT_AGENT_MAX_STEPS = 10

export interface AgentInput {
  name: string
  type?: AgentType
  description?: string | null
  modelId?: string | null
  systemPrompt?: string | null
  temperature?: number | null
  maxTokens?: number | null
  tools?: string[]
  maxSteps?: number
  status?: AgentRow['status']
  /** default: global for admins, personal for everyone else (like providers and configs) */
  scope?: 'global' | 'personal'
}

export interface AgentFilter extends PageRequest {
  type?: AgentType
  status?: AgentRow['status']
  scope?: 'global' | 'personal'
}

export interface ExecutionFilter extends PageRequest {
  status?: ExecutionStatus
  sessionId?: string
  conversationId?: string
  from?: Date
  to?: Date
}

/** What a new execution is: the agent, whose run it is, what kind of run, and what ran it. */
export interface ExecutionStart {
  agentId: string
  userId: string
  executionType: ExecutionType
  taskId?: string | null
  conversationId?: string | null
  sessionId?: string | null
  /** default: now */
  startedAt?: Date
}

/** How an execution ended: its totals over the whole run (every model turn added up). */
export interface ExecutionOutcome {
  status: Exclude<ExecutionStatus, 'running'>
  inputTokens: number
  outputTokens: number
  cost: number
  toolCalls: number
  /** default: now; the duration is finished − started */
  finishedAt?: Date
}

const uniqueTools = (tools: string[]) => [...new Set(tools)]

export function createAgentsService(deps: {
  database: Database
  logger: Logger
  /** whether the caller may use a model: an agent's `model_id` is checked when it is saved */
  modelUsable: ModelUsable
  /** the names among these that the caller has no tool of (tools.unknownOf) */
  unknownTools: (p: Principal, names: readonly string[]) => Promise<string[]>
}) {
  const { database, logger } = deps
  const { db, t } = database

  /** global agents and the caller's own */
  const visible = (userId: string): SQL => or(isNull(t.agents.userId), eq(t.agents.userId, userId))!

  async function get(p: Pick<Principal, 'userId'>, id: string): Promise<AgentRow> {
    const [row] = await db.select().from(t.agents).where(and(eq(t.agents.id, id), visible(p.userId)))
    if (!row) throw agentNotFound()
    return row
  }

  /** visible and changeable: a global agent by admins only */
  async function getWritable(p: Principal, id: string): Promise<AgentRow> {
    const row = await get(p, id)
    if (row.userId === null && p.role !== 'admin') throw globalAgentAdminOnly()
    return row
  }

  async function check(p: Principal, input: Partial<AgentInput>) {
    if (input.modelId && !(await deps.modelUsable(p, input.modelId))) throw unusableAgentModel()
    if (input.tools?.length) {
      const unknown = await deps.unknownTools(p, uniqueTools(input.tools))
      if (unknown.length) throw unknownAgentTools(unknown)
    }
  }

  const executions = {
    /**
     * Record that a run using an agent started (status `running`); returns the execution's id for
     * `finish`. For the task engine (execution_type `task` or `plan`, with `taskId`), chat turns
     * (`chat`, `conversationId`) and workflow sessions (`session`, `sessionId`).
     */
    async start(input: ExecutionStart): Promise<string> {
      const [row] = await db
        .insert(t.agentExecutions)
        .values({
          agentId: input.agentId,
          userId: input.userId,
          executionType: input.executionType,
          taskId: input.taskId ?? null,
          conversationId: input.conversationId ?? null,
          sessionId: input.sessionId ?? null,
          status: 'running',
          startedAt: input.startedAt ?? new Date(),
        })
        .returning({ id: t.agentExecutions.id })
      return row!.id
    },

    /** Record how the execution `id` ended. Finishing one that is gone (its agent was deleted meanwhile) does nothing. */
    async finish(id: string, outcome: ExecutionOutcome): Promise<void> {
      const [row] = await db.select({ startedAt: t.agentExecutions.startedAt }).from(t.agentExecutions).where(eq(t.agentExecutions.id, id))
      if (!row) return
      const finishedAt = outcome.finishedAt ?? new Date()
      await db
        .update(t.agentExecutions)
        .set({
          status: outcome.status,
          inputTokens: outcome.inputTokens,
          outputTokens: outcome.outputTokens,
          cost: outcome.cost,
          toolCalls: outcome.toolCalls,
          finishedAt,
          durationMs: Math.max(0, finishedAt.getTime() - row.startedAt.getTime()),
        })
        .where(eq(t.agentExecutions.id, id))
    },

    /**
     * `start`, then `finish` once `run` settles with its outcome (a throw is recorded `failed`
     * with nothing counted, and thrown on). A failure to record is logged, never the run's failure.
     */
    async around<T>(input: ExecutionStart, run: () => Promise<{ value: T; outcome: ExecutionOutcome }>): Promise<T> {
      const id = await executions.start(input).catch((error) => void logger.warn('agent execution not recorded', { error, agent_id: input.agentId }))
      const done = (outcome: ExecutionOutcome) => (id ? executions.finish(id, outcome).catch((error) => logger.warn('agent execution not finished', { error, execution_id: id })) : undefined)
      let result
      try {
        result = await run()
      } catch (error) {
        await done({ status: 'failed', inputTokens: 0, outputTokens: 0, cost: 0, toolCalls: 0 })
        throw error
      }
      await done(result.outcome)
      return result.value
    },

    /** The caller's own executions of an agent they can see, newest first (admins too see only their own). */
    async list(p: Principal, agentId: string, f: ExecutionFilter): Promise<Page<ExecutionRow>> {
      await get(p, agentId)
      const e = t.agentExecutions
      const where = and(
        eq(e.agentId, agentId),
        eq(e.userId, p.userId),
        f.status ? eq(e.status, f.status) : undefined,
        f.sessionId ? eq(e.sessionId, f.sessionId) : undefined,
        f.conversationId ? eq(e.conversationId, f.conversationId) : undefined,
        f.from ? gte(e.startedAt, f.from) : undefined,
        f.to ? lt(e.startedAt, f.to) : undefined,
      )
      return pageOfTable(db, e, where, [desc(e.startedAt), desc(e.id)], f)
    },
  }

  return {
    /** global agents and the caller's own, newest first; `scope`, `type` and `status` filter */
    list(p: Principal, f: AgentFilter): Promise<Page<AgentRow>> {
      const where = and(
        visible(p.userId),
        f.type ? eq(t.agents.type, f.type) : undefined,
        f.status ? eq(t.agents.status, f.status) : undefined,
        f.scope === 'global' ? isNull(t.agents.userId) : f.scope === 'personal' ? eq(t.agents.userId, p.userId) : undefined,
      )
      return pageOfTable(db, t.agents, where, [desc(t.agents.createdAt), desc(t.agents.id)], f)
    },

    /** An agent the caller can see (global or their own); 404 otherwise. */
    get,

    /** The agent `id` when the caller may use it now (visible and active), else undefined: what conversations and tasks check. */
    async usable(p: Pick<Principal, 'userId'>, id: string): Promise<AgentRow | undefined> {
      const [row] = await db.select().from(t.agents).where(and(eq(t.agents.id, id), visible(p.userId), eq(t.agents.status, 'active')))
      return row
    },

    async create(p: Principal, input: AgentInput): Promise<AgentRow> {
      const scope = input.scope ?? (p.role === 'admin' ? 'global' : 'personal')
      if (scope === 'global' && p.role !== 'admin') throw globalAgentCreateAdminOnly()
      await check(p, input)
      const [row] = await db
        .insert(t.agents)
        .values({
          userId: scope === 'global' ? null : p.userId,
          name: input.name,
          type: input.type ?? 'assistant',
          description: input.description ?? null,
          modelId: input.modelId ?? null,
          systemPrompt: input.systemPrompt ?? null,
          temperature: input.temperature ?? null,
          maxTokens: input.maxTokens ?? null,
          tools: uniqueTools(input.tools ?? []),
          maxSteps: input.maxSteps ?? DEFAULT_AGENT_MAX_STEPS,
          status: input.status ?? 'active',
        })
        .returning()
      return row!
    },

    /** Changes the fields `input` names (`null` clears one); an `undefined` field is left as it is. */
    async update(p: Principal, id: string, input: Partial<Omit<AgentInput, 'scope'>>): Promise<AgentRow> {
      await getWritable(p, id)
      await check(p, input)
      const [row] = await db
        .update(t.agents)
        // Drizzle leaves out the columns set to undefined
        .set({
          name: input.name,
          type: input.type,
          description: input.description,
          modelId: input.modelId,
          systemPrompt: input.systemPrompt,
          temperature: input.temperature,
          maxTokens: input.maxTokens,
          tools: input.tools && uniqueTools(input.tools),
          maxSteps: input.maxSteps,
          status: input.status,
          updatedAt: new Date(),
        })
        .where(eq(t.agents.id, id))
        .returning()
      return row!
    },

    /** Its executions go with it; conversations and tasks that named it keep going without it. */
    async remove(p: Principal, id: string) {
      await getWritable(p, id)
      await db.delete(t.agents).where(eq(t.agents.id, id))
    },

    executions,
  }
}

export type AgentsService = ReturnType<typeof createAgentsService>
