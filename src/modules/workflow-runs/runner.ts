/**
 * @module The `workflow` task kind: one run of a user's workflow on its ComfyUI service. The task's
 * input is `{ workflow_id, inputs }`; the runner reads the workflow as it is when the run starts,
 * applies the overrides to a copy of its API-format prompt, opens the engine's `/ws?clientId=`
 * first and then queues the prompt with that client id, so that no frame is missed. The frames
 * become `task_progress` steps (`node`, `value`/`max` within a node, a percentage over the nodes);
 * the engine's history is read every few seconds besides (a missed frame, a dropped socket, an engine
 * that went away). On success each output file is fetched with `/view` and stored, streamed and
 * within the user's quota, as a file of purpose `workflow_output`; the task completes with
 * `{ prompt_id, outputs: [{ node, file_id, url, file_name, content_type }] }`.
 *
 * A resumed run (claimed again after a crash or a hand-back, or retried after an upstream failure)
 * follows the prompt id its steps recorded instead of queueing again — through the history when it
 * has finished, the socket when it still runs — and does not store an output twice; only a prompt
 * the engine no longer knows (restarted, removed) is queued anew. A cancel takes the prompt off the
 * queue and interrupts it when it runs (a hand-back leaves it running for the next instance).
 */
import { eq } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { AppError } from '../../lib/errors.ts'
import type { Logger } from '../../lib/logger.ts'
import type { OutboundGuard } from '../../lib/outbound.ts'
import type { StepRow, TaskRun } from '../../tasks/engine.ts'
import type { FilesService } from '../files/service.ts'
import type { WorkflowsApi } from '../workflows/types.ts'
import { clip, ComfyError, createComfyClient, filesOf, type ComfyClient, type ComfyFile, type ComfySocket, type HistoryEntry } from './comfyui.ts'
import { applyOverrides, formatOf, nodeLabel, type ApiPrompt } from './prompt.ts'

/** The share of progress the engine's nodes make (the rest is storing the outputs). */
const RUN_SHARE = 85

export interface WorkflowTaskInput {
  workflow_id: string
  inputs: Record<string, unknown>
}

export interface WorkflowOutput {
  node: string
  file_id: string
  /** the file's content, for a signed-in client (`GET /files/{id}` gives a fresh signed `access_url`) */
  url: string
  file_name: string
  content_type: string
}

type Outcome = { status: 'success'; outputs: Map<string, ComfyFile[]> } | { status: 'error'; message: string } | { status: 'interrupted' }

/** The prompt the run's steps recorded last (the one queued, or about to be), if any. */
export function recordedPrompt(history: StepRow[]): { promptId: string; clientId: string } | undefined {
  for (let i = history.length - 1; i >= 0; i--) {
    const d = history[i]!.data as Record<string, unknown> | null
    if (history[i]!.step === 'task_progress' && typeof d?.prompt_id === 'string' && typeof d.client_id === 'string') return { promptId: d.prompt_id, clientId: d.client_id }
  }
  return undefined
}

const fileKey = (f: ComfyFile) => `${f.type}/${f.subfolder}/${f.filename}`

/** A response body as the chunks files.store reads (Bun's ReadableStream is async-iterable; its type does not say so). */
async function* chunksOf(body: ReadableStream<Uint8Array> | null): AsyncIterable<Uint8Array> {
  if (!body) return
  const reader = body.getReader()
  let finished = false
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if ((finished = done)) return
      yield value
    }
  } finally {
    // given up early (too large, over the quota): the rest is not wanted
    if (!finished) await reader.cancel().catch(() => {})
    reader.releaseLock()
  }
}

/** The outputs the run's steps say were stored already, by file. */
function storedOutputs(history: StepRow[]): Map<string, { node: string; fileId: string }> {
  const stored = new Map<string, { node: string; fileId: string }>()
  for (const s of history) {
    const d = s.data as Record<string, any> | null
    if (s.step === 'task_progress' && typeof d?.file_id === 'string' && d.output && typeof d.output.filename === 'string') stored.set(fileKey(d.output), { node: String(d.node), fileId: d.file_id })
  }
  return stored
}

/** What a finished history entry says, or undefined while the prompt has not finished. */
function outcomeOf(entry: HistoryEntry | undefined): Outcome | undefined {
  const status = entry?.status
  if (!entry || !status) return undefined
  if (status.status_str === 'success' || (status.completed && status.status_str !== 'error')) {
    return { status: 'success', outputs: new Map(Object.entries(entry.outputs ?? {}).map(([node, out]) => [node, filesOf(out)])) }
  }
  if (status.status_str !== 'error') return undefined
  const messages = Array.isArray(status.messages) ? status.messages : []
  const err = messages.find((m) => Array.isArray(m) && m[0] === 'execution_error')?.[1]
  if (err) return { status: 'error', message: errorText(err) }
  if (messages.some((m) => Array.isArray(m) && m[0] === 'execution_interrupted')) return { status: 'interrupted' }
  return { status: 'error', message: 'The engine reports the prompt failed' }
}

