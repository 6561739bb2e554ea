/**
 * @module Web search through Google Programmable Search (the Custom Search JSON API) and Exa, with
 * the caller's own keys, else the global ones (docs/api.md §10 "Web search and http_fetch"). The
 * proxies and the web_search tool both come here.
 *
 * Where a search goes is a config too (`search.google_base_url`, `search.exa_base_url`). A base URL
 * the caller set personally is reached with the caller's rights through the outbound guard, and is
 * sent the caller's personal key only: a global key never goes to an address a user chose. The
 * global base URL, or the default, is an admin's choice and reached with an admin's rights.
 */
import { createHash } from 'node:crypto'
import { upstreamText } from '../../llm/index.ts'
import { AppError } from '../../lib/errors.ts'
import type { Logger } from '../../lib/logger.ts'
import type { OutboundCaller, OutboundGuard } from '../../lib/outbound.ts'
import { textUpTo } from '../../lib/read-limited.ts'
import type { ConfigsService } from '../configs/service.ts'
import { searchNotConfigured, searchUpstreamFailed } from './errors.ts'

export const DEFAULT_GOOGLE_BASE_URL = 'https://www.googleapis.com/customsearch/v1'
export const DEFAULT_EXA_BASE_URL = 'https://api.exa.ai'
const UPSTREAM_TIMEOUT_MS = 15_000
/** a result list is a few kB; anything past this is not one */
const MAX_ANSWER_BYTES = 2 * 1024 * 1024
const ADMIN_CHOICE: OutboundCaller = { role: 'admin' }

/** Who searches: whose keys are used, and with whose rights a personal base URL is reached. */
export interface SearchCaller {
  userId: string
  role: string
}

export interface SearchResult {
  /** stable for a URL: the first 16 characters of its SHA-256 (base64url); Exa's own id for Exa */
  resultId: string
  title: string
  description: string
  url: string
  imageUrl?: string
}

export interface ExaResult extends SearchResult {
  publishedDate: string | null
  author: string | null
  score: number | null
}

export interface GoogleQuery {
  query: string
  searchType?: 'web' | 'image'
  /** 1–10 (Google's own limit) */
  num?: number
}

export interface ExaQuery {
  query: string
  numResults?: number
  type?: string
  includeDomains?: string[]
  excludeDomains?: string[]
}

type GoogleItem = { title?: string; link?: string; snippet?: string; pagemap?: { cse_image?: { src?: string }[] }; image?: { contextLink?: string } }
type ExaItem = { id?: string; title?: string | null; url?: string; publishedDate?: string | null; author?: string | null; score?: number | null; image?: string | null; highlights?: string[]; summary?: string | null; text?: string | null }

const idOf = (url: string) => createHash('sha256').update(url).digest('base64url').slice(0, 16)
const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined)

/** What to say of an error answer: its own message (trimmed, upstreamText) when it sent one, else the status. */
function statusMessage(engine: string, baseConfig: string, status: number, body: string): string {
  if (status >= 300 && status < 400) return `${engine} answered ${status}, a redirect, which is not followed: set ${baseConfig} to the address that answers`
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown }
    const msg = typeof parsed.error === 'string' ? parsed.error : (parsed.error?.message ?? parsed.message)
    const text = typeof msg === 'string' ? upstreamText(msg) : ''
    if (text) return `${engine} answered ${status}: ${text}`
  } catch {}
  return `${engine} answered ${status}`
}

