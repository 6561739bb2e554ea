/** @module /api/v1/tasks, /api/v1/steps and task share playback (docs/api.md §16). */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { idParams, page, pageOf, problems, type FinalStreamEvent } from '../../lib/schemas.ts'
import { asEventStream, sseResponse, type EventFeed } from '../../lib/sse.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { eventStreamResponse } from '../../plugins/openapi-document.ts'
import type { Subscriptions } from '../../runs/subscriptions.ts'
import type { TaskEngine } from '../../tasks/engine.ts'
import type { Principal } from '../auth/service.ts'
import { approvalBody, approvalSchema } from '../chat/model.ts'
import * as m from './model.ts'
import { taskTopic, type TasksService } from './service.ts'

type TaskStreamEvent = { [E in keyof typeof m.taskEventData]: { id: number; event: E; data: z.infer<(typeof m.taskEventData)[E]> } }[keyof typeof m.taskEventData] | FinalStreamEvent

/** The OpenAPI response of a route answering with a task's events. */
export const taskEventStream = { responses: { 200: eventStreamResponse('The task\'s events as server-sent events: the recorded ones after `Last-Event-ID`, then the live ones, until the terminal event (`task_completed`, `task_cancelled` or `error`)', m.taskEventSchema) } }
const playbackStream = { responses: { 200: eventStreamResponse('The recorded steps, `delay` seconds apart, then `done`', m.taskEventSchema) } }

function lastEventId(request: Request) {
  const last = Number(request.headers.get('last-event-id') ?? 0)
  return Number.isSafeInteger(last) && last > 0 ? last : 0
}

/**
 * A task's events as SSE for `principal` (the caller checks the task is theirs): the recorded ones
 * after seq `after`, then the live ones, until the terminal event. One of the caller's
 * subscriptions (429 past the cap), ended with `task_deleted` when the task is deleted. Used by
 * `POST /tasks` and `POST /plans` with `use_stream`, and `GET /tasks/{id}/events`.
 */
export function createTaskEvents(deps: { engine: TaskEngine; subscriptions: Subscriptions; shutdown: AbortSignal }) {
  return function taskEvents(principal: Principal, taskId: string, after = 0) {
    const sub = deps.subscriptions.open(principal)
    sub.watch(taskTopic(taskId))
    return asEventStream<TaskStreamEvent>(sseResponse(deps.engine.follow(taskId, after), { shutdown: deps.shutdown, subscription: sub }))
  }
}
export type TaskEvents = ReturnType<typeof createTaskEvents>

/** `use_stream: true` or `Accept: text/event-stream`: the caller wants the events instead of 202. */
export const wantsStream = (body: { use_stream?: boolean }, request: Request) => body.use_stream === true || (request.headers.get('accept')?.includes('text/event-stream') ?? false)

