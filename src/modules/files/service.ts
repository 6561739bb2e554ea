/**
 * @module Files: bytes a user uploaded (avatars, workflow files, attachments, datasets, run outputs),
 * kept in the configured storage under keys made from ids, with their metadata in `files`. Each
 * belongs to one user and is invisible (404) to everyone else, admins included. An upload is
 * streamed: hashed, counted against the size limit and the user's quota, and written to storage as
 * it arrives; the row is written only after the bytes are committed, so a refused or cut upload
 * leaves neither.
 *
 * The quota is held race-free: before bytes are written, one conditional UPDATE adds them to the
 * user's `storage_used` only while the sum stays within the quota (as the credits are held); what an
 * upload held beyond its real size is given back once it is stored, all of it when it fails.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { and, desc, eq, sql, type SQL } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import { pageWithTotal, type Page, type PageRequest } from '../../db/query.ts'
import { newId } from '../../lib/ids.ts'
import type { Logger } from '../../lib/logger.ts'
import type { Storage } from '../../storage/index.ts'
import { badLink, emptyFile, expiredLink, fileNotFound, fileTooLarge, notAnImage, notJson, storageQuotaExceeded } from './errors.ts'

export type FileRow = Database['t']['files']['$inferSelect']
export const PURPOSES = ['avatar', 'workflow', 'attachment', 'dataset', 'workflow_output'] as const
export type Purpose = (typeof PURPOSES)[number]
/** What a user may send to POST /files; `avatar` and `workflow` have their own routes, `workflow_output` is written by workflow runs. */
export const UPLOADABLE_PURPOSES = ['attachment', 'dataset'] as const

export const AVATAR_MAX_BYTES = 2 * 1024 * 1024
/** A workflow file becomes a version of a workflow: no larger than the JSON body a PUT of it may be (1 MiB). */
export const WORKFLOW_FILE_MAX_BYTES = 1024 * 1024
export const AVATAR_LINK_TTL_S = 365 * 24 * 3600
export const LINK_TTL_S = 3600
export const MAX_FILE_NAME = 255
/** Types a browser may show in the page (never HTML or SVG, which run scripts); everything else downloads. */
export const INLINE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'application/pdf', 'text/plain'])
/** Without a Content-Length, the quota is held in steps of this much (or exactly what arrived, when a step does not fit). */
const HOLD_STEP = 1024 * 1024

export interface UploadInput {
  purpose: Purpose
  workflowId?: string | null
  /** as the client sent them; the name is cleaned for display, the type used only when the bytes say nothing */
  fileName: string
  contentType: string
  /** each chunk may be released once the next is asked for (store() copies what it keeps) */
  chunks: AsyncIterable<Uint8Array>
  /** resolves once the body is known to be whole (the multipart form ended well); the bytes are committed only then */
  whole?: Promise<void>
  /** the request's declared size (Content-Length): held against the quota at once when it fits */
  declaredBytes?: number
  /** a workflow file's parsed JSON, before its bytes are committed: throwing refuses the upload and keeps nothing */
  checkJson?: (value: unknown) => void
}

export interface StorageUse {
  usedBytes: number
  quotaBytes: number
  files: number
}