export function createSearchService(deps: { configs: ConfigsService; outbound: OutboundGuard; logger: Logger; timeoutMs?: number }) {
  const { configs, outbound, logger } = deps
  const timeoutMs = deps.timeoutMs ?? UPSTREAM_TIMEOUT_MS

  /** where to send a search, with whose rights, and which of the caller's settings it may use */
  async function endpointFor(c: SearchCaller, baseConfig: string, fallback: string) {
    const base = await configs.settingFor(c.userId, 'search', baseConfig)
    const personal = base?.scope === 'personal'
    let url: URL
    try {
      url = new URL(base?.value ?? fallback)
    } catch {
      throw searchUpstreamFailed(`search.${baseConfig} is not a URL`)
    }
    return {
      url,
      fetch: outbound.fetchFor(personal ? c : ADMIN_CHOICE),
      /** a setting the search needs: the caller's own, else the global one — but never a global secret for a personal base URL */
      async need(engine: string, name: string, secret: boolean): Promise<string> {
        const setting = await configs.settingFor(c.userId, 'search', name)
        if (!setting) throw searchNotConfigured(engine, `search.${name}`)
        if (personal && secret && setting.scope === 'global') throw searchNotConfigured(engine, `search.${name}`, `must be a personal one to go to your own search.${baseConfig}`)
        return setting.value
      },
    }
  }

  /** One request to the engine; its JSON answer, or a 502 that says what went wrong (never the key). */
  async function send(engine: string, baseConfig: string, fetcher: typeof fetch, url: URL, init: RequestInit, secret: string, signal?: AbortSignal): Promise<unknown> {
    const timeout = AbortSignal.timeout(timeoutMs)
    const both = signal ? AbortSignal.any([signal, timeout]) : timeout
    const clean = (text: string) => upstreamText(text.replaceAll(secret, '…'))
    let status: number
    let text: string
    try {
      const res = await fetcher(url, { ...init, signal: both })
      status = res.status
      text = (await textUpTo(res, MAX_ANSWER_BYTES, both)).text
    } catch (error) {
      if (signal?.aborted) throw signal.reason
      if (error instanceof AppError) throw error // the guard refused: already a 502 that says why
      const why = timeout.aborted ? `did not answer within ${timeoutMs / 1000} s` : `could not be reached: ${clean(error instanceof Error ? error.message : String(error))}`
      logger.warn('web search failed', { engine, error: why })
      throw searchUpstreamFailed(`${engine} ${why}`)
    }
    if (status < 200 || status >= 300) {
      const detail = statusMessage(engine, `search.${baseConfig}`, status, text.replaceAll(secret, '…'))
      logger.warn('web search failed', { engine, status })
      throw searchUpstreamFailed(detail)
    }
    try {
      return JSON.parse(text)
    } catch {
      throw searchUpstreamFailed(`${engine} answered ${status} with something that is not JSON`)
    }
  }

  return {
    /** Google Programmable Search: `GET {base}?key&cx&q&num&searchType=image`. */
    async google(c: SearchCaller, q: GoogleQuery, signal?: AbortSignal): Promise<SearchResult[]> {
      const at = await endpointFor(c, 'google_base_url', DEFAULT_GOOGLE_BASE_URL)
      const key = await at.need('Google', 'google_api_key', true)
      const cx = await at.need('Google', 'google_cse_id', false)
      const url = new URL(at.url)
      url.searchParams.set('key', key)
      url.searchParams.set('cx', cx)
      url.searchParams.set('q', q.query)
      if (q.num) url.searchParams.set('num', String(q.num))
      if (q.searchType === 'image') url.searchParams.set('searchType', 'image')
      const answer = (await send('Google', 'google_base_url', at.fetch, url, { headers: { accept: 'application/json' } }, key, signal)) as { items?: GoogleItem[] } | null
      const items = Array.isArray(answer?.items) ? answer.items : []
      return items.flatMap((item): SearchResult[] => {
        const link = str(item?.link)
        if (!link) return []
        const image = q.searchType === 'image'
        const imageUrl = image ? link : str(item.pagemap?.cse_image?.[0]?.src)
        return [{ resultId: idOf(link), title: str(item.title) ?? link, description: str(item.snippet) ?? '', url: image ? (str(item.image?.contextLink) ?? link) : link, ...(imageUrl ? { imageUrl } : {}) }]
      })
    },

    /** Exa: `POST {base}/search` with `x-api-key`, asking for highlights (the results' descriptions). */
    async exa(c: SearchCaller, q: ExaQuery, signal?: AbortSignal): Promise<{ requestId: string | null; results: ExaResult[] }> {
      const at = await endpointFor(c, 'exa_base_url', DEFAULT_EXA_BASE_URL)
      const key = await at.need('Exa', 'exa_api_key', true)
      const url = new URL(at.url)
      url.pathname = `${url.pathname.endsWith('/') ? url.pathname.slice(0, -1) : url.pathname}/search`
      const body = { query: q.query, numResults: q.numResults, type: q.type, includeDomains: q.includeDomains, excludeDomains: q.excludeDomains, contents: { highlights: true } }
      const init = { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body) }
      const answer = (await send('Exa', 'exa_base_url', at.fetch, url, init, key, signal)) as { requestId?: string; results?: ExaItem[] } | null
      const items = Array.isArray(answer?.results) ? answer.results : []
      const results = items.flatMap((r): ExaResult[] => {
        const link = str(r?.url)
        if (!link) return []
        const image = str(r.image)
        const highlights = Array.isArray(r.highlights) ? r.highlights.filter((h) => typeof h === 'string').join(' … ') : ''
        const description = str(r.summary) ?? (highlights || (str(r.text)?.slice(0, 500) ?? ''))
        return [{
          resultId: str(r.id) ?? idOf(link),
          title: str(r.title) ?? link,
          description,
          url: link,
          ...(image ? { imageUrl: image } : {}),
          publishedDate: str(r.publishedDate) ?? null,
          author: str(r.author) ?? null,
          score: typeof r.score === 'number' ? r.score : null,
        }]
      })
      return { requestId: str(answer?.requestId) ?? null, results }
    },

    /** Which engines the caller could search with now (keys set; not asked whether they work). */
    async available(c: SearchCaller): Promise<{ google: boolean; exa: boolean }> {
      const ok = (p: Promise<unknown>) => p.then(() => true, (error) => (error instanceof AppError && error.status === 422 ? false : Promise.reject(error)))
      const [google, exa] = await Promise.all([
        endpointFor(c, 'google_base_url', DEFAULT_GOOGLE_BASE_URL).then((at) => ok(Promise.all([at.need('Google', 'google_api_key', true), at.need('Google', 'google_cse_id', false)]))),
        endpointFor(c, 'exa_base_url', DEFAULT_EXA_BASE_URL).then((at) => ok(at.need('Exa', 'exa_api_key', true))),
      ])
      return { google, exa }
    },
  }
}

export type SearchService = ReturnType<typeof createSearchService>
