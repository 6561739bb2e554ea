/**
 * @module Workflows: each user's engine workflows (ComfyUI's JSON, in its API or its UI format, kept
 * as given), with favorites, every version of their JSON, and the lock an editing agent holds.
 *
 * Versions: creating a workflow makes version 1; every change of `workflow_data` (compared deeply,
 * so a PUT with the same JSON adds none) adds the next one. The number is taken and written under a
 * per-workflow lock (src/db/lock.ts: a transaction holding an advisory lock on Postgres), so two
 * writers on two instances get two numbers; the unique index on (workflow_id, version) backs it up.
 *
 * The lock: one conditional UPDATE takes it when it is free, expired or already the holder's, so
 * two instances cannot both take it; every write that changes the workflow (PUT, DELETE, restore, a
 * workflow file, an agent's update) carries the same condition in its own statement, so a write
 * racing a lock either lands before it or is refused with `409`. A lock past `locked_until` is free
 * (a dead instance cannot keep it) and shows as `locked: null`; a sweep clears such locks and
 * publishes WORKFLOW_UNLOCKED for them.
 */
import { and, asc, desc, eq, gt, isNotNull, isNull, lte, or, sql, type SQL } from 'drizzle-orm'
import type { Bus } from '../../db/bus.ts'
import type { Database, Db } from '../../db/index.ts'
import { withLock } from '../../db/lock.ts'
import { containsText, pageWithTotal, type Page, type PageRequest } from '../../db/query.ts'
import { newId } from '../../lib/ids.ts'
import type { Logger } from '../../lib/logger.ts'
import { badWorkflowData, unknownService, versionNotFound, workflowLocked, workflowNotFound } from './errors.ts'
import { WORKFLOW_LOCK_TTL_MS, workflowLockChannel, type ServiceRow, type WorkflowLockEvent, type WorkflowRow, type WorkflowsApi } from './types.ts'

export type VersionRow = Database['t']['workflowVersions']['$inferSelect']

/** A workflow with its service's name and its counts, as the routes show it. */
export interface WorkflowView extends WorkflowRow {
  serviceName: string | null
  sessionCount: number
  versionCount: number
}

export const SORT_FIELDS = ['name', 'created_at', 'updated_at', 'last_used_at'] as const
export type SortField = (typeof SORT_FIELDS)[number]

export interface WorkflowFilter {
  serviceId?: string
  favorite?: boolean
  q?: string
  sortBy?: SortField
  sortOrder?: 'asc' | 'desc'
}

export interface WorkflowInput {
  name: string
  description?: string | null
  serviceId?: string | null
  workflowData: Record<string, unknown>
  /** the note of version 1 */
  note?: string | null
}

export type WorkflowPatch = Parameters<WorkflowsApi['update']>[2]

/** ComfyUI's workflows nest a few levels (the UI format about eight); deeper JSON is refused before it reaches the database. */
export const MAX_WORKFLOW_DEPTH = 64
const MAX_NOTE = 500
const LOCK_SWEEP_MS = 30_000

/**
 * A JSON object Hearth can store as `workflow_data`: not an array or a scalar, nested at most
 * MAX_WORKFLOW_DEPTH deep, and no NUL character in a string or a key (Postgres cannot store one).
 * The routes' bodies are checked on the way in; an agent's edit or a workflow file is checked here.
 */
