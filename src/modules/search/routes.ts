/** @module /api/v1/proxy/google and /api/v1/proxy/exa (docs/api.md §10 "Web search and http_fetch"): web search for external runtimes, with the caller's keys. */
import { Elysia } from 'elysia'
import { z } from 'zod'
import { problems } from '../../lib/schemas.ts'
import type { authPlugin } from '../../plugins/auth.ts'
import { exaAnswerSchema, exaBody, fromExaBody, googleQuery, searchResultSchema, toExaAnswerDto, toSearchResultDto } from './model.ts'
import type { SearchService } from './service.ts'

export function searchRoutes(deps: { search: SearchService; authPlugin: ReturnType<typeof authPlugin> }) {
  const { search } = deps
  return new Elysia({ name: 'hearth.routes.search', prefix: '/api/v1/proxy', detail: { tags: ['Web search'] } })
    .use(deps.authPlugin)
    .get(
      '/google',
      async ({ principal, query, request }) => (await search.google(principal, { query: query.query, searchType: query.search_type, num: query.num }, request.signal)).map(toSearchResultDto),
      {
        auth: true,
        query: googleQuery,
        response: { 200: z.array(searchResultSchema), ...problems(401, 403, 422, 429, 502) },
        detail: {
          summary: 'Search with Google',
          description:
            'Google Programmable Search with your personal `search.google_api_key` and `search.google_cse_id`, else the global ones. `422` naming the config when one is missing; `502` when Google fails or cannot be reached.',
        },
      },
    )
    .post('/exa', async ({ principal, body, request }) => toExaAnswerDto(await search.exa(principal, fromExaBody(body), request.signal)), {
      auth: true,
      body: exaBody,
      response: { 200: exaAnswerSchema, ...problems(401, 403, 422, 429, 502) },
      detail: {
        summary: 'Search with Exa',
        description: "Exa's search with your personal `search.exa_api_key`, else the global one; each result's `description` is Exa's highlights. `422` naming the config when no key is set; `502` when Exa fails or cannot be reached.",
      },
    })
}
