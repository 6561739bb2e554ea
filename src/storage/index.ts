/**
 * @module Where file bytes live: one small interface over the data dir's `files/` (local.ts) and any
 * S3-compatible store (s3.ts). Only the files module calls it; every other module that keeps bytes
 * (datasets, workflow files, run outputs) goes through the files service. Keys are made by the
 * server from ids — never from a file name a user sent.
 */

/** An upload in progress: chunks go to a temporary place; `commit` makes them the object, `abort` leaves nothing. */
export interface StorageUpload {
  write(chunk: Uint8Array): Promise<void>
  /** the object appears under its key, whole, or not at all */
  commit(): Promise<void>
  /** nothing of it stays (safe to call after a failed write, and more than once) */
  abort(): Promise<void>
}

export interface Storage {
  readonly kind: 'local' | 's3'
  /** Begin writing the object `key` (`contentType` is what a store that keeps one records). */
  begin(key: string, contentType: string): Promise<StorageUpload>
  /**
   * The stored object as a Blob (a BunFile or an S3File), for `slice(start, end)` and `stream()`.
   * Send `body(key)` in an answer, not the Blob itself: an S3File as a Response body is a 302 to a
   * presigned URL of the store (which the client may not reach, and which skips our headers), and
   * `new Response(s3File, init)` throws.
   * Take the size from the database: an S3File's `size` is NaN until a `stat()` round trip.
   * A slice must not be empty (an S3 `slice(a, a)` reads one byte).
   */
  file(key: string): Blob
  /**
   * What to send as the body of a download: the object, or the inclusive byte range `start`–`end`
   * of it — the file itself on disk (Bun sends it with sendfile), a stream from an S3 store.
   */
  body(key: string, range?: { start: number; end: number }): BodyInit
  /** Remove the object; a key that is not there is no error. */
  delete(key: string): Promise<void>
  /** At start: remove what uploads cut by a crash left behind. */
  sweep(): Promise<void>
}
