/**
 * @module The task queue's statements, per dialect: claim, heartbeat, hand-back, and a step appended
 * together with its task row (seq = last_seq + 1 in the same statement or transaction). On Postgres
 * one statement each (a data-modifying CTE for a step); on SQLite synchronous bun:sqlite statements
 * in one write transaction, so nothing interleaves. Every write a worker makes is fenced by
 * `lease_owner`: a worker whose lease was taken over (or cancelled) writes nothing more.
 */
import type { Database as SQLite } from 'bun:sqlite'
import type postgres from 'postgres'
import type { Database } from '../db/index.ts'
import { newId } from '../lib/ids.ts'

export type TaskStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled'

/** What a step changes on its task row besides last_seq. */
export interface StepEffect {
  /** only while the task is held by this worker (null: no fence, for external tasks and cancels) */
  owner?: string | null
  /** only while the task is in one of these statuses */
  whenStatus?: TaskStatus[]
  progress?: number
  usage?: { inputTokens: number; outputTokens: number; cost: number }
  /** a status change: a terminal one clears the lease and sets finished_at; `pending` (a retry's backoff) clears the lease and sets run_after */
  status?: TaskStatus
  result?: unknown
  error?: { code: string; message: string } | null
  runAfterMs?: number
  cancelRequested?: boolean
}

export interface TaskStore {
  /** Claim one task of `kinds`: the oldest pending one of the user with the fewest running, or one whose lease ran out. */
  claim(owner: string, kinds: string[], leaseMs: number, userMax: number): Promise<string | undefined>
  /** Renew the leases of `ids` held by `owner`; returns the ones still held, with their cancel flag. */
  heartbeat(owner: string, ids: string[], leaseMs: number): Promise<{ id: string; cancelRequested: boolean }[]>
  /** Give back every running task `owner` holds (not counted as an attempt); returns their ids. */
  handBack(owner: string): Promise<string[]>
  /** Append steps (in one statement or transaction) and apply `effect`; the last one's seq, undefined when the fence or status check refused it. */
  append(taskId: string, steps: NewStep[], effect?: StepEffect, timestamp?: Date): Promise<number | undefined>
}

export interface NewStep {
  step: string
  data: unknown
}

const TERMINAL = new Set<TaskStatus>(['completed', 'failed', 'cancelled'])

export function createTaskStore(database: Database): TaskStore {
  return database.client.kind === 'postgres' ? postgresStore(database.client.sql) : sqliteStore(database.client.sqlite)
}

