/** @module /api/v1/users/me/export and DELETE /api/v1/users/me: your data as one download, and deleting your account (docs/api.md §5). */
import { Elysia } from 'elysia'
import { z } from 'zod'
import type { Config } from '../../config.ts'
import { problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { jsonSchemaOf } from '../../plugins/openapi-document.ts'
import { createAuthCookies } from '../auth/routes.ts'
import type { AccountExportService } from './export.ts'
import * as m from './model.ts'
import type { AccountService } from './service.ts'

export function accountRoutes(deps: { account: AccountService; accountExport: AccountExportService; config: Pick<Config, 'publicUrl' | 'trustProxy'>; authPlugin: ReturnType<typeof authPlugin> }) {
  const { account, accountExport, config } = deps
  const { clearCookies } = createAuthCookies(config)

  return new Elysia({ name: 'hearth.routes.account', prefix: '/api/v1/users/me', detail: { tags: ['Users'] } })
    .use(deps.authPlugin)
    .get(
      '/export',
      async ({ principal, request }) => {
        const { username, stream } = await accountExport.open(principal.userId, config.publicUrl ?? new URL(request.url).origin)
        // usernames are [A-Za-z0-9_-]: safe in the header as they are
        return new Response(stream, {
          headers: {
            'content-type': 'application/json; charset=utf-8',
            'content-disposition': `attachment; filename="hearth-export-${username}-${new Date().toISOString().slice(0, 10)}.json"`,
            'cache-control': 'no-store',
            'x-content-type-options': 'nosniff',
          },
        })
      },
      {
        auth: true,
        response: problems(401, 403, 404, 429),
        detail: {
          summary: 'Export your data',
          description: 'TODO',
          responses: { 200: { description: 'Everything you own, as one JSON download', content: { 'application/json': { schema: jsonSchemaOf(m.accountExportSchema, 'output') as { type: 'object' } } } } },
        },
      },
    )
    .delete(
      '/',
      async ({ principal, body, cookie, set }) => {
        await account.removeOwn(principal, body?.password)
        clearCookies(cookie)
        set.status = 204
      },
      {
        auth: 'session',
        body: m.deleteAccountBody,
        response: { 204: z.void(), ...problems(401, 403, 404, 409, 422, 429) },
        detail: { summary: 'Delete your account', description: 'TODO' },
      },
    )
}
