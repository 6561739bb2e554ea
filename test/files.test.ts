/**
 * Files over real HTTP (Bun.serve on loopback) with real multipart bodies, on both stores — the data
 * dir's files/ and a real S3-compatible server (s3rver) — : uploads streamed to storage, downloads with ranges and ETags, signed links, avatar and workflow checks by
 * the bytes, the size limit mid-stream and the quota under parallel uploads (on two instances on
 * Postgres), and every bad form a clear 4xx that leaves nothing behind.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { readdirSync, existsSync } from 'node:fs'
import { join, relative } from 'node:path'
import { count, eq } from 'drizzle-orm'
import { createS3Storage } from '../src/storage/s3.ts'
import { startS3, type TestS3 } from './helpers/s3.ts'
import { register, setupCallers, type CallersContext } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios } from './helpers/scenarios.ts'

type Json = Record<string, any>

const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0])
const GIF = new Uint8Array([0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 1, 0, 1, 0, 0, 0, 0, 0x3b])

function serve(t: TestApp) {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: t.app.fetch, idleTimeout: 30 })
  return { server, origin: `http://127.0.0.1:${server.port}` }
}

type Store = 'local' | 's3'

/**
 * What the store holds, as `/<key>`: on disk every file under the data dir's files/ (partials
 * included); on S3 every object of the bucket and every multipart upload neither completed nor aborted.
 */
async function storedKeys(t: TestApp, s3?: TestS3): Promise<string[]> {
  if (s3) {
    const listed = await s3.client.list()
    return [...(listed.contents ?? []).map((o) => `/${o.key}`), ...s3.pendingUploads().map((u) => `/(upload) ${u}`)]
  }
  const root = join(t.db.dataDir, 'files')
  if (!existsSync(root)) return []
  return readdirSync(root, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => `/${relative(root, join(d.parentPath, d.name))}`)
}

async function rowCount(t: TestApp, userId?: string) {
  const { db, t: tables } = t.deps.database
  const [row] = await db.select({ n: count() }).from(tables.files).where(userId ? eq(tables.files.userId, userId) : undefined)
  return Number(row?.n ?? 0)
}

function form(fields: Record<string, string>, file?: { data: BlobPart; name?: string; type?: string }) {
  const fd = new FormData()
  for (const [k, v] of Object.entries(fields)) fd.append(k, v)
  if (file) fd.append('file', new Blob([file.data], { type: file.type ?? '' }), file.name ?? 'file.bin')
  return fd
}

/** A multipart body by hand (for malformed ones): parts as raw strings between boundaries. */
function rawForm(parts: string[], opts: { end?: boolean } = {}) {
  const b = 'XbOuNdArY'
  const body = parts.map((p) => `--${b}\r\n${p}\r\n`).join('') + (opts.end === false ? '' : `--${b}--\r\n`)
  return { body, type: `multipart/form-data; boundary=${b}` }
}
const textPart = (name: string, value: string) => `Content-Disposition: form-data; name="${name}"\r\n\r\n${value}`
const filePart = (name: string, fileName: string, data: string, type = 'application/octet-stream') => `Content-Disposition: form-data; name="${name}"; filename="${fileName}"\r\nContent-Type: ${type}\r\n\r\n${data}`

