/**
 * @module Objects in an S3-compatible store through Bun's built-in S3Client. An upload is one Bun
 * upload fed from a ReadableStream: under one part it is a single PUT at commit, past it a multipart
 * upload that becomes the object only when it is completed — the commit. Erroring the stream is the
 * abort: Bun sends AbortMultipartUpload, so neither the object nor its parts stay.
 *
 * Not `S3File.writer()`: its `end(error)` and `close()` both complete the upload with what was
 * written (Bun 1.4.5), so a cut upload would become an object; and its `write` never pushes back,
 * so a fast sender is buffered whole in memory.
 */
import { S3Client } from 'bun'
import type { S3Settings } from '../config.ts'
import type { Storage, StorageUpload } from './index.ts'
import { assertStorageKey } from './keys.ts'

export interface S3StorageOptions extends S3Settings {
  /** bytes per part, at least 5 MiB (S3's minimum); Bun's default is 5 MiB */
  partSize?: number
  /**
   * parts of one upload in flight at once (default 2). Each costs memory: a 100 MB upload peaked at
   * +60 MB RSS with 2, +92 MB with 5 (bench/storage-memory.ts, Bun 1.4.5); the peak does not grow
   * with the object's size
   */
  queueSize?: number
}

export function createS3Storage(options: S3StorageOptions): Storage {
  const client = new S3Client({
    accessKeyId: options.accessKeyId,
    secretAccessKey: options.secretAccessKey,
    bucket: options.bucket,
    region: options.region,
    endpoint: options.endpoint,
    virtualHostedStyle: options.virtualHostedStyle,
  })
  const partSize = options.partSize ?? 5 * 1024 * 1024
  const queueSize = options.queueSize ?? 2

  return {
    kind: 's3',

    async begin(key, contentType): Promise<StorageUpload> {
      assertStorageKey(key)
      const feed = createFeed()
      // settles when the store has the object (or has given up); observed at once so a failure
      // while nobody awaits it is not an unhandled rejection
      const outcome = client
        .write(key, new Response(feed.stream), { type: contentType, partSize, queueSize })
        .then(
          () => undefined,
          (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
        )
      let ended = false
      return {
        async write(chunk) {
          if (ended) throw new Error('upload already ended')
          await feed.write(chunk)
        },
        async commit() {
          if (ended) throw new Error('upload already ended')
          ended = true
          feed.close()
          const failure = await outcome
          if (failure) {
            // a completion whose answer was lost may still have made the object
            await client.delete(key).catch(() => {})
            throw failure
          }
        },
        async abort() {
          if (ended) return
          ended = true
          feed.error(new Error('upload aborted'))
          await outcome
        },
      }
    },

    // An S3File: `size` is NaN until `stat()`; as a Response body it is a 302 to a presigned URL
    // of the store — send `.stream()` (or a slice's) instead. See index.ts.
    file: (key) => {
      assertStorageKey(key)
      return client.file(key)
    },

    body(key, range) {
      assertStorageKey(key)
      const file = client.file(key)
      return (range ? file.slice(range.start, range.end + 1) : file).stream()
    },

    async delete(key) {
      assertStorageKey(key)
      await client.delete(key)
    },

    // Nothing to sweep: no temporary objects exist, an object only appears when its upload completes.
    // A multipart upload cut by a crash stays incomplete, invisible and unlisted by Bun's client;
    // the store expires it (an AbortIncompleteMultipartUpload lifecycle rule; MinIO does it itself).
    async sweep() {},
  }
}

/**
 * A ReadableStream fed by `write`, one chunk each time the reader asks. `write` resolves once the
 * reader took the chunk and asked for the next, so Bun's own backpressure (parts in flight) reaches
 * the caller, and the caller may reuse its buffer. When the reader stops (the upload failed),
 * pending and later writes reject.
 */
function createFeed() {
  let controller!: ReadableStreamDefaultController<Uint8Array>
  let wanted = false
  let stopped: Error | undefined
  let waiter: { resolve: () => void; reject: (error: Error) => void } | undefined

  const stop = (reason: unknown) => {
    stopped ??= reason instanceof Error ? reason : new Error('upload stopped')
    const w = waiter
    waiter = undefined
    w?.reject(stopped)
  }
  const demand = async () => {
    while (!wanted) {
      if (stopped) throw stopped
      await new Promise<void>((resolve, reject) => (waiter = { resolve, reject }))
    }
  }

  const stream = new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c
      },
      pull() {
        wanted = true
        const w = waiter
        waiter = undefined
        w?.resolve()
      },
      cancel: stop,
    },
    { highWaterMark: 0 },
  )

  return {
    stream,
    async write(chunk: Uint8Array) {
      if (stopped) throw stopped
      await demand()
      wanted = false
      controller.enqueue(chunk)
      await demand()
    },
    close() {
      stop(new Error('upload ended'))
      try {
        controller.close()
      } catch {}
    },
    error(reason: Error) {
      stop(reason)
      try {
        controller.error(reason)
      } catch {}
    },
  }
}
