/** @module /api/v1/prompts (docs/api.md §19 "Prompts"): each user's own versions of the built-in prompts of questions over SQL. */
import { Elysia } from 'elysia'
import { problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { PROMPT_NAMES } from './defaults.ts'
import { promptListSchema, promptsPutBody, promptsResetBody, toPromptDto } from './model.ts'
import { MAX_PROMPT_LENGTH, type PromptsService } from './service.ts'

export function promptRoutes(deps: { prompts: PromptsService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { prompts } = deps
  const names = PROMPT_NAMES.map((n) => `\`${n}\``).join(', ')
  return new Elysia({ name: 'hearth.routes.prompts', prefix: '/api/v1', detail: { tags: ['Prompt'] } })
    .use(deps.authPlugin)
    .get('/prompts', async ({ principal }) => ({ items: (await prompts.list(principal.userId)).map(toPromptDto) }), {
      auth: true,
      response: { 200: promptListSchema, ...problems(401, 403, 429) },
      detail: {
        summary: 'List the prompts',
        description: `The prompts questions over SQL send the model (${names}): your version where you have one (\`is_customized\`), else the built-in default; \`variables\` are the \`{{names}}\` each may use.`,
      },
    })
    .put('/prompts', async ({ principal, body }) => ({ items: (await prompts.update(principal.userId, body)).map(toPromptDto) }), {
      auth: true,
      body: promptsPutBody,
      response: { 200: promptListSchema, ...problems(401, 403, 422, 429) },
      detail: {
        summary: 'Change prompts',
        description: `\`{ "<name>": content, … }\` sets your version of each prompt named, all or none. \`422\` names each unknown prompt, an empty one, one over ${MAX_PROMPT_LENGTH} characters, one using a \`{{variable}}\` it does not have or with unbalanced \`{{#section}}…{{/section}}\`. Content equal to the default goes back to the default. Answers the list.`,
      },
    })
    .post('/prompts/reset', async ({ principal, body }) => ({ items: (await prompts.reset(principal.userId, body?.names)).map(toPromptDto) }), {
      auth: true,
      body: promptsResetBody,
      response: { 200: promptListSchema, ...problems(401, 403, 422, 429) },
      detail: { summary: 'Reset prompts', description: 'Back to the built-in defaults: the prompts in `names`, or all of them without a body or `names`. Unknown names are `422`. Answers the list.' },
    })
}
