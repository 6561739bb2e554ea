/**
 * @module Files on local disk under `<dir>` (the data dir's `files/`): an upload is written to
 * `<dir>/.partial/<random>` and renamed into place on commit (a rename on one file system is atomic),
 * so a cut upload never shows as a file; `sweep` removes the partials a crash left.
 */
import { randomUUID } from 'node:crypto'
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Storage, StorageUpload } from './index.ts'
import { assertStorageKey } from './keys.ts'

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

    async delete(key) {
      await rm(pathOf(key), { force: true })
    },

    async sweep() {
      const left = await readdir(partials).catch(() => [] as string[])
      await Promise.all(left.map((name) => rm(join(partials, name), { force: true })))
    },
  }
}
