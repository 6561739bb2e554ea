/**
 * @module Plans: structured generation run as tasks. Plan types (a prompt and input/output JSON
 * Schemas) are global: everyone signed in sees them, admins define them, built-ins (builtins.ts)
 * are seeded at start and read-only. A plan is a `plans` row beside its `tasks` row (kind `plan`,
 * input `{ type, input }`), written together; its status and result are the task's. A plan belongs
 * to one user and is invisible (404) to everyone else.
 */
import { and, asc, count, desc, eq, inArray } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { isUniqueViolation } from '../../db/errors.ts'
import { withLock } from '../../db/lock.ts'
import { pageOfTable, type Page, type PageRequest } from '../../db/query.ts'
import type { ModelTurns } from '../../generation/model-turn.ts'
import { newId } from '../../lib/ids.ts'
import { AppError } from '../../lib/errors.ts'
import { isUsableSchema, schemaProblems } from '../../lib/json-schema.ts'
import type { Principal } from '../auth/service.ts'
import { BUILTIN_PLAN_TYPES, PET_DIET, planTitle, type PlanTypeInput } from './builtins.ts'
import { builtinPlanTypeReadOnly, invalidPlanInput, planNotFound, planRunning, planTypeExists, planTypeNotFound, unknownPlanType, unusableSchema } from './errors.ts'

export type PlanTypeRow = Database['t']['planTypes']['$inferSelect']
export type PlanRow = Database['t']['plans']['$inferSelect']
type TaskRow = Database['t']['tasks']['$inferSelect']

/** A plan with the task that runs it. */
export interface PlanWithTask {
  plan: PlanRow
  task: Pick<TaskRow, 'id' | 'status' | 'result' | 'error'>
}

export interface CreatePlanInput {
  type: string
  input?: Record<string, unknown>
  /** the body's other fields: a `pet_diet` input may stand at the top level */
  rest: Record<string, unknown>
  modelId?: string
}

function checkSchemas(input: Partial<Pick<PlanTypeInput, 'inputSchema' | 'outputSchema'>>) {
  if (input.inputSchema && !isUsableSchema(input.inputSchema)) throw unusableSchema('input_schema')
  if (input.outputSchema && !isUsableSchema(input.outputSchema)) throw unusableSchema('output_schema')
}

