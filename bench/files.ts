/**
 * @module `npm run bench:files` (and the last table of `npm run bench`): Hearth's files module under big
 * files, in two parts, in one Hearth process (`bun src/index.ts`, HEARTH_UPLOAD_MAX_BYTES=300MiB, a quota
 * big enough for both files), each against a baseline measured in the same run.
 *
 * Part 1, upload memory: one BENCH_UPLOAD_MB (default 200 MiB) multipart upload to POST /api/v1/files
 * from a separate client process (bench/targets/upload-client.ts, which streams a generated body and
 * never holds the file either), while the server's RSS (VmRSS from /proc) is sampled every 20 ms and its
 * VmHWM is reset before and read after; the answer must be 201 with the right file_size and the SHA-256
 * the client computed. The same upload goes first to a bare Bun.serve that hashes the body and writes it
 * to disk as it comes (bench/targets/upload-sink.ts, its own process), measured the same way: what
 * streaming 200 MiB through Bun costs in RSS before any multipart parsing.
 *
 * Part 2, download throughput: a BENCH_DOWNLOAD_MB (default 100 MiB) file uploaded once, then downloaded
 * whole with GET /api/v1/files/{id}/content and the Bearer token, against a bare Bun.serve sending the
 * very same stored file with `new Response(Bun.file(path))` (bench/targets/static-file.ts, its own
 * process), both from the same client (bench/targets/download-client.ts, a new process per round:
 * BENCH_DOWNLOADS full downloads, BENCH_DOWNLOAD_PARALLEL at a time, bodies counted and thrown away) in
 * BENCH_DOWNLOAD_ROUNDS interleaved rounds; MB/s is the median round's.
 *
 * Prints one table and the goal lines. Exit code: 0 whatever the goals say; 1 when the harness broke or
 * an answer was wrong (an upload not 201, a wrong size or SHA-256, a short or failed download); 2 for a
 * bad setting. See bench/README.md.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { arch, cpus, loadavg, platform } from 'node:os'
import { basename, join } from 'node:path'
import { HEARTH_BENCH_ENV, envInteger, errorMessage, renderTable, hardStop, runAsScript, samplePercentile, processCpuMs, postJson, setupTokenIn, spawnServer, startHearthServer, tempDir, trackProcess, type RunningServer } from './lib.ts'
import type { DownloadResult } from './targets/download-client.ts'
import type { UploadResult } from './targets/upload-client.ts'

const root = join(import.meta.dir, '..')
const bun = process.execPath
const UPLOAD_CLIENT = join(import.meta.dir, 'targets/upload-client.ts')
const DOWNLOAD_CLIENT = join(import.meta.dir, 'targets/download-client.ts')
const STATIC_FILE = join(import.meta.dir, 'targets/static-file.ts')
const UPLOAD_SINK = join(import.meta.dir, 'targets/upload-sink.ts')

const BENCH_USER = { username: 'bench_user', email: 'bench@example.com', password: 'bench-password-1' }

const MB = 1024 * 1024
/** the upload that loads the route's code before the "before" RSS */
const WARMUP_UPLOAD_BYTES = 1 * MB
const SAMPLE_MS = 20
/** how long the server is left alone before the "before" RSS, and before the "after" one */
const SETTLE_MS = 1_000
/** sampling goes on this long after the upload's answer (a late peak: the commit, a GC) */
const TRAILING_SAMPLE_MS = 250
const GOAL_RISE_BYTES = 32 * MB
const GOAL_DOWNLOAD_SHARE = 0.8

const UPLOAD_BASELINE = 'upload baseline: bare Bun.serve, body to disk'
const UPLOAD_ROW = 'Hearth POST /api/v1/files'
const BASELINE = 'download baseline: bare Bun.serve, Bun.file'
const HEARTH_DOWNLOAD = 'Hearth GET /api/v1/files/{id}/content'

function progress(text: string): void {
  process.stderr.write(`bench files: ${text}\n`)
}

// ─── processes ──────────────────────────────────────────────────────────────────────────────────

/** One field of /proc/<pid>/status in bytes (VmRSS, VmHWM), or undefined when the process is gone. */
function statusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
    return kb === undefined ? undefined : Number(kb) * 1024
  } catch {
    return undefined
  }
}

