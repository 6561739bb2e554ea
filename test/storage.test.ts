/**
 * One contract for every Storage: the data dir's disk, and S3 against a real s3rver. Reads go the way
 * the files module sends them — `file(key).slice(a, b).stream()` — since an S3File is no Response body.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Storage, StorageUpload } from '../src/storage/index.ts'
import { createLocalStorage } from '../src/storage/local.ts'
import { createS3Storage } from '../src/storage/s3.ts'
import { startS3, type TestS3 } from './helpers/s3.ts'

const MiB = 1024 * 1024

interface Backend {
  storage: Storage
  /** is there an object under the key, asked of the store itself */
  stored(key: string): Promise<boolean>
  storedSize(key: string): Promise<number>
  /** everything the store holds besides finished objects: partial files, multipart uploads */
  leftovers(): string[]
  /** how many leftovers an upload of `size` bytes has before it ends */
  leftoversWhileWriting(size: number): number
  stop(): Promise<void>
}

async function localBackend(): Promise<Backend> {
  const dir = mkdtempSync(join(tmpdir(), 'hearth-storage-'))
  const storage = createLocalStorage(dir)
  const partials = join(dir, '.partial')
  return {
    storage,
    stored: async (key) => existsSync(join(dir, key)),
    storedSize: async (key) => storage.file(key).size,
    leftovers: () => (existsSync(partials) ? readdirSync(partials) : []),
    leftoversWhileWriting: () => 1,
    stop: async () => rmSync(dir, { recursive: true, force: true }),
  }
}

let s3: TestS3 | undefined
async function s3Backend(): Promise<Backend> {
  s3 = await startS3()
  const server = s3
  return {
    storage: createS3Storage({ ...server.settings, partSize: 5 * MiB }),
    async stored(key) {
      const exists = await server.client.exists(key)
      const listed = await server.client.list({ prefix: key })
      expect((listed.contents ?? []).some((o) => o.key === key)).toBe(exists)
      return exists
    },
    storedSize: async (key) => (await server.client.stat(key)).size,
    leftovers: () => server.pendingUploads(),
    // under one part nothing is sent before the commit; past it, a multipart upload is begun
    leftoversWhileWriting: (size) => (size > 5 * MiB ? 1 : 0),
    stop: () => server.stop(),
  }
}

function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n)
  let x = seed
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out
}

/** Split into chunks of uneven sizes, as views into the one buffer (as request bodies arrive). */
function chunksOf(data: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let at = 0, i = 0; at < data.byteLength; i++) {
    const n = Math.min(size + (i % 3) * 7, data.byteLength - at)
    out.push(data.subarray(at, at + n))
    at += n
  }
  return out
}

async function upload(storage: Storage, key: string, data: Uint8Array, chunkSize = 64 * 1024, contentType = 'application/octet-stream') {
  const u = await storage.begin(key, contentType)
  for (const chunk of chunksOf(data, chunkSize)) await u.write(chunk)
  await u.commit()
}

async function read(storage: Storage, key: string, start?: number, end?: number): Promise<Uint8Array> {
  const blob = start === undefined ? storage.file(key) : storage.file(key).slice(start, end)
  return new Uint8Array(await new Response(blob.stream()).arrayBuffer())
}

/** What a caller does with a request body: write it all and commit, or abort on any failure. */
async function pump(u: StorageUpload, source: AsyncIterable<Uint8Array>) {
  try {
    for await (const chunk of source) await u.write(chunk)
    await u.commit()
  } catch (error) {
    await u.abort()
    throw error
  }
}

/** Until the store settles (Bun sends AbortMultipartUpload after the upload has rejected). */
async function eventually(check: () => boolean, ms = 3000) {
  const until = Date.now() + ms
  while (!check() && Date.now() < until) await Bun.sleep(20)
  return check()
}

const BACKENDS: [string, () => Promise<Backend>][] = [
  ['local', localBackend],
  ['s3', s3Backend],
]

