/** @module The configured store: the data dir's `files/` unless `HEARTH_S3_URL` names an S3-compatible one. */
import { join } from 'node:path'
import type { Storage } from './index.ts'
import { createLocalStorage } from './local.ts'

export function createStorage(options: { dataDir: string }): Storage {
  return createLocalStorage(join(options.dataDir, 'files'))
}
