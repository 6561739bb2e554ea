/**
 * @module Workflow services: the external engines (ComfyUI first) that admins register and every
 * signed-in user's workflows point at. Each keeps the outcome of its last health check — `status`,
 * `response_time_ms`, `version`, `last_check_time` — refreshed by the admin's `test` and by a check
 * every minute.
 *
 * The periodic check runs on every instance, but each service is checked by one of them per
 * interval: a cycle first claims the services that are due (last checked longer ago than 90% of the
 * interval) with one conditional UPDATE that stamps their `last_check_time`, and checks only those.
 * Two instances' claims of the same row serialise on its row lock, and the second no longer finds
 * it due — so the engines are not probed twice as often when there are two instances.
 */
import { and, asc, count, eq, isNull, lt, or, sql, type SQL } from 'drizzle-orm'
import { isUniqueViolation } from '../../db/errors.ts'
import type { Database } from '../../db/index.ts'
import type { Logger } from '../../lib/logger.ts'
import type { OutboundCaller, OutboundGuard } from '../../lib/outbound.ts'
import type { PageRequest } from '../../db/query.ts'
import type { ServiceRow } from '../workflows/types.ts'
import { probeComfyUI, type EngineDevice } from './comfyui.ts'
import { badServiceUrl, serviceNameTaken, serviceNotFound } from './errors.ts'

export type ServiceKind = 'comfyui'

/** A service with how many workflows (of every user) use it and how many sessions those workflows have. */
export interface ServiceView extends ServiceRow {
  workflowCount: number
  sessionCount: number
}

export interface ServiceInput {
  name: string
  kind?: ServiceKind
  url: string
  description?: string | null
}

export type ServiceChanges = Partial<ServiceInput>

export interface ServiceTestResult {
  status: 'online' | 'offline'
  responseTimeMs: number
  version?: string | null
  devices?: EngineDevice[]
  error?: string
}

/** An admin set the URL: it is reached with an admin's rights (private addresses allowed), whoever's action leads to the call. */
export const SERVICE_SENDER: OutboundCaller = { role: 'admin' }

export const DEFAULT_CHECK_TIMEOUT_MS = 5_000
export const DEFAULT_HEALTH_INTERVAL_MS = 60_000
const MAX_URL_LENGTH = 2048
/** services checked at once in one cycle */
const CHECK_CONCURRENCY = 8

/**
 * The URL as it is kept: http or https, no user name or password (they would be stored and shown
 * in clear; an engine behind authentication is not supported), no query or fragment (endpoint paths
 * are appended to it), no trailing slash. A path is kept: a reverse proxy may serve ComfyUI under one.
 */