export function taskRoutes(deps: { tasks: TasksService; engine: TaskEngine; subscriptions: Subscriptions; authPlugin: ReturnType<typeof authPlugin>; shutdown: AbortSignal }) {
  const { tasks } = deps
  const events = createTaskEvents(deps)

  const playback = (feed: EventFeed) => asEventStream<TaskStreamEvent>(sseResponse(feed, { shutdown: deps.shutdown }))

  const eventsRoute = {
    auth: true as const,
    params: idParams,
    response: problems(401, 403, 404, 422, 429),
    detail: { summary: "Follow a task's events", description: 'Server-sent events: the recorded events after `Last-Event-ID` (read from the database, so this works after a restart and from any instance), then the live ones, until the terminal event. Deltas are live only and carry no `id`. `: ping` every 15 s.', ...taskEventStream },
  }

  return new Elysia({ name: 'hearth.routes.tasks', prefix: '/api/v1', detail: { tags: ['Tasks'] } })
    .use(deps.authPlugin)
    .post(
      '/tasks',
      async ({ principal, body, request, set }) => {
        const row = await tasks.create(principal, { prompt: body.prompt, input: body.input, agentId: body.agent_id, modelId: body.model_id, tools: body.tools, maxSteps: body.max_steps, title: body.title, kind: body.kind })
        if (wantsStream(body, request)) return events(principal, row.id)
        set.status = 202
        set.headers.location = `/api/v1/tasks/${row.id}`
        return m.toTaskDto(row)
      },
      {
        auth: true,
        body: m.createTaskBody,
        response: { 202: m.taskSchema, ...problems(401, 403, 413, 422, 429) },
        detail: {
          summary: 'Start a task',
          description:
            'A background task, `pending` until a worker claims it: `202` with `Location`. With `Accept: text/event-stream` or `use_stream: true`, its events stream at once instead. An agent task needs `prompt`; `agent_id` names your own or a global active agent (else `422`), `model_id` and `tools` override the agent\'s, `max_steps` is 1–50 (default 10). `kind: "external"` creates a `running` task that Hearth does not run: post its steps.',
          ...taskEventStream,
        },
      },
    )
    .get(
      '/tasks',
      async ({ principal, query }) => {
        const { rows, total } = await tasks.list(principal.userId, query)
        return pageOf(rows.map(m.toTaskDto), total, query)
      },
      { auth: true, query: m.listTasksQuery, response: { 200: page(m.taskSchema), ...problems(401, 403, 422, 429) }, detail: { summary: 'List tasks', description: 'Your tasks, newest first; filter by `status`, `kind`, `agent_id`.' } },
    )
    .get('/tasks/:id', async ({ principal, params }) => m.toTaskDto(await tasks.get(principal.userId, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: m.taskSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a task', description: "One of your tasks; another user's is `404`." },
    })
    .delete(
      '/tasks/:id',
      async ({ principal, params, set }) => {
        await tasks.remove(principal.userId, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 409, 422, 429) }, detail: { summary: 'Delete a task', description: 'The task and its steps and shares. A running task is `409`: cancel it first.' } },
    )
    .post('/tasks/:id/cancel', async ({ principal, params }) => m.toTaskDto(await tasks.cancel(principal.userId, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: m.taskSchema, ...problems(401, 403, 404, 409, 422, 429) },
      detail: { summary: 'Cancel a task', description: 'The task is `cancelled` at once; a running one has its model and tool calls aborted within a second, on whichever instance runs it. A finished task is `409`.' },
    })
    .post(
      '/tasks/:id/retry',
      async ({ principal, params, set }) => {
        const row = await tasks.retry(principal.userId, params.id)
        set.status = 202
        return m.toTaskDto(row)
      },
      { auth: true, params: idParams, response: { 202: m.taskSchema, ...problems(401, 403, 404, 409, 422, 429) }, detail: { summary: 'Retry a task', description: 'A failed or cancelled task goes back to `pending` with its attempts counted from 0; anything else is `409`.' } },
    )
    .get('/tasks/:id/events', async ({ principal, params, request }) => (await tasks.get(principal.userId, params.id), events(principal, params.id, lastEventId(request))), eventsRoute)
    .get('/tasks/:id/stream', async ({ principal, params, request }) => (await tasks.get(principal.userId, params.id), events(principal, params.id, lastEventId(request))), { ...eventsRoute, detail: { ...eventsRoute.detail, summary: "Follow a task's events (alias of /events)" } })
    .get(
      '/tasks/:id/steps',
      async ({ principal, params, query }) => {
        const { rows, total } = await tasks.steps(principal.userId, params.id, query)
        return pageOf(rows.map(m.toStepDto), total, query)
      },
      { auth: true, params: idParams, query: m.stepsQuery, response: { 200: page(m.stepSchema), ...problems(401, 403, 404, 422, 429) }, detail: { summary: "List a task's steps", description: 'Its recorded events in seq order; `step` keeps one kind.' } },
    )
    .post(
      '/tasks/:id/steps',
      async ({ principal, params, body, set }) => {
        const row = await tasks.postStep(principal.userId, params.id, body)
        set.status = 201
        set.headers.location = `/api/v1/steps/${row.id}`
        return m.toStepDto(row)
      },
      {
        auth: true,
        params: idParams,
        body: m.postStepBody,
        response: { 201: m.stepSchema, ...problems(401, 403, 404, 409, 413, 422, 429) },
        detail: {
          summary: 'Record a step of an external task',
          description: `Stored, then sent live to the task's subscribers (as \`step { step, data }\`, or under its own name for Hearth's event names). \`task_completed\` (\`data.result\`), \`error\` (\`data.code\`, \`data.message\`) and \`task_cancelled\` end the task. Tasks Hearth runs, and finished ones, are \`409\`; \`data\` over ${m.MAX_STEP_DATA_CHARS} characters of JSON is \`413\`.`,
        },
      },
    )
    .post('/tasks/:id/tool-approvals', async ({ principal, params, body }) => tasks.decideApproval(principal.userId, params.id, body.tool_call_id, body.approve), {
      auth: true,
      params: idParams,
      body: approvalBody,
      response: { 200: approvalSchema, ...problems(401, 403, 404, 409, 422, 429) },
      detail: {
        summary: 'Approve or refuse a tool call',
        description:
          'The decision on a call the running task waits for (`tool_approval_required`), from any instance; it is recorded as a `tool_approval` step. `approve: false` refuses it: the model is told the user declined. `404` when no such call waits — never asked, already decided, timed out — or the task is another user’s; `409` when the task is not running.',
      },
    })
    .get('/steps/:id', async ({ principal, params }) => m.toStepDto(await tasks.getStep(principal.userId, params.id)), {
      auth: true,
      params: idParams,
      response: { 200: m.stepSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a step', description: "One step of one of your tasks; another user's is `404`." },
    })
    .put('/steps/:id', async ({ principal, params, body }) => m.toStepDto(await tasks.putStep(principal.userId, params.id, body)), {
      auth: true,
      params: idParams,
      body: m.putStepBody,
      response: { 200: m.stepSchema, ...problems(401, 403, 404, 409, 413, 422, 429) },
      detail: { summary: 'Change a step', description: "An external task's step: its `step`, `data` or `timestamp` (its seq stays). Steps of tasks Hearth runs are `409`." },
    })
    .delete(
      '/steps/:id',
      async ({ principal, params, set }) => {
        await tasks.deleteStep(principal.userId, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 409, 422, 429) }, detail: { summary: 'Delete a step', description: "An external task's step only (`409` otherwise)." } },
    )
    .get('/tasks/:id/playback', async ({ principal, params, query }) => playback(await tasks.playback(principal.userId, params.id, query.delay)), {
      auth: true,
      params: idParams,
      query: m.playbackQuery,
      response: problems(401, 403, 404, 422, 429),
      detail: { summary: "Replay a task's steps", description: 'Server-sent events: the recorded steps with `delay` seconds between them (0–5, default 0.5; more is `422`), then `done`.', ...playbackStream },
    })
    .post(
      '/tasks/:id/share',
      async ({ principal, params, set }) => {
        const token = await tasks.share(principal.userId, params.id)
        set.status = 201
        return { share_token: token, url: `/api/v1/share/${token}` }
      },
      { auth: true, params: idParams, response: { 201: m.shareSchema, ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Share a task', description: 'A frozen snapshot of the task and its steps behind a new link, readable without auth (`GET /api/v1/share/{token}`); sharing again replaces it.' } },
    )
    .delete(
      '/tasks/:id/share',
      async ({ principal, params, set }) => {
        await tasks.unshare(principal.userId, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Withdraw a task share', description: 'The link stops working (`404`).' } },
    )
    .get('/share/:token/playback', async ({ params, query }) => playback(await tasks.sharedPlayback(params.token, query.delay)), {
      params: z.object({ token: z.string().min(1).max(100) }),
      query: m.playbackQuery,
      response: problems(404, 422, 429),
      detail: { summary: 'Replay a shared task', description: "No auth: the shared snapshot's steps with `delay` seconds between them (0–5), then `done`.", ...playbackStream },
    })
}