/** Reset the process's peak RSS (VmHWM) to its current RSS (Linux ≥ 4.0, the process's owner); false when that could not be done. */
function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

/** Run a client script to its end and parse the JSON line it printed; any other outcome is an error with the tail of its stderr. */
async function runClient<T>(script: string, config: Record<string, unknown>, timeoutMs: number): Promise<T> {
  const proc = Bun.spawn([bun, script, JSON.stringify(config)], { cwd: root, env: { ...process.env }, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
  trackProcess(proc)
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    proc.kill('SIGKILL')
  }, timeoutMs)
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  clearTimeout(timer)
  const line = stdout.split('\n').reverse().find((l) => l.startsWith('{'))
  if (timedOut) throw new Error(`${basename(script)} did not finish within ${Math.round(timeoutMs / 1000)} s`)
  if (code !== 0 || !line) throw new Error(`${basename(script)} exited with code ${code}${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' / ')}` : ''}`)
  return JSON.parse(line) as T
}

interface Hearth {
  server: RunningServer
  token: string
  userId: string
  dataDir: string
  stop(): Promise<void>
}

async function startHearth(uploadMaxMiB: number, quotaMiB: number): Promise<Hearth> {
  const { server, value, stop } = await startHearthServer({
    root,
    prefix: 'hearth-bench-files-',
    command: (cmd) => ({ cmd, env: { HEARTH_UPLOAD_MAX_BYTES: `${uploadMaxMiB}MiB`, HEARTH_STORAGE_QUOTA_BYTES: `${quotaMiB}MiB` } }),
    setUp: async (url, dataDir) => {
      const { user, tokens } = await postJson<{ user: { id: string }; tokens: { access_token: string } }>(url, '/api/v1/auth/register', { ...BENCH_USER, setup_token: setupTokenIn(dataDir) }, 201)
      return { token: tokens.access_token, userId: user.id, dataDir }
    },
  })
  return { server, ...value, stop }
}

/** What an upload must have answered: 201, the file's size and the client's SHA-256, and the bytes stored under files/<user id>/<file id>. */
function checkUpload(result: UploadResult, bytes: number, hearth: Hearth): { id: string; path: string } {
  const body = result.body as { id?: string; file_size?: number; sha256?: string; purpose?: string } | string
  if (result.status !== 201 || typeof body !== 'object' || body === null) throw new Error(`the upload answered ${result.status}: ${JSON.stringify(body).slice(0, 300)}`)
  if (result.file_bytes !== bytes) throw new Error(`the client sent ${result.file_bytes} bytes, not ${bytes}`)
  if (body.file_size !== bytes) throw new Error(`the upload answered file_size ${body.file_size}, expected ${bytes}`)
  if (body.sha256 !== result.sha256) throw new Error(`the upload answered sha256 ${body.sha256}, the client computed ${result.sha256}`)
  if (typeof body.id !== 'string') throw new Error('the upload answered no id')
  const path = join(hearth.dataDir, 'files', hearth.userId, body.id)
  if (!existsSync(path)) throw new Error(`the stored file is not at ${path}`)
  const size = statSync(path).size
  if (size !== bytes) throw new Error(`the stored file has ${size} bytes, expected ${bytes}`)
  return { id: body.id, path }
}

function upload(hearth: Hearth, bytes: number, chunked = false): Promise<UploadResult> {
  return runClient<UploadResult>(UPLOAD_CLIENT, { url: `${hearth.server.url}/api/v1/files`, token: hearth.token, bytes, chunked, timeoutMs: 60_000 + bytes / 100_000 }, 120_000 + bytes / 50_000)
}

// ─── part 1: upload memory ──────────────────────────────────────────────────────────────────────

interface UploadRow {
  name: string
  bytes: number
  failure?: string
  result?: UploadResult
  rssBefore?: number
  /** the highest of the 20 ms samples */
  sampledPeak?: number
  samples: number
  /** VmHWM after the upload, reset just before it; undefined when it could not be reset */
  hwm?: number
  rssAfter?: number
  serverCpuMs?: number
  readyMs?: number
}

/** Where an upload goes and how its answer is judged (throws when it is wrong). */
interface UploadTarget {
  pid: number
  upload(bytes: number, chunked: boolean): Promise<UploadResult>
  check(result: UploadResult, bytes: number): void
}

const peakOf = (row: UploadRow) => (row.sampledPeak === undefined ? undefined : Math.max(row.sampledPeak, row.hwm ?? 0))
const riseOf = (row: UploadRow) => {
  const peak = peakOf(row)
  return row.failure || peak === undefined || row.rssBefore === undefined ? undefined : peak - row.rssBefore
}

/**
 * A warm-up upload (so the route's code is loaded), a pause, the RSS; then the big upload with the RSS
 * sampled every SAMPLE_MS and VmHWM reset just before it; a pause, the RSS again.
 */
async function measureUpload(row: UploadRow, target: UploadTarget, chunked: boolean): Promise<void> {
  const { pid } = target
  try {
    progress(`${row.name}: warm-up upload of ${WARMUP_UPLOAD_BYTES / MB} MiB`)
    target.check(await target.upload(WARMUP_UPLOAD_BYTES, chunked), WARMUP_UPLOAD_BYTES)
    await Bun.sleep(SETTLE_MS)
    row.rssBefore = statusBytes(pid, 'VmRSS')
    if (row.rssBefore === undefined) throw new Error(`cannot read /proc/${pid}/status (Linux only)`)
    const hwmReset = resetPeakRss(pid)
    let peak = row.rssBefore
    const sampler = setInterval(() => {
      const rss = statusBytes(pid, 'VmRSS')
      if (rss === undefined) return
      row.samples++
      if (rss > peak) peak = rss
    }, SAMPLE_MS)
    const cpuBefore = processCpuMs(pid)
    progress(`${row.name}: uploading ${row.bytes / MB} MiB while sampling the server's RSS every ${SAMPLE_MS} ms`)
    try {
      row.result = await target.upload(row.bytes, chunked)
      await Bun.sleep(TRAILING_SAMPLE_MS)
    } finally {
      clearInterval(sampler)
    }
    const cpuAfter = processCpuMs(pid)
    if (cpuBefore !== undefined && cpuAfter !== undefined) row.serverCpuMs = cpuAfter - cpuBefore
    row.sampledPeak = peak
    if (hwmReset) row.hwm = statusBytes(pid, 'VmHWM')
    target.check(row.result, row.bytes)
    await Bun.sleep(SETTLE_MS)
    row.rssAfter = statusBytes(pid, 'VmRSS')
  } catch (error) {
    row.failure = errorMessage(error).split('\n')[0]
    progress(`${row.name} failed: ${errorMessage(error)}`)
  }
}

