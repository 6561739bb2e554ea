/**
 * @module A multipart/form-data upload read as it arrives (@fastify/busboy over the request's
 * stream): the text fields that come before the one `file` part, then the file's bytes as a stream
 * with backpressure, so the body is never held whole. The file must be the form's last part (as S3's
 * POST uploads require): whatever the fields say (`purpose`) is known before the first byte is stored.
 */
import { Readable } from 'node:stream'
import { Busboy, type BusboyFileStream } from '@fastify/busboy'
import { AppError } from '../../lib/errors.ts'
import { fieldAfterFile, malformedForm, missingFileField, tooManyParts, twoFileFields, unexpectedFileField } from './errors.ts'

export interface MultipartUpload {
  /** the text fields sent before the file */
  fields: Record<string, string>
  /** the file name and media type as the client sent them (not to be trusted) */
  fileName: string
  contentType: string
  /**
   * the file's bytes as they arrive; fails when the body is cut or malformed. A chunk is the reader's
   * only until it asks for the next: its memory may then be released (copy what you keep)
   */
  chunks: AsyncIterable<Uint8Array>
  /** resolves once the form has ended well after the file; rejects when it does not (cut, a second file, a field after the file) */
  whole: Promise<void>
  /** stop reading the request (after a failure: nothing more is parsed) */
  cancel(): void
}

/**
 * The file's chunks, each released as soon as its reader asks for the next one when it is the whole of
 * one of the body's buffers (Bun gives every read of a request body a fresh ArrayBuffer; busboy passes
 * the file's bytes on as views of it, and parses each buffer whole before they are read, so that view
 * is then its last use; busboy's own buffers, its lookbehind, are never released). Left to the garbage
 * collector they pile up: a 200 MiB upload raised the RSS by 42-49 MB, 11-14 MB with this
 * (bench:files; a bare Bun.serve writing the body to disk: 20-31 MB).
 */
async function* releasing(stream: AsyncIterable<Uint8Array>, bodyBuffers: WeakSet<ArrayBufferLike>): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of stream) {
      yield chunk
      const buffer = chunk.buffer
      if (chunk.byteOffset === 0 && chunk.byteLength === buffer.byteLength && bodyBuffers.has(buffer)) {
        try {
          ;(buffer as ArrayBuffer).transfer(0)
        } catch {}
      }
    }
  } catch (error) {
    // busboy may end the file's stream with its own error ("Part terminated early") before its
    // parser reports the cut form: that is the client's cut body too, never a 500
    throw error instanceof AppError ? error : malformedForm('the body ended before the form did')
  }
}

const MAX_FIELDS = 10
const MAX_FIELD_BYTES = 4096

/** Resolves when the `file` part begins; rejects with a 422 problem when the form is malformed or has no file. */
export function readMultipart(body: ReadableStream<Uint8Array>, contentType: string): Promise<MultipartUpload> {
  const source = Readable.fromWeb(body as unknown as import('node:stream/web').ReadableStream<Uint8Array>)
  let parser: ReturnType<typeof Busboy>
  try {
    parser = Busboy({
      headers: { 'content-type': contentType },
      // a part named `file` is the file even without a file name; any part with a file name is a file
      isPartAFile: (name, _type, fileName) => name === 'file' || fileName !== undefined,
      limits: { fields: MAX_FIELDS, fieldSize: MAX_FIELD_BYTES, fieldNameSize: 100, files: 1, parts: MAX_FIELDS + 1, headerPairs: 20 },
    })
  } catch {
    // no boundary, or not multipart at all
    source.destroy()
    return Promise.reject(malformedForm('the Content-Type has no multipart boundary'))
  }
  const whole = Promise.withResolvers<void>()
  whole.promise.catch(() => {}) // awaited by the caller only when it got that far
  const fields: Record<string, string> = {}
  const bodyBuffers = new WeakSet<ArrayBufferLike>()
  let file: BusboyFileStream | undefined
  let failed = false

  return new Promise<MultipartUpload>((resolve, reject) => {
    const cancel = () => {
      source.unpipe(parser)
      source.destroy()
      file?.resume()
    }
    const fail = (error: AppError) => {
      if (failed) return
      failed = true
      if (!file) reject(error)
      else {
        whole.reject(error)
        // the reader of the file's chunks hears it too
        if (!file.readableEnded) file.destroy(error)
      }
      cancel()
    }
    parser.on('field', (name, value, _nameTruncated, valueTruncated) => {
      if (file) return fail(fieldAfterFile(name))
      if (valueTruncated) return fail(malformedForm(`the field ${JSON.stringify(name.slice(0, 40))} is longer than ${MAX_FIELD_BYTES} bytes`))
      if (Object.hasOwn(fields, name)) return fail(malformedForm(`the field ${JSON.stringify(name.slice(0, 40))} is sent twice`))
      fields[name] = value
    })
    parser.on('file', (name, stream, fileName, _encoding, type) => {
      if (file) {
        stream.resume()
        return fail(twoFileFields())
      }
      if (name !== 'file') {
        stream.resume()
        return fail(unexpectedFileField(name))
      }
      file = stream
      // its reader hears a failure through the iterator; an unread stream must not throw it as an 'error' event
      stream.on('error', () => {})
      resolve({ fields, fileName: fileName ?? '', contentType: type ?? '', chunks: releasing(stream, bodyBuffers), whole: whole.promise, cancel })
    })
    parser.on('filesLimit', () => fail(twoFileFields()))
    parser.on('fieldsLimit', () => fail(tooManyParts(MAX_FIELDS)))
    parser.on('partsLimit', () => fail(tooManyParts(MAX_FIELDS)))
    parser.on('error', (error: unknown) => fail(malformedForm(error instanceof Error ? error.message : 'it cannot be read')))
    parser.on('finish', () => {
      if (!file) fail(missingFileField())
      else if (!failed) whole.resolve()
    })
    source.on('error', () => fail(malformedForm('the body ended before the form did')))
    source.pipe(parser)
    source.on('data', (chunk: Uint8Array) => bodyBuffers.add(chunk.buffer))
  })
}
