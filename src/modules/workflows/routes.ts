/** @module /api/v1/workflows (docs/api.md §20 "Workflows and versions"): each user's workflows, favorites, versions and restore. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { idParams, page, pageOf, problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import * as m from './model.ts'
import type { WorkflowsService } from './service.ts'

export function workflowRoutes(deps: { workflows: WorkflowsService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { workflows } = deps
  const locked = 'While an agent holds its lock, this is `409 CONFLICT` naming the lock\'s reason.'
  return new Elysia({ name: 'hearth.routes.workflows', prefix: '/api/v1', detail: { tags: ['Workflows'] } })
    .use(deps.authPlugin)
    .get(
      '/workflows',
      async ({ principal, query }) => {
        const { rows, total } = await workflows.list(
          principal.userId,
          { serviceId: query.service_id, favorite: query.favorite === undefined ? undefined : query.favorite === 'true', q: query.q, sortBy: query.sort_by, sortOrder: query.sort_order },
          query,
        )
        const now = Date.now()
        return pageOf(
          rows.map((r) => m.toWorkflowDto(r, now)),
          total,
          query,
        )
      },
      {
        auth: true,
        query: m.workflowListQuery,
        response: { 200: page(m.workflowSchema), ...problems(401, 403, 422, 429) },
        detail: {
          summary: 'List your workflows',
          description:
            '`service_id` and `favorite` (`true`/`false`) filter; `q` finds a substring of the name or the description, ignoring case. `sort_by` `name` (ignoring case), `created_at`, `updated_at` (the default) or `last_used_at` (never-used ones last, in either order); `sort_order` `desc` (the default) or `asc`; ties in id order.',
        },
      },
    )
    .post(
      '/workflows',
      async ({ principal, body, set }) => {
        const row = await workflows.create(principal.userId, { name: body.name, description: body.description, serviceId: body.service_id, workflowData: body.workflow_data, note: body.note })
        set.status = 201
        set.headers.location = `/api/v1/workflows/${row.id}`
        return m.toWorkflowDto(row)
      },
      {
        auth: true,
        body: m.workflowBody,
        response: { 201: m.workflowSchema, ...problems(401, 403, 422, 429) },
        detail: {
          summary: 'Create a workflow',
          description:
            '`workflow_data` is a JSON object (`422` otherwise), ComfyUI\'s API or UI format, stored as given; the whole body is at most 1 MiB (`413`). `service_id`, when set, names an existing service (`422`). It starts at version 1 (with `note`).',
        },
      },
    )
    .get('/workflows/:id', async ({ principal, params }) => m.toWorkflowDto(await workflows.view(principal.userId, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: m.workflowSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a workflow', description: "One of your workflows with its current JSON; another user's is `404`, for admins too." },
    })
    .put(
      '/workflows/:id',
      async ({ principal, params, body }) => {
        await workflows.update(principal.userId, params.id, { name: body.name, description: body.description, serviceId: body.service_id, workflowData: body.workflow_data, note: body.note })
        return m.toWorkflowDto(await workflows.view(principal.userId, params.id))
      },
      {
        auth: true,
        params: idParams,
        body: m.workflowPatch,
        response: { 200: m.workflowSchema, ...problems(401, 403, 404, 409, 422, 429) },
        detail: {
          summary: 'Change a workflow',
          description: `The fields sent change, those left out stay. A \`workflow_data\` that differs from the current one (compared as JSON, key order aside) adds a version, with \`note\`; the same JSON adds none. ${locked}`,
        },
      },
    )
    .delete(
      '/workflows/:id',
      async ({ principal, params, set }) => {
        await workflows.remove(principal.userId, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 409, 422, 429) }, detail: { summary: 'Delete a workflow', description: `Its versions and sessions go with it. ${locked}` } },
    )
    .post('/workflows/:id/favorite', async ({ principal, params, body }) => ({ is_favorite: await workflows.setFavorite(principal.userId, params.id, body.favorite) }), {
      auth: true,
      params: idParams,
      body: m.favoriteBody,
      response: { 200: m.favoriteSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Mark or unmark a favorite', description: 'Your mark, not a change of the workflow: allowed while it is locked, and `updated_at` stays.' },
    })
    .get('/workflows/:id/versions', async ({ principal, params }) => (await workflows.versions(principal.userId, params.id)).map(m.toVersionSummaryDto), {
      auth: true,
      params: idParams,
      response: { 200: z.array(m.versionSummarySchema), ...problems(401, 403, 404, 422, 429) },
      detail: { summary: "List a workflow's versions", description: 'Every version, newest first, without its JSON: a plain array, not a page.' },
    })
    .get('/workflows/:id/versions/:version', async ({ principal, params }) => m.toVersionDto(await workflows.version(principal.userId, params.id, params.version)), {
      auth: true,
      params: m.versionParams,
      response: { 200: m.versionSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a version', description: 'One version with its JSON.' },
    })
    .post(
      '/workflows/:id/versions/:version/restore',
      async ({ principal, params }) => {
        await workflows.restore(principal.userId, params.id, params.version)
        return m.toWorkflowDto(await workflows.view(principal.userId, params.id))
      },
      {
        auth: true,
        params: m.versionParams,
        response: { 200: m.workflowSchema, ...problems(401, 403, 404, 409, 422, 429) },
        detail: { summary: 'Restore a version', description: `Adds a new version equal to that one (note "restored from version N"), even when it equals the current JSON, and answers the workflow. ${locked}` },
      },
    )
}