function postgresStore(sql: postgres.Sql): TaskStore {
  const json = (v: unknown) => (v === undefined ? null : JSON.stringify(v))
  return {
    async claim(owner, kinds, leaseMs, userMax) {
      // claims are serialised by one advisory lock, so that the per-user cap holds across instances;
      // SKIP LOCKED keeps a claim from waiting on rows another transaction (a cancel, a step) holds
      const rows = await sql.begin(async (tx) => {
        await tx`SELECT pg_advisory_xact_lock(hashtext('hearth_task_claim'))`
        return tx<{ id: string }[]>`
          UPDATE tasks SET status = 'running', lease_owner = ${owner}, lease_until = now() + ${leaseMs} * interval '1 millisecond',
            attempts = attempts + 1, started_at = coalesce(started_at, now()), run_after = NULL, updated_at = now()
          WHERE id = (
            WITH busy AS (SELECT user_id, count(*) AS n FROM tasks WHERE status = 'running' AND lease_until >= now() GROUP BY user_id)
            SELECT c.id FROM tasks c LEFT JOIN busy b ON b.user_id = c.user_id
            WHERE c.kind IN ${sql(kinds)}
              AND ((c.status = 'pending' AND (c.run_after IS NULL OR c.run_after <= now())) OR (c.status = 'running' AND c.lease_until < now()))
              AND coalesce(b.n, 0) < ${userMax}
            ORDER BY coalesce(b.n, 0), c.created_at, c.id
            LIMIT 1 FOR UPDATE OF c SKIP LOCKED)
          RETURNING id`
      })
      return rows[0]?.id
    },
    async heartbeat(owner, ids, leaseMs) {
      if (!ids.length) return []
      const rows = await sql<{ id: string; cancel_requested: boolean }[]>`
        UPDATE tasks SET lease_until = now() + ${leaseMs} * interval '1 millisecond'
        WHERE id IN ${sql(ids)} AND lease_owner = ${owner} AND status = 'running' RETURNING id, cancel_requested`
      return rows.map((r) => ({ id: r.id, cancelRequested: r.cancel_requested }))
    },
    async handBack(owner) {
      const rows = await sql<{ id: string }[]>`
        UPDATE tasks SET status = 'pending', lease_owner = NULL, lease_until = NULL, attempts = greatest(attempts - 1, 0), updated_at = now()
        WHERE lease_owner = ${owner} AND status = 'running' RETURNING id`
      return rows.map((r) => r.id)
    },
    async append(taskId, steps, e = {}, timestamp = new Date()) {
      const u = e.usage
      const n = steps.length
      const terminal = e.status !== undefined && TERMINAL.has(e.status)
      const rows = await sql<{ seq: number }[]>`
        WITH t AS (
          UPDATE tasks SET last_seq = last_seq + ${n}, updated_at = now()
            ${e.progress === undefined ? sql`` : sql`, progress = ${e.progress}`}
            ${u ? sql`, input_tokens = input_tokens + ${u.inputTokens}, output_tokens = output_tokens + ${u.outputTokens}, cost = cost + ${u.cost}` : sql``}
            ${e.status === undefined ? sql`` : sql`, status = ${e.status}`}
            ${terminal ? sql`, finished_at = now(), lease_owner = NULL, lease_until = NULL` : sql``}
            ${e.status === 'pending' ? sql`, lease_owner = NULL, lease_until = NULL, run_after = now() + ${e.runAfterMs ?? 0} * interval '1 millisecond'` : sql``}
            ${e.result === undefined ? sql`` : sql`, result = ${json(e.result)}::jsonb`}
            ${e.error === undefined ? sql`` : sql`, error = ${json(e.error)}::jsonb`}
            ${e.cancelRequested === undefined ? sql`` : sql`, cancel_requested = ${e.cancelRequested}`}
          WHERE id = ${taskId}
            ${e.owner ? sql`AND lease_owner = ${e.owner} AND status = 'running'` : sql``}
            ${e.whenStatus ? sql`AND status IN ${sql(e.whenStatus)}` : sql``}
          RETURNING last_seq),
        s AS (SELECT v, ord FROM jsonb_array_elements(${JSON.stringify(steps.map((x) => ({ id: newId(), step: x.step, data: x.data ?? null })))}::jsonb) WITH ORDINALITY AS x(v, ord))
        INSERT INTO task_steps (id, task_id, seq, step, data, "timestamp", created_at)
        SELECT s.v->>'id', ${taskId}, t.last_seq - ${n} + s.ord, s.v->>'step', s.v->'data', ${timestamp.toISOString()}::timestamptz, now() FROM t, s
        RETURNING seq`
      return rows.length ? Math.max(...rows.map((r) => r.seq)) : undefined
    },
  }
}