export function cleanServiceUrl(input: string): string {
  let url: URL
  try {
    url = new URL(input.trim())
  } catch {
    throw badServiceUrl('must be an http or https URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badServiceUrl('must be an http or https URL')
  if (url.username || url.password) throw badServiceUrl('must not hold a user name or password')
  if (url.search || url.hash || input.includes('?') || input.includes('#')) throw badServiceUrl('must not have a query string or a fragment')
  const clean = url.href.replace(/\/+$/, '')
  if (clean.length > MAX_URL_LENGTH) throw badServiceUrl(`must be at most ${MAX_URL_LENGTH} characters`)
  return clean
}

export function createWorkflowServices(deps: { database: Database; outbound: OutboundGuard; logger: Logger; checkTimeoutMs?: number; healthIntervalMs?: number }) {
  const { database, outbound, logger } = deps
  const { db, t } = database
  const timeoutMs = deps.checkTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS
  const intervalMs = deps.healthIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS
  const fetcher = () => outbound.fetchFor(SERVICE_SENDER)

  // how many workflows use each service, and how many sessions those workflows have: grouped once, joined to the services
  const workflowCounts = () => db.select({ serviceId: t.workflows.serviceId, n: count().as('workflow_n') }).from(t.workflows).where(sql`${t.workflows.serviceId} is not null`).groupBy(t.workflows.serviceId).as('wc')
  const sessionCounts = () =>
    db
      .select({ serviceId: t.workflows.serviceId, n: count().as('session_n') })
      .from(t.workflowSessions)
      .innerJoin(t.workflows, eq(t.workflows.id, t.workflowSessions.workflowId))
      .where(sql`${t.workflows.serviceId} is not null`)
      .groupBy(t.workflows.serviceId)
      .as('sc')

  async function views(where: SQL | undefined, page?: PageRequest): Promise<ServiceView[]> {
    const wc = workflowCounts()
    const sc = sessionCounts()
    const query = db
      .select({ service: t.services, workflowCount: sql<number>`coalesce(${wc.n}, 0)`.mapWith(Number), sessionCount: sql<number>`coalesce(${sc.n}, 0)`.mapWith(Number) })
      .from(t.services)
      .leftJoin(wc, eq(wc.serviceId, t.services.id))
      .leftJoin(sc, eq(sc.serviceId, t.services.id))
      .where(where)
      .orderBy(asc(sql`lower(${t.services.name})`), asc(t.services.id))
    const rows = page ? await query.limit(page.limit).offset(page.offset) : await query
    return rows.map((r) => ({ ...r.service, workflowCount: r.workflowCount, sessionCount: r.sessionCount }))
  }

  async function get(id: string): Promise<ServiceView> {
    const [row] = await views(eq(t.services.id, id))
    if (!row) throw serviceNotFound()
    return row
  }

  const asNameTaken = (error: unknown) => (isUniqueViolation(error) ? serviceNameTaken() : error)

  /** Probe the service and keep the outcome on its row (when its URL is still the one probed). */
  async function check(row: Pick<ServiceRow, 'id' | 'url' | 'kind'>, at: Date): Promise<ServiceTestResult> {
    const probe = await probeComfyUI(fetcher(), row.url, timeoutMs)
    const values =
      probe.status === 'online'
        ? { status: probe.status, responseTimeMs: probe.responseTimeMs, version: probe.version, lastError: null, lastCheckTime: at }
        : { status: probe.status, responseTimeMs: null, lastError: probe.error, lastCheckTime: at }
    await db.update(t.services).set(values).where(and(eq(t.services.id, row.id), eq(t.services.url, row.url)))
    return probe.status === 'online'
      ? { status: 'online', responseTimeMs: probe.responseTimeMs, version: probe.version, devices: probe.devices }
      : { status: 'offline', responseTimeMs: probe.responseTimeMs, error: probe.error }
  }

  /** One health-check cycle: claim the services that are due (one UPDATE, so another instance claims none of them) and check those. Returns how many it checked. */
  async function checkDue(now = new Date()): Promise<number> {
    const dueBefore = new Date(now.getTime() - Math.floor(intervalMs * 0.9))
    const claimed = await db
      .update(t.services)
      .set({ lastCheckTime: now })
      .where(or(isNull(t.services.lastCheckTime), lt(t.services.lastCheckTime, dueBefore)))
      .returning({ id: t.services.id, url: t.services.url, kind: t.services.kind })
    let next = 0
    const worker = async () => {
      while (next < claimed.length) {
        const row = claimed[next++]!
        await check(row, now).catch((error) => logger.warn('service health check not recorded', { error, service_id: row.id }))
      }
    }
    await Promise.all(Array.from({ length: Math.min(CHECK_CONCURRENCY, claimed.length) }, worker))
    return claimed.length
  }

  let timer: Timer | undefined
  let cycle: Promise<unknown> | undefined

  return {
    get,

    /** every service, by name */
    async list(page: PageRequest): Promise<{ rows: ServiceView[]; total: number }> {
      const [rows, [total]] = await Promise.all([views(undefined, page), db.select({ n: count() }).from(t.services)])
      return { rows, total: Number(total?.n ?? 0) }
    },

    /** The row alone (no counts), or null: for workflows, which name their service. */
    async find(id: string): Promise<ServiceRow | null> {
      const [row] = await db.select().from(t.services).where(eq(t.services.id, id))
      return row ?? null
    },

    async create(input: ServiceInput): Promise<ServiceView> {
      const url = cleanServiceUrl(input.url)
      await outbound.check(SERVICE_SENDER, url, 'url')
      const [row] = await db
        .insert(t.services)
        .values({ name: input.name, kind: input.kind ?? 'comfyui', url, description: input.description ?? null })
        .returning()
        .catch((error) => Promise.reject(asNameTaken(error)))
      return { ...row!, workflowCount: 0, sessionCount: 0 }
    },

    /** Fields left out are kept. A new URL makes the status `unknown` until the next check. */
    async update(id: string, changes: ServiceChanges): Promise<ServiceView> {
      const values: Partial<typeof t.services.$inferInsert> = { updatedAt: new Date() }
      if (changes.name !== undefined) values.name = changes.name
      if (changes.kind !== undefined) values.kind = changes.kind
      if (changes.description !== undefined) values.description = changes.description
      if (changes.url !== undefined) {
        const url = cleanServiceUrl(changes.url)
        await outbound.check(SERVICE_SENDER, url, 'url')
        const [current] = await db.select({ url: t.services.url }).from(t.services).where(eq(t.services.id, id))
        if (!current) throw serviceNotFound()
        if (current.url !== url) Object.assign(values, { url, status: 'unknown' as const, responseTimeMs: null, version: null, lastError: null, lastCheckTime: null })
      }
      const [row] = await db
        .update(t.services)
        .set(values)
        .where(eq(t.services.id, id))
        .returning({ id: t.services.id })
        .catch((error) => Promise.reject(asNameTaken(error)))
      if (!row) throw serviceNotFound()
      return get(id)
    },

    /** Its workflows stay, without a service (`service_id` null). */
    async remove(id: string) {
      const [row] = await db.delete(t.services).where(eq(t.services.id, id)).returning({ id: t.services.id })
      if (!row) throw serviceNotFound()
    },

    /** Probe it now and keep the outcome: a failure is `offline` with the reason, never an error. */
    async test(id: string): Promise<ServiceTestResult> {
      const row = await get(id)
      return check(row, new Date())
    },

    checkDue,

    /** Start the health check every interval (an unref'd timer: it never keeps the process alive). */
    start() {
      if (timer) return
      timer = setInterval(() => {
        if (cycle) return // the last one is still probing
        cycle = checkDue()
          .catch((error) => logger.warn('service health check failed', { error }))
          .finally(() => (cycle = undefined))
      }, intervalMs)
      timer.unref?.()
    },

    async close() {
      clearInterval(timer)
      timer = undefined
      await cycle
    },
  }
}

export type WorkflowServices = ReturnType<typeof createWorkflowServices>