export function createFilesService(deps: { database: Database; storage: Storage; linkKey: Uint8Array; uploadMaxBytes: number; defaultQuotaBytes: number; logger: Logger }) {
  const { database, storage, logger } = deps
  const { db, t } = database
  const own = (userId: string, id: string) => and(eq(t.files.id, id), eq(t.files.userId, userId))
  const quotaOf = sql`coalesce(${t.users.storageQuota}, ${deps.defaultQuotaBytes})`

  /** Add `bytes` to the user's `storage_used` if the sum stays within the quota: one statement, so parallel uploads (on any instance) cannot pass it together. */
  async function hold(userId: string, bytes: number): Promise<boolean> {
    const rows = await db
      .update(t.users)
      .set({ storageUsed: sql`${t.users.storageUsed} + ${bytes}` })
      .where(and(eq(t.users.id, userId), sql`${t.users.storageUsed} + ${bytes} <= ${quotaOf}`))
      .returning({ id: t.users.id })
    return rows.length > 0
  }

  async function giveBack(userId: string, bytes: number) {
    if (bytes <= 0) return
    await db
      .update(t.users)
      .set({ storageUsed: sql`case when ${t.users.storageUsed} > ${bytes} then ${t.users.storageUsed} - ${bytes} else 0 end` })
      .where(eq(t.users.id, userId))
      .catch((error) => logger.error('could not give back held storage', { error, user_id: userId, bytes }))
  }

  async function quotaBytesOf(userId: string): Promise<number> {
    const [row] = await db.select({ quota: quotaOf.mapWith(Number) }).from(t.users).where(eq(t.users.id, userId))
    return row?.quota ?? deps.defaultQuotaBytes
  }

  function sign(id: string, expires: number): string {
    return createHmac('sha256', deps.linkKey).update(`${id}.${expires}`).digest('base64url')
  }

  /** The signed link to a file's content: `/api/v1/files/{id}/content?expires=…&signature=…`, valid `ttlS` seconds. */
  function accessUrl(row: Pick<FileRow, 'id' | 'purpose'>, now = Date.now()): string {
    const ttl = row.purpose === 'avatar' ? AVATAR_LINK_TTL_S : LINK_TTL_S
    const expires = Math.floor(now / 1000) + ttl
    return `/api/v1/files/${row.id}/content?expires=${expires}&signature=${sign(row.id, expires)}`
  }

  async function store(userId: string, input: UploadInput): Promise<FileRow> {
    const limit = Math.min(input.purpose === 'avatar' ? AVATAR_MAX_BYTES : input.purpose === 'workflow' ? WORKFLOW_FILE_MAX_BYTES : Infinity, deps.uploadMaxBytes)
    const what = input.purpose === 'avatar' ? 'An avatar' : input.purpose === 'workflow' ? 'A workflow file' : 'A file'
    const id = newId()
    const key = `${userId}/${id}`
    let held = 0
    // The declared body size is the file plus the form around it: held at once when it fits, so
    // parallel uploads get their share up front; otherwise held as the bytes arrive.
    if (input.declaredBytes && input.declaredBytes > 0) {
      const want = Math.min(input.declaredBytes, limit)
      if (await hold(userId, want)) held = want
    }
    const upload = await storage.begin(key, 'application/octet-stream')
    const hash = new Bun.CryptoHasher('sha256')
    const head = new Uint8Array(16)
    let headLength = 0
    let size = 0
    const json: Uint8Array[] | undefined = input.purpose === 'workflow' ? [] : undefined
    try {
      for await (const chunk of input.chunks) {
        size += chunk.byteLength
        if (size > limit) throw fileTooLarge(limit, what)
        if (size > held) {
          const need = size - held
          const step = Math.max(need, Math.min(HOLD_STEP, limit - held))
          if (await hold(userId, step)) held += step
          else if (step > need && (await hold(userId, need))) held += need
          else throw storageQuotaExceeded(await quotaBytesOf(userId))
        }
        if (headLength < head.length) {
          const take = chunk.subarray(0, head.length - headLength)
          head.set(take, headLength)
          headLength += take.byteLength
        }
        hash.update(chunk)
        // a copy: the chunk's memory may be released once the next is asked for
        json?.push(new Uint8Array(chunk))
        await upload.write(chunk)
      }
      await input.whole
      if (size === 0) throw emptyFile()
      const sniffed = sniffType(head.subarray(0, headLength))
      if (input.purpose === 'avatar' && !sniffed?.startsWith('image/')) throw notAnImage()
      // workflow files are JSON documents of a workflow engine (small): parsed whole to check them
      if (json) {
        const value = checkJson(Buffer.concat(json))
        input.checkJson?.(value)
      }
      await upload.commit()
    } catch (error) {
      await upload.abort()
      await giveBack(userId, held)
      throw error
    }
    try {
      const [row] = await db
        .insert(t.files)
        .values({
          id,
          userId,
          purpose: input.purpose,
          fileName: cleanFileName(input.fileName),
          fileSize: size,
          contentType: json ? 'application/json' : (sniffType(head.subarray(0, headLength)) ?? normaliseType(input.contentType)),
          sha256: hash.digest('hex'),
          storageKey: key,
          workflowId: input.workflowId ?? null,
        })
        .returning()
      await giveBack(userId, held - size)
      return row!
    } catch (error) {
      // the user was deleted meanwhile, or the database failed: the stored bytes go too
      await storage.delete(key).catch(() => {})
      await giveBack(userId, held)
      throw error
    }
  }

  async function get(userId: string, id: string): Promise<FileRow> {
    const [row] = await db.select().from(t.files).where(own(userId, id))
    if (!row) throw fileNotFound()
    return row
  }

  /** Delete rows (already chosen) and then their bytes; the quota is given back per user. */
  async function removeRows(rows: FileRow[]) {
    for (const row of rows) {
      await storage.delete(row.storageKey).catch((error) => logger.error('could not delete stored file', { error, file_id: row.id }))
    }
  }

  return {
    accessUrl,
    store,
    get,

    async list(userId: string, filter: { purpose?: Purpose; contentType?: string }, page: PageRequest): Promise<Page<FileRow>> {
      const where = and(eq(t.files.userId, userId), filter.purpose ? eq(t.files.purpose, filter.purpose) : undefined, filter.contentType ? eq(t.files.contentType, filter.contentType) : undefined) as SQL
      return pageWithTotal(
        db.select().from(t.files).where(where).orderBy(desc(t.files.createdAt), desc(t.files.id)).limit(page.limit).offset(page.offset),
        db.select({ n: sql<number>`count(*)`.mapWith(Number) }).from(t.files).where(where),
      )
    },

    async remove(userId: string, id: string) {
      const [row] = await db.delete(t.files).where(own(userId, id)).returning()
      if (!row) throw fileNotFound()
      await giveBack(userId, row.fileSize)
      await removeRows([row])
    },

    /** Replace the user's avatar: their other avatar files go (bytes and quota). */
    async dropOtherAvatars(userId: string, keep: string) {
      const rows = await db
        .delete(t.files)
        .where(and(eq(t.files.userId, userId), eq(t.files.purpose, 'avatar'), sql`${t.files.id} <> ${keep}`))
        .returning()
      const bytes = rows.reduce((n, r) => n + r.fileSize, 0)
      await giveBack(userId, bytes)
      await removeRows(rows)
    },

    /** The storage keys of a user's files, taken before the user is deleted (the rows go with the user). */
    async keysOf(userId: string): Promise<string[]> {
      const rows = await db.select({ key: t.files.storageKey }).from(t.files).where(eq(t.files.userId, userId))
      return rows.map((r) => r.key)
    },

    async deleteBytes(keys: string[]) {
      for (const key of keys) await storage.delete(key).catch((error) => logger.error('could not delete stored file', { error }))
    },

    /** The file a signed link names, when its signature is right and it has not expired. */
    async byLink(id: string, expires: string | undefined, signature: string | undefined): Promise<FileRow> {
      const exp = Number(expires)
      if (!expires || !/^\d{1,12}$/.test(expires) || !signature) throw badLink()
      const expected = Buffer.from(sign(id, exp))
      const given = Buffer.from(signature)
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw badLink()
      if (exp * 1000 < Date.now()) throw expiredLink()
      const [row] = await db.select().from(t.files).where(eq(t.files.id, id))
      if (!row) throw fileNotFound()
      return row
    },

    /** The stored bytes of a file, as a Blob (sent without being read into memory). */
    /** The body of a download of `row` (all of it, or one inclusive byte range). */
    content: (row: FileRow, range?: { start: number; end: number }) => storage.body(row.storageKey, range),

    async usageOf(userId: string): Promise<StorageUse> {
      const [row] = await db
        .select({ used: t.users.storageUsed, quota: quotaOf.mapWith(Number), files: sql<number>`(select count(*) from files where files.user_id = users.id)`.mapWith(Number) })
        .from(t.users)
        .where(eq(t.users.id, userId))
      return { usedBytes: Number(row?.used ?? 0), quotaBytes: row?.quota ?? deps.defaultQuotaBytes, files: row?.files ?? 0 }
    },

    /** For the activity counters: the bytes one user's files take (everyone's without a user). */
    async bytesOf(userId: string | undefined): Promise<number> {
      const [row] = await db.select({ n: sql<number>`coalesce(sum(${t.files.fileSize}), 0)`.mapWith(Number) }).from(t.files).where(userId === undefined ? undefined : eq(t.files.userId, userId))
      return row?.n ?? 0
    },

    /**
     * At start on SQLite (the only instance, so no upload is in flight): `storage_used` set to what
     * the files take, dropping holds a crash left behind.
     */
    async reconcile() {
      await db.update(t.users).set({ storageUsed: sql`coalesce((select sum(files.file_size) from files where files.user_id = users.id), 0)` })
    },
  }
}

