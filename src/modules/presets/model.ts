/** @module The presets wire: the Preset object and its request body, and the mappings to and from the service's camelCase. */
import { z } from 'zod'
import { isoDate } from '../../lib/schemas.ts'
import type { PresetInput, PresetRow } from './service.ts'

export const presetSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    system_prompt: z.string().nullable(),
    model_id: z.string().nullable(),
    temperature: z.number().nullable(),
    max_tokens: z.number().int().nullable(),
    tools: z.array(z.string()),
    is_builtin: z.boolean(),
    created_at: isoDate,
    updated_at: isoDate,
  })
  .meta({ id: 'Preset' })

export const presetBody = z.object({
  name: z.string().trim().min(1).max(100),
  description: z.string().max(500).nullable().optional(),
  system_prompt: z.string().max(20_000).nullable().optional(),
  model_id: z.string().trim().min(1).max(200).nullable().meta({ description: 'a model you can use, by id or name (422 otherwise); null clears it' }).optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  max_tokens: z.number().int().min(1).max(1_000_000).nullable().optional(),
  tools: z.array(z.string().trim().min(1).max(100)).max(50).optional(),
})

type PresetBody = z.infer<typeof presetBody>

export const toPresetDto = (p: PresetRow): z.infer<typeof presetSchema> => ({
  id: p.id,
  name: p.name,
  description: p.description,
  system_prompt: p.systemPrompt,
  model_id: p.modelId,
  temperature: p.temperature,
  max_tokens: p.maxTokens,
  tools: p.tools ?? [],
  is_builtin: p.isBuiltin,
  created_at: p.createdAt.toISOString(),
  updated_at: p.updatedAt.toISOString(),
})

/** The service input of a body; a field the body leaves out stays undefined (a PATCH leaves it alone). */
export function fromPresetBody(body: PresetBody): PresetInput
export function fromPresetBody(body: Partial<PresetBody>): Partial<PresetInput>
export function fromPresetBody(body: Partial<PresetBody>): Partial<PresetInput> {
  return { name: body.name, description: body.description, systemPrompt: body.system_prompt, modelId: body.model_id, temperature: body.temperature, maxTokens: body.max_tokens, tools: body.tools }
}
