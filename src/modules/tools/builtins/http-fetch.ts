/**
 * @module The `http_fetch` built-in tool: GET one http(s) URL with the caller's rights, through the
 * outbound guard (lib/outbound.ts) — private addresses refused unless the caller may reach them —
 * following up to 5 redirects itself, each hop checked again. At most 1 MiB of the body is read,
 * all within 10 s; HTML comes back as text (links kept as text), JSON and text as they are, and
 * anything else only described. What the page did (a 404, a refused address, a timeout) is a
 * result with `isError: true`, never a thrown error.
 */
import { upstreamText } from '../../../llm/index.ts'
import { AppError } from '../../../lib/errors.ts'
import type { OutboundGuard } from '../../../lib/outbound.ts'
import { readUpTo, type LimitedBody } from '../../../lib/read-limited.ts'
import type { BuiltinTool, ToolResult } from '../types.ts'

const MAX_REDIRECTS = 5
const TIMEOUT_MS = 10_000
const MAX_BYTES = 1024 * 1024
const REQUEST_HEADERS = { accept: 'text/html,application/xhtml+xml,application/json,text/*;q=0.9,*/*;q=0.5', 'user-agent': 'Hearth-http_fetch/1' }

const isHtml = (type: string) => type === 'text/html' || type === 'application/xhtml+xml'
const isText = (type: string) => type.startsWith('text/') || /^application\/([\w.-]+\+)?(json|xml)$/.test(type) || type === 'application/javascript' || type === 'application/x-ndjson'
const bytesText = (n: number) => `${n.toLocaleString('en-US')} bytes`

function decode(bytes: Uint8Array, charset: string | undefined): string {
  try {
    return new TextDecoder(charset ?? 'utf-8').decode(bytes)
  } catch {
    return new TextDecoder().decode(bytes)
  }
}

/** Text sent with no type, or as mere octets: shown when it decodes as UTF-8 and holds no NUL. */
function sniffText(bytes: Uint8Array): string | undefined {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes, { stream: true }) // a character cut at the end is not garbage
    return text.includes('\u0000') ? undefined : text
  } catch {
    return undefined
  }
}

/** The page as text: links kept as `text [absolute URL]`, images, scripts and styles left out, headings in their own case. (html-to-text is loaded on first use: every process, the CLI's too, would pay for it at start.) */
async function htmlText(html: string, page: URL): Promise<string> {
  const { convert } = await import('html-to-text')
  const absolute = (href: string) => {
    if (/^[a-z][a-z0-9+.-]*:/i.test(href)) return href
    try {
      return new URL(href, page).href
    } catch {
      return href
    }
  }
  const headings = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((selector) => ({ selector, options: { uppercase: false } }))
  return convert(html, {
    wordwrap: false,
    selectors: [
      { selector: 'a', options: { hideLinkHrefIfSameAsText: true, pathRewrite: absolute } },
      { selector: 'img', format: 'skip' },
      { selector: 'noscript', format: 'skip' },
      ...headings,
    ],
  }).trim()
}

export function httpFetchTool(deps: { outbound: OutboundGuard; timeoutMs?: number; maxBytes?: number }): BuiltinTool {
  const timeoutMs = deps.timeoutMs ?? TIMEOUT_MS
  const maxBytes = deps.maxBytes ?? MAX_BYTES
  const failure = (text: string): ToolResult => ({ content: [{ type: 'text', text }], isError: true })

  /** What came back, as the model should read it. */
  async function result(url: URL, res: Response, body: LimitedBody): Promise<ToolResult> {
    const contentType = res.headers.get('content-type') ?? ''
    const type = contentType.split(';')[0]!.trim().toLowerCase()
    const charset = /charset\s*=\s*"?([\w.:-]+)/i.exec(contentType)?.[1]
    const size = body.truncated ? `more than ${bytesText(maxBytes)}` : bytesText(body.bytes.byteLength)
    const undeclared = type === '' || type === 'application/octet-stream'
    let text = isHtml(type) ? await htmlText(decode(body.bytes, charset), url) : isText(type) ? decode(body.bytes, charset) : undeclared ? sniffText(body.bytes) : undefined
    const shown = text !== undefined
    text ??= `The response is ${type || 'of no declared type'}, ${size}: not text, so its content is not shown.`
    if (shown && body.truncated) text += `\n\n[Truncated: only the first ${bytesText(maxBytes)} of the body were read.]`
    const head = `URL: ${url.href}\nStatus: ${res.status}${res.statusText ? ` ${res.statusText}` : ''}\nContent-Type: ${contentType || '(none)'}`
    return {
      content: [{ type: 'text', text: `${head}\n\n${text}` }],
      structuredContent: { url: url.href, status: res.status, content_type: contentType || null, bytes: body.bytes.byteLength, truncated: body.truncated },
      isError: res.status >= 400,
    }
  }

  return {
    name: 'http_fetch',
    description: `Fetch a web page or file with an HTTP GET and read it as text (HTML is reduced to text, links kept). At most ${bytesText(maxBytes)} are read, within ${timeoutMs / 1000} s; up to ${MAX_REDIRECTS} redirects are followed.`,
    inputSchema: {
      type: 'object',
      properties: { url: { type: 'string', description: 'the http or https URL to fetch', minLength: 1, maxLength: 8192 } },
      required: ['url'],
      additionalProperties: false,
    },

    async call(args, ctx) {
      let url: URL
      try {
        url = new URL(String(args.url))
      } catch {
        return failure('Not a URL: give an absolute http or https URL')
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return failure(`Only http and https URLs are fetched, not ${url.protocol}`)
      const timeout = AbortSignal.timeout(timeoutMs)
      const signal = AbortSignal.any([ctx.signal, timeout])
      const send = deps.outbound.fetchFor(ctx.principal)
      let answer: { res: Response; body: LimitedBody }
      try {
        for (let hop = 0; ; hop++) {
          const res = await send(url, { signal, headers: REQUEST_HEADERS })
          const location = res.status >= 300 && res.status < 400 ? res.headers.get('location') : null
          if (location === null) {
            answer = { res, body: await readUpTo(res.body, maxBytes, signal) }
            break
          }
          void res.body?.cancel().catch(() => {})
          if (hop === MAX_REDIRECTS) return failure(`Not fetched: more than ${MAX_REDIRECTS} redirects (the last one, from ${url.href}, to ${upstreamText(location)})`)
          try {
            url = new URL(location, url)
          } catch {
            return failure(`Not fetched: ${url.href} redirects to something that is not a URL`)
          }
        }
      } catch (error) {
        if (ctx.signal.aborted) throw ctx.signal.reason
        if (timeout.aborted) return failure(`Not fetched: ${url.href} took longer than ${timeoutMs / 1000} s`)
        // the guard's refusal (a private address, a name that does not resolve, a scheme other than http and https)
        if (error instanceof AppError) return failure(`Not fetched: ${error.detail}`)
        return failure(`Not fetched: ${url.href} could not be reached: ${upstreamText(error instanceof Error ? error.message : String(error))}`)
      }
      return result(url, answer.res, answer.body)
    },
  }
}