/** The baseline: bench/targets/upload-sink.ts, which streams the body to disk and answers the bytes it stored. */
async function measureSinkUpload(bytes: number, chunked: boolean): Promise<UploadRow> {
  const row: UploadRow = { name: UPLOAD_BASELINE, bytes, samples: 0 }
  const dir = tempDir('hearth-bench-files-sink-')
  let sink: RunningServer | undefined
  try {
    sink = await spawnServer([bun, UPLOAD_SINK], { HOST: '127.0.0.1', DIR: dir.path, MAX_BYTES: String(bytes + MB) }, (line) => (/^\d+$/.test(line) ? `http://127.0.0.1:${line}/health` : undefined), { cwd: root })
    row.readyMs = sink.readyMs
    const url = `${sink.url}/upload`
    await measureUpload(row, {
      pid: sink.pid,
      upload: (n, chunked) => runClient<UploadResult>(UPLOAD_CLIENT, { url, bytes: n, chunked, timeoutMs: 60_000 + n / 100_000 }, 120_000 + n / 50_000),
      check(result) {
        const body = result.body as { bytes?: number }
        if (result.status !== 200 || body?.bytes !== result.body_bytes) throw new Error(`the sink answered ${result.status} ${JSON.stringify(body).slice(0, 200)}, expected 200 with bytes ${result.body_bytes}`)
      },
    }, chunked)
  } catch (error) {
    row.failure = errorMessage(error).split('\n')[0]
    progress(`${row.name} failed: ${errorMessage(error)}`)
  } finally {
    await sink?.stop()
    dir.remove()
  }
  return row
}

async function measureHearthUpload(hearth: Hearth, bytes: number, chunked: boolean): Promise<UploadRow> {
  const row: UploadRow = { name: UPLOAD_ROW, bytes, samples: 0 }
  await measureUpload(row, { pid: hearth.server.pid, upload: (n, chunked) => upload(hearth, n, chunked), check: (result, n) => void checkUpload(result, n, hearth) }, chunked)
  return row
}

