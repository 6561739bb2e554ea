/**
 * @module Files a request points at by URL that the model cannot take as a URL (an image for
 * Gemini): the AI SDK's download hook, fetched with the caller's rights (lib/outbound.ts) instead
 * of its own unguarded download. A URL the model takes itself (Anthropic takes image URLs) is left
 * for the provider to fetch. Any failure is the request's: an UpstreamError with status 400.
 */
import type { Experimental_DownloadFunction as DownloadFunction } from 'ai'
import { hostOf } from '../lib/outbound.ts'
import { UpstreamError, upstreamText } from './index.ts'

/** Gemini's limit for a request's inline data */
const MAX_MEDIA_BYTES = 20 * 1024 * 1024

export function downloadWith(fetchMedia: typeof fetch, signal: AbortSignal): DownloadFunction {
  return (requested) => Promise.all(requested.map((r) => (r.isUrlSupportedByModel ? null : download(r.url, fetchMedia, signal))))
}

async function download(url: URL, fetchMedia: typeof fetch, signal: AbortSignal): Promise<{ data: Uint8Array; mediaType: string | undefined }> {
  // the host only: a query string may carry a token
  const failed = (why: string) => new UpstreamError(`the file at ${hostOf(url)} could not be fetched: ${why}`, 400)
  let res: Response
  try {
    res = await fetchMedia(url, { signal })
  } catch (error) {
    if (signal.aborted) throw error
    throw failed(upstreamText(error instanceof Error ? error.message : String(error)))
  }
  const refusal =
    res.status >= 300 && res.status < 400
      ? `it answered ${res.status}, a redirect, which is not followed`
      : !res.ok
        ? `it answered ${res.status}`
        : Number(res.headers.get('content-length') ?? 0) > MAX_MEDIA_BYTES
          ? `it is larger than ${MAX_MEDIA_BYTES} bytes`
          : undefined
  if (refusal) {
    await res.body?.cancel().catch(() => {})
    throw failed(refusal)
  }
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    const reader = res.body?.getReader()
    for (let r = await reader?.read(); r && !r.done; r = await reader!.read()) {
      size += r.value.byteLength
      if (size > MAX_MEDIA_BYTES) {
        await reader!.cancel().catch(() => {})
        throw failed(`it is larger than ${MAX_MEDIA_BYTES} bytes`)
      }
      chunks.push(r.value)
    }
  } catch (error) {
    if (error instanceof UpstreamError || signal.aborted) throw error
    throw failed('it broke off')
  }
  return { data: Buffer.concat(chunks), mediaType: res.headers.get('content-type') ?? undefined }
}
