/** @module /api/v1/services (docs/api.md §20 "Services"): the workflow engines admins register, their health, and the test. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { idParams, listQuery, page, pageOf, problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { serviceBody, servicePatch, serviceSchema, serviceTestSchema, toServiceDto, toServiceTestDto } from './model.ts'
import type { WorkflowServices } from './service.ts'

export function workflowServiceRoutes(deps: { workflowServices: WorkflowServices; authPlugin: ReturnType<typeof authPlugin> }) {
  const services = deps.workflowServices
  return new Elysia({ name: 'hearth.routes.services', prefix: '/api/v1', detail: { tags: ['Services'] } })
    .use(deps.authPlugin)
    .get(
      '/services',
      async ({ principal, query }) => {
        const { rows, total } = await services.list(query)
        return pageOf(
          rows.map((s) => toServiceDto(s, principal)),
          total,
          query,
        )
      },
      {
        auth: true,
        query: listQuery,
        response: { 200: page(serviceSchema), ...problems(401, 403, 422, 429) },
        detail: { summary: 'List workflow services', description: 'Every registered engine, by name, with its last health check and how many workflows (of all users) and sessions use it. `url` is shown to admins only.' },
      },
    )
    .get('/services/:id', async ({ principal, params }) => toServiceDto(await services.get(params.id), principal), {
      auth: true,
      params: idParams,
      response: { 200: serviceSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a workflow service', description: 'One engine with its last health check; `url` is shown to admins only.' },
    })
    .post(
      '/services',
      async ({ principal, body, set }) => {
        const row = await services.create(body)
        set.status = 201
        set.headers.location = `/api/v1/services/${row.id}`
        return toServiceDto(row, principal)
      },
      {
        auth: 'admin',
        body: serviceBody,
        response: { 201: serviceSchema, ...problems(401, 403, 409, 422, 429) },
        detail: {
          summary: 'Register a workflow service',
          description:
            'Admins only. `kind` is `comfyui` (the default). `url` is the engine\'s base URL: http or https, without user name, password, query or fragment (`422`); a path prefix is kept, a trailing slash dropped; loopback and private addresses are allowed. Names are unique, ignoring case (`409`). It starts `unknown` and is checked within a minute, or at once with `POST /services/{id}/test`.',
        },
      },
    )
    .put('/services/:id', async ({ principal, params, body }) => toServiceDto(await services.update(params.id, body), principal), {
      auth: 'admin',
      params: idParams,
      body: servicePatch,
      response: { 200: serviceSchema, ...problems(401, 403, 404, 409, 422, 429) },
      detail: { summary: 'Change a workflow service', description: 'Admins only. The fields sent change, those left out stay. A new `url` makes the status `unknown` until the next check.' },
    })
    .delete(
      '/services/:id',
      async ({ params, set }) => {
        await services.remove(params.id)
        set.status = 204
      },
      { auth: 'admin', params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Remove a workflow service', description: 'Admins only. The workflows that used it stay, with `service_id` null.' } },
    )
    .post('/services/:id/test', async ({ params }) => toServiceTestDto(await services.test(params.id)), {
      auth: 'admin',
      params: idParams,
      response: { 200: serviceTestSchema, ...problems(401, 403, 404, 422, 429) },
      detail: {
        summary: 'Test a workflow service',
        description:
          "Admins only. Calls the engine's `GET /system_stats` now (5 s at most, no redirect followed, no `Origin` sent) and keeps the outcome on the service. Reachable and ComfyUI: `online` with `version` and `devices`. Anything else — nothing listening, no answer in time, a redirect, another status than 200, an answer that is not ComfyUI's JSON — is `200` with `status: \"offline\"` and `error`, never a 5xx.",
      },
    })
}