export type FilesService = ReturnType<typeof createFilesService>

/** The media type the first bytes show, for the types that matter (images shown inline, PDF); undefined when they say nothing. */
export function sniffType(b: Uint8Array): string | undefined {
  const starts = (...bytes: number[]) => bytes.every((x, i) => b[i] === x)
  if (starts(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'image/png'
  if (starts(0xff, 0xd8, 0xff)) return 'image/jpeg'
  if (starts(0x47, 0x49, 0x46, 0x38) && (b[4] === 0x37 || b[4] === 0x39) && b[5] === 0x61) return 'image/gif'
  if (starts(0x52, 0x49, 0x46, 0x46) && b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42 && b[11] === 0x50) return 'image/webp'
  if (starts(0x25, 0x50, 0x44, 0x46, 0x2d)) return 'application/pdf'
  return undefined
}

const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$/

/** The client's type, lower-case without parameters, when it is a well-formed media type; else `application/octet-stream`. */
export function normaliseType(type: string): string {
  const bare = type.split(';')[0]!.trim().toLowerCase()
  // an image type the bytes did not confirm is not shown as one
  if (!MEDIA_TYPE.test(bare) || INLINE_TYPES.has(bare) && bare !== 'text/plain') return 'application/octet-stream'
  return bare
}

/**
 * A file name fit to show: the last path part only, without control, format (bidi overrides) or
 * NUL characters, at most 255 characters (whole code points); never used as a storage path.
 */
export function cleanFileName(name: string): string {
  const last = name.split(/[/\\]/).pop() ?? ''
  const clean = last.replace(/(?!\u200d)[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\u{FFFD}]/gu, '').trim()
  const bounded = Array.from(clean).slice(0, MAX_FILE_NAME).join('')
  return bounded === '' || /^\.+$/.test(bounded) ? 'file' : bounded
}

function checkJson(bytes: Buffer): unknown {
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw notJson('not UTF-8 text')
  }
  try {
    return JSON.parse(text)
  } catch (error) {
    throw notJson(error instanceof Error ? error.message.slice(0, 200) : 'not JSON')
  }
}
