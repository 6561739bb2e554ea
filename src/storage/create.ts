/** @module The configured store: the data dir's `files/` unless `HEARTH_S3_URL` names an S3-compatible one. */
import { join } from 'node:path'
import type { S3Settings } from '../config.ts'
import type { Storage } from './index.ts'
import { createLocalStorage } from './local.ts'
import { createS3Storage } from './s3.ts'

export function createStorage(options: { dataDir: string; s3?: S3Settings | undefined }): Storage {
  return options.s3 ? createS3Storage(options.s3) : createLocalStorage(join(options.dataDir, 'files'))
}
