/** @module /api/v1/users/me/privacy (docs/api.md §5 "Privacy and history retention"). */
import { Elysia } from 'elysia'
import { problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { fromPrivacyPatchBody, MAX_RETENTION_DAYS, privacyPatchBody, privacySchema, toPrivacyDto } from './model.ts'
import type { PrivacyService } from './service.ts'

export function privacyRoutes(deps: { privacy: PrivacyService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { privacy } = deps
  return new Elysia({ name: 'hearth.routes.privacy', prefix: '/api/v1/users/me/privacy', detail: { tags: ['Users'] } })
    .use(deps.authPlugin)
    .get('', async ({ principal }) => toPrivacyDto(await privacy.get(principal.userId)), {
      auth: true,
      response: { 200: privacySchema, ...problems(401, 403, 404, 429) },
      detail: { summary: 'Your privacy settings', description: 'How long your history is kept (`null`: for ever), whether memories are used (the `memory_enabled` preference) and whether your groups\' admins see your usage. Defaults: `null`, `false`, `false`.' },
    })
    .put('', async ({ principal, body }) => toPrivacyDto(await privacy.set(principal.userId, fromPrivacyPatchBody(body))), {
      auth: true,
      body: privacyPatchBody,
      response: { 200: privacySchema, ...problems(401, 403, 404, 422, 429) },
      detail: {
        summary: 'Change your privacy settings',
        description: `The fields sent are set, the others keep their value; answers with all of them. \`history_retention_days\`: \`null\` or a whole number 1–${MAX_RETENTION_DAYS} (\`422\` otherwise). Conversations without activity and finished tasks older than that are deleted by a sweep that runs hourly, so within about an hour of being set.`,
      },
    })
}
