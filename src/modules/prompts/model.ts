/** @module The prompts wire: a Prompt, the PUT and reset bodies, and the Prompt → wire mapping. */
import { z } from 'zod'
import { PROMPT_NAMES } from './defaults.ts'
import { MAX_PROMPT_LENGTH, type Prompt } from './service.ts'

export const promptSchema = z
  .object({
    name: z.enum(PROMPT_NAMES),
    description: z.string(),
    content: z.string(),
    default_content: z.string(),
    is_customized: z.boolean(),
    variables: z.array(z.string()),
  })
  .meta({ id: 'Prompt' })

export const promptListSchema = z.object({ items: z.array(promptSchema) }).meta({ id: 'PromptList' })

/** `{ "<name>": content, … }`: names and contents are checked by the service (unknown names, variables, sizes: 422 naming the prompt). */
export const promptsPutBody = z.record(z.string().max(100), z.string().max(MAX_PROMPT_LENGTH)).meta({ description: 'Prompt name → its new content' })

export const promptsResetBody = z.object({ names: z.array(z.string().max(100)).min(1).max(PROMPT_NAMES.length * 4).optional() }).optional()

export const toPromptDto = (p: Prompt): z.infer<typeof promptSchema> => ({ name: p.name, description: p.description, content: p.content, default_content: p.defaultContent, is_customized: p.isCustomized, variables: p.variables })
