/** @module /api/v1/files (docs/api.md §14): uploads streamed to storage, downloads with ranges and ETags, signed links. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { payloadTooLarge, validationError } from '../../lib/errors.ts'
import { idParams, page, pageOf, problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import type { Principal } from '../auth/service.ts'
import type { UsersService } from '../users/service.ts'
import { contentResponse } from './content.ts'
import { missingFileField, notMultipart } from './errors.ts'
import * as m from './model.ts'
import { readMultipart } from './multipart.ts'
import { AVATAR_MAX_BYTES, WORKFLOW_FILE_MAX_BYTES, type FilesService, type Purpose, type UploadInput } from './service.ts'

/** What the workflows module does for POST /files/workflow (a new version from the file). */
export interface WorkflowFileTarget {
  /** 404 when it is not the caller's, 409 while locked: checked before the upload is kept */
  assertWritable(userId: string, workflowId: string): Promise<void>
  /** throws 422 when the JSON cannot be a workflow (not an object) */
  checkData(value: unknown): void
  /** the file's JSON as the workflow's next version; the version it is */
  addFileVersion(userId: string, workflowId: string, data: unknown, fileName: string): Promise<number>
}

/** What a multipart body may hold around its file (boundaries, part headers, the text fields): a Content-Length above the limit plus this is refused before a byte is read. */
const FORM_ALLOWANCE = 64 * 1024

