/**
 * @module Groups (docs/api.md §21): admins manage groups and their members under /api/v1/groups; a
 * group's group admins (and admins) its settings and members under /api/v1/group-admin; each user
 * sees their groups and effective settings under /api/v1/users/me.
 */
import { Elysia } from 'elysia'
import { z } from 'zod'
import type { Config } from '../../config.ts'
import type { ModelTurns } from '../../generation/model-turn.ts'
import { AppError } from '../../lib/errors.ts'
import { idParams, listQuery, page, pageOf, problems, rawQueryText } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import type { UsersService } from '../users/service.ts'
import * as m from './model.ts'
import type { GroupsService } from './service.ts'

export function groupRoutes(deps: { groups: GroupsService; users: Pick<UsersService, 'profile'>; turns: Pick<ModelTurns, 'defaultModel'>; config: Pick<Config, 'rateLimit'>; authPlugin: ReturnType<typeof authPlugin> }) {
  const { groups, users, turns, config } = deps
  return new Elysia({ name: 'hearth.routes.groups', prefix: '/api/v1', detail: { tags: ['Groups'] } })
    .use(deps.authPlugin)
    .get(
      '/groups',
      async ({ query }) => {
        const { rows, total } = await groups.list({ q: query.q }, query)
        return pageOf(rows.map(m.toGroupDto), total, query)
      },
      {
        auth: 'admin',
        query: listQuery.extend({ q: z.string().max(200).optional() }),
        transform: rawQueryText('q'),
        response: { 200: page(m.groupSchema), ...problems(401, 403, 422, 429) },
        detail: { summary: 'List groups', description: 'Every group, by name (case-insensitive). `q`: a case-insensitive substring of the name or description. Admins only.' },
      },
    )
    .post(
      '/groups',
      async ({ principal, body, set }) => {
        const g = await groups.create(principal, { name: body.name, description: body.description, settings: body.settings && m.fromSettingsBody(body.settings) })
        set.status = 201
        set.headers.location = `/api/v1/groups/${g.id}`
        return m.toGroupDto(g)
      },
      {
        auth: 'admin',
        body: m.createGroupBody,
        response: { 201: m.groupSchema, ...problems(401, 403, 409, 422, 429) },
        detail: { summary: 'Create a group', description: '`201` with `Location`. The name is unique, case-insensitively (`409`). `settings` as in `PUT /group-admin/{id}/settings`. Admins only.' },
      },
    )
    .get('/groups/:id', async ({ params }) => m.toGroupDto(await groups.get(params.id)), {
      auth: 'admin',
      params: idParams,
      response: { 200: m.groupSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a group', description: 'One group with its member count and settings. Admins only.' },
    })
    .patch(
      '/groups/:id',
      async ({ principal, params, body }) => m.toGroupDto(await groups.update(principal, params.id, { name: body.name, description: body.description, settings: body.settings && m.fromSettingsBody(body.settings) })),
      {
        auth: 'admin',
        params: idParams,
        body: m.updateGroupBody,
        response: { 200: m.groupSchema, ...problems(401, 403, 404, 409, 422, 429) },
        detail: { summary: 'Change a group', description: 'The fields sent are set (`null` clears the description); `settings` fields as in `PUT /group-admin/{id}/settings`. A name another group has is `409`. Admins only.' },
      },
    )
    .delete(
      '/groups/:id',
      async ({ params, set }) => {
        await groups.remove(params.id)
        set.status = 204
      },
      {
        auth: 'admin',
        params: idParams,
        response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) },
        detail: { summary: 'Delete a group', description: 'Its memberships go with it; its settings stop applying to its former members at once, on every instance. Admins only.' },
      },
    )
    .get(
      '/groups/:id/members',
      async ({ params, query }) => {
        const { rows, total } = await groups.members(params.id, query)
        return pageOf(rows.map(m.toMemberDto), total, query)
      },
      {
        auth: 'admin',
        params: idParams,
        query: listQuery,
        response: { 200: page(m.groupMemberSchema), ...problems(401, 403, 404, 422, 429) },
        detail: { summary: 'List members', description: "The group's members, oldest membership first. Admins only." },
      },
    )
    .post(
      '/groups/:id/members',
      async ({ params, body, set }) => {
        const { member, added } = await groups.setMember(params.id, body.user_id, body.role)
        set.status = added ? 201 : 200
        if (added) set.headers.location = `/api/v1/groups/${params.id}/members/${member.userId}`
        return m.toMemberDto(member)
      },
      {
        auth: 'admin',
        params: idParams,
        body: m.memberBody,
        response: { 200: m.groupMemberSchema, 201: m.groupMemberSchema, ...problems(401, 403, 404, 422, 429) },
        detail: {
          summary: 'Add a member, or change their role',
          description: '`201` with `Location` when the user joins; `200` when they were a member already and `role` (default `member`) is now theirs. An unknown `user_id` is `422` naming it; an unknown group `404`. Admins only.',
        },
      },
    )
    .delete(
      '/groups/:id/members/:user_id',
      async ({ params, set }) => {
        await groups.removeMember(params.id, params.user_id)
        set.status = 204
      },
      {
        auth: 'admin',
        params: m.memberParams,
        response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) },
        detail: { summary: 'Remove a member', description: "`404` when the group is unknown or the user is not in it. The group's settings stop applying to them at once. Admins only." },
      },
    )
    .get('/group-admin/:id/settings', async ({ principal, params }) => m.toSettingsDto(await groups.settingsFor(principal, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: m.groupSettingsSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: "A group's settings", description: "For the group's group admins and for admins; anyone else (a plain member too) gets `404`." },
    })
    .put('/group-admin/:id/settings', async ({ principal, params, body }) => m.toSettingsDto(await groups.setSettings(principal, params.id, m.fromSettingsBody(body))), {
      auth: true,
      params: idParams,
      body: m.groupSettingsBody,
      response: { 200: m.groupSettingsSchema, ...problems(401, 403, 404, 422, 429) },
      detail: {
        summary: "Change a group's settings",
        description:
          'The fields sent are set, those left out kept, `null` clears. `default_model_id` and `allowed_model_ids` name global models by catalogue id or name (stored as catalogue ids; an unknown one is `422` naming the field); `preset_id` a global preset; `tools` tools the tools layer knows; `rate_limit` requests per minute (1–100000). Applies to members at once, on every instance. Group admins of this group and admins; anyone else `404`.',
      },
    })
    .get(
      '/group-admin/:id/members',
      async ({ principal, params, query }) => {
        const { rows, total } = await groups.membersWithUsage(principal, params.id, query)
        return pageOf(rows.map(m.toMemberWithUsageDto), total, query)
      },
      {
        auth: true,
        params: idParams,
        query: listQuery,
        response: { 200: page(m.groupMemberWithUsageSchema), ...problems(401, 403, 404, 422, 429) },
        detail: {
          summary: "A group's members and their usage",
          description: "Oldest membership first, each with `usage` (tokens and cost of all their model calls): a group admin sees it for members who set `usage_visible_to_group_admins` (and for themselves), else `usage` is null; admins see everyone's. Anyone else `404`.",
        },
      },
    )
    .get(
      '/users/me/groups',
      async ({ principal, query }) => {
        const { rows, total } = await groups.membershipsOf(principal.userId, query)
        return pageOf(rows.map(m.toMembershipDto), total, query)
      },
      { auth: true, query: listQuery, response: { 200: page(m.membershipSchema), ...problems(401, 403, 422, 429) }, detail: { summary: 'Your groups', description: 'The groups you are in, oldest membership first, with your role in each.' } },
    )
    .get(
      '/users/me/effective-settings',
      async ({ principal }) => {
        const [effect, { preferences }] = await Promise.all([groups.effectOf(principal.userId), users.profile(principal.userId)])
        // the model a turn would pick when nothing names one, and which level it came from
        const preference = preferences.default_model_id
        // no model to pick (422: none configured; 403: none of the allowed ones available) shows as null; a failure of the database stays a 500
        const chosen = (await turns.defaultModel(principal, preference).catch((error) => (error instanceof AppError ? undefined : Promise.reject(error))))?.model
        const defaultModel =
          chosen && preference && (chosen.id === preference || chosen.name === preference)
            ? { value: preference, source: 'preference' as const, group_id: null }
            : chosen && effect.defaultModelId && chosen.id === effect.defaultModelId.value
              ? { value: effect.defaultModelId.value, source: 'group' as const, group_id: effect.defaultModelId.groupId }
              : { value: chosen?.id ?? null, source: 'instance' as const, group_id: null }
        const one = <T>(s: { value: T; groupId: string } | null) => (s ? { value: s.value, source: 'group' as const, group_id: s.groupId } : { value: null, source: 'instance' as const, group_id: null })
        const many = <T>(s: { value: Iterable<T>; groupIds: string[] } | null) => (s ? { value: [...s.value], source: 'group' as const, group_ids: s.groupIds } : { value: null, source: 'instance' as const, group_ids: [] })
        const limit = effect.rateLimit
          ? { value: { limit: effect.rateLimit.value, window_seconds: 60 }, source: 'group' as const, group_id: effect.rateLimit.groupId }
          : { value: { limit: config.rateLimit.limit, window_seconds: config.rateLimit.windowMs / 1000 }, source: 'instance' as const, group_id: null }
        return {
          default_model_id: defaultModel,
          allowed_model_ids: many(effect.allowedModelIds),
          preset_id: one(effect.presetId),
          system_prompt: one(effect.systemPrompt),
          tools: many(effect.tools),
          rate_limit: limit,
        }
      },
      {
        auth: true,
        response: { 200: m.effectiveSettingsSchema, ...problems(401, 403, 404, 429) },
        detail: {
          summary: 'Your effective settings',
          description: 'What applies to you after the instance defaults, your groups and your own preferences (docs/api.md §21), each with where it comes from: `source` `preference`, `group` (with the group id(s)) or `instance`.',
        },
      },
    )
}