function sqliteStore(db: SQLite): TaskStore {
  const json = (v: unknown) => (v === undefined ? null : JSON.stringify(v))
  const insertStep = db.query('INSERT INTO task_steps (id, task_id, seq, step, data, "timestamp", created_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
  const claimOne = (owner: string, kinds: string[], leaseMs: number, userMax: number) => {
    const now = Date.now()
    const row = db
      .query(
        `UPDATE tasks SET status = 'running', lease_owner = ?2, lease_until = ?1 + ?3, attempts = attempts + 1, started_at = coalesce(started_at, ?1), run_after = NULL, updated_at = ?1
         WHERE id = (
           WITH busy AS (SELECT user_id, count(*) AS n FROM tasks WHERE status = 'running' AND lease_until >= ?1 GROUP BY user_id)
           SELECT c.id FROM tasks c LEFT JOIN busy b ON b.user_id = c.user_id
           WHERE c.kind IN (SELECT value FROM json_each(?4))
             AND ((c.status = 'pending' AND (c.run_after IS NULL OR c.run_after <= ?1)) OR (c.status = 'running' AND c.lease_until < ?1))
             AND coalesce(b.n, 0) < ?5
           ORDER BY coalesce(b.n, 0), c.created_at, c.id
           LIMIT 1)
         RETURNING id`,
      )
      .get(now, owner, leaseMs, JSON.stringify(kinds), userMax) as { id: string } | null
    return row?.id
  }
  const appendTx = db.transaction((taskId: string, steps: NewStep[], e: StepEffect, timestamp: Date): number | undefined => {
    const now = Date.now()
    const sets = ['last_seq = last_seq + ?', 'updated_at = ?']
    const args: (string | number | null)[] = [steps.length, now]
    if (e.progress !== undefined) sets.push('progress = ?'), args.push(e.progress)
    if (e.usage) sets.push('input_tokens = input_tokens + ?', 'output_tokens = output_tokens + ?', 'cost = cost + ?'), args.push(e.usage.inputTokens, e.usage.outputTokens, e.usage.cost)
    if (e.status !== undefined) sets.push('status = ?'), args.push(e.status)
    if (e.status && TERMINAL.has(e.status)) sets.push('finished_at = ?', 'lease_owner = NULL', 'lease_until = NULL'), args.push(now)
    if (e.status === 'pending') sets.push('lease_owner = NULL', 'lease_until = NULL', 'run_after = ?'), args.push(now + (e.runAfterMs ?? 0))
    if (e.result !== undefined) sets.push('result = ?'), args.push(json(e.result))
    if (e.error !== undefined) sets.push('error = ?'), args.push(json(e.error))
    if (e.cancelRequested !== undefined) sets.push('cancel_requested = ?'), args.push(e.cancelRequested ? 1 : 0)
    let where = 'id = ?'
    args.push(taskId)
    if (e.owner) (where += " AND lease_owner = ? AND status = 'running'"), args.push(e.owner)
    if (e.whenStatus) (where += ` AND status IN (${e.whenStatus.map(() => '?').join(', ')})`), args.push(...e.whenStatus)
    const row = db.query(`UPDATE tasks SET ${sets.join(', ')} WHERE ${where} RETURNING last_seq`).get(...args) as { last_seq: number } | null
    if (!row) return undefined
    const first = row.last_seq - steps.length + 1
    steps.forEach((x, i) => insertStep.run(newId(), taskId, first + i, x.step, json(x.data ?? null), timestamp.getTime(), now))
    return row.last_seq
  })
  return {
    claim: async (owner, kinds, leaseMs, userMax) => claimOne(owner, kinds, leaseMs, userMax),
    async heartbeat(owner, ids, leaseMs) {
      if (!ids.length) return []
      const rows = db
        .query(`UPDATE tasks SET lease_until = ? WHERE id IN (SELECT value FROM json_each(?)) AND lease_owner = ? AND status = 'running' RETURNING id, cancel_requested`)
        .all(Date.now() + leaseMs, JSON.stringify(ids), owner) as { id: string; cancel_requested: number }[]
      return rows.map((r) => ({ id: r.id, cancelRequested: !!r.cancel_requested }))
    },
    async handBack(owner) {
      const rows = db
        .query(`UPDATE tasks SET status = 'pending', lease_owner = NULL, lease_until = NULL, attempts = max(attempts - 1, 0), updated_at = ? WHERE lease_owner = ? AND status = 'running' RETURNING id`)
        .all(Date.now(), owner) as { id: string }[]
      return rows.map((r) => r.id)
    },
    append: async (taskId, steps, e = {}, timestamp = new Date()) => appendTx(taskId, steps, e, timestamp),
  }
}