for (const [name, make] of BACKENDS) {
  describe(`storage [${name}]`, () => {
    let b: Backend
    let n = 0
    const newKey = () => `objects/${name}-${++n}`

    beforeAll(async () => {
      b = await make()
    })
    afterAll(async () => {
      await b?.stop()
    })

    test('chunks written then committed are the object, byte for byte', async () => {
      const key = newKey()
      const data = bytes(300_001)
      const u = await b.storage.begin(key, 'image/png')
      for (const chunk of chunksOf(data, 40_000)) await u.write(chunk)
      expect(await b.stored(key)).toBe(false)
      await u.commit()
      expect(await b.stored(key)).toBe(true)
      expect(await b.storedSize(key)).toBe(data.byteLength)
      expect(await read(b.storage, key)).toEqual(data)
      expect(b.leftovers()).toEqual([])
    })

    test('a chunk may be released or reused once its write resolves (the files module releases body buffers)', async () => {
      const key = newKey()
      const data = bytes(6 * MiB + 5, 5)
      const u = await b.storage.begin(key, 'application/octet-stream')
      const reused = new Uint8Array(200_000)
      for (const [i, part] of chunksOf(data, 100_000).entries()) {
        if (i % 2) {
          const own = part.slice() // a buffer of its own, detached after the write
          await u.write(own)
          own.buffer.transfer(0)
        } else {
          reused.set(part)
          await u.write(reused.subarray(0, part.byteLength))
          reused.fill(0xee)
        }
      }
      await u.commit()
      expect(await read(b.storage, key)).toEqual(data)
    })

    test('an empty upload is an empty object', async () => {
      const key = newKey()
      await upload(b.storage, key, new Uint8Array(0))
      expect(await b.stored(key)).toBe(true)
      expect(await b.storedSize(key)).toBe(0)
    })

    test('slices read exactly their range', async () => {
      const key = newKey()
      const data = bytes(100_000, 7)
      await upload(b.storage, key, data, 9_999)
      for (const [start, end] of [[0, 1], [0, 100_000], [5, 17], [65_530, 65_545], [99_997, 100_000], [50_000, undefined]] as const) {
        expect(await read(b.storage, key, start, end)).toEqual(data.subarray(start, end))
      }
    })

    test('abort leaves nothing: no object, no partial, no parts', async () => {
      for (const size of [100_000, 6 * MiB]) {
        const key = newKey()
        const u = await b.storage.begin(key, 'application/octet-stream')
        for (const chunk of chunksOf(bytes(size), 256 * 1024)) await u.write(chunk)
        expect(await eventually(() => b.leftovers().length === b.leftoversWhileWriting(size))).toBe(true)
        await u.abort()
        await u.abort()
        expect(await b.stored(key)).toBe(false)
        expect(await eventually(() => b.leftovers().length === 0)).toBe(true)
      }
    })

    test('a body that fails part-way is aborted and leaves nothing', async () => {
      const key = newKey()
      async function* failingBody() {
        yield bytes(3 * MiB, 2)
        yield bytes(3 * MiB, 3)
        expect(await eventually(() => b.leftovers().length === b.leftoversWhileWriting(6 * MiB))).toBe(true)
        throw new Error('client went away')
      }
      const u = await b.storage.begin(key, 'application/octet-stream')
      await expect(pump(u, failingBody())).rejects.toThrow('client went away')
      expect(await eventually(() => b.leftovers().length === 0)).toBe(true)
      expect(await b.stored(key)).toBe(false)
    })

    test('an ended upload takes no more writes; abort after commit keeps the object', async () => {
      const key = newKey()
      const u = await b.storage.begin(key, 'text/plain')
      await u.write(new TextEncoder().encode('kept'))
      await u.commit()
      await expect(u.write(new Uint8Array(1))).rejects.toThrow()
      await expect(u.commit()).rejects.toThrow()
      await u.abort()
      expect(new TextDecoder().decode(await read(b.storage, key))).toBe('kept')
    })

    test('delete removes the object; deleting a missing key is fine', async () => {
      const key = newKey()
      await upload(b.storage, key, bytes(1000))
      await b.storage.delete(key)
      expect(await b.stored(key)).toBe(false)
      await b.storage.delete(key)
      await b.storage.delete('objects/never-was')
    })

    test('keys that could leave their place are refused', async () => {
      for (const key of ['../x', 'a/../../x', '/abs', '', 'a//b', '.hidden']) {
        await expect(b.storage.begin(key, 'text/plain')).rejects.toThrow('unsafe storage key')
        expect(() => b.storage.file(key)).toThrow('unsafe storage key')
        await expect(b.storage.delete(key)).rejects.toThrow('unsafe storage key')
      }
    })

    test('sweep keeps finished objects', async () => {
      const key = newKey()
      await upload(b.storage, key, bytes(10))
      await b.storage.sweep()
      expect(await b.stored(key)).toBe(true)
    })

    test('12 MiB (three 5 MiB parts on S3) round-trips with the same SHA-256', async () => {
      const key = newKey()
      const data = bytes(12 * MiB + 3, 11)
      await upload(b.storage, key, data, 256 * 1024 + 1)
      expect(await b.storedSize(key)).toBe(data.byteLength)
      const hash = createHash('sha256')
      const reader = b.storage.file(key).stream().getReader()
      for (let r = await reader.read(); !r.done; r = await reader.read()) hash.update(r.value)
      expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'))
      expect(b.leftovers()).toEqual([])
    })
  })
}

