/** @module Schemas shared by every module: problems and list pages. */
import { z } from 'zod'

export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    code: z.string(),
    detail: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    request_id: z.string().optional(),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details' })

export const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  offset: z.coerce.number().int().min(0).default(0),
})

/** The list envelope of API.md §1 for one page of `rows` out of `total`. */
export const pageOf = <T>(items: T[], total: number, q: { limit: number; offset: number }) => ({ items, total, limit: q.limit, offset: q.offset, has_more: q.offset + items.length < total })

export const page = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), total: z.number().int(), limit: z.number().int(), offset: z.number().int(), has_more: z.boolean() })

export const isoDate = z.string().meta({ format: 'date-time' })