export function fileRoutes(deps: { files: FilesService; users: UsersService; workflows: WorkflowFileTarget; uploadMaxBytes: number; authPlugin: ReturnType<typeof authPlugin> }) {
  const { files, users } = deps

  /** Read the form's fields, then store its file as it streams in. */
  async function upload<F extends z.ZodType>(
    request: Request,
    principal: Principal,
    fieldsSchema: F,
    purposeOf: (fields: z.output<F>) => Purpose,
    maxBytes: number,
    hooks: { before?: (fields: z.output<F>) => Promise<void>; checkJson?: (value: unknown) => void } = {},
  ) {
    const type = request.headers.get('content-type') ?? ''
    if (!/^multipart\/form-data\s*(;|$)/i.test(type)) throw notMultipart()
    if (!request.body) throw missingFileField()
    const length = request.headers.get('content-length')
    const declared = length === null ? undefined : Number(length)
    if (declared !== undefined && declared > maxBytes + FORM_ALLOWANCE) throw payloadTooLarge(maxBytes)
    const form = await readMultipart(request.body, type)
    try {
      const parsed = fieldsSchema.safeParse(form.fields)
      if (!parsed.success) throw validationError('The form fields are not valid', parsed.error.issues.map((i) => ({ path: i.path.join('.') || String((i as { keys?: string[] }).keys?.[0] ?? ''), message: i.message })))
      const fields = parsed.data as z.output<F>
      await hooks.before?.(fields)
      const input: UploadInput = {
        purpose: purposeOf(fields),
        workflowId: (fields as { workflow_id?: string }).workflow_id ?? null,
        fileName: form.fileName,
        contentType: form.contentType,
        chunks: form.chunks,
        whole: form.whole,
        declaredBytes: declared,
        checkJson: hooks.checkJson,
      }
      return { row: await files.store(principal.userId, input) }
    } finally {
      form.cancel()
    }
  }

  const multipartRoute = { parse: 'none' as const }

  return new Elysia({ name: 'hearth.routes.files', prefix: '/api/v1', detail: { tags: ['Files'] } })
    .use(deps.authPlugin)
    .post(
      '/files',
      async ({ principal, request, set }) => {
        const { row } = await upload(request, principal, m.uploadFields, (f) => f.purpose, deps.uploadMaxBytes)
        set.status = 201
        set.headers.location = `/api/v1/files/${row.id}`
        return m.toFileDto(row, files.accessUrl(row))
      },
      {
        ...multipartRoute,
        auth: true,
        response: { 201: m.fileSchema, ...problems(401, 403, 413, 415, 422, 429) },
        detail: {
          summary: 'Upload a file',
          description: `A multipart form: \`purpose\` (\`attachment\` or \`dataset\`; avatars and workflow files have their own routes, run outputs are written by runs), \`workflow_id\` if any, then \`file\` — the last part. Streamed to storage; at most ${deps.uploadMaxBytes} bytes (\`413 PAYLOAD_TOO_LARGE\`), within your storage quota (\`413 STORAGE_QUOTA_EXCEEDED\`). An empty file, a second file, a field after the file or a cut body is \`422\` and nothing is kept.`,
          multipart: m.uploadForm,
        },
      },
    )
    .post(
      '/files/avatar',
      async ({ principal, request, set }) => {
        const { row } = await upload(request, principal, m.avatarFields, () => 'avatar', Math.min(AVATAR_MAX_BYTES, deps.uploadMaxBytes))
        const accessUrl = files.accessUrl(row)
        await users.updateProfile(principal.userId, { avatarUrl: accessUrl })
        await files.dropOtherAvatars(principal.userId, row.id)
        set.status = 201
        set.headers.location = `/api/v1/files/${row.id}`
        return { file_id: row.id, access_url: accessUrl }
      },
      {
        ...multipartRoute,
        auth: true,
        response: { 201: m.avatarCreated, ...problems(401, 403, 413, 415, 422, 429) },
        detail: {
          summary: 'Upload your avatar',
          description: 'A multipart form with one `file`: a PNG, JPEG, GIF or WebP image by its bytes (whatever its name or type say; `422` otherwise), at most 2 MiB. Your `avatar_url` becomes its signed link (valid a year); your previous avatar file is deleted.',
          multipart: m.avatarForm,
        },
      },
    )
    .post(
      '/files/workflow',
      async ({ principal, request, set }) => {
        let data: unknown
        const { row } = await upload(request, principal, m.workflowFields, () => 'workflow', Math.min(WORKFLOW_FILE_MAX_BYTES, deps.uploadMaxBytes), {
          before: (fields) => deps.workflows.assertWritable(principal.userId, fields.workflow_id),
          checkJson: (value) => {
            deps.workflows.checkData(value)
            data = value
          },
        })
        let version: number
        try {
          version = await deps.workflows.addFileVersion(principal.userId, row.workflowId!, data, row.fileName)
        } catch (error) {
          // deleted or locked meanwhile: the file is not kept
          await files.remove(principal.userId, row.id).catch(() => {})
          throw error
        }
        set.status = 201
        set.headers.location = `/api/v1/files/${row.id}`
        return { file_id: row.id, file_name: row.fileName, file_size: row.fileSize, workflow_id: row.workflowId!, version }
      },
      {
        ...multipartRoute,
        auth: true,
        response: { 201: m.workflowFileCreated, ...problems(401, 403, 404, 409, 413, 415, 422, 429) },
        detail: {
          summary: 'Upload a workflow file',
          description:
            "A multipart form: `workflow_id` (one of your workflows, else `404`), then `file`, a JSON object of at most 1 MiB (`422` when it is not valid JSON or not an object, `413` when larger). Stored as a file of purpose `workflow`, and its JSON becomes the workflow's next version (note \"uploaded as <file name>\"); `version` is that version — the current one when the JSON equals it. While an agent holds the workflow's lock: `409`. Refused uploads keep nothing.",
          multipart: m.workflowForm,
        },
      },
    )
    .get(
      '/files',
      async ({ principal, query }) => {
        const { rows, total } = await files.list(principal.userId, { purpose: query.purpose, contentType: query.content_type?.toLowerCase() }, query)
        const now = Date.now()
        return pageOf(rows.map((r) => m.toFileDto(r, files.accessUrl(r, now))), total, query)
      },
      { auth: true, query: m.fileListQuery, response: { 200: page(m.fileSchema), ...problems(401, 403, 422, 429) }, detail: { summary: 'List your files', description: 'Newest first; `purpose` and `content_type` (exact, e.g. `image/png`) filter. Each `access_url` is freshly signed.' } },
    )
    .get('/files/:id', async ({ principal, params }) => {
      const row = await files.get(principal.userId, params.id)
      return m.toFileDto(row, files.accessUrl(row))
    }, {
      auth: true,
      params: idParams,
      response: { 200: m.fileSchema, ...problems(401, 403, 404, 422, 429) },
      detail: { summary: 'Get a file', description: "One of your files, with a freshly signed `access_url`; another user's is `404`, for admins too." },
    })
    .get(
      '/files/:id/content',
      async ({ principal, params, query, request }) => {
        const signed = query.signature !== undefined || query.expires !== undefined
        const row = signed || !principal ? await files.byLink(params.id, query.expires, query.signature) : await files.get(principal.userId, params.id)
        return contentResponse(row, (range) => files.content(row, range), request.headers)
      },
      {
        auth: 'signed',
        params: idParams,
        query: m.contentQuery,
        response: problems(401, 403, 404, 416, 422, 429),
        detail: {
          summary: "Download a file's content",
          description:
            "The bytes, streamed. With your credentials, or with the file's signed `access_url` (`expires` and `signature`) and none: a wrong signature or an expired link is `403`, a deleted file's `404`. One `Range` (`bytes=a-b`, `a-`, `-n`) answers `206` with `Content-Range`; several ranges or one outside the file `416`. `ETag` (the SHA-256) with `If-None-Match` answers `304`. Sent with `X-Content-Type-Options: nosniff`, `Content-Security-Policy: sandbox` and `Content-Disposition: attachment`, except PNG, JPEG, GIF, WebP, PDF and plain text, which are `inline` (never HTML or SVG).",
          responses: {
            200: { description: 'The whole content', content: { 'application/octet-stream': { schema: { type: 'string' as const, format: 'binary' } } } },
            206: { description: 'The range asked for', content: { 'application/octet-stream': { schema: { type: 'string' as const, format: 'binary' } } } },
            304: { description: 'Not modified: the ETag sent in `If-None-Match` is current' },
          },
        },
      },
    )
    .delete(
      '/files/:id',
      async ({ principal, params, set }) => {
        await files.remove(principal.userId, params.id)
        set.status = 204
      },
      { auth: true, params: idParams, response: { 204: z.void(), ...problems(401, 403, 404, 422, 429) }, detail: { summary: 'Delete a file', description: 'The stored bytes go too, and their size is given back to your quota; its links answer `404`.' } },
    )
}