export function checkWorkflowData(value: unknown, path = 'workflow_data'): asserts value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw badWorkflowData(`must be a JSON object, not ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`}`, path)
  const walk = (v: unknown, depth: number) => {
    if (typeof v === 'string') {
      if (v.includes('\0')) throw badWorkflowData('must not contain the NUL character (U+0000)', path)
      return
    }
    if (v === null || typeof v !== 'object') return
    if (depth > MAX_WORKFLOW_DEPTH) throw badWorkflowData(`must not nest deeper than ${MAX_WORKFLOW_DEPTH} levels`, path)
    if (Array.isArray(v)) for (const x of v) walk(x, depth + 1)
    else
      for (const [k, x] of Object.entries(v)) {
        if (k.includes('\0')) throw badWorkflowData('must not contain the NUL character (U+0000)', path)
        walk(x, depth + 1)
      }
  }
  walk(value, 1)
}

const cleanNote = (note: string | null | undefined) => (note == null ? null : note.slice(0, MAX_NOTE))

export function createWorkflowsService(deps: { database: Database; bus: Bus; logger: Logger; services: { find(id: string): Promise<ServiceRow | null> }; lockSweepMs?: number }) {
  const { database, bus, logger } = deps
  const { db, t } = database
  const w = t.workflows

  const own = (userId: string, id: string) => and(eq(w.id, id), eq(w.userId, userId))
  /** the lock lets this writer through: free, expired, or its own (a writer without a holder passes only the first two) */
  const writable = (now: Date, holder?: string) => or(isNull(w.lockedBy), isNull(w.lockedUntil), lte(w.lockedUntil, now), holder === undefined ? undefined : eq(w.lockedBy, holder))!
  const liveLock = (row: WorkflowRow, now = new Date()) => row.lockedBy !== null && row.lockedUntil !== null && row.lockedUntil.getTime() > now.getTime()
  const blocks = (row: WorkflowRow, holder: string | undefined, now = new Date()) => liveLock(row, now) && row.lockedBy !== holder

  const sessionCount = sql<number>`(select count(*) from ${t.workflowSessions} where ${t.workflowSessions.workflowId} = ${w.id})`.mapWith(Number)
  const versionCount = sql<number>`(select count(*) from ${t.workflowVersions} where ${t.workflowVersions.workflowId} = ${w.id})`.mapWith(Number)
  const viewColumns = { workflow: w, serviceName: t.services.name, sessionCount, versionCount }
  const toView = (r: { workflow: WorkflowRow; serviceName: string | null; sessionCount: number; versionCount: number }): WorkflowView => ({ ...r.workflow, serviceName: r.serviceName, sessionCount: r.sessionCount, versionCount: r.versionCount })

  async function publish(event: WorkflowLockEvent) {
    await bus.publish(workflowLockChannel, event).catch((error) => logger.warn('workflow lock event not sent', { error, workflow_id: event.workflow_id }))
  }

  async function get(userId: string, id: string, q: Db = db): Promise<WorkflowRow> {
    const [row] = await q.select().from(w).where(own(userId, id))
    if (!row) throw workflowNotFound()
    return row
  }

  async function view(userId: string, id: string): Promise<WorkflowView> {
    const [row] = await db.select(viewColumns).from(w).leftJoin(t.services, eq(t.services.id, w.serviceId)).where(own(userId, id))
    if (!row) throw workflowNotFound()
    return toView(row)
  }

  async function checkService(serviceId: string | null | undefined) {
    if (serviceId && !(await deps.services.find(serviceId))) throw unknownService()
  }

  /** Why a conditional write touched no row: the workflow is not the user's (404) or someone else holds its lock (409). */
  async function refusal(userId: string, id: string, holder: string | undefined): Promise<never> {
    const row = await get(userId, id)
    if (blocks(row, holder)) throw workflowLocked(row.lockedReason)
    // the lock was freed between the write and this read: the caller may simply try again
    throw workflowLocked(null)
  }

  /**
   * Change a workflow. A change of `workflowData` (or any, with `force`) adds the next version.
   * Refused with 409 while another holder's lock is live; 404 when it is not the user's.
   */
  async function update(userId: string, id: string, patch: WorkflowPatch, opts: { holder?: string; force?: boolean } = {}): Promise<WorkflowRow> {
    if (patch.workflowData !== undefined) checkWorkflowData(patch.workflowData)
    await checkService(patch.serviceId)
    return withLock(database, `workflow:${id}`, async (q) => {
      const now = new Date()
      const row = await get(userId, id, q)
      if (blocks(row, opts.holder, now)) throw workflowLocked(row.lockedReason)
      const changed = patch.workflowData !== undefined && (opts.force || !Bun.deepEquals(row.workflowData, patch.workflowData, true))
      const values: Partial<typeof w.$inferInsert> = { updatedAt: now }
      if (patch.name !== undefined) values.name = patch.name
      if (patch.description !== undefined) values.description = patch.description
      if (patch.serviceId !== undefined) values.serviceId = patch.serviceId
      if (changed) Object.assign(values, { workflowData: patch.workflowData, currentVersion: row.currentVersion + 1 })
      const [updated] = await q
        .update(w)
        .set(values)
        .where(and(own(userId, id), writable(now, opts.holder)))
        .returning()
      if (!updated) return refusal(userId, id, opts.holder)
      if (changed) await q.insert(t.workflowVersions).values({ workflowId: id, version: updated.currentVersion, workflowData: patch.workflowData!, note: cleanNote(patch.note), createdAt: now })
      return updated
    })
  }

  async function listVersion(userId: string, id: string, version: number): Promise<VersionRow> {
    await get(userId, id)
    const [row] = await db
      .select()
      .from(t.workflowVersions)
      .where(and(eq(t.workflowVersions.workflowId, id), eq(t.workflowVersions.version, version)))
    if (!row) throw versionNotFound(version)
    return row
  }

  let sweeper: Timer | undefined

  async function sweepExpiredLocks(now = new Date()): Promise<number> {
    const freed = await db
      .update(w)
      .set({ lockedBy: null, lockedReason: null, lockedSince: null, lockedUntil: null })
      .where(and(isNotNull(w.lockedBy), lte(w.lockedUntil, now)))
      .returning({ id: w.id, userId: w.userId })
    for (const f of freed) await publish({ type: 'WORKFLOW_UNLOCKED', user_id: f.userId, workflow_id: f.id })
    return freed.length
  }

  const api = {
    get: (userId: string, id: string) => get(userId, id),

    async serviceOf(workflow: WorkflowRow): Promise<ServiceRow | null> {
      return workflow.serviceId ? deps.services.find(workflow.serviceId) : null
    },

    async lock(userId: string, id: string, holder: string, reason: string, ttlMs = WORKFLOW_LOCK_TTL_MS): Promise<void> {
      const now = new Date()
      const until = new Date(now.getTime() + ttlMs)
      // renewed by its holder: it keeps the time it was taken; otherwise it is taken now
      const renewal = and(eq(w.lockedBy, holder), gt(w.lockedUntil, now))
      const [row] = await db
        .update(w)
        .set({ lockedBy: holder, lockedReason: reason, lockedUntil: until, lockedSince: sql`case when ${renewal} then ${w.lockedSince} else ${sql.param(now, w.lockedSince)} end` })
        .where(and(own(userId, id), writable(now, holder)))
        .returning({ since: w.lockedSince })
      if (!row) return refusal(userId, id, holder)
      if (row.since?.getTime() === now.getTime()) await publish({ type: 'WORKFLOW_LOCKED', user_id: userId, workflow_id: id, reason })
    },

    async unlock(userId: string, id: string, holder: string): Promise<void> {
      const [row] = await db
        .update(w)
        .set({ lockedBy: null, lockedReason: null, lockedSince: null, lockedUntil: null })
        .where(and(own(userId, id), eq(w.lockedBy, holder)))
        .returning({ id: w.id })
      if (row) await publish({ type: 'WORKFLOW_UNLOCKED', user_id: userId, workflow_id: id })
    },

    update: (userId: string, id: string, patch: WorkflowPatch, opts?: { holder?: string }) => update(userId, id, patch, { holder: opts?.holder }),

    async touch(id: string): Promise<void> {
      await db.update(w).set({ lastUsedAt: new Date() }).where(eq(w.id, id))
    },
  } satisfies WorkflowsApi

  return {
    ...api,
    view,

    async list(userId: string, filter: WorkflowFilter, page: PageRequest): Promise<Page<WorkflowView>> {
      const where = and(
        eq(w.userId, userId),
        filter.serviceId !== undefined ? eq(w.serviceId, filter.serviceId) : undefined,
        filter.favorite !== undefined ? eq(w.isFavorite, filter.favorite) : undefined,
        filter.q ? or(containsText(w.name, filter.q), containsText(w.description, filter.q)) : undefined,
      ) as SQL
      const dir = (filter.sortOrder ?? 'desc') === 'asc' ? asc : desc
      const sortBy = filter.sortBy ?? 'updated_at'
      const order: SQL[] =
        sortBy === 'name'
          ? [dir(sql`lower(${w.name})`)]
          : sortBy === 'created_at'
            ? [dir(w.createdAt)]
            : sortBy === 'updated_at'
              ? [dir(w.updatedAt)]
              : // never used comes last either way (the dialects place NULLs differently)
                [asc(sql`case when ${w.lastUsedAt} is null then 1 else 0 end`), dir(w.lastUsedAt)]
      const { rows, total } = await pageWithTotal(
        db
          .select(viewColumns)
          .from(w)
          .leftJoin(t.services, eq(t.services.id, w.serviceId))
          .where(where)
          .orderBy(...order, dir(w.id))
          .limit(page.limit)
          .offset(page.offset),
        db.select({ n: sql<number>`count(*)`.mapWith(Number) }).from(w).where(where),
      )
      return { rows: rows.map(toView), total }
    },

    /** Version 1 is written with it. */
    async create(userId: string, input: WorkflowInput): Promise<WorkflowView> {
      checkWorkflowData(input.workflowData)
      await checkService(input.serviceId)
      const now = new Date()
      const id = newId()
      // one transaction on Postgres: a workflow is never seen without its version 1
      await withLock(database, `workflow:${id}`, async (q) => {
        await q
          .insert(w)
          .values({ id, userId, name: input.name, description: input.description ?? null, serviceId: input.serviceId ?? null, workflowData: input.workflowData, currentVersion: 1, createdAt: now, updatedAt: now })
        await q.insert(t.workflowVersions).values({ workflowId: id, version: 1, workflowData: input.workflowData, note: cleanNote(input.note), createdAt: now })
      })
      return view(userId, id)
    },

    /** Refused while someone holds its lock. Its versions and sessions go with it. */
    async remove(userId: string, id: string) {
      const [row] = await db
        .delete(w)
        .where(and(own(userId, id), writable(new Date())))
        .returning({ id: w.id })
      if (!row) await refusal(userId, id, undefined)
    },

    /** A favorite is the user's mark, not a change of the workflow: not refused by a lock, `updated_at` stays. */
    async setFavorite(userId: string, id: string, favorite: boolean): Promise<boolean> {
      const [row] = await db.update(w).set({ isFavorite: favorite }).where(own(userId, id)).returning({ isFavorite: w.isFavorite })
      if (!row) throw workflowNotFound()
      return row.isFavorite
    },

    /** every version, newest first, without their JSON */
    async versions(userId: string, id: string): Promise<Pick<VersionRow, 'version' | 'createdAt' | 'note'>[]> {
      await get(userId, id)
      return db
        .select({ version: t.workflowVersions.version, createdAt: t.workflowVersions.createdAt, note: t.workflowVersions.note })
        .from(t.workflowVersions)
        .where(eq(t.workflowVersions.workflowId, id))
        .orderBy(desc(t.workflowVersions.version))
    },

    version: listVersion,

    /** A new version equal to `version` (always added, even when it equals the current one). */
    async restore(userId: string, id: string, version: number): Promise<WorkflowRow> {
      const old = await listVersion(userId, id, version)
      return update(userId, id, { workflowData: old.workflowData, note: `restored from version ${version}` }, { force: true })
    },

    /** 404 when it is not the user's, 409 while another holder's lock is live: checked before an upload is kept. */
    async assertWritable(userId: string, id: string): Promise<void> {
      const row = await get(userId, id)
      if (blocks(row, undefined)) throw workflowLocked(row.lockedReason)
    },

    /** 422 (naming `file`) unless it can be a workflow's JSON */
    checkData: (value: unknown) => checkWorkflowData(value, 'file'),

    /** An uploaded workflow file's JSON as the next version (none when it equals the current JSON); the version it is. */
    async addFileVersion(userId: string, id: string, data: unknown, fileName: string): Promise<number> {
      checkWorkflowData(data, 'file')
      const row = await update(userId, id, { workflowData: data, note: `uploaded as ${fileName}`.slice(0, MAX_NOTE) })
      return row.currentVersion
    },

    /** Locks past their time, freed and announced; every instance sweeps, each lock is freed once. */
    sweepExpiredLocks,

    start() {
      if (sweeper) return
      sweeper = setInterval(() => void sweepExpiredLocks().catch((error) => logger.warn('workflow lock sweep failed', { error })), deps.lockSweepMs ?? LOCK_SWEEP_MS)
      sweeper.unref?.()
    },

    close() {
      clearInterval(sweeper)
      sweeper = undefined
    },

    /** whether a live lock is on it now, for the wire's `locked` */
    liveLock,
  }
}

export type WorkflowsService = ReturnType<typeof createWorkflowsService>