const errorText = (d: Record<string, unknown>) =>
  `ComfyUI failed at node ${clip(d.node_id, 40)}${d.node_type ? ` (${clip(d.node_type, 80)})` : ''}: ${clip(d.exception_message, 500) || clip(d.exception_type, 100) || 'no message'}`

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, Math.max(0, ms))
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })

export function workflowKind(deps: {
  database: Database
  workflows: Pick<WorkflowsApi, 'get' | 'serviceOf'>
  files: Pick<FilesService, 'store' | 'get'>
  outbound: OutboundGuard
  logger: Logger
  /** one request to the engine (and opening its socket) */
  requestTimeoutMs: number
  /** a whole run, from its first start */
  runTimeoutMs: number
  /** the engine's TaskFailure: its code and message become the task's error; retryable ones are tried again */
  failure: (code: string, message: string, retryable: boolean) => Error
}) {
  const { database, workflows, files, logger, failure } = deps
  const { db, t } = database
  const pollMs = Math.min(5_000, deps.requestTimeoutMs)

  /** Whether the abort was a cancel (or the task is gone) rather than a hand-back or a lost lease. */
  async function wasCancelled(run: TaskRun): Promise<boolean> {
    if (run.signal.reason !== 'ended') return false
    const [row] = await db.select({ status: t.tasks.status }).from(t.tasks).where(eq(t.tasks.id, run.task.id))
    return !row || row.status === 'cancelled'
  }

  /** Take the prompt off the engine: out of the queue, and interrupted when it is the one running. */
  async function stopOnEngine(client: ComfyClient, promptId: string, taskId: string) {
    await client.deleteFromQueue([promptId]).catch((error) => logger.warn('workflow prompt not removed from the queue', { error, task_id: taskId, prompt_id: promptId }))
    const queue = await client.queue().catch(() => undefined)
    // without the queue, interrupt anyway: the body names the prompt, so newer ComfyUI stops only that one
    if (!queue || queue.running.includes(promptId)) await client.interrupt(promptId).catch((error) => logger.warn('workflow prompt not interrupted', { error, task_id: taskId, prompt_id: promptId }))
  }

  return async function runWorkflowTask(run: TaskRun): Promise<{ result: unknown }> {
    const { task, signal } = run
    const input = (task.input ?? {}) as Partial<WorkflowTaskInput>
    if (typeof input.workflow_id !== 'string') throw failure('VALIDATION_ERROR', 'The task names no workflow', false)
    const workflow = await workflows.get(task.userId, input.workflow_id).catch((error) => {
      if (error instanceof AppError && error.status === 404) throw failure('NOT_FOUND', 'The workflow was deleted', false)
      throw error
    })
    const found = await workflows.serviceOf(workflow)
    if (!found) throw failure('VALIDATION_ERROR', 'The workflow has no service to run on (set its service_id)', false)
    const service = found
    const format = formatOf(workflow.workflowData)
    if (format.format === 'ui') throw failure('VALIDATION_ERROR', "The workflow is in ComfyUI's UI format, which cannot be run; export it with 'Save (API Format)'", false)
    if (format.format !== 'api') throw failure('VALIDATION_ERROR', `The workflow is not an API-format ComfyUI workflow: ${format.problem.path} ${format.problem.message}`, false)
    const applied = applyOverrides(format.prompt, input.inputs ?? {})
    if ('problems' in applied) throw failure('VALIDATION_ERROR', `The inputs no longer fit the workflow: ${applied.problems.map((p) => `${p.path} ${p.message}`).join('; ')}`, false)
    const prompt: ApiPrompt = applied.prompt

    const client = createComfyClient({ baseUrl: service.url, fetch: deps.outbound.fetchFor({ role: 'admin' }), timeoutMs: deps.requestTimeoutMs, name: service.name })
    // from this run's first start (a resumed run keeps it; a retried task's earlier runs do not count)
    const deadline = (run.history[0]?.timestamp.getTime() ?? Date.now()) + deps.runTimeoutMs
    const nodeCount = Math.max(1, Object.keys(prompt).length)
    let promptId: string | undefined
    let clientId: string | undefined
    let socket: ComfySocket | undefined

    try {
      let outcome: Outcome | undefined
      const recorded = recordedPrompt(run.history)
      if (recorded) {
        ;({ promptId, clientId } = recorded)
        outcome = outcomeOf(await client.history(promptId, signal))
        if (!outcome) {
          const queue = await client.queue(signal)
          if (queue.running.includes(promptId) || queue.pending.includes(promptId)) {
            await run.emit('message_created', { message: `Following prompt ${promptId} on '${service.name}' again` })
          } else if (!(outcome = outcomeOf(await client.history(promptId, signal)))) {
            await run.emit('message_created', { message: `'${service.name}' no longer has prompt ${promptId} (restarted, or the prompt was removed): queueing it again` })
            promptId = undefined
          }
        }
      }

      if (!outcome) {
        clientId ??= crypto.randomUUID()
        // the socket first, so that no frame of the prompt is missed; without it the history is polled
        socket = await client.connect(clientId).catch(async (error: ComfyError) => {
          logger.warn('workflow service websocket not opened', { error, task_id: task.id, service_id: service.id })
          await run.emit('message_created', { message: `No progress reports from '${service.name}' (${error.message}): following the run by polling` })
          return undefined
        })
        if (!promptId) {
          const wanted = crypto.randomUUID()
          // recorded before it is sent: a crash between the two does not queue it twice (newer ComfyUI keeps the id given)
          await run.emit('task_progress', { progress: 0, message: `Sending the prompt to '${service.name}'`, prompt_id: wanted, client_id: clientId }, { progress: 0 })
          // not cut by a cancel: once sent, the engine has it, and the cancel below takes it off again
          const queued = await client.queuePrompt(prompt, clientId, wanted)
          promptId = queued.prompt_id
          await run.emit('task_progress', { progress: 1, message: `Queued on '${service.name}' as prompt ${promptId}${queued.number === null ? '' : ` (number ${queued.number})`}`, prompt_id: promptId, client_id: clientId }, { progress: 1 })
        }
        outcome = await follow(promptId, clientId)
      }

      if (outcome.status === 'error') throw failure('UPSTREAM_ERROR', outcome.message, false)
      if (outcome.status === 'interrupted') throw failure('UPSTREAM_ERROR', `Prompt ${promptId} was interrupted on '${service.name}'`, false)
      const outputs = await storeOutputs(outcome.outputs)
      return { result: { prompt_id: promptId, outputs } }
    } catch (error) {
      if (signal.aborted) {
        if (promptId && (await wasCancelled(run).catch(() => false))) await stopOnEngine(client, promptId, task.id)
        throw error
      }
      if (error instanceof ComfyError) throw failure('UPSTREAM_ERROR', error.message, error.retryable)
      throw error
    } finally {
      socket?.close()
    }

    /** The prompt's frames (and, every few seconds, its history) until it ends. */
    async function follow(id: string, sid: string): Promise<Outcome> {
      const files = new Map<string, ComfyFile[]>()
      const done = new Set<string>()
      let current: string | undefined
      let within = 0
      let reported = { progress: 1, node: undefined as string | undefined }
      let lastCheck = Date.now()
      let success = false

      const progressNow = () => Math.min(RUN_SHARE, 1 + Math.floor(((done.size + (current && !done.has(current) ? within : 0)) / nodeCount) * (RUN_SHARE - 1)))
      async function report(message: string, extra: Record<string, unknown>, force = false) {
        const progress = progressNow()
        if (!force && progress === reported.progress && extra.node === reported.node) return
        reported = { progress, node: extra.node as string | undefined }
        await run.emit('task_progress', { progress, message, prompt_id: id, ...extra }, { progress })
      }

      for (;;) {
        if (signal.aborted) throw signal.reason
        const left = deadline - Date.now()
        if (left <= 0) {
          await stopOnEngine(client, id, task.id)
          throw failure('UPSTREAM_ERROR', `The run did not finish within ${Math.round(deps.runTimeoutMs / 1000)} s; it was stopped on '${service.name}'`, false)
        }
        const wait = Math.min(left, Math.max(0, pollMs - (Date.now() - lastCheck)))
        let frame: Awaited<ReturnType<ComfySocket['next']>>
        if (socket && !socket.closed) frame = await socket.next(wait, signal)
        // dropped: look at the history and open it again at once
        else if (socket) frame = 'closed'
        else {
          await sleep(wait, signal)
          frame = 'timeout'
        }
        if (frame === 'aborted') continue
        if (typeof frame === 'object' && frame.data.prompt_id === id) {
          const d = frame.data
          if (frame.type === 'execution_start') await report('The engine started the prompt', { node: null }, true)
          else if (frame.type === 'execution_cached') {
            for (const n of Array.isArray(d.nodes) ? d.nodes : []) done.add(String(n))
            if (done.size) await report(`${done.size} node${done.size === 1 ? '' : 's'} cached`, { node: null })
          } else if (frame.type === 'executing' && d.node == null) {
            // the end: the outcome is in the history (a failure frame may have been missed)
            const entry = outcomeOf(await client.history(id, signal).catch((error) => (success ? undefined : Promise.reject(error))))
            if (entry) return entry.status === 'success' ? { status: 'success', outputs: merged(entry.outputs, files) } : entry
            if (success) return { status: 'success', outputs: files }
          } else if (frame.type === 'executing') {
            const node = String(d.node)
            if (current && current !== node) done.add(current)
            current = node
            within = 0
            await report(`Running node ${nodeLabel(prompt, node)}`, { node })
          } else if (frame.type === 'progress') {
            const node = d.node == null ? current : String(d.node)
            const value = Number(d.value)
            const max = Number(d.max)
            if (node && Number.isFinite(value) && Number.isFinite(max) && max > 0) {
              if (node !== current) {
                if (current) done.add(current)
                current = node
              }
              within = Math.min(1, Math.max(0, value / max))
              await report(`Node ${nodeLabel(prompt, node)}: ${value} of ${max}`, { node, value, max }, value >= max)
            }
          } else if (frame.type === 'executed' && d.node != null) {
            const node = String(d.node)
            files.set(node, [...(files.get(node) ?? []), ...filesOf(d.output)])
          } else if (frame.type === 'execution_success') {
            // ComfyUI writes the history after this frame and before `executing { node: null }`: wait for that
            success = true
          } else if (frame.type === 'execution_error') return { status: 'error', message: errorText(d) }
          else if (frame.type === 'execution_interrupted') return { status: 'interrupted' }
          if (Date.now() - lastCheck < pollMs) continue
        } else if (typeof frame === 'object' && Date.now() - lastCheck < pollMs) continue

        // every few seconds (and when the socket is quiet or gone): the history, and whether the engine still has the prompt
        lastCheck = Date.now()
        const outcome = outcomeOf(await client.history(id, signal))
        if (outcome) return outcome.status === 'success' ? { status: 'success', outputs: merged(outcome.outputs, files) } : outcome
        const queue = await client.queue(signal)
        if (!queue.running.includes(id) && !queue.pending.includes(id)) {
          const late = outcomeOf(await client.history(id, signal))
          if (late) return late.status === 'success' ? { status: 'success', outputs: merged(late.outputs, files) } : late
          throw failure('UPSTREAM_ERROR', `'${service.name}' no longer has prompt ${id} (restarted, or the prompt was removed)`, true)
        }
        if (!socket || socket.closed) {
          socket?.close()
          socket = await client.connect(sid).catch(() => undefined)
        }
      }
    }

    /** The history's outputs where it has them, else the ones the frames reported. */
    function merged(history: Map<string, ComfyFile[]>, frames: Map<string, ComfyFile[]>): Map<string, ComfyFile[]> {
      const all = new Map(frames)
      for (const [node, list] of history) if (list.length) all.set(node, list)
      return all
    }

    /** Each output file fetched with /view and stored as the user's file (streamed, within the quota); ones stored before a resume are kept. */
    async function storeOutputs(outputs: Map<string, ComfyFile[]>): Promise<WorkflowOutput[]> {
      const before = storedOutputs(run.history)
      const list = [...outputs].flatMap(([node, fs]) => fs.map((file) => ({ node, file })))
      const result: WorkflowOutput[] = []
      let n = 0
      for (const { node, file } of list) {
        n++
        const progress = RUN_SHARE + Math.floor((n / list.length) * (99 - RUN_SHARE))
        const kept = before.get(fileKey(file))
        const existing = kept ? await files.get(task.userId, kept.fileId).catch(() => undefined) : undefined
        if (existing) {
          result.push({ node, file_id: existing.id, url: `/api/v1/files/${existing.id}/content`, file_name: existing.fileName, content_type: existing.contentType })
          continue
        }
        if (signal.aborted) throw signal.reason
        const res = await client.view(file, signal)
        const length = Number(res.headers.get('content-length'))
        let row
        try {
          row = await files.store(task.userId, {
            purpose: 'workflow_output',
            workflowId: workflow.id,
            fileName: file.filename,
            contentType: res.headers.get('content-type') ?? 'application/octet-stream',
            chunks: chunksOf(res.body),
            declaredBytes: Number.isSafeInteger(length) && length > 0 ? length : undefined,
          })
        } catch (error) {
          if (signal.aborted) throw signal.reason
          if (error instanceof AppError) throw failure(error.code, `Output ${clip(file.filename, 80)} of node ${node} could not be stored: ${error.detail}`, false)
          throw new ComfyError(`'${service.name}' stopped sending ${clip(file.filename, 80)}: ${clip((error as Error).message)}`, true)
        }
        await run.emit('task_progress', { progress, message: `Stored ${row.fileName} (node ${node})`, prompt_id: promptId, node, file_id: row.id, output: file }, { progress })
        result.push({ node, file_id: row.id, url: `/api/v1/files/${row.id}/content`, file_name: row.fileName, content_type: row.contentType })
      }
      return result
    }
  }
}