export function createPlansService(deps: {
  database: Database
  turns: Pick<ModelTurns, 'model' | 'defaultModel'>
  /** wakes the task workers once a plan's task is written (the task engine's `announce`) */
  announce?: () => Promise<unknown>
  /** deletes the plan's task (the tasks service's `remove`: 404/409 like it, its open streams end with `task_deleted`); the plan row goes with it */
  removeTask: (userId: string, taskId: string) => Promise<void>
}) {
  const { database, turns } = deps
  const { db, t } = database

  async function getType(id: string): Promise<PlanTypeRow> {
    const [row] = await db.select().from(t.planTypes).where(eq(t.planTypes.id, id))
    if (!row) throw planTypeNotFound()
    return row
  }

  async function writableType(id: string): Promise<PlanTypeRow> {
    const row = await getType(id)
    if (row.isBuiltin) throw builtinPlanTypeReadOnly()
    return row
  }

  async function own(userId: string, id: string): Promise<PlanWithTask> {
    const [row] = await db
      .select({ plan: t.plans, task: { id: t.tasks.id, status: t.tasks.status, result: t.tasks.result, error: t.tasks.error } })
      .from(t.plans)
      .innerJoin(t.tasks, eq(t.tasks.id, t.plans.taskId))
      .where(and(eq(t.plans.id, id), eq(t.plans.userId, userId)))
    if (!row) throw planNotFound()
    return row
  }

  /** The task row and the plan row, all or none (SQLite: one synchronous transaction; see TRAPS.md). */
  async function insertPlan(task: typeof t.tasks.$inferInsert, plan: typeof t.plans.$inferInsert) {
    if (database.client.kind === 'sqlite') {
      const sqliteDb = db as unknown as { transaction<T>(fn: (tx: { insert(table: unknown): { values(v: unknown): { run(): unknown } } }) => T): T }
      sqliteDb.transaction((tx) => {
        tx.insert(t.tasks).values(task).run()
        tx.insert(t.plans).values(plan).run()
      })
      return
    }
    await db.transaction(async (tx) => {
      await tx.insert(t.tasks).values(task)
      await tx.insert(t.plans).values(plan)
    })
  }

  return {
    // --- plan types -----------------------------------------------------------------------------

    /** built-ins first, then the others, oldest first */
    listTypes: (page: PageRequest): Promise<Page<PlanTypeRow>> => pageOfTable(db, t.planTypes, undefined, [desc(t.planTypes.isBuiltin), asc(t.planTypes.createdAt), asc(t.planTypes.id)], page),

    getType,

    /** 422 naming a schema that does not compile, 409 for a taken id. */
    async createType(input: PlanTypeInput): Promise<PlanTypeRow> {
      checkSchemas(input)
      try {
        const [row] = await db
          .insert(t.planTypes)
          .values({ id: input.id, name: input.name, description: input.description ?? null, inputSchema: input.inputSchema, outputSchema: input.outputSchema, prompt: input.prompt, isBuiltin: false })
          .returning()
        return row!
      } catch (error) {
        if (isUniqueViolation(error)) throw planTypeExists(input.id)
        throw error
      }
    },

    /** Changes the fields given; built-ins are read-only (403). */
    async updateType(id: string, input: Partial<Omit<PlanTypeInput, 'id'>>): Promise<PlanTypeRow> {
      await writableType(id)
      checkSchemas(input)
      const set: Partial<typeof t.planTypes.$inferInsert> = { updatedAt: new Date() }
      if (input.name !== undefined) set.name = input.name
      if (input.description !== undefined) set.description = input.description
      if (input.inputSchema !== undefined) set.inputSchema = input.inputSchema
      if (input.outputSchema !== undefined) set.outputSchema = input.outputSchema
      if (input.prompt !== undefined) set.prompt = input.prompt
      const [row] = await db.update(t.planTypes).set(set).where(eq(t.planTypes.id, id)).returning()
      if (!row) throw planTypeNotFound()
      return row
    },

    /** Built-ins are read-only (403). Plans already made keep their input and result; a plan of this type not yet run fails. */
    async removeType(id: string) {
      await writableType(id)
      await db.delete(t.planTypes).where(eq(t.planTypes.id, id))
    },

    /** The built-in types that are missing, by id; an existing row is left as it is. */
    async seedBuiltins(): Promise<string[]> {
      return withLock(database, 'plan-types:seed-builtins', async (q) => {
        const have = new Set((await q.select({ id: t.planTypes.id }).from(t.planTypes).where(inArray(t.planTypes.id, BUILTIN_PLAN_TYPES.map((b) => b.id)))).map((r) => r.id))
        const missing = BUILTIN_PLAN_TYPES.filter((b) => !have.has(b.id))
        if (missing.length) {
          await q.insert(t.planTypes).values(missing.map((b) => ({ id: b.id, name: b.name, description: b.description ?? null, inputSchema: b.inputSchema, outputSchema: b.outputSchema, prompt: b.prompt, isBuiltin: true })))
        }
        return missing.map((b) => b.id)
      })
    },

    // --- plans ----------------------------------------------------------------------------------

    /**
     * A new plan: its input checked against the type's input schema (422 with paths `input.…`), the
     * model checked (422 naming `model_id`), then its pending task and the plan written together.
     * For `pet_diet` the input may stand at the top level of the body (`input` wins when given).
     */
    async create(p: Principal, req: CreatePlanInput): Promise<{ plan: PlanRow; task: TaskRow }> {
      const [type] = await db.select().from(t.planTypes).where(eq(t.planTypes.id, req.type))
      if (!type) throw unknownPlanType(req.type)
      let input = req.input
      if (input === undefined && type.id === PET_DIET.id) {
        const fields = Object.keys((type.inputSchema.properties as Record<string, unknown> | undefined) ?? {})
        input = Object.fromEntries(fields.filter((f) => req.rest[f] !== undefined).map((f) => [f, req.rest[f]]))
      }
      if (input === undefined) throw invalidPlanInput([{ path: 'input', message: 'is required' }])
      const problems = schemaProblems(type.inputSchema, input, 'input')
      if (problems.length) throw invalidPlanInput(problems)
      await (req.modelId ? turns.model(p, req.modelId) : turns.defaultModel(p))

      const now = new Date()
      const title = planTitle(type, input)
      const task = { id: newId(), userId: p.userId, kind: 'plan' as const, title, modelId: req.modelId ?? null, input: { type: type.id, input }, status: 'pending' as const, createdAt: now, updatedAt: now }
      const plan = { id: newId(), userId: p.userId, type: type.id, taskId: task.id, title, input, createdAt: now }
      await insertPlan(task, plan)
      await deps.announce?.()
      const [taskRow] = await db.select().from(t.tasks).where(eq(t.tasks.id, task.id))
      return { plan: { ...plan }, task: taskRow! }
    },

    /** The caller's plans, newest first, with their tasks' status. */
    async history(userId: string, page: PageRequest) {
      const where = eq(t.plans.userId, userId)
      const [rows, [total]] = await Promise.all([
        db
          .select({ plan: t.plans, status: t.tasks.status })
          .from(t.plans)
          .innerJoin(t.tasks, eq(t.tasks.id, t.plans.taskId))
          .where(where)
          .orderBy(desc(t.plans.createdAt), desc(t.plans.id))
          .limit(page.limit)
          .offset(page.offset),
        db.select({ n: count() }).from(t.plans).where(where),
      ])
      return { rows, total: Number(total?.n ?? 0) }
    },

    get: own,

    /** 204; the task goes with it (ON DELETE CASCADE). A running task: 409. */
    async remove(userId: string, id: string) {
      const { plan, task } = await own(userId, id)
      if (task.status === 'running') throw planRunning()
      try {
        await deps.removeTask(userId, plan.taskId)
      } catch (error) {
        // claimed or deleted meanwhile: the plan's own error
        if (error instanceof AppError && error.status === 409) throw planRunning()
        if (error instanceof AppError && error.status === 404) throw planNotFound()
        throw error
      }
    },
  }
}

export type PlansService = ReturnType<typeof createPlansService>
