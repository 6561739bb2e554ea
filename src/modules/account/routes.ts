/** @module /api/v1/users/me/export and DELETE /api/v1/users/me: your data as one download, and deleting your account (docs/api.md §5). */
import { Elysia } from 'elysia'
import { z } from 'zod'
import type { Config } from '../../config.ts'
import { problems } from '../../lib/schemas.ts'
import { originOf, type authPlugin } from '../../plugins/auth.ts'
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
        const { username, stream } = await accountExport.open(principal.userId, originOf(request, config))
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
          description:
            'Everything you own as one JSON download (`hearth-export-<username>-<date>.json`, format `hearth-export/1`): profile, preferences, privacy, credits and usage totals, sessions and API keys (never a token or key), linked identities, groups, conversations with their messages, tasks with their steps, plans, agents, presets, memories, prompts, configs (a secret one without its value), providers with their models, MCP servers and data connections (never their secrets), files (each with an absolute signed `access_url`, valid an hour), workflows with their versions, workflow sessions with their messages, tool logs. Written while it is read, in pages, so any account size works; `<` is escaped as `\\u003c`. One at a time per user: `429` while one is being downloaded.',
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
        detail: {
          summary: 'Delete your account',
          description:
            'The account and everything it owns are deleted, your files\' stored bytes too, and your tokens stop working at once; the cookies are cleared. Needs a session, not an API key (`403`). Send your `password`: wrong is `401 INVALID_CREDENTIALS` (after 5 wrong ones in 15 minutes, `429`), missing `422`. An account without a password (single sign-on) sends none: its session must be a single sign-on made within the last 10 minutes, else `403` (sign in again with the provider). The last active admin cannot (`409`).',
        },
      },
    )
}
