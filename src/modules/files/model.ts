/** @module The files wire: the File object, the upload forms (for the document: the routes read the stream themselves), list query, and the row → File mapping. */
import { z } from 'zod'
import { isoDate, listQuery } from '../../lib/schemas.ts'
import { PURPOSES, UPLOADABLE_PURPOSES, type FileRow } from './service.ts'

export const purposeSchema = z.enum(PURPOSES)

export const fileSchema = z
  .object({
    id: z.string(),
    file_name: z.string().meta({ description: 'the name sent, cleaned for display (last path part, no control characters, at most 255 characters)' }),
    file_size: z.number().int(),
    content_type: z.string().meta({ description: 'what the bytes are when they say (PNG, JPEG, GIF, WebP, PDF), else the type sent, normalised' }),
    purpose: purposeSchema,
    workflow_id: z.string().nullable(),
    sha256: z.string().meta({ description: 'hex SHA-256 of the bytes; also the download ETag' }),
    access_url: z.string().meta({ description: 'a signed link to the content that needs no credentials, relative to the server; valid 1 hour (avatars: a year), a fresh one with every read of the file' }),
    created_at: isoDate,
  })
  .meta({ id: 'File' })

const binary = z.string().meta({ format: 'binary', description: 'the file; the last part of the form' })

export const uploadForm = z.object({
  purpose: z.enum(UPLOADABLE_PURPOSES).meta({ description: 'what the file is for; avatars and workflow files have their own routes' }),
  workflow_id: z.string().max(64).optional(),
  file: binary,
})
export const avatarForm = z.object({ file: binary.meta({ description: 'a PNG, JPEG, GIF or WebP image (judged by its bytes), at most 2 MiB' }) })
export const workflowForm = z.object({ workflow_id: z.string().min(1).max(64), file: binary.meta({ description: 'a JSON document' }) })

/** The text fields of the forms, checked once the form's fields have arrived (before the file's bytes). */
export const uploadFields = uploadForm.omit({ file: true }).strict()
export const workflowFields = workflowForm.omit({ file: true }).strict()
export const avatarFields = z.object({}).strict()

export const avatarCreated = z.object({ file_id: z.string(), access_url: z.string() })
export const workflowFileCreated = z.object({
  file_id: z.string(),
  file_name: z.string(),
  file_size: z.number().int(),
  workflow_id: z.string(),
  version: z.number().int().meta({ description: 'the workflow version this file became (the current one when its JSON equals it)' }),
})

export const fileListQuery = listQuery.extend({ purpose: purposeSchema.optional(), content_type: z.string().max(127).optional() })

export const contentQuery = z.object({ expires: z.string().max(20).optional(), signature: z.string().max(100).optional() })

export const storageSchema = z.object({ used_bytes: z.number().int(), quota_bytes: z.number().int(), files: z.number().int() })

export const toFileDto = (f: FileRow, accessUrl: string): z.infer<typeof fileSchema> => ({
  id: f.id,
  file_name: f.fileName,
  file_size: f.fileSize,
  content_type: f.contentType,
  purpose: f.purpose,
  workflow_id: f.workflowId,
  sha256: f.sha256,
  access_url: accessUrl,
  created_at: f.createdAt.toISOString(),
})