for (const store of ['local', 's3'] as Store[])
eachDialect(`files [${store}]`, (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let origin: string
  let server: ReturnType<typeof Bun.serve>
  let token: string
  let s3: TestS3 | undefined

  beforeAll(async () => {
    if (store === 's3') s3 = await startS3()
    t = await createTestApp(dialect, { HEARTH_UPLOAD_MAX_BYTES: '1MiB' }, s3 ? { storage: createS3Storage(s3.settings) } : {})
    ctx = await setupCallers(t)
    ;({ server, origin } = serve(t))
    token = ctx.accounts.user.access
  })
  afterAll(async () => {
    server.stop(true)
    await t.close()
    await s3?.stop()
  })
  const storedFiles = () => storedKeys(t, s3)

  const auth = (tok = token) => ({ authorization: `Bearer ${tok}` })
  const upload = (body: BodyInit, path = '/api/v1/files', headers: Record<string, string> = {}, tok = token) => fetch(`${origin}${path}`, { method: 'POST', headers: { ...auth(tok), ...headers }, body })
  async function uploaded(body: BodyInit, path = '/api/v1/files'): Promise<Json> {
    const res = await upload(body, path)
    const json = await res.json()
    expect({ status: res.status, json }).toMatchObject({ status: 201 })
    return json
  }
  async function problem(res: Response, status: number, code?: string) {
    const text = await res.text()
    const body = JSON.parse(text)
    expectProblem({ status: res.status, headers: res.headers, body, text }, status, code)
    return body
  }

  test('round trip: the bytes come back equal, with their SHA-256 and size; the row and the stored file match', async () => {
    const data = crypto.getRandomValues(new Uint8Array(200_000))
    const before = (await storedFiles()).length
    const f = await uploaded(form({ purpose: 'attachment' }, { data, name: 'data.bin', type: 'application/x-custom' }))
    expect(f).toMatchObject({ file_name: 'data.bin', file_size: data.byteLength, content_type: 'application/x-custom', purpose: 'attachment', sha256: createHash('sha256').update(data).digest('hex') })
    const res = await fetch(`${origin}/api/v1/files/${f.id}/content`, { headers: auth() })
    expect(res.status).toBe(200)
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(data)
    expect(res.headers.get('etag')).toBe(`"${f.sha256}"`)
    expect(res.headers.get('last-modified')).toBe(new Date(f.created_at).toUTCString())
    expect((await storedFiles()).length).toBe(before + 1)
    const got = await t.request('GET', `/api/v1/files/${f.id}`, { token })
    expect(got.body).toMatchObject({ id: f.id, sha256: f.sha256 })
  })

  test('Range: one range is 206 with Content-Range; several or outside the file 416; If-None-Match 304', async () => {
    const f = await uploaded(form({ purpose: 'attachment' }, { data: '0123456789', name: 'digits.txt', type: 'text/plain' }))
    const get = (headers: Record<string, string>) => fetch(`${origin}/api/v1/files/${f.id}/content`, { headers: { ...auth(), ...headers } })
    let res = await get({ range: 'bytes=2-5' })
    expect([res.status, res.headers.get('content-range'), await res.text()]).toEqual([206, 'bytes 2-5/10', '2345'])
    res = await get({ range: 'bytes=-3' })
    expect([res.status, await res.text()]).toEqual([206, '789'])
    res = await get({ range: 'bytes=7-' })
    expect([res.status, await res.text()]).toEqual([206, '789'])
    res = await get({ range: 'bytes=0-1,4-5' })
    expect(res.headers.get('content-range')).toBe('bytes */10')
    await problem(res, 416, 'RANGE_NOT_SATISFIABLE')
    await problem(await get({ range: 'bytes=10-20' }), 416)
    res = await get({ 'if-none-match': `"${f.sha256}"` })
    expect([res.status, await res.text()]).toEqual([304, ''])
    res = await get({ 'if-none-match': '"other"' })
    expect(res.status).toBe(200)
    await res.arrayBuffer()
    // plain text is on the inline list
    expect((await get({})).headers.get('content-disposition')).toStartWith('inline;')
  })

  test('an HTML upload is sent as an attachment, nosniff, under CSP sandbox — never inline', async () => {
    for (const [name, type] of [['page.html', 'text/html'], ['pic.svg', 'image/svg+xml']]) {
      const f = await uploaded(form({ purpose: 'attachment' }, { data: '<script>alert(1)</script>', name: name!, type: type! }))
      const res = await fetch(`${origin}/api/v1/files/${f.id}/content`, { headers: auth() })
      expect(res.headers.get('content-disposition')).toBe(`attachment; filename="${name}"; filename*=UTF-8''${name}`)
      expect(res.headers.get('x-content-type-options')).toBe('nosniff')
      expect(res.headers.get('content-security-policy')).toBe('sandbox')
      await res.text()
    }
  })

  test('signed link: works without credentials; tampered or expired 403; a deleted file 404', async () => {
    const f = await uploaded(form({ purpose: 'dataset' }, { data: 'a,b\n1,2\n', name: 'd.csv', type: 'text/csv' }))
    let res = await fetch(`${origin}${f.access_url}`)
    expect([res.status, await res.text()]).toEqual([200, 'a,b\n1,2\n'])
    const url = new URL(f.access_url, origin)
    const sig = url.searchParams.get('signature')!
    url.searchParams.set('signature', (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1))
    await problem(await fetch(url), 403, 'FORBIDDEN')
    const later = new URL(f.access_url, origin)
    later.searchParams.set('expires', String(Number(later.searchParams.get('expires')) + 1))
    await problem(await fetch(later), 403)
    // an expired link, signed properly
    const expired = t.deps.services.files.accessUrl({ id: f.id, purpose: 'dataset' }, Date.now() - 2 * 3600_000)
    const body = await problem(await fetch(`${origin}${expired}`), 403)
    expect(body.detail).toContain('expired')
    // another file's signature does not open this one
    const g = await uploaded(form({ purpose: 'dataset' }, { data: 'x', name: 'x.csv' }))
    const swapped = new URL(g.access_url, origin)
    swapped.pathname = `/api/v1/files/${f.id}/content`
    await problem(await fetch(swapped), 403)
    expect((await t.request('DELETE', `/api/v1/files/${f.id}`, { token })).status).toBe(204)
    await problem(await fetch(`${origin}${f.access_url}`), 404)
  })

  test('avatar: judged by its bytes; sets avatar_url; the previous avatar goes', async () => {
    const a = await register(t, 'avatar')
    const first = await upload(form({}, { data: PNG, name: 'me.png', type: 'image/png' }), '/api/v1/files/avatar', {}, a.access)
    const one = await first.json()
    expect(first.status).toBe(201)
    expect(one.access_url).toContain('signature=')
    expect((await t.request('GET', '/api/v1/users/me', { token: a.access })).body.avatar_url).toBe(one.access_url)
    const img = await fetch(`${origin}${one.access_url}`)
    expect([img.status, img.headers.get('content-type'), img.headers.get('content-disposition')?.split(';')[0]]).toEqual([200, 'image/png', 'inline'])
    await img.arrayBuffer()
    // a year
    expect(Number(new URL(one.access_url, origin).searchParams.get('expires')) * 1000 - Date.now()).toBeGreaterThan(360 * 24 * 3600_000)
    // a text file that says it is a PNG
    await problem(await upload(form({}, { data: 'not an image at all', name: 'fake.png', type: 'image/png' }), '/api/v1/files/avatar', {}, a.access), 422, 'VALIDATION_ERROR')
    // a real GIF named .txt
    const gif = await upload(form({}, { data: GIF, name: 'notes.txt', type: 'text/plain' }), '/api/v1/files/avatar', {}, a.access)
    const two = await gif.json()
    expect(gif.status).toBe(201)
    const row = (await t.request('GET', `/api/v1/files/${two.file_id}`, { token: a.access })).body
    expect(row).toMatchObject({ content_type: 'image/gif', purpose: 'avatar', file_name: 'notes.txt' })
    expect((await t.request('GET', `/api/v1/files/${one.file_id}`, { token: a.access })).status).toBe(404)
    expect(await rowCount(t, a.id)).toBe(1)
    // over 2 MiB is too large (the limit here is 1 MiB, so it is that)
    await problem(await upload(form({}, { data: new Uint8Array(1024 * 1024 + 10), name: 'big.png' }), '/api/v1/files/avatar', {}, a.access), 413, 'PAYLOAD_TOO_LARGE')
  })

  test('a file of many body reads comes back byte for byte, and a workflow file that large is parsed whole (the chunks store() keeps are copies: read ones are released)', async () => {
    const data = crypto.getRandomValues(new Uint8Array(900_000))
    const f = await uploaded(form({ purpose: 'attachment' }, { data, name: 'many.bin' }))
    expect(f).toMatchObject({ file_size: data.byteLength, sha256: createHash('sha256').update(data).digest('hex') })
    expect(new Uint8Array(await (await fetch(`${origin}/api/v1/files/${f.id}/content`, { headers: auth() })).arrayBuffer())).toEqual(data)
    const json = JSON.stringify({ nodes: Array.from({ length: 12_000 }, (_, i) => ({ id: i, class_type: 'KSampler', inputs: { seed: i } })) })
    expect(json.length).toBeGreaterThan(600_000)
    const wf = await t.request('POST', '/api/v1/workflows', { token, body: { name: 'big', workflow_data: {} } })
    const w = await uploaded(form({ workflow_id: wf.body.id }, { data: json, name: 'big.json', type: 'application/json' }), '/api/v1/files/workflow')
    expect(w.version).toBe(2)
    const row = (await t.request('GET', `/api/v1/files/${w.file_id}`, { token })).body
    expect(row).toMatchObject({ purpose: 'workflow', file_size: json.length, sha256: createHash('sha256').update(json).digest('hex') })
  })

  test('workflow file: valid JSON is stored and becomes the workflow\'s next version (test/workflows.test.ts has the rest); anything else 422', async () => {
    const wf1 = (await t.request('POST', '/api/v1/workflows', { token, body: { name: 'flow', workflow_data: {} } })).body.id
    const fd = form({ workflow_id: wf1 }, { data: JSON.stringify({ '3': { class_type: 'KSampler', inputs: {} } }), name: 'flow.json', type: 'application/json' })
    const res = await uploaded(fd, '/api/v1/files/workflow')
    const fileId = res.file_id
    expect(typeof fileId).toBe('string')
    expect(res).toMatchObject({ file_name: 'flow.json', workflow_id: wf1, version: 2 })
    const row = (await t.request('GET', `/api/v1/files/${fileId}`, { token })).body
    expect(row).toMatchObject({ purpose: 'workflow', content_type: 'application/json', workflow_id: wf1 })
    const before = (await storedFiles()).length
    await problem(await upload(form({ workflow_id: wf1 }, { data: '{"broken":', name: 'flow.json' }), '/api/v1/files/workflow'), 422)
    await problem(await upload(form({}, { data: '{}', name: 'flow.json' }), '/api/v1/files/workflow'), 422)
    expect((await storedFiles()).length).toBe(before)
  })

  test('a chunked body past the limit mid-stream: 413, and no row, no bytes, no quota held', async () => {
    const before = { rows: await rowCount(t), files: (await storedFiles()).length, used: (await t.request('GET', '/api/v1/users/me/storage', { token })).body.used_bytes }
    const head = `--B\r\n${textPart('purpose', 'attachment')}\r\n--B\r\n${filePart('file', 'big.bin', '')}`
    const chunk = new Uint8Array(64 * 1024).fill(97)
    let sent = 0
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(head))
      },
      pull(c) {
        if (sent > 64 * 1024 * 1024) return c.close()
        sent += chunk.byteLength
        c.enqueue(chunk)
      },
    })
    const res = await fetch(`${origin}/api/v1/files`, { method: 'POST', headers: { ...auth(), 'content-type': 'multipart/form-data; boundary=B' }, body, duplex: 'half' } as RequestInit)
    await problem(res, 413, 'PAYLOAD_TOO_LARGE')
    expect(sent).toBeLessThan(64 * 1024 * 1024) // the server stopped reading
    await Bun.sleep(50)
    expect(await rowCount(t)).toBe(before.rows)
    expect((await storedFiles()).length).toBe(before.files)
    expect((await t.request('GET', '/api/v1/users/me/storage', { token })).body.used_bytes).toBe(before.used)
  })

  test('a Content-Length past the limit is refused before a byte is read', async () => {
    await problem(await upload(form({ purpose: 'attachment' }, { data: new Uint8Array(1024 * 1024 + 70 * 1024) })), 413, 'PAYLOAD_TOO_LARGE')
  })

  describe('bad input: a clear 4xx problem, nothing stored', () => {
    const cases: [string, () => { body: BodyInit; type?: string }, number][] = [
      ['no file part', () => rawForm([textPart('purpose', 'attachment')]), 422],
      ['two file parts', () => rawForm([textPart('purpose', 'attachment'), filePart('file', 'a.txt', 'aaa'), filePart('file', 'b.txt', 'bbb')]), 422],
      ['a file under another name', () => rawForm([textPart('purpose', 'attachment'), filePart('other', 'a.txt', 'aaa')]), 422],
      ['a field after the file', () => rawForm([filePart('file', 'a.txt', 'aaa'), textPart('purpose', 'attachment')]), 422],
      ['an unknown purpose', () => rawForm([textPart('purpose', 'selfie'), filePart('file', 'a.txt', 'aaa')]), 422],
      ['avatar through POST /files', () => rawForm([textPart('purpose', 'avatar'), filePart('file', 'a.png', 'aaa')]), 422],
      ['no purpose', () => rawForm([filePart('file', 'a.txt', 'aaa')]), 422],
      ['truncated multipart', () => rawForm([textPart('purpose', 'attachment'), filePart('file', 'a.txt', 'aaa')], { end: false }), 422],
      ['cut mid-file', () => ({ body: `--XbOuNdArY\r\n${textPart('purpose', 'attachment')}\r\n--XbOuNdArY\r\n${filePart('file', 'a.txt', 'aaaa')}`, type: 'multipart/form-data; boundary=XbOuNdArY' }), 422],
      ['a 0-byte file', () => rawForm([textPart('purpose', 'attachment'), filePart('file', 'empty.txt', '')]), 422],
      ['no boundary', () => ({ body: 'hello', type: 'multipart/form-data' }), 422],
      ['garbage under a boundary', () => ({ body: 'hello there', type: 'multipart/form-data; boundary=zzz' }), 422],
      ['a JSON body', () => ({ body: JSON.stringify({ purpose: 'attachment' }), type: 'application/json' }), 415],
      ['urlencoded', () => ({ body: 'purpose=attachment', type: 'application/x-www-form-urlencoded' }), 415],
      ['no body', () => ({ body: '', type: 'multipart/form-data; boundary=XbOuNdArY' }), 422],
    ]
    for (const [name, make, status] of cases)
      test(`${name} → ${status}`, async () => {
        const before = { rows: await rowCount(t), files: (await storedFiles()).length }
        const { body, type } = make()
        const res = await upload(body, '/api/v1/files', type ? { 'content-type': type } : {})
        await problem(res, status)
        expect(await rowCount(t)).toBe(before.rows)
        expect((await storedFiles()).length).toBe(before.files)
      })

    test('file names: path parts, NUL and control characters are stripped; 10 KB of emoji is cut to 255 characters', async () => {
      const names: [string, string][] = [
        ['../../etc/passwd', 'passwd'],
        ['..\\..\\boot.ini', 'boot.ini'],
        ['a\u0000b\u0007c\u202e.txt', 'abc.txt'],
        ['..', 'file'],
        ['😀'.repeat(2600), '😀'.repeat(255)],
      ]
      for (const [sent, kept] of names) {
        const { body, type } = rawForm([textPart('purpose', 'attachment'), filePart('file', sent, 'data')])
        const res = await upload(body, '/api/v1/files', { 'content-type': type })
        const json = await res.json()
        expect({ sent: sent.slice(0, 20), status: res.status, name: json.file_name }).toEqual({ sent: sent.slice(0, 20), status: 201, name: kept })
      }
      // every stored file is named by ids
      for (const path of await storedFiles()) expect(path).toMatch(/^\/[0-9a-f-]{36}\/[0-9a-f-]{36}$/)
    })
  })

  test('list: newest first, filtered by purpose and content_type, the usual envelope', async () => {
    const b = await register(t, 'lister')
    for (const [purpose, name, type] of [['attachment', 'a.txt', 'text/plain'], ['dataset', 'b.csv', 'text/csv'], ['dataset', 'c.csv', 'text/csv']])
      await upload(form({ purpose: purpose! }, { data: 'x', name, type }), '/api/v1/files', {}, b.access)
    let res = await t.request('GET', '/api/v1/files', { token: b.access })
    expect(res.body).toMatchObject({ total: 3, limit: 50, offset: 0, has_more: false })
    expect(res.body.items.map((i: Json) => i.file_name)).toEqual(['c.csv', 'b.csv', 'a.txt'])
    res = await t.request('GET', '/api/v1/files?purpose=dataset&limit=1', { token: b.access })
    expect(res.body).toMatchObject({ total: 2, has_more: true, items: [{ file_name: 'c.csv' }] })
    res = await t.request('GET', '/api/v1/files?content_type=text/plain', { token: b.access })
    expect(res.body.items.map((i: Json) => i.file_name)).toEqual(['a.txt'])
    expect((await t.request('GET', '/api/v1/files?purpose=selfie', { token: b.access })).status).toBe(422)
    const stats = (await t.request('GET', '/api/v1/users/me/stats', { token: b.access })).body
    expect(stats.storage_bytes).toBe(3)
    expect((await t.request('GET', '/api/v1/users/me/storage', { token: b.access })).body).toEqual({ used_bytes: 3, quota_bytes: 1024 ** 3, files: 3 })
  })

  test('deleting a file gives its bytes back; deleting a user deletes their bytes', async () => {
    const c = await register(t, 'leaving')
    const res = await upload(form({ purpose: 'attachment' }, { data: 'abcdef', name: 'a.txt' }), '/api/v1/files', {}, c.access)
    const f = await res.json()
    const g = await (await upload(form({ purpose: 'attachment' }, { data: 'xyz', name: 'b.txt' }), '/api/v1/files', {}, c.access)).json()
    expect((await t.request('GET', '/api/v1/users/me/storage', { token: c.access })).body.used_bytes).toBe(9)
    expect((await t.request('DELETE', `/api/v1/files/${f.id}`, { token: c.access })).status).toBe(204)
    expect((await t.request('GET', '/api/v1/users/me/storage', { token: c.access })).body).toMatchObject({ used_bytes: 3, files: 1 })
    const theirs = async () => (await storedFiles()).filter((k) => k.startsWith(`/${c.id}/`))
    expect(await theirs()).toEqual([`/${c.id}/${g.id}`])
    expect((await t.request('DELETE', `/api/v1/admin/users/${c.id}`, { token: ctx.accounts.admin.access })).status).toBe(204)
    expect(await theirs()).toEqual([])
  })

  test('quota: 8 parallel uploads of 300 KB into 1 MiB — at most 3 succeed, the rest 413 STORAGE_QUOTA_EXCEEDED, never above', async () => {
    const q = await register(t, 'quota')
    const admin = ctx.accounts.admin.access
    const patch = await t.request('PATCH', `/api/v1/admin/users/${q.id}`, { token: admin, body: { storage_quota_bytes: 1024 * 1024 } })
    expect(patch.body.storage).toEqual({ used_bytes: 0, quota_bytes: 1024 * 1024 })
    const data = new Uint8Array(300 * 1024)
    const results = await Promise.all(Array.from({ length: 8 }, () => upload(form({ purpose: 'attachment' }, { data, name: 'p.bin' }), '/api/v1/files', {}, q.access)))
    const statuses = results.map((r) => r.status)
    const ok = statuses.filter((s) => s === 201).length
    expect(ok).toBeGreaterThanOrEqual(1)
    expect(ok).toBeLessThanOrEqual(3)
    for (const r of results) if (r.status !== 201) await problem(r, 413, 'STORAGE_QUOTA_EXCEEDED')
    const use = (await t.request('GET', '/api/v1/users/me/storage', { token: q.access })).body
    expect(use).toEqual({ used_bytes: ok * data.byteLength, quota_bytes: 1024 * 1024, files: ok })
    expect(await rowCount(t, q.id)).toBe(ok)
    // null: back to the instance default
    expect((await t.request('PATCH', `/api/v1/admin/users/${q.id}`, { token: admin, body: { storage_quota_bytes: null } })).body.storage.quota_bytes).toBeNull()
    expect((await t.request('GET', '/api/v1/users/me/storage', { token: q.access })).body.quota_bytes).toBe(1024 ** 3)
  })

  test('a chunked upload (no Content-Length) is held as it streams, and refused at the quota', async () => {
    const q = await register(t, 'chunky')
    await t.request('PATCH', `/api/v1/admin/users/${q.id}`, { token: ctx.accounts.admin.access, body: { storage_quota_bytes: 100_000 } })
    const send = (size: number) => {
      const body = new Blob([`--B\r\n${textPart('purpose', 'attachment')}\r\n--B\r\n${filePart('file', 'c.bin', '')}`, new Uint8Array(size), '\r\n--B--\r\n']).stream()
      return fetch(`${origin}/api/v1/files`, { method: 'POST', headers: { ...auth(q.access), 'content-type': 'multipart/form-data; boundary=B' }, body, duplex: 'half' } as RequestInit)
    }
    const small = await send(60_000)
    expect(small.status).toBe(201)
    await small.json()
    await problem(await send(60_000), 413, 'STORAGE_QUOTA_EXCEEDED')
    expect((await t.request('GET', '/api/v1/users/me/storage', { token: q.access })).body).toMatchObject({ used_bytes: 60_000, files: 1 })
  })

  test('the document describes the multipart bodies', async () => {
    const doc = (await t.request('GET', '/openapi.json')).body
    for (const path of ['/api/v1/files', '/api/v1/files/avatar', '/api/v1/files/workflow']) {
      const schema = doc.paths[path].post.requestBody.content['multipart/form-data'].schema
      expect(schema.properties.file).toMatchObject({ type: 'string', format: 'binary' })
    }
  })
})

