/**
 * A real S3-compatible server for tests: s3rver (test/fakes/s3rver.cjs) under Node, on a free
 * loopback port, with its data in a temp dir and one bucket made. `stop()` kills it and removes the dir.
 */
import { S3Client } from 'bun'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { S3Settings } from '../../src/config.ts'

const SCRIPT = join(import.meta.dir, '../fakes/s3rver.cjs')
const START_TIMEOUT_MS = 10_000

export interface TestS3 {
  /** settings for createS3Storage (path-style; s3rver's fixed key pair) */
  settings: S3Settings
  /** the same, as HEARTH_S3_URL */
  url: string
  /** a client of its own, to look at the bucket behind the storage's back */
  client: S3Client
  /** multipart uploads begun and neither completed nor aborted (s3rver keeps them on disk) */
  pendingUploads(): string[]
  stop(): Promise<void>
}

export async function startS3(bucket = 'hearth-test'): Promise<TestS3> {
  const dir = mkdtempSync(join(tmpdir(), 'hearth-s3-'))
  const child = Bun.spawn([process.env.NODE ?? 'node', SCRIPT, dir, bucket], { stdout: 'pipe', stderr: 'pipe' })
  const stderr = new Response(child.stderr).text()
  const fail = async (why: string): Promise<never> => {
    child.kill('SIGKILL')
    await child.exited
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`s3rver did not start: ${why}\n${(await stderr).trim()}`)
  }

  let port: number | undefined
  try {
    port = await readPort(child.stdout, START_TIMEOUT_MS)
  } catch (error) {
    return fail((error as Error).message)
  }
  if (!port) return fail(`it exited with ${await child.exited} before listening`)

  const settings: S3Settings = {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    region: 'us-east-1',
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    virtualHostedStyle: false,
  }
  const client = new S3Client({ ...settings })
  try {
    await client.list({ maxKeys: 1 })
  } catch (error) {
    return fail(`listing the bucket failed: ${(error as Error).message}`)
  }

  const uploads = join(dir, bucket, '._S3rver_uploads')
  return {
    settings,
    url: `s3://S3RVER:S3RVER@127.0.0.1:${port}/${bucket}?path_style=true`,
    client,
    pendingUploads: () => (existsSync(uploads) ? readdirSync(uploads) : []),
    async stop() {
      child.kill()
      await child.exited
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** The port from s3rver's `listening <port>` line; undefined if stdout closes first (it exited). */
async function readPort(stdout: ReadableStream<Uint8Array>, timeoutMs: number): Promise<number | undefined> {
  const reader = stdout.getReader()
  const decoder = new TextDecoder()
  let seen = ''
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    reader.cancel().catch(() => {})
  }, timeoutMs)
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      seen += decoder.decode(value, { stream: true })
      const m = /listening (\d+)/.exec(seen)
      if (m) return Number(m[1])
    }
  } finally {
    clearTimeout(timer)
    reader.releaseLock()
  }
  if (timedOut) throw new Error(`no "listening" line within ${timeoutMs} ms (stdout: ${JSON.stringify(seen.slice(0, 500))})`)
  return undefined
}
