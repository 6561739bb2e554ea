/**
 * @module A stored file as an HTTP answer: the store's body (Bun sends a file on disk with sendfile,
 * an S3 object as a stream), one Range, ETag / If-None-Match, and the headers that keep a browser from
 * running what a user uploaded (attachment unless on the inline list, nosniff, CSP sandbox).
 */
import { rangeNotSatisfiable } from './errors.ts'
import { INLINE_TYPES, type FileRow } from './service.ts'

/** RFC 6266: an ASCII fallback `filename` and the exact name as `filename*` (RFC 8187, UTF-8). */
export function contentDisposition(kind: 'inline' | 'attachment', name: string): string {
  const fallback = name.replace(/[^\x20-\x7e]|["\\%]/g, '_')
  const exact = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  return `${kind}; filename="${fallback}"; filename*=UTF-8''${exact}`
}

/** `bytes=a-b` | `bytes=a-` | `bytes=-n` against a size: the inclusive range, `undefined` for no (or an ignorable) Range; throws 416 for several ranges or one outside the file. */
export function parseRange(header: string, size: number): { start: number; end: number } | undefined {
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header)
  if (!m) return undefined // another unit: ignored, as RFC 9110 allows
  const spec = m[1]!.trim()
  if (spec.includes(',')) throw rangeNotSatisfiable(size)
  const r = /^(\d*)\s*-\s*(\d*)$/.exec(spec)
  if (!r || (r[1] === '' && r[2] === '')) throw rangeNotSatisfiable(size)
  let start: number
  let end: number
  if (r[1] === '') {
    const suffix = Number(r[2])
    if (suffix === 0) throw rangeNotSatisfiable(size)
    start = Math.max(size - suffix, 0)
    end = size - 1
  } else {
    start = Number(r[1])
    end = r[2] === '' ? size - 1 : Math.min(Number(r[2]), size - 1)
    if (start > end || start >= size) throw rangeNotSatisfiable(size)
  }
  return { start, end }
}

const etagMatches = (header: string, etag: string) => header.split(',').some((t) => { const v = t.trim(); return v === '*' || v === etag || v === `W/${etag}` })

export function contentResponse(row: FileRow, body: (range?: { start: number; end: number }) => BodyInit, request: Headers): Response {
  const etag = `"${row.sha256}"`
  const inline = INLINE_TYPES.has(row.contentType)
  const headers: Record<string, string> = {
    etag,
    'last-modified': row.createdAt.toUTCString(),
    'accept-ranges': 'bytes',
    // private: per user; no-cache: kept, but asked again (a 304 costs no bytes)
    'cache-control': 'private, no-cache',
    'x-content-type-options': 'nosniff',
    'content-security-policy': 'sandbox',
    'content-disposition': contentDisposition(inline ? 'inline' : 'attachment', row.fileName),
  }
  const ifNoneMatch = request.get('if-none-match')
  if (ifNoneMatch !== null && etagMatches(ifNoneMatch, etag)) return new Response(null, { status: 304, headers })
  headers['content-type'] = row.contentType
  const size = row.fileSize
  const rangeHeader = request.get('range')
  const ifRange = request.get('if-range')
  const range = rangeHeader !== null && (ifRange === null || ifRange.trim() === etag) ? parseRange(rangeHeader, size) : undefined
  if (!range) return new Response(body(), { status: 200, headers })
  headers['content-range'] = `bytes ${range.start}-${range.end}/${size}`
  return new Response(body(range), { status: 206, headers })
}