interface FileCtx extends CallersContext {
  fileId: string
}

eachDialect('files: who may do what', (dialect) => {
  let ctx: FileCtx
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
    const callers = await setupCallers(t)
    const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: t.app.fetch })
    const res = await fetch(`http://127.0.0.1:${server.port}/api/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${callers.accounts.user.access}` }, body: form({ purpose: 'attachment' }, { data: 'secret bytes', name: 's.txt', type: 'text/plain' }) })
    const f = await res.json()
    server.stop(true)
    ctx = { ...callers, fileId: f.id }
  })
  afterAll(() => t.close())

  const path = (suffix = '') => (c: FileCtx) => `/api/v1/files/${c.fileId}${suffix}`
  scenarios<FileCtx>(() => ctx, [
    { name: 'needs a login', as: 'guest', method: 'GET', path: path(), status: 401, code: 'UNAUTHORIZED' },
    { name: 'content needs a login or a link', as: 'guest', method: 'GET', path: path('/content'), status: 401 },
    { name: 'list needs a login', as: 'guest', method: 'GET', path: '/api/v1/files', status: 401 },
    { name: 'delete needs a login', as: 'guest', method: 'DELETE', path: path(), status: 401 },
    { name: 'upload needs a login', as: 'guest', method: 'POST', path: '/api/v1/files', status: 401 },
    { name: 'own file', as: 'user', method: 'GET', path: path(), status: 200, contains: ['s.txt'] },
    { name: 'own content', as: 'user', method: 'GET', path: path('/content'), status: 200, contains: ['secret bytes'] },
    { name: 'own list', as: 'user', method: 'GET', path: '/api/v1/files', status: 200, check: (r) => expect(r.body.total).toBe(1) },
    { name: "another user's file is 404", as: 'other', method: 'GET', path: path(), status: 404, code: 'NOT_FOUND', notContains: ['s.txt'] },
    { name: "another user's content is 404", as: 'other', method: 'GET', path: path('/content'), status: 404, notContains: ['secret'] },
    { name: "another user's list is their own", as: 'other', method: 'GET', path: '/api/v1/files', status: 200, check: (r) => expect(r.body.total).toBe(0) },
    { name: "another user cannot delete it", as: 'other', method: 'DELETE', path: path(), status: 404 },
    { name: "admins do not see users' files", as: 'admin', method: 'GET', path: path(), status: 404 },
    { name: "admins do not read users' content", as: 'admin', method: 'GET', path: path('/content'), status: 404, notContains: ['secret'] },
    { name: "admins' list is their own", as: 'admin', method: 'GET', path: '/api/v1/files', status: 200, check: (r) => expect(r.body.total).toBe(0) },
    { name: "admins cannot delete it", as: 'admin', method: 'DELETE', path: path(), status: 404 },
    { name: 'a bad signature is 403 even with a login', as: 'other', method: 'GET', path: (c) => `/api/v1/files/${c.fileId}/content?expires=9999999999&signature=nope`, status: 403 },
    { name: 'unknown id', as: 'user', method: 'GET', path: '/api/v1/files/nope', status: 404 },
    { name: 'own delete', as: 'user', method: 'DELETE', path: path(), status: 204 },
    { name: 'gone after delete', as: 'user', method: 'GET', path: path(), status: 404 },
  ])
})

