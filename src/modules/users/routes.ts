/** @module /api/v1/users/me: profile, preferences, stats, credits (API.md §4). */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { problemSchema } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { userSchema } from '../auth/model.ts'
import { preferencesOf, toUser, type UsersService } from './service.ts'
import type { UsageService } from '../usage/service.ts'

export const preferencesSchema = z
  .object({
    language: z.enum(['zh', 'en']),
    theme: z.enum(['light', 'dark', 'system']),
    default_model_id: z.string().max(64).nullable(),
    default_connection_id: z.string().max(64).nullable(),
    view_mode: z.enum(['user', 'developer']),
    context_rounds: z.number().int().min(0).max(50),
    memory_enabled: z.boolean(),
  })
  .meta({ id: 'Preferences' })

const statsSchema = z.object({ conversations: z.number().int(), messages: z.number().int(), tasks: z.number().int(), input_tokens: z.number().int(), output_tokens: z.number().int(), cost: z.number() })
const creditsSchema = z.object({ balance: z.number(), used: z.number(), enforced: z.boolean() })
const urlOrNull = z.url({ protocol: /^https?$/ }).max(2048).nullable()

export function userRoutes(deps: { users: UsersService; usage: UsageService; countsOf: (userId: string) => Promise<{ conversations: number; messages: number }>; authPlugin: ReturnType<typeof authPlugin> }) {
  const { users } = deps
  return new Elysia({ name: 'hearth.routes.users', prefix: '/api/v1/users/me', detail: { tags: ['Users'] } })
    .use(deps.authPlugin)
    .get(
      '/',
      async ({ principal }) => {
        const { user, preferences } = await users.profile(principal.userId)
        return { ...user, preferences }
      },
      { auth: true, response: { 200: userSchema.extend({ preferences: preferencesSchema }), 401: problemSchema }, detail: { summary: 'Your profile and preferences' } },
    )
    .patch(
      '/',
      async ({ principal, body }) => {
        const u = await users.updateProfile(principal.userId, { displayName: body.display_name, avatarUrl: body.avatar_url })
        return { ...toUser(u), preferences: preferencesOf(u) }
      },
      {
        auth: true,
        body: z.object({ display_name: z.string().trim().min(1).max(100).nullable().optional(), avatar_url: urlOrNull.optional() }),
        response: { 200: userSchema.extend({ preferences: preferencesSchema }), 401: problemSchema, 422: problemSchema },
        detail: { summary: 'Change display name or avatar' },
      },
    )
    .get('/preferences', async ({ principal }) => (await users.profile(principal.userId)).preferences, {
      auth: true,
      response: { 200: preferencesSchema, 401: problemSchema },
      detail: { summary: 'Your preferences, defaults filled in' },
    })
    .put('/preferences', ({ principal, body }) => users.setPreferences(principal.userId, body), {
      auth: true,
      body: preferencesSchema.partial(),
      response: { 200: preferencesSchema, 401: problemSchema, 422: problemSchema },
      detail: { summary: 'Change preferences: fields sent are set, fields left out keep their value' },
    })
    .get('/stats', async ({ principal }) => ({ ...(await deps.countsOf(principal.userId)), tasks: 0, ...(await deps.usage.statsOf(principal.userId)) }), {
      auth: true,
      response: { 200: statsSchema, 401: problemSchema },
      detail: { summary: 'Your usage counts' },
    })
    .get(
      '/credits',
      async ({ principal }) => {
        const u = await users.get(principal.userId)
        return { balance: u.creditBalance, used: u.creditUsed, enforced: deps.usage.enforced }
      },
      { auth: true, response: { 200: creditsSchema, 401: problemSchema }, detail: { summary: 'Your credit balance' } },
    )
}
