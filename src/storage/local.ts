/**
 * @module Files on local disk under `<dir>` (the data dir's `files/`): an upload is written to
 * `<dir>/.partial/<random>` and renamed into place on commit (a rename on one file system is atomic),
 * so a cut upload never shows as a file; `sweep` removes the partials a crash left.
 */
import { randomUUID } from 'node:crypto'
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Storage, StorageUpload } from './index.ts'
import { assertStorageKey } from './keys.ts'

/**
 * A partial this long untouched is a crash's: a live upload writes to it as bytes arrive, and the
 * server closes a request idle for 120 s. Younger ones may be another instance's (a shared data dir).
 */
const STALE_PARTIAL_MS = 60 * 60 * 1000

export function createLocalStorage(dir: string): Storage {
  const partials = join(dir, '.partial')
  const pathOf = (key: string) => {
    assertStorageKey(key)
    return join(dir, key)
  }

  return {
    kind: 'local',

    async begin(key: string): Promise<StorageUpload> {
      const target = pathOf(key)
      await mkdir(partials, { recursive: true })
      const partial = join(partials, randomUUID())
      const handle = await open(partial, 'wx', 0o600)
      let done = false
      const abort = async () => {
        if (done) return
        done = true
        await handle.close().catch(() => {})
        await rm(partial, { force: true })
      }
      return {
        async write(chunk) {
          let offset = 0
          while (offset < chunk.byteLength) offset += (await handle.write(chunk, offset)).bytesWritten
        },
        async commit() {
          if (done) throw new Error('upload already ended')
          done = true
          try {
            await handle.close()
            await mkdir(dirname(target), { recursive: true })
            await rename(partial, target)
          } catch (error) {
            await rm(partial, { force: true })
            throw error
          }
        },
        abort,
      }
    },

    file: (key) => Bun.file(pathOf(key)),

    body(key, range) {
      const file = Bun.file(pathOf(key))
      return range ? file.slice(range.start, range.end + 1) : file
    },

    async delete(key) {
      await rm(pathOf(key), { force: true })
    },

    async sweep() {
      const left = await readdir(partials).catch(() => [] as string[])
      const before = Date.now() - STALE_PARTIAL_MS
      await Promise.all(
        left.map(async (name) => {
          const path = join(partials, name)
          const info = await stat(path).catch(() => undefined)
          if (info && info.mtimeMs < before) await rm(path, { force: true })
        }),
      )
    },
  }
}