if (process.env.TEST_DATABASE_URL)
  describe('files on two instances [postgres]', () => {
    let a: TestApp
    let b: TestApp
    beforeAll(async () => {
      a = await createTestApp('postgres')
      b = await createSecondInstance(a)
    })
    afterAll(async () => {
      await b.close()
      await a.close()
    })

    test('a quota race across instances never ends above the quota', async () => {
      await register(a, 'admin')
      const q = await register(a, 'racer')
      await a.deps.database.db.update(a.deps.database.t.users).set({ storageQuota: 1024 * 1024 }).where(eq(a.deps.database.t.users.id, q.id))
      const one = serve(a)
      const two = serve(b)
      const data = new Uint8Array(300 * 1024)
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => fetch(`${i % 2 ? two.origin : one.origin}/api/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${q.access}` }, body: form({ purpose: 'attachment' }, { data, name: 'r.bin' }) })),
      )
      const ok = results.filter((r) => r.status === 201).length
      for (const r of results) await r.text()
      expect(ok).toBeGreaterThanOrEqual(1)
      expect(ok).toBeLessThanOrEqual(3)
      const use = (await b.request('GET', '/api/v1/users/me/storage', { token: q.access })).body
      expect(use).toEqual({ used_bytes: ok * data.byteLength, quota_bytes: 1024 * 1024, files: ok })
      one.server.stop(true)
      two.server.stop(true)
    })
  })