// ─── part 2: download throughput ────────────────────────────────────────────────────────────────

interface DownloadRow {
  name: string
  failure?: string
  runs: DownloadResult[]
  errors: number
  errorSamples: string[]
  serverCpuMs: number
  pid?: number
  readyMs?: number
}

function noteErrors(row: DownloadRow, result: DownloadResult): void {
  row.errors += result.errors
  for (const sample of result.error_samples) if (row.errorSamples.length < 5) row.errorSamples.push(sample)
}

const roundRate = (run: DownloadResult) => run.bytes / MB / (run.wall_ms / 1000)

function medianRate(row: DownloadRow): number | undefined {
  if (row.failure || row.errors || !row.runs.length) return undefined
  const rates = row.runs.map(roundRate).sort((a, b) => a - b)
  const mid = Math.floor(rates.length / 2)
  return rates.length % 2 ? rates[mid] : (rates[mid - 1]! + rates[mid]!) / 2
}

async function measureDownloads(hearth: Hearth, bytes: number, downloads: number, parallel: number, rounds: number): Promise<{ rows: DownloadRow[]; fileBytes: number }> {
  const baseline: DownloadRow = { name: BASELINE, runs: [], errors: 0, errorSamples: [], serverCpuMs: 0 }
  const hearthRow: DownloadRow = { name: HEARTH_DOWNLOAD, runs: [], errors: 0, errorSamples: [], serverCpuMs: 0, pid: hearth.server.pid }
  const rows = [baseline, hearthRow]
  let staticServer: RunningServer | undefined
  try {
    progress(`uploading the ${bytes / MB} MiB file to download`)
    let uploaded: UploadResult
    let id: string
    let path: string
    try {
      uploaded = await upload(hearth, bytes)
      ;({ id, path } = checkUpload(uploaded, bytes, hearth))
    } catch (error) {
      throw new Error(`uploading the file to download: ${errorMessage(error)}`)
    }
    staticServer = await spawnServer([bun, STATIC_FILE], { HOST: '127.0.0.1', FILE: path }, (line) => (/^\d+$/.test(line) ? `http://127.0.0.1:${line}/health` : undefined), { cwd: root })
    baseline.pid = staticServer.pid
    baseline.readyMs = staticServer.readyMs
    const targets = new Map<DownloadRow, { url: string; headers?: Record<string, string> }>([
      [baseline, { url: `${staticServer.url}/file` }],
      [hearthRow, { url: `${hearth.server.url}/api/v1/files/${id}/content`, headers: { authorization: `Bearer ${hearth.token}` } }],
    ])
    const timeoutMs = (n: number) => 60_000 + ((n * bytes) / MB) * 100
    const drive = (row: DownloadRow, n: number, hash = false) =>
      runClient<DownloadResult>(DOWNLOAD_CLIENT, { ...targets.get(row)!, bytes, downloads: n, parallel, hash }, timeoutMs(n))

    // Both must send exactly the uploaded bytes: one download each, hashed, not timed.
    for (const row of rows) {
      const check = await drive(row, 1, true)
      noteErrors(row, check)
      if (check.ok === 1 && check.sha256[0] !== uploaded.sha256) {
        row.errors++
        row.errorSamples.push(`the body's SHA-256 ${check.sha256[0]} is not the uploaded ${uploaded.sha256}`)
      }
    }
    const warmup = Math.min(downloads, parallel)
    progress(`warm-up: ${warmup} downloads per target`)
    for (const row of rows) noteErrors(row, await drive(row, warmup))
    progress(`${rounds} interleaved round(s) of ${downloads} downloads of ${bytes / MB} MiB per target, ${parallel} at a time`)
    for (let round = 0; round < rounds; round++) {
      for (const row of round % 2 === 0 ? rows : [...rows].reverse()) {
        const before = processCpuMs(row.pid!)
        const result = await drive(row, downloads)
        const after = processCpuMs(row.pid!)
        if (before !== undefined && after !== undefined) row.serverCpuMs += after - before
        noteErrors(row, result)
        row.runs.push(result)
      }
    }
  } catch (error) {
    for (const row of rows) row.failure ??= errorMessage(error).split('\n')[0]
    progress(`downloads failed: ${errorMessage(error)}`)
  } finally {
    await staticServer?.stop()
  }
  return { rows, fileBytes: bytes }
}

