/** @module /api/v1/users/me: profile, preferences, stats, credits (docs/api.md §5). */
import { Elysia } from 'elysia'
import { problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import type { UsageService } from '../usage/service.ts'
import type { FilesService } from '../files/service.ts'
import { storageSchema } from '../files/model.ts'
import { sumCounts, type Counter } from './activity.ts'
import * as m from './model.ts'
import { preferencesOf, type UsersService } from './service.ts'

export function userRoutes(deps: {
  users: UsersService
  usage: UsageService
  files: FilesService
  /** what each module counts, summed in the stats */
  counters: Counter[]
  authPlugin: ReturnType<typeof authPlugin>
}) {
  const { users, usage, files, counters } = deps
  return new Elysia({ name: 'hearth.routes.users', prefix: '/api/v1/users/me', detail: { tags: ['Users'] } })
    .use(deps.authPlugin)
    .get(
      '/',
      async ({ principal }) => {
        const { user, preferences } = await users.profile(principal.userId)
        return { ...m.toUserDto(user), preferences }
      },
      { auth: true, response: { 200: m.profileSchema, ...problems(401, 403, 404, 429) }, detail: { summary: 'Your profile', description: 'The user object plus `preferences`.' } },
    )
    .patch(
      '/',
      async ({ principal, body }) => {
        const u = await users.updateProfile(principal.userId, m.fromProfilePatchBody(body))
        return { ...m.toUserDto(u), preferences: preferencesOf(u) }
      },
      { auth: true, body: m.profilePatchBody, response: { 200: m.profileSchema, ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Change your profile', description: 'Sets `display_name` and `avatar_url` (http or https); `null` clears a field, a field left out keeps its value.' } },
    )
    .get('/preferences', async ({ principal }) => (await users.profile(principal.userId)).preferences, {
      auth: true,
      response: { 200: m.preferencesSchema, ...problems(401, 403, 404, 429) },
      detail: { summary: 'Your preferences', description: 'Every preference, with the defaults filled in for those never set: `en`, `system`, `null`, `null`, `user`, `10`, `false`.' },
    })
    .put('/preferences', ({ principal, body }) => users.setPreferences(principal, body), {
      auth: true,
      body: m.preferencesSchema.partial(),
      response: { 200: m.preferencesSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Change your preferences', description: 'The fields sent are set and the fields left out keep their value, so one setting can change without reading the others first. Answers with all of them.' },
    })
    .get(
      '/stats',
      async ({ principal }) => {
        const [counts, stats] = await Promise.all([sumCounts(counters.map((c) => c.countsOf(principal.userId))), usage.statsOf(principal.userId)])
        return m.toStatsDto(counts, stats)
      },
      { auth: true, response: { 200: m.statsSchema, ...problems(401, 403, 429) }, detail: { summary: 'Your usage', description: 'Your conversations and the messages in them, your tasks, the bytes your files take (`storage_bytes`), and the tokens and cost of your model calls.' } },
    )
    .get(
      '/storage',
      async ({ principal }) => {
        const s = await files.usageOf(principal.userId)
        return { used_bytes: s.usedBytes, quota_bytes: s.quotaBytes, files: s.files }
      },
      { auth: true, response: { 200: storageSchema, ...problems(401, 403, 429) }, detail: { summary: 'Your storage', description: '`used_bytes` (your files, plus what uploads in progress hold), your `quota_bytes` (set by an admin, else the instance default) and how many `files` you have.' } },
    )
    .get(
      '/credits',
      async ({ principal }) => {
        const u = await users.get(principal.userId)
        return { balance: u.creditBalance, used: u.creditUsed, enforced: usage.enforced }
      },
      { auth: true, response: { 200: m.creditsSchema, ...problems(401, 403, 404, 429) }, detail: { summary: 'Your credits', description: '`balance` left, `used` so far (it always grows by each call\'s cost), and whether credits are `enforced` (`HEARTH_CREDITS=on`: a call with no balance left is refused with `402`).' } },
    )
}
