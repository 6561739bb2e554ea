/** @module /api/v1/users/me: profile, preferences, stats, credits (docs/api.md §5). */
import { Elysia } from 'elysia'
import { problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import type { UsageService } from '../usage/service.ts'
import { sumCounts, type Counter } from './activity.ts'
import * as m from './model.ts'
import { preferencesOf, type UsersService } from './service.ts'

export function userRoutes(deps: {
  users: UsersService
  usage: UsageService
  /** what each module counts, summed in the stats */
  counters: Counter[]
  authPlugin: ReturnType<typeof authPlugin>
}) {
  const { users, usage, counters } = deps
  return new Elysia({ name: 'hearth.routes.users', prefix: '/api/v1/users/me', detail: { tags: ['Users'] } })
    .use(deps.authPlugin)
    .get(
      '/',
      async ({ principal }) => {
        const { user, preferences } = await users.profile(principal.userId)
        return { ...m.toUserDto(user), preferences }
      },
      { auth: true, response: { 200: m.profileSchema, ...problems(401, 403, 404, 429) }, detail: { summary: 'Your profile and preferences' } },
    )
    .patch(
      '/',
      async ({ principal, body }) => {
        const u = await users.updateProfile(principal.userId, m.fromProfilePatchBody(body))
        return { ...m.toUserDto(u), preferences: preferencesOf(u) }
      },
      { auth: true, body: m.profilePatchBody, response: { 200: m.profileSchema, ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Change display name or avatar' } },
    )
    .get('/preferences', async ({ principal }) => (await users.profile(principal.userId)).preferences, {
      auth: true,
      response: { 200: m.preferencesSchema, ...problems(401, 403, 404, 429) },
      detail: { summary: 'Your preferences, defaults filled in' },
    })
    .put('/preferences', ({ principal, body }) => users.setPreferences(principal, body), {
      auth: true,
      body: m.preferencesSchema.partial(),
      response: { 200: m.preferencesSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Change preferences: fields sent are set, fields left out keep their value' },
    })
    .get(
      '/stats',
      async ({ principal }) => {
        const [counts, stats] = await Promise.all([sumCounts(counters.map((c) => c.countsOf(principal.userId))), usage.statsOf(principal.userId)])
        return m.toStatsDto(counts, stats)
      },
      { auth: true, response: { 200: m.statsSchema, ...problems(401, 403, 429) }, detail: { summary: 'Your usage counts' } },
    )
    .get(
      '/credits',
      async ({ principal }) => {
        const u = await users.get(principal.userId)
        return { balance: u.creditBalance, used: u.creditUsed, enforced: usage.enforced }
      },
      { auth: true, response: { 200: m.creditsSchema, ...problems(401, 403, 404, 429) }, detail: { summary: 'Your credit balance' } },
    )
}
