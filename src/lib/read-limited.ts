/** @module Reading a response body up to a size, so that an answer from an address someone chose cannot fill the server's memory. */

export interface LimitedBody {
  bytes: Uint8Array
  /** the body went on past `maxBytes`: `bytes` holds its first `maxBytes` only, and the rest was not read */
  truncated: boolean
}

/** The body's bytes, at most `maxBytes`; the stream is cancelled past that, or when `signal` aborts (which rejects with its reason). */
export async function readUpTo(body: ReadableStream<Uint8Array> | null, maxBytes: number, signal?: AbortSignal): Promise<LimitedBody> {
  if (!body) return { bytes: new Uint8Array(), truncated: false }
  signal?.throwIfAborted()
  const reader = body.getReader()
  const onAbort = () => void reader.cancel(signal?.reason).catch(() => {})
  signal?.addEventListener('abort', onAbort, { once: true })
  const chunks: Uint8Array[] = []
  let size = 0
  let truncated = false
  try {
    for (;;) {
      const { done, value } = await reader.read()
      signal?.throwIfAborted()
      if (done) break
      if (size + value.byteLength > maxBytes) {
        chunks.push(value.subarray(0, maxBytes - size))
        size = maxBytes
        truncated = true
        break
      }
      chunks.push(value)
      size += value.byteLength
    }
  } catch (error) {
    void reader.cancel().catch(() => {})
    throw error
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
  if (truncated) void reader.cancel().catch(() => {})
  return { bytes: Buffer.concat(chunks), truncated }
}

/** The body as text (UTF-8), at most `maxBytes` of it. */
export async function textUpTo(res: Response, maxBytes: number, signal?: AbortSignal): Promise<LimitedBody & { text: string }> {
  const body = await readUpTo(res.body, maxBytes, signal)
  return { ...body, text: new TextDecoder().decode(body.bytes) }
}
