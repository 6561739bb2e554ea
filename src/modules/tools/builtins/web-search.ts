/**
 * @module The `web_search` built-in tool: the top results of a web search with the caller's keys
 * (modules/search): Google when it is configured for the caller, else Exa, unless the call names
 * one. No engine configured throws the search module's 422; an engine that fails, its 502.
 */
import { toSearchResultDto } from '../../search/model.ts'
import { webSearchNotConfigured } from '../../search/errors.ts'
import type { SearchResult, SearchService } from '../../search/service.ts'
import type { BuiltinTool } from '../types.ts'

const DEFAULT_RESULTS = 5

const lines = (engine: string, query: string, results: SearchResult[]) =>
  results.length
    ? [`Results from ${engine} for "${query}":`, ...results.map((r, i) => `${i + 1}. ${r.title}\n   ${r.url}${r.description ? `\n   ${r.description}` : ''}`)].join('\n')
    : `No results from ${engine} for "${query}".`

export function webSearchTool(search: SearchService): BuiltinTool {
  return {
    name: 'web_search',
    description: 'Search the web and get the top results, each with its title, URL and a snippet. Use http_fetch to read a result.',
    inputSchema: {
      type: 'object',
      properties: {
        query: { type: 'string', description: 'what to search for', minLength: 1, maxLength: 2000 },
        num: { type: 'integer', description: `how many results (default ${DEFAULT_RESULTS})`, minimum: 1, maximum: 10 },
        provider: { type: 'string', enum: ['google', 'exa'], description: 'the search engine (default: Google when configured, else Exa)' },
      },
      required: ['query'],
      additionalProperties: false,
    },

    async call(args, ctx) {
      const query = String(args.query).trim()
      const num = typeof args.num === 'number' ? args.num : DEFAULT_RESULTS
      let provider = args.provider === 'google' || args.provider === 'exa' ? args.provider : undefined
      if (!provider) {
        const available = await search.available(ctx.principal)
        provider = available.google ? 'google' : available.exa ? 'exa' : undefined
        if (!provider) throw webSearchNotConfigured()
      }
      const results = provider === 'google' ? await search.google(ctx.principal, { query, num }, ctx.signal) : (await search.exa(ctx.principal, { query, numResults: num }, ctx.signal)).results
      return { content: [{ type: 'text', text: lines(provider === 'google' ? 'Google' : 'Exa', query, results) }], structuredContent: { results: results.map(toSearchResultDto) }, isError: false }
    },
  }
}
