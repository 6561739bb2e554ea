/** @module The memories wire: the Memory object and the request body, and the row → Memory mapping. */
import { z } from 'zod'
import { isoDate } from '../../lib/schemas.ts'
import { MAX_MEMORY_LENGTH, type MemoryRow } from './service.ts'

export const memorySchema = z.object({ id: z.string(), content: z.string(), created_at: isoDate, updated_at: isoDate }).meta({ id: 'Memory' })

export const memoryBody = z.object({ content: z.string().trim().min(1).max(MAX_MEMORY_LENGTH) })

export const toMemoryDto = (m: MemoryRow): z.infer<typeof memorySchema> => ({ id: m.id, content: m.content, created_at: m.createdAt.toISOString(), updated_at: m.updatedAt.toISOString() })
