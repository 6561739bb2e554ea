/**
 * @module The session agent's `update_workflow` tool: offered in a session's turns only (never a
 * global built-in), it replaces the session's workflow with the complete new JSON the model sends.
 * The write happens under the workflow's lock (workflows.lock with the holder `session:<id>`): taken
 * before, renewed while the edit lasts, let go in a `finally`, so other writers get `409` meanwhile
 * and a dead instance's lock runs out on its own.
 */
import { AppError } from '../../lib/errors.ts'
import { schemaProblems } from '../../lib/json-schema.ts'
import type { Logger } from '../../lib/logger.ts'
import type { ToolSpec } from '../../llm/index.ts'
import type { ToolOutcome } from '../tools/service.ts'
import { WORKFLOW_LOCK_TTL_MS, type WorkflowsApi } from '../workflows/types.ts'

export const UPDATE_WORKFLOW = 'update_workflow'

/** The reason other clients are shown while the agent holds the lock. */
export const EDIT_REASON = 'edited by the session agent'

/** The longest version note the agent may leave. */
const MAX_NOTE = 500

export const updateWorkflowSpec: ToolSpec = {
  name: UPDATE_WORKFLOW,
  description:
    'Save a new version of the workflow this session is about. `workflow_data` is the COMPLETE new workflow in ComfyUI API format (every node, also those you did not change: an object of node ids to { class_type, inputs }); `note` says in a few words what changed. Returns the new version number, or an error to explain to the user.',
  parameters: {
    type: 'object',
    properties: {
      workflow_data: { type: 'object', description: 'The complete new workflow JSON (API format)' },
      note: { type: 'string', maxLength: MAX_NOTE, description: 'What changed, in a few words (the version note)' },
    },
    required: ['workflow_data'],
    additionalProperties: false,
  },
}

/** Holds for tests of what happens while an edit holds the lock (BaseDeps.sessionEdits). */
export interface EditHooks {
  /** awaited while the lock is held, before the new version is written */
  whileLocked?: (workflowId: string) => Promise<void>
  /** how long each take (and renewal) of the lock lasts; default WORKFLOW_LOCK_TTL_MS */
  lockTtlMs?: number
}

export interface UpdateWorkflowContext {
  workflows: WorkflowsApi
  logger: Logger
  userId: string
  workflowId: string
  sessionId: string
  hooks?: EditHooks
  /** the lock was taken / let go: the reply's stream says so */
  onLocked(reason: string): void
  onUnlocked(): void
}

const text = (t: string, isError: boolean, structuredContent?: unknown) => ({ result: { content: [{ type: 'text' as const, text: t }], isError, ...(structuredContent === undefined ? {} : { structuredContent }) } })

/** Run one call of the tool; never throws for what the model sent or a refused write: it says so in the result. */
export async function runUpdateWorkflow(ctx: UpdateWorkflowContext, argumentsJson: string, signal: AbortSignal): Promise<ToolOutcome> {
  const started = performance.now()
  const done = (r: ReturnType<typeof text>): ToolOutcome => ({ ...r, durationMs: Math.round(performance.now() - started), logId: '' })
  let args: unknown
  try {
    args = argumentsJson.trim() ? JSON.parse(argumentsJson) : {}
  } catch {
    return done(text('The arguments are not valid JSON', true))
  }
  const problems = schemaProblems(updateWorkflowSpec.parameters, args, 'arguments')
  if (problems.length) return done(text(`Invalid arguments: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, true))
  const { workflow_data: workflowData, note } = args as { workflow_data: Record<string, unknown>; note?: string }
  if (!Object.keys(workflowData).length) return done(text('workflow_data is empty: send the complete workflow', true))
  if (signal.aborted) return done(text('The run was stopped before the workflow was saved', true))

  const { workflows, userId, workflowId } = ctx
  const holder = `session:${ctx.sessionId}`
  const ttl = ctx.hooks?.lockTtlMs ?? WORKFLOW_LOCK_TTL_MS
  try {
    await workflows.lock(userId, workflowId, holder, EDIT_REASON, ttl)
  } catch (error) {
    if (error instanceof AppError && error.status === 409) return done(text('The workflow is locked by another edit right now: nothing was saved; try again later', true))
    if (error instanceof AppError && error.status === 404) return done(text('The workflow no longer exists: nothing was saved', true))
    throw error
  }
  ctx.onLocked(EDIT_REASON)
  // renewed well before it runs out, for as long as the edit lasts
  let renewing: Promise<unknown> = Promise.resolve()
  const renew = setInterval(() => {
    renewing = workflows.lock(userId, workflowId, holder, EDIT_REASON, ttl).catch((error) => ctx.logger.warn('could not renew the workflow lock', { error, workflow_id: workflowId }))
  }, Math.max(50, Math.floor(ttl / 3)))
  try {
    await ctx.hooks?.whileLocked?.(workflowId)
    const row = await workflows.update(userId, workflowId, { workflowData, note: note?.trim() || EDIT_REASON }, { holder })
    return done(text(`Saved: the workflow is now at version ${row.currentVersion}.`, false, { version: row.currentVersion }))
  } catch (error) {
    if (!(error instanceof AppError)) throw error
    const fields = error.errors?.map((e) => `${e.path}: ${e.message}`).join('; ')
    return done(text(`Not saved: ${error.detail}${fields ? ` (${fields})` : ''}`, true))
  } finally {
    clearInterval(renew)
    // a renewal still on its way would take the lock again after the unlock
    await renewing
    await workflows.unlock(userId, workflowId, holder).catch((error) => ctx.logger.warn('could not let the workflow lock go', { error, workflow_id: workflowId }))
    ctx.onUnlocked()
  }
}