describe('storage [local] only', () => {
  test('sweep removes the partial files an upload cut by a crash left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-storage-'))
    try {
      // what a process killed mid-upload leaves: its partial file, never renamed, untouched since
      mkdirSync(join(dir, '.partial'))
      const cut = join(dir, '.partial', crypto.randomUUID())
      writeFileSync(cut, bytes(5000))
      const twoHoursAgo = new Date(Date.now() - 2 * 3600_000)
      utimesSync(cut, twoHoursAgo, twoHoursAgo)
      const storage = createLocalStorage(dir) // the next start
      await upload(storage, 'objects/kept', bytes(10))
      await storage.sweep()
      expect(readdirSync(join(dir, '.partial'))).toEqual([])
      expect(existsSync(join(dir, 'objects/kept'))).toBe(true)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test("another instance's start (one data dir for several) leaves an upload in progress alone", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-storage-'))
    try {
      const running = createLocalStorage(dir)
      const data = bytes(20_000)
      const u = await running.begin('objects/live', 'text/plain')
      await u.write(data.subarray(0, 10_000))
      await createLocalStorage(dir).sweep()
      await u.write(data.subarray(10_000))
      await u.commit()
      expect(await read(running, 'objects/live')).toEqual(data)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('storage [s3] only', () => {
  let server: TestS3
  beforeAll(async () => {
    server = await startS3('other-bucket')
  })
  afterAll(async () => {
    await server?.stop()
  })

  test('the content type is recorded with the object', async () => {
    const storage = createS3Storage(server.settings)
    await upload(storage, 'typed/one', bytes(10), 4, 'image/webp')
    expect((await server.client.stat('typed/one')).type).toBe('image/webp')
  })

  // Pinned because the files module depends on them: if Bun changes, these say so.
  test('an S3File has no size until stat, and is no Response body: a redirect to the store, or a throw with headers', async () => {
    const storage = createS3Storage(server.settings)
    await upload(storage, 'quirks/one', bytes(10))
    const file = storage.file('quirks/one')
    expect(file.size).toBeNaN()
    const response = new Response(file)
    expect(response.status).toBe(302)
    expect(response.headers.get('location')).toStartWith(server.settings.endpoint)
    expect(() => new Response(file.slice(0, 5), { status: 206 })).toThrow('do not support ResponseInit')
    const streamed = new Response(file.slice(0, 5).stream(), { status: 206 })
    const head: Uint8Array = new Uint8Array(await streamed.arrayBuffer())
    expect(head).toEqual(bytes(10).subarray(0, 5))
  })

  test('a store that refuses the upload fails the write or the commit instead of hanging', async () => {
    const storage = createS3Storage({ ...server.settings, bucket: 'no-such-bucket' })
    for (const size of [1000, 6 * MiB]) {
      const u = await storage.begin(`refused/${size}`, 'application/octet-stream')
      await expect(pump(u, (async function* () { yield* chunksOf(bytes(size), MiB) })())).rejects.toThrow()
    }
  })
})
