/** @module The web search wire: the proxies' queries and results, and the mappings from the service's camelCase. */
import { z } from 'zod'
import { queryInteger } from '../../lib/schemas.ts'
import type { ExaQuery, ExaResult, SearchResult } from './service.ts'

const searchText = z.string().trim().min(1).max(2000)
const domains = z.array(z.string().trim().min(1).max(253)).max(100)

export const googleQuery = z.object({
  query: searchText,
  search_type: z.enum(['web', 'image']).optional().meta({ description: '`image` searches images (`image_url` is the image, `url` the page it is on); default `web`' }),
  num: queryInteger(1, 10).optional().meta({ description: "1–10 (Google's own limit); Google's default is 10" }),
})

export const searchResultSchema = z
  .object({ result_id: z.string(), title: z.string(), description: z.string(), url: z.string(), image_url: z.string().optional() })
  .meta({ id: 'SearchResult' })

export const exaBody = z.object({
  query: searchText,
  num_results: z.number().int().min(1).max(100).optional(),
  type: z.string().regex(/^[a-z_-]{1,32}$/, "one of Exa's search types: auto, neural, keyword, fast, …").optional(),
  include_domains: domains.optional(),
  exclude_domains: domains.optional(),
})

export const exaAnswerSchema = z
  .object({
    request_id: z.string().nullable(),
    results: z.array(searchResultSchema.extend({ published_date: z.string().nullable(), author: z.string().nullable(), score: z.number().nullable() })),
  })
  .meta({ id: 'ExaAnswer' })

export const toSearchResultDto = (r: SearchResult): z.infer<typeof searchResultSchema> => ({
  result_id: r.resultId,
  title: r.title,
  description: r.description,
  url: r.url,
  ...(r.imageUrl ? { image_url: r.imageUrl } : {}),
})

export const toExaAnswerDto = (a: { requestId: string | null; results: ExaResult[] }): z.infer<typeof exaAnswerSchema> => ({
  request_id: a.requestId,
  results: a.results.map((r) => ({ ...toSearchResultDto(r), published_date: r.publishedDate, author: r.author, score: r.score })),
})

export const fromExaBody = (b: z.infer<typeof exaBody>): ExaQuery => ({ query: b.query, numResults: b.num_results, type: b.type, includeDomains: b.include_domains, excludeDomains: b.exclude_domains })