// ─── output ─────────────────────────────────────────────────────────────────────────────────────

const mb = (bytes: number | undefined) => (bytes === undefined ? '-' : (bytes / MB).toFixed(1))
const rate = (mbPerS: number | undefined) => (mbPerS === undefined ? '-' : Math.round(mbPerS).toLocaleString('en-US'))

const uploadRate = (row: UploadRow) => (row.result && !row.failure ? row.bytes / MB / (row.result.ms / 1000) : undefined)

function table(uploads: UploadRow[] | undefined, downloads: DownloadRow[] | undefined, downloadBytes: number): string {
  const cells: string[][] = []
  if (uploads) {
    const base = uploadRate(uploads.find((r) => r.name === UPLOAD_BASELINE)!)
    for (const row of uploads) {
      const notes: string[] = []
      const r = row.result
      if (row.failure) notes.push(`ERROR: ${row.failure}`)
      else if (r) notes.push(row.name === UPLOAD_ROW ? "201, file_size and sha256 match the client's" : 'every body byte stored')
      if (row.sampledPeak !== undefined) notes.push(`peak of ${row.samples} samples every ${SAMPLE_MS} ms ${mb(row.sampledPeak)} MB, VmHWM ${row.hwm === undefined ? 'not available' : `${mb(row.hwm)} MB`}`)
      if (row.rssAfter !== undefined) notes.push(`RSS ${SETTLE_MS / 1000} s after ${mb(row.rssAfter)} MB`)
      if (r) {
        notes.push(`${r.framing === 'content-length' ? 'Content-Length' : 'chunked'} body, ${(r.ms / 1000).toFixed(2)} s`)
        if (row.serverCpuMs !== undefined) notes.push(`server CPU ${Math.round(row.serverCpuMs)} ms`)
        notes.push(`client peak RSS ${mb(r.max_rss)} MB, CPU ${Math.round(r.cpu_ms)} ms`)
      }
      if (row.readyMs !== undefined) notes.push(`ready in ${Math.round(row.readyMs)} ms`)
      const own = uploadRate(row)
      const rise = riseOf(row)
      cells.push([
        `${row.name} (${row.bytes / MB} MiB)`,
        rate(own),
        own === undefined || !base ? '-' : `${(own / base).toFixed(2)}x`,
        mb(row.rssBefore),
        mb(peakOf(row)),
        rise === undefined ? '-' : mb(rise),
        row.failure ? '1' : '0',
        notes.join('; '),
      ])
    }
  }
  if (downloads) {
    const base = medianRate(downloads.find((r) => r.name === BASELINE)!)
    for (const row of downloads) {
      const median = medianRate(row)
      const notes: string[] = []
      if (row.failure) notes.push(`ERROR: ${row.failure}`)
      if (row.errorSamples.length) notes.push(`ERRORS: ${row.errorSamples.join('; ')}`)
      if (row.runs.length) {
        notes.push(`rounds ${row.runs.map((run) => rate(roundRate(run))).join(' / ')} MB/s`)
        const each = row.runs.flatMap((run) => run.each_ms)
        const p50 = samplePercentile(each, 50)
        if (p50 !== undefined) notes.push(`one download p50 ${(p50 / 1000).toFixed(2)} s`)
        const gib = row.runs.reduce((n, run) => n + run.bytes, 0) / (1024 * MB)
        if (gib > 0) notes.push(`server CPU ${Math.round(row.serverCpuMs / gib)} ms/GiB, client ${Math.round(row.runs.reduce((n, run) => n + run.cpu_ms, 0) / gib)} ms/GiB`)
      }
      if (row.readyMs !== undefined) notes.push(`ready in ${Math.round(row.readyMs)} ms`)
      cells.push([
        `${row.name} (${downloadBytes / MB} MiB)`,
        rate(median),
        median === undefined || !base ? '-' : `${(median / base).toFixed(2)}x`,
        '-',
        '-',
        '-',
        row.failure ? '1' : String(row.errors),
        notes.join('; '),
      ])
    }
  }
  return renderTable(['target', 'MB/s', 'vs baseline', 'RSS before MB', 'RSS peak MB', 'RSS rise MB', 'errors', 'notes'], cells, new Set([1, 2, 3, 4, 5, 6]))
}

