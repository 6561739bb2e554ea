/** @module Admin-only: users and system status (docs/api.md §5), invites (§4), usage (§9). */
import { Elysia } from 'elysia'
import { z } from 'zod'
import type { Database } from '../../db/index.ts'
import { idParams, listQuery, page, pageOf, problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import type { RunRegistry } from '../../runs/index.ts'
import type { AuthService } from '../auth/service.ts'
import { sumCounts, type Counter } from '../users/activity.ts'
import type { UsersService } from '../users/service.ts'
import type { UsageService } from '../usage/service.ts'
import type { AccountService } from '../account/service.ts'
import type { InvitesService } from './invites.ts'
import * as m from './model.ts'

export function adminRoutes(deps: {
  database: Database
  users: UsersService
  auth: AuthService
  /** a disabled user's generations are stopped (runs); a deleted user goes the way of any deleted account */
  runs: RunRegistry
  account: AccountService
  invites: InvitesService
  usage: UsageService
  /** what each module counts, summed in the status */
  counters: Counter[]
  version: string
  authPlugin: ReturnType<typeof authPlugin>
}) {
  const { database, users, auth, runs, account, invites, usage, counters } = deps
  const startedAt = Date.now()

  return new Elysia({ name: 'hearth.routes.admin', prefix: '/api/v1', detail: { tags: ['Admin'] } })
    .use(deps.authPlugin)
    .get(
      '/admin/users',
      async ({ query }) => {
        const { rows, total } = await users.list(m.fromUserListQuery(query), query)
        return pageOf(rows.map(m.toAdminUserDto), total, query)
      },
      { auth: 'admin', query: m.userListQuery, response: { 200: page(m.adminUserSchema), ...problems(401, 403, 422, 429) }, detail: { summary: 'List users', description: '`q` matches username, email or display name (case-insensitive substring); `role` and `is_active` filter. Oldest first. Each item is the user object plus `credits: { balance, used }`.' } },
    )
    .patch(
      '/admin/users/:id',
      async ({ params, body }) => {
        const { user, disabled, roleChanged } = await users.adminUpdate(params.id, m.fromUserPatchBody(body))
        if (disabled) {
          // streams end with `revoked` first, then the answers stop (saved as stopped)
          await auth.revokeEverything(user.id)
          await runs.stopOwnedBy(user.id)
        } else if (roleChanged) await auth.cutOffAccessTokens(user.id)
        return m.toAdminUserDto(user)
      },
      {
        auth: 'admin',
        params: idParams,
        body: m.userPatchBody,
        response: { 200: m.adminUserSchema, ...problems(401, 403, 404, 409, 422, 429) },
        detail: {
          summary: 'Change a user',
          description:
            "Sets the role, the active flag, the `storage_quota_bytes` (null: the instance's `HEARTH_STORAGE_QUOTA_BYTES`; one below what the user's files take refuses their new uploads and keeps the files), or adds `credits_delta` to the balance (negative to take away). Disabling revokes the user's sessions and deletes their API keys, ends their open streams and stops their answers at once; a role change makes their access tokens refresh. The last active admin cannot be demoted or disabled (`409`).",
        },
      },
    )
    .delete(
      '/admin/users/:id',
      async ({ params, set }) => {
        await account.remove(params.id)
        set.status = 204
      },
      { auth: 'admin', params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 409, 422, 429) }, detail: { summary: 'Delete a user', description: 'The user and everything they own are deleted, their files\' stored bytes too; their access tokens stop working at once. The last active admin cannot be deleted (`409`).' } },
    )
    .post(
      '/admin/invites',
      async ({ principal, body, set }) => {
        const invite = await invites.create(principal.userId, m.fromInviteCreateBody(body))
        set.status = 201
        set.headers.location = `/api/v1/admin/invites/${invite.id}`
        return m.toInviteCreatedDto(invite)
      },
      { auth: 'admin', body: m.inviteCreateBody, response: { 201: m.inviteCreated, ...problems(401, 403, 422, 429) }, detail: { summary: 'Create an invite', description: 'A single-use invite code (`inv_…`) for registration in `invite` mode. The answer is the only time `code` is shown: it is stored hashed. An expired code never works.' } },
    )
    .get(
      '/admin/invites',
      async ({ query }) => {
        const { rows, total } = await invites.list(query)
        return pageOf(rows.map(m.toInviteDto), total, query)
      },
      { auth: 'admin', query: listQuery, response: { 200: page(m.inviteSchema), ...problems(401, 403, 422, 429) }, detail: { summary: 'List invites', description: 'Every invite, with whether and by whom it was used; never the codes themselves.' } },
    )
    .delete(
      '/admin/invites/:id',
      async ({ params, set }) => {
        await invites.remove(params.id)
        set.status = 204
      },
      { auth: 'admin', params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Delete an invite', description: 'The invite code stops working.' } },
    )
    .get(
      '/admin/usage',
      async ({ query }) => {
        const { rows, total } = await usage.aggregate(m.fromUsageQuery(query), query)
        return pageOf(rows.map(m.toUsageGroupDto), total, query)
      },
      {
        auth: 'admin',
        query: m.usageQuery,
        response: { 200: page(m.usageGroupSchema), ...problems(401, 403, 422, 429) },
        detail: { summary: 'Usage report', description: 'Model calls grouped by day (UTC, `YYYY-MM-DD`), user and model, with calls, tokens, cost and errors. `from` is inclusive and `to` exclusive (ISO dates or date-times); `user_id` and `model` filter.' },
      },
    )
    .get(
      '/system/status',
      async () => {
        const [usersCount, activity] = await Promise.all([users.count(), sumCounts(counters.map((c) => c.totals()))])
        return {
          version: deps.version,
          uptime_s: Math.floor((Date.now() - startedAt) / 1000),
          database: database.dialect,
          counts: { users: usersCount, ...activity },
          memory: { rss_bytes: process.memoryUsage.rss() },
        }
      },
      { auth: 'admin', response: { 200: m.statusSchema, ...problems(401, 403, 429) }, detail: { summary: 'System status', description: "The server's version and uptime, its database dialect, everyone's counts of users, conversations, messages and tasks, and the process's resident memory." } },
    )
}
