/** @module Admin-only: users, invites and system status (API.md §2, §4). */
import { count } from 'drizzle-orm'
import { Elysia } from 'elysia'
import { z } from 'zod'
import type { Database } from '../../db/index.ts'
import { isoDate, listQuery, page, pageOf, problemSchema } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { idParams, userSchema } from '../auth/model.ts'
import type { AuthService } from '../auth/service.ts'
import { toUser, type UsersService } from '../users/service.ts'
import type { Invites } from './invites.ts'
import type { UsageService } from '../usage/service.ts'

const inviteSchema = z.object({ id: z.string(), prefix: z.string(), note: z.string().nullable(), created_at: isoDate, expires_at: isoDate.nullable(), used_at: isoDate.nullable(), used_by: z.string().nullable() }).meta({ id: 'Invite' })
const adminUserSchema = userSchema.extend({ credits: z.object({ balance: z.number(), used: z.number() }) })
const problems = { 401: problemSchema, 403: problemSchema, 404: problemSchema, 409: problemSchema, 422: problemSchema }

export function adminRoutes(deps: { database: Database; users: UsersService; auth: AuthService; invites: Invites; usage: UsageService; totals: () => Promise<{ conversations: number; messages: number }>; version: string; authPlugin: ReturnType<typeof authPlugin> }) {
  const { database, users, auth, invites } = deps
  const startedAt = Date.now()
  const withCredits = (u: Awaited<ReturnType<UsersService['get']>>) => ({ ...toUser(u), credits: { balance: u.creditBalance, used: u.creditUsed } })

  return new Elysia({ name: 'hearth.routes.admin', prefix: '/api/v1', detail: { tags: ['Admin'] } })
    .use(deps.authPlugin)
    .get(
      '/admin/users',
      async ({ query }) => {
        const { rows, total } = await users.list({ q: query.q, role: query.role, isActive: query.is_active === undefined ? undefined : query.is_active === 'true', limit: query.limit, offset: query.offset })
        return pageOf(rows.map(withCredits), total, query)
      },
      {
        auth: 'admin',
        query: listQuery.extend({ q: z.string().max(100).optional(), role: z.enum(['user', 'admin']).optional(), is_active: z.enum(['true', 'false']).optional() }),
        response: { 200: page(adminUserSchema), ...problems },
        detail: { summary: 'List and search users' },
      },
    )
    .patch(
      '/admin/users/:id',
      async ({ params, body }) => {
        const { user, disabled, roleChanged } = await users.adminUpdate(params.id, { role: body.role, isActive: body.is_active, creditsDelta: body.credits_delta })
        if (disabled) await auth.revokeEverything(user.id)
        else if (roleChanged) await auth.cutOffAccessTokens(user.id)
        return withCredits(user)
      },
      {
        auth: 'admin',
        params: idParams,
        body: z.object({ role: z.enum(['user', 'admin']).optional(), is_active: z.boolean().optional(), credits_delta: z.number().finite().min(-1e12).max(1e12).optional() }),
        response: { 200: adminUserSchema, ...problems },
        detail: { summary: "Change a user's role, active flag or credits; disabling revokes their sessions and API keys at once" },
      },
    )
    .delete(
      '/admin/users/:id',
      async ({ params, set }) => {
        await users.remove(params.id)
        // sessions and keys went with the row; access tokens already issued stop now
        await auth.cutOffAccessTokens(params.id)
        set.status = 204
      },
      { auth: 'admin', params: idParams, response: { 204: z.void(), ...problems }, detail: { summary: 'Delete a user and everything they own' } },
    )
    .post(
      '/admin/invites',
      async ({ principal, body, set }) => {
        const invite = await invites.create(principal.userId, { note: body.note, expiresAt: body.expires_at ? new Date(body.expires_at) : null })
        set.status = 201
        set.headers.location = `/api/v1/admin/invites/${invite.id}`
        return invite
      },
      {
        auth: 'admin',
        body: z.object({ note: z.string().max(200).nullable().optional(), expires_at: z.iso.datetime({ offset: true }).nullable().optional() }),
        response: { 201: inviteSchema.extend({ code: z.string() }), ...problems },
        detail: { summary: 'Create a single-use invite code (shown only now)' },
      },
    )
    .get(
      '/admin/invites',
      async ({ query }) => {
        const { items, total } = await invites.list(query.limit, query.offset)
        return pageOf(items, total, query)
      },
      { auth: 'admin', query: listQuery, response: { 200: page(inviteSchema), ...problems }, detail: { summary: 'Invite codes (without the codes)' } },
    )
    .delete(
      '/admin/invites/:id',
      async ({ params, set }) => {
        await invites.remove(params.id)
        set.status = 204
      },
      { auth: 'admin', params: idParams, response: { 204: z.void(), ...problems }, detail: { summary: 'Withdraw an invite code' } },
    )
    .get(
      '/admin/usage',
      async ({ query }) => {
        const { items, total } = await deps.usage.aggregate({ from: query.from ? new Date(query.from) : undefined, to: query.to ? new Date(query.to) : undefined, userId: query.user_id, model: query.model, limit: query.limit, offset: query.offset })
        return pageOf(items, total, query)
      },
      {
        auth: 'admin',
        query: listQuery.extend({ from: z.iso.datetime({ offset: true }).or(z.iso.date()).optional(), to: z.iso.datetime({ offset: true }).or(z.iso.date()).optional(), user_id: z.string().max(64).optional(), model: z.string().max(200).optional() }),
        response: {
          200: page(z.object({ day: z.string(), user_id: z.string().nullable(), username: z.string().nullable(), model: z.string(), calls: z.number().int(), input_tokens: z.number().int(), output_tokens: z.number().int(), cost: z.number(), errors: z.number().int() })),
          ...problems,
        },
        detail: { summary: 'Model usage by day (UTC), user and model; `from` inclusive, `to` exclusive' },
      },
    )
    .get(
      '/system/status',
      async () => {
        const [[usersCount], totals] = await Promise.all([database.db.select({ n: count() }).from(database.t.users), deps.totals()])
        return {
          version: deps.version,
          uptime_s: Math.floor((Date.now() - startedAt) / 1000),
          database: database.dialect,
          counts: { users: Number(usersCount?.n ?? 0), ...totals, tasks: 0 },
          memory: { rss_bytes: process.memoryUsage.rss() },
        }
      },
      {
        auth: 'admin',
        response: {
          200: z.object({ version: z.string(), uptime_s: z.number().int(), database: z.enum(['sqlite', 'postgres']), counts: z.object({ users: z.number().int(), conversations: z.number().int(), messages: z.number().int(), tasks: z.number().int() }), memory: z.object({ rss_bytes: z.number().int() }) }),
          ...problems,
        },
        detail: { summary: 'Version, uptime, database and counts' },
      },
    )
}