// ─── the run ────────────────────────────────────────────────────────────────────────────────────

/** The whole files benchmark; prints its table and goal lines and returns the exit code. */
export async function runFilesBench(): Promise<number> {
  const settings = [
    envInteger('BENCH_UPLOAD_MB', 200, 1, 4_096),
    envInteger('BENCH_DOWNLOAD_MB', 100, 1, 4_096),
    envInteger('BENCH_DOWNLOADS', 20, 1, 1_000),
    envInteger('BENCH_DOWNLOAD_PARALLEL', 4, 1, 64),
    envInteger('BENCH_DOWNLOAD_ROUNDS', 3, 1, 20),
  ]
  const bad = settings.find((value): value is Error => value instanceof Error)
  const parts = (process.env.BENCH_FILES_PARTS || 'upload,download').split(',').map((p) => p.trim())
  if (bad || parts.some((p) => p !== 'upload' && p !== 'download')) {
    process.stderr.write(`bench files: ${bad ? bad.message : `BENCH_FILES_PARTS=${JSON.stringify(process.env.BENCH_FILES_PARTS)} must be upload, download or both (comma-separated)`}\n`)
    return 2
  }
  const [uploadMiB, downloadMiB, downloads, parallel, rounds] = settings as number[]
  const doUpload = parts.includes('upload')
  const doDownload = parts.includes('download')
  const chunkedRaw = process.env.BENCH_UPLOAD_CHUNKED ?? ''
  if (!['', '0', '1'].includes(chunkedRaw)) {
    process.stderr.write(`bench files: BENCH_UPLOAD_CHUNKED=${JSON.stringify(chunkedRaw)} must be 0 or 1\n`)
    return 2
  }
  const chunked = chunkedRaw === '1'
  const uploadBytes = uploadMiB! * MB
  const downloadBytes = downloadMiB! * MB
  const uploadMaxMiB = Math.max(300, (doUpload ? uploadMiB! : 0) + 1, (doDownload ? downloadMiB! : 0) + 1)
  const quotaMiB = uploadMiB! + downloadMiB! + 1_024

  // A hard stop whatever hangs: start, the uploads (at 10 MB/s at worst) and every download round (at 20 MB/s at worst), with room to spare.
  const budgetMs = 60_000 + (doUpload ? 2 * (uploadMiB! * 100 + 20_000) : 0) + (doDownload ? downloadMiB! * 100 + downloadMiB! * (downloads! * rounds! * 2 + parallel! * 2 + 2) * 50 : 0)
  const budget = hardStop('bench files', budgetMs)

  let exitCode = 0
  let hearth: Hearth | undefined
  let uploadRows: UploadRow[] | undefined
  let downloadRows: DownloadRow[] | undefined
  try {
    if (doUpload) uploadRows = [await measureSinkUpload(uploadBytes, chunked)]
    progress(`starting Hearth (HEARTH_UPLOAD_MAX_BYTES=${uploadMaxMiB}MiB, HEARTH_STORAGE_QUOTA_BYTES=${quotaMiB}MiB)`)
    hearth = await startHearth(uploadMaxMiB, quotaMiB)
    if (doUpload) uploadRows!.push(await measureHearthUpload(hearth, uploadBytes, chunked))
    if (doDownload) downloadRows = (await measureDownloads(hearth, downloadBytes, downloads!, parallel!, rounds!)).rows
  } catch (error) {
    exitCode = 1
    progress(`failed: ${errorMessage(error)}`)
    if (doDownload) downloadRows ??= [BASELINE, HEARTH_DOWNLOAD].map((name) => ({ name, runs: [], errors: 0, errorSamples: [], serverCpuMs: 0, failure: errorMessage(error).split('\n')[0] }))
    if (doUpload) {
      uploadRows ??= []
      for (const name of [UPLOAD_BASELINE, UPLOAD_ROW]) if (!uploadRows.some((r) => r.name === name)) uploadRows.push({ name, bytes: uploadBytes, samples: 0, failure: errorMessage(error).split('\n')[0] })
    }
  } finally {
    await hearth?.stop()
    clearTimeout(budget)
  }

  const git = Bun.spawnSync(['git', 'rev-parse', '--short', 'HEAD'], { cwd: root, stderr: 'ignore' })
  console.log('')
  console.log(
    `files: ${cpus().length} CPUs, ${platform()} ${arch()}, bun ${Bun.version}, load average ${loadavg()[0]!.toFixed(2)} now, commit ${git.exitCode === 0 ? git.stdout.toString().trim() : 'unknown'}; ` +
      `Hearth is bun src/index.ts with a fresh SQLite data dir (local-disk storage), HEARTH_UPLOAD_MAX_BYTES=${uploadMaxMiB}MiB, HEARTH_RATE_LIMIT=${HEARTH_BENCH_ENV.HEARTH_RATE_LIMIT}; MB = MiB`,
  )
  if (doUpload)
    console.log(
      `upload: one ${uploadMiB} MiB multipart upload (purpose, then file; ${chunked ? 'chunked' : 'with a Content-Length'}) streamed from bench/targets/upload-client.ts after a ${WARMUP_UPLOAD_BYTES / MB} MiB warm-up upload, to each server in turn ` +
        `(the baseline, bench/targets/upload-sink.ts, hashes and writes the body to disk, no parsing); ` +
        `server RSS (VmRSS) ${SETTLE_MS / 1000} s after the warm-up, then every ${SAMPLE_MS} ms until ${TRAILING_SAMPLE_MS} ms after the answer, and VmHWM (reset just before); peak = the higher of the two`,
    )
  if (doDownload)
    console.log(
      `download: ${downloads} full downloads of one ${downloadMiB} MiB file per round, ${parallel} at a time, from bench/targets/download-client.ts (a new process per round, bodies counted and discarded); ` +
        `${rounds} interleaved round(s) per target after a hashed check download and a warm-up of ${Math.min(downloads!, parallel!)}; the baseline is bench/targets/static-file.ts sending the same stored file; MB/s = the median round's bytes / wall time`,
    )
  console.log(table(uploadRows, downloadRows, downloadBytes))

  if (uploadRows) {
    const row = uploadRows.find((r) => r.name === UPLOAD_ROW)!
    const baseRise = riseOf(uploadRows.find((r) => r.name === UPLOAD_BASELINE)!)
    const baseText = `the bare Bun.serve ${baseRise === undefined ? 'not measured' : `+${mb(baseRise)} MB`}`
    const rise = riseOf(row)
    const goal = `goal: ${uploadMiB} MiB upload raises the server's RSS ≤ ${GOAL_RISE_BYTES / MB} MB`
    if (rise === undefined) console.log(`${goal}: FAIL (not measured: ${row.failure ?? 'no samples'}; ${baseText})`)
    else console.log(`${goal}: ${rise <= GOAL_RISE_BYTES ? 'PASS' : 'FAIL'} (+${mb(rise)} MB: ${mb(row.rssBefore)} → ${mb(peakOf(row))} MB at the peak; ${baseText})`)
    for (const r of uploadRows) if (r.failure) exitCode = 1
  }
  if (downloadRows) {
    const baseRow = downloadRows.find((r) => r.name === BASELINE)!
    const hearthRow = downloadRows.find((r) => r.name === HEARTH_DOWNLOAD)!
    const base = medianRate(baseRow)
    const own = medianRate(hearthRow)
    const goal = `goal: downloads ≥ ${GOAL_DOWNLOAD_SHARE * 100}% of a bare Bun.serve sending the same file`
    if (own === undefined || base === undefined) {
      const why = [hearthRow, baseRow].map((r) => r.failure ?? (r.errors ? `${r.name}: ${r.errors} failed download(s)` : undefined)).find(Boolean)
      console.log(`${goal}: FAIL (not valid: ${why ?? 'not measured'})`)
    } else console.log(`${goal}: ${own / base >= GOAL_DOWNLOAD_SHARE ? 'PASS' : 'FAIL'} (${Math.round((own / base) * 100)}%: ${rate(own)} vs ${rate(base)} MB/s)`)
    for (const row of downloadRows) if (row.failure || row.errors) exitCode = 1
  } else if (doDownload) exitCode = 1

  return exitCode
}

if (import.meta.main) await runAsScript('bench files', runFilesBench)
