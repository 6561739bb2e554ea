/**
 * Email-code flows end to end (docs/api.md §4) over the real mail path: the app sends through nodemailer
 * to a real SMTP server started here on 127.0.0.1, and the tests read the code out of the message.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { AddressInfo } from 'node:net'
import { eq } from 'drizzle-orm'
import { SMTPServer } from 'smtp-server'
import { createAdmin } from './helpers/accounts.ts'
import { createTestApp, type TestApp } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'

// ---------------------------------------------------------------- a real SMTP server and a small MIME reader

interface MimePart {
  headers: Map<string, string>
  /** decoded body (text parts), empty for multipart containers */
  body: string
  parts: MimePart[]
}

interface ReceivedMail {
  from: string
  to: string[]
  raw: string
  subject: string
  text: string | undefined
  html: string | undefined
  contentTypes: string[]
}

const received: ReceivedMail[] = []
let smtp: SMTPServer
let smtpUrl = ''

beforeAll(async () => {
  smtp = new SMTPServer({
    secure: false,
    authOptional: true,
    hideSTARTTLS: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('error', callback)
      stream.on('end', () => {
        try {
          const raw = Buffer.concat(chunks).toString('utf8')
          received.push(toMail(raw, session.envelope.mailFrom ? session.envelope.mailFrom.address : '', session.envelope.rcptTo.map((r) => r.address.toLowerCase())))
          callback()
        } catch (error) {
          callback(error as Error)
        }
      })
    },
  })
  await new Promise<void>((resolve, reject) => {
    smtp.once('error', reject)
    smtp.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = smtp.server.address() as AddressInfo
  smtpUrl = `smtp://127.0.0.1:${port}`
})

afterAll(async () => {
  await new Promise<void>((resolve) => smtp.close(() => resolve()))
})

function parseHeaders(block: string): Map<string, string> {
  const headers = new Map<string, string>()
  const unfolded = block.replace(/\r?\n[ \t]+/g, ' ')
  for (const line of unfolded.split(/\r?\n/)) {
    const i = line.indexOf(':')
    if (i <= 0) continue
    headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim())
  }
  return headers
}

function param(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined
  const m = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, 'i').exec(header)
  return m ? (m[1] ?? m[2]) : undefined
}

function decodeQuotedPrintable(s: string): Uint8Array {
  const soft = s.replace(/=\r?\n/g, '')
  const bytes: number[] = []
  for (let i = 0; i < soft.length; i++) {
    const c = soft[i]!
    const hex = soft.slice(i + 1, i + 3)
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16))
      i += 2
    } else bytes.push(...new TextEncoder().encode(c))
  }
  return new Uint8Array(bytes)
}

function decodeBody(body: string, encoding: string | undefined, charset: string | undefined): string {
  const enc = (encoding ?? '7bit').toLowerCase()
  let bytes: Uint8Array
  if (enc === 'base64') bytes = new Uint8Array(Buffer.from(body.replace(/\s+/g, ''), 'base64'))
  else if (enc === 'quoted-printable') bytes = decodeQuotedPrintable(body)
  else return body
  return new TextDecoder(charset ?? 'utf-8').decode(bytes)
}

/** RFC 2047 encoded words (`=?UTF-8?Q?...?=` / `=?UTF-8?B?...?=`); whitespace between two of them is dropped. */
function decodeWords(value: string): string {
  return value
    .replace(/(=\?[^?]+\?[BbQq]\?[^?]*\?=)\s+(?==\?[^?]+\?[BbQq]\?[^?]*\?=)/g, '$1')
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_, charset: string, kind: string, text: string) =>
      kind.toUpperCase() === 'B'
        ? new TextDecoder(charset).decode(new Uint8Array(Buffer.from(text, 'base64')))
        : new TextDecoder(charset).decode(decodeQuotedPrintable(text.replace(/_/g, ' '))),
    )
}

function parseMime(raw: string): MimePart {
  const split = /\r?\n\r?\n/.exec(raw)
  const headerBlock = split ? raw.slice(0, split.index) : raw
  const rest = split ? raw.slice(split.index + split[0].length) : ''
  const headers = parseHeaders(headerBlock)
  const type = headers.get('content-type') ?? 'text/plain'
  if (/^multipart\//i.test(type)) {
    const boundary = param(type, 'boundary')
    if (!boundary) throw new Error(`multipart without boundary: ${type}`)
    const segments = rest.split(new RegExp(`\\r?\\n?--${boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?:--)?[ \\t]*\\r?\\n?`))
    // the first segment is the preamble, the last the epilogue
    const parts = segments.slice(1, -1).filter((s) => s.trim() !== '').map(parseMime)
    return { headers, body: '', parts }
  }
  return { headers, body: decodeBody(rest, headers.get('content-transfer-encoding'), param(type, 'charset')), parts: [] }
}

function leaves(part: MimePart): MimePart[] {
  return part.parts.length ? part.parts.flatMap(leaves) : [part]
}

function toMail(raw: string, from: string, to: string[]): ReceivedMail {
  const root = parseMime(raw)
  const all = leaves(root)
  const typeOf = (p: MimePart) => (p.headers.get('content-type') ?? 'text/plain').split(';')[0]!.trim().toLowerCase()
  return {
    from,
    to,
    raw,
    subject: decodeWords(root.headers.get('subject') ?? ''),
    text: all.find((p) => typeOf(p) === 'text/plain')?.body,
    html: all.find((p) => typeOf(p) === 'text/html')?.body,
    contentTypes: [root, ...all].map(typeOf),
  }
}

const mailsTo = (address: string) => received.filter((m) => m.to.includes(address.toLowerCase()))

/** Mail goes out in the background: poll until `count` messages reached the address. */
async function waitForMail(address: string, count = 1, timeoutMs = 5000): Promise<ReceivedMail> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const got = mailsTo(address)
    if (got.length >= count) return got[count - 1]!
    await Bun.sleep(20)
  }
  throw new Error(`no mail (#${count}) reached ${address} within ${timeoutMs} ms; got mail for: ${received.flatMap((m) => m.to).join(', ')}`)
}

/** The 6-digit code of a code mail: alone on its line in the plain-text part, and the same in the HTML part. */
function codeOf(mail: ReceivedMail): string {
  const m = /^(\d{6})$/m.exec(mail.text ?? '')
  if (!m) throw new Error(`no 6-digit code in the text part: ${JSON.stringify(mail.text)}`)
  expect(mail.html ?? '').toContain(`>${m[1]}<`)
  return m[1]!
}

// ---------------------------------------------------------------- helpers

let seq = 0
const uniq = () => `${Date.now().toString(36)}${(seq++).toString(36)}${Math.random().toString(36).slice(2, 6)}`

const PASSWORD = 'correct horse battery 1'

async function usersWithEmail(t: TestApp, email: string) {
  const { db, t: tables } = t.deps.database
  return db.select({ id: tables.users.id }).from(tables.users).where(eq(tables.users.email, email.toLowerCase()))
}

async function codeRows(t: TestApp, email: string) {
  const { db, t: tables } = t.deps.database
  return db.select().from(tables.emailCodes).where(eq(tables.emailCodes.email, email.toLowerCase()))
}

/** Push every code row of this address out of the 60 s cooldown (as if sent `ms` ago). */
async function backdate(t: TestApp, email: string, ms = 61_000) {
  const { db, t: tables } = t.deps.database
  await db.update(tables.emailCodes).set({ createdAt: new Date(Date.now() - ms) }).where(eq(tables.emailCodes.email, email.toLowerCase()))
}

// ---------------------------------------------------------------- suites

eachDialect('email codes over SMTP', (dialect) => {
  let t: TestApp
  const email = (label: string) => `${label}-${dialect}-${uniq()}@example.com`
  const username = () => `u_${uniq()}`

  beforeAll(async () => {
    t = await createTestApp(dialect, { HEARTH_SMTP_URL: smtpUrl })
  })
  afterAll(() => t.close())

  async function sendCode(address: string, codeType: 'register' | 'password_reset' = 'register', headers?: Record<string, string>) {
    return t.request('POST', '/api/v1/auth/send-code', { body: { email: address, code_type: codeType }, headers })
  }

  /** send a register code and read it from the mail */
  async function registerCode(address: string): Promise<string> {
    const res = await sendCode(address)
    expect(res.status).toBe(200)
    return codeOf(await waitForMail(address, mailsTo(address).length + 1))
  }

  const verifyCode = (address: string, code: string, codeType: 'register' | 'password_reset' = 'register') =>
    t.request('POST', '/api/v1/auth/verify-code', { body: { email: address, code, code_type: codeType } })

  /** a 6-digit code that is not `code` */
  const wrong = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, '0')

  test('send-code: 200 with the limits, the mail has a text and an HTML part with a 6-digit code, the answer never has it', async () => {
    const to = email('send')
    const res = await sendCode(to)
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ email: to, code_type: 'register', cooldown_seconds: 60, remaining_daily_sends: 9, expire_minutes: 10 })

    const mail = await waitForMail(to)
    expect(mail.to).toEqual([to])
    expect(mail.contentTypes[0]).toBe('multipart/alternative')
    expect(mail.contentTypes).toContain('text/plain')
    expect(mail.contentTypes).toContain('text/html')
    expect(mail.subject).toBe('Your Hearth sign-up code')
    expect(mail.text).toContain('Use this code to finish creating your account:')
    expect(mail.text).toContain('It expires in 10 minutes.')
    expect(mail.html).toContain('<html lang="en">')
    const code = codeOf(mail)
    expect(code).toMatch(/^\d{6}$/)
    expect(res.text).not.toContain(code)

    // stored hashed, never the code itself; and not written to the log when mail goes out
    const rows = await codeRows(t, to)
    expect(rows).toHaveLength(1)
    expect(rows[0]!.codeHash).not.toContain(code)
    expect(rows[0]!.attempts).toBe(0)
    expect(rows[0]!.consumedAt).toBeNull()
    // created_at is stamped at insert, a moment after the expiry was computed
    const ttl = rows[0]!.expiresAt.getTime() - rows[0]!.createdAt.getTime()
    expect(ttl).toBeGreaterThan(10 * 60_000 - 1000)
    expect(ttl).toBeLessThanOrEqual(10 * 60_000)
    expect(t.logText()).not.toContain(code)
    expect(t.logs.filter((l) => l.msg === 'could not send mail')).toEqual([])
  })

  test('send-code with Accept-Language: zh-CN sends the mail in Chinese', async () => {
    const to = email('zh')
    const res = await sendCode(to, 'register', { 'accept-language': 'zh-CN,zh;q=0.9,en;q=0.8' })
    expect(res.status).toBe(200)
    const mail = await waitForMail(to)
    expect(mail.subject).toBe('Hearth 注册验证码')
    expect(mail.text).toContain('请使用以下验证码完成注册：')
    expect(mail.text).toContain('验证码 10 分钟内有效')
    expect(mail.html).toContain('<html lang="zh">')
    expect(mail.html).toContain('请使用以下验证码完成注册：')
    expect(codeOf(mail)).toMatch(/^\d{6}$/)
  })

  test('send-code: the address is case-insensitive (answer, mail and verification use the lower-case address)', async () => {
    const to = email('case')
    const res = await sendCode(to.toUpperCase())
    expect(res.status).toBe(200)
    expect(res.body.email).toBe(to)
    const code = codeOf(await waitForMail(to))
    const ok = await verifyCode(to.toUpperCase(), code)
    expect(ok.status).toBe(200)
  })

  test('send-code: bad input is a 422 problem', async () => {
    expectProblem(await t.request('POST', '/api/v1/auth/send-code', { body: { email: 'not-an-email', code_type: 'register' } }), 422, 'VALIDATION_ERROR')
    expectProblem(await t.request('POST', '/api/v1/auth/send-code', { body: { email: email('bad'), code_type: 'login' } }), 422, 'VALIDATION_ERROR')
    expectProblem(await verifyCode(email('bad'), '12345'), 422, 'VALIDATION_ERROR')
  })

  test('verify-code: the right code is valid and not used up; a wrong one is 422', async () => {
    const to = email('verify')
    const code = await registerCode(to)
    for (let i = 0; i < 2; i++) {
      const ok = await verifyCode(to, code)
      expect(ok.status).toBe(200)
      expect(ok.body).toEqual({ is_valid: true })
    }
    const bad = await verifyCode(to, wrong(code))
    expectProblem(bad, 422, 'VALIDATION_ERROR')
    expect(bad.text).not.toContain(code)
    // the right code for another purpose is not valid
    expectProblem(await verifyCode(to, code, 'password_reset'), 422, 'VALIDATION_ERROR')
    // one wrong attempt does not burn it
    expect((await verifyCode(to, code)).status).toBe(200)
  })

  test('verify-code: 5 wrong attempts burn the code; the right code is then refused', async () => {
    const to = email('burn')
    const code = await registerCode(to)
    for (let i = 0; i < 4; i++) expectProblem(await verifyCode(to, wrong(code)), 422, 'VALIDATION_ERROR')
    expect((await verifyCode(to, code)).status).toBe(200) // 4 wrong: still alive
    expectProblem(await verifyCode(to, wrong(code)), 422, 'VALIDATION_ERROR') // the 5th
    expectProblem(await verifyCode(to, code), 422, 'VALIDATION_ERROR')
    const res = await t.request('POST', '/api/v1/auth/verify-register', { body: { username: username(), email: to, password: PASSWORD, code } })
    expectProblem(res, 422, 'VALIDATION_ERROR')
    expect(await usersWithEmail(t, to)).toHaveLength(0)
  })

  test('verify-code: an expired code is refused', async () => {
    const to = email('expired')
    const code = await registerCode(to)
    const { db, t: tables } = t.deps.database
    await db.update(tables.emailCodes).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(tables.emailCodes.email, to))
    expectProblem(await verifyCode(to, code), 422, 'VALIDATION_ERROR')
  })

  test('a new code replaces the previous one', async () => {
    const to = email('replace')
    const first = await registerCode(to)
    await backdate(t, to)
    const second = await registerCode(to)
    expect(mailsTo(to)).toHaveLength(2)
    if (first !== second) expectProblem(await verifyCode(to, first), 422, 'VALIDATION_ERROR')
    expect((await verifyCode(to, second)).status).toBe(200)
  })

  test('verify-register: 201 with a verified user, tokens and Location; the code is then used up', async () => {
    const to = email('vreg')
    const code = await registerCode(to)
    const name = username()
    const res = await t.request('POST', '/api/v1/auth/verify-register', { body: { username: name, email: to, password: PASSWORD, code } })
    expect(res.status).toBe(201)
    expect(res.headers.get('location')).toBe('/api/v1/users/me')
    expect(res.body.user).toMatchObject({ username: name, email: to, email_verified: true, is_active: true })
    expect(res.body.tokens).toMatchObject({ token_type: 'bearer', expires_in: 900 })
    expect(res.text).not.toContain(PASSWORD)

    const me = await t.request('GET', '/api/v1/auth/me', { token: res.body.tokens.access_token })
    expect(me.status).toBe(200)
    expect(me.body).toMatchObject({ id: res.body.user.id, email: to, email_verified: true })

    // used: neither valid to check nor to register again
    expectProblem(await verifyCode(to, code), 422, 'VALIDATION_ERROR')
    const again = await t.request('POST', '/api/v1/auth/verify-register', { body: { username: username(), email: to, password: PASSWORD, code } })
    expectProblem(again, 422, 'VALIDATION_ERROR')
    expect(await usersWithEmail(t, to)).toHaveLength(1)

    const login = await t.request('POST', '/api/v1/auth/login', { body: { email: to, password: PASSWORD } })
    expect(login.status).toBe(200)
  })

  test('verify-register with a wrong code: 422 and no user is created', async () => {
    const to = email('vbad')
    const code = await registerCode(to)
    const name = username()
    const res = await t.request('POST', '/api/v1/auth/verify-register', { body: { username: name, email: to, password: PASSWORD, code: wrong(code) } })
    expectProblem(res, 422, 'VALIDATION_ERROR')
    expect(await usersWithEmail(t, to)).toHaveLength(0)
    expectProblem(await t.request('POST', '/api/v1/auth/login', { body: { username: name, password: PASSWORD } }), 401, 'INVALID_CREDENTIALS')
    // the right code still works afterwards
    expect((await t.request('POST', '/api/v1/auth/verify-register', { body: { username: name, email: to, password: PASSWORD, code } })).status).toBe(201)
  })

  test('verify-register with no code ever sent: 422', async () => {
    const to = email('nocode')
    expectProblem(await t.request('POST', '/api/v1/auth/verify-register', { body: { username: username(), email: to, password: PASSWORD, code: '123456' } }), 422, 'VALIDATION_ERROR')
    expect(await usersWithEmail(t, to)).toHaveLength(0)
  })

  test('send-code (register) for an address that already has an account: same 200, no mail', async () => {
    const to = email('taken')
    const reg = await t.request('POST', '/api/v1/auth/register', { body: { username: username(), email: to, password: PASSWORD } })
    expect(reg.status).toBe(201)
    const res = await sendCode(to)
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ email: to, code_type: 'register', cooldown_seconds: 60, remaining_daily_sends: 9, expire_minutes: 10 })
    await Bun.sleep(400)
    expect(mailsTo(to)).toHaveLength(0)
  })

  test('cooldown: a second send-code within 60 s is 429 with Retry-After, for either code type', async () => {
    const to = email('cool')
    expect((await sendCode(to)).status).toBe(200)
    await waitForMail(to)
    for (const type of ['register', 'password_reset'] as const) {
      const res = await sendCode(to, type)
      expectProblem(res, 429, 'RATE_LIMITED')
      const retry = Number(res.headers.get('retry-after'))
      expect(retry).toBeGreaterThan(0)
      expect(retry).toBeLessThanOrEqual(60)
    }
    await Bun.sleep(200)
    expect(mailsTo(to)).toHaveLength(1)
    // once the cooldown has passed it works again, one fewer send left
    await backdate(t, to)
    const later = await sendCode(to)
    expect(later.status).toBe(200)
    expect(later.body.remaining_daily_sends).toBe(8)
  })

  test('daily cap: 10 sends per address per day, then 429 with Retry-After; older sends do not count', async () => {
    const { db, t: tables } = t.deps.database
    const now = Date.now()
    const rows = (address: string, n: number, firstAgoMs: number, stepMs: number) =>
      Array.from({ length: n }, (_, i) => ({
        email: address,
        codeType: 'register' as const,
        codeHash: `not-a-real-hash-${i}`,
        createdAt: new Date(now - firstAgoMs + i * stepMs),
        expiresAt: new Date(now - firstAgoMs + i * stepMs + 10 * 60_000),
        consumedAt: new Date(now - firstAgoMs + i * stepMs + 1000),
      }))

    // 9 earlier today (from 23 h ago to 2 min ago): the 10th is allowed, with nothing left
    const nine = email('cap9')
    await db.insert(tables.emailCodes).values(rows(nine, 9, 23 * 3600_000, (23 * 3600_000 - 120_000) / 8))
    const tenth = await sendCode(nine)
    expect(tenth.status).toBe(200)
    expect(tenth.body.remaining_daily_sends).toBe(0)
    await waitForMail(nine)

    // 10 earlier today: refused although the cooldown is over
    const ten = email('cap10')
    await db.insert(tables.emailCodes).values(rows(ten, 10, 23 * 3600_000, (23 * 3600_000 - 120_000) / 9))
    for (const type of ['register', 'password_reset'] as const) {
      const res = await sendCode(ten, type)
      expectProblem(res, 429, 'RATE_LIMITED')
      const retry = Number(res.headers.get('retry-after'))
      expect(retry).toBeGreaterThan(0)
      expect(retry).toBeLessThanOrEqual(24 * 3600)
    }
    const reset = await t.request('POST', '/api/v1/auth/password/send-code', { body: { email: ten } })
    expectProblem(reset, 429, 'RATE_LIMITED')
    await Bun.sleep(200)
    expect(mailsTo(ten)).toHaveLength(0)

    // 10 sends more than a day ago do not count
    const old = email('capold')
    await db.insert(tables.emailCodes).values(rows(old, 10, 25 * 3600_000, 60_000))
    const fresh = await sendCode(old)
    expect(fresh.status).toBe(200)
    expect(fresh.body.remaining_daily_sends).toBe(9)
    await waitForMail(old)
  })

  test('concurrent send-code for one address: exactly one is sent, the others are 429', async () => {
    const to = email('race')
    const results = await Promise.all(Array.from({ length: 6 }, () => sendCode(to)))
    const statuses = results.map((r) => r.status).sort()
    expect(statuses).toEqual([200, 429, 429, 429, 429, 429])
    for (const r of results.filter((r) => r.status !== 200)) expectProblem(r, 429, 'RATE_LIMITED')
    await waitForMail(to)
    await Bun.sleep(300)
    expect(mailsTo(to)).toHaveLength(1)
    expect(await codeRows(t, to)).toHaveLength(1)
  })

  test('concurrent wrong guesses: no more than 5 are ever checked against one code', async () => {
    const to = email('guess')
    const code = await registerCode(to)
    const guesses = Array.from({ length: 20 }, (_, i) => String((Number(code) + 1 + i) % 1_000_000).padStart(6, '0'))
    const results = await Promise.all(guesses.map((g) => verifyCode(to, g)))
    for (const r of results) expectProblem(r, 422, 'VALIDATION_ERROR')
    // `attempts` counts the wrong guesses that were compared with the code
    const [row] = await codeRows(t, to)
    expect(row!.attempts).toBeLessThanOrEqual(5)
    expectProblem(await verifyCode(to, code), 422, 'VALIDATION_ERROR')
  })

  test('verify-register refused for a taken username does not use up the code', async () => {
    const taken = username()
    expect((await t.request('POST', '/api/v1/auth/register', { body: { username: taken, email: email('owner'), password: PASSWORD } })).status).toBe(201)
    const to = email('retry')
    const code = await registerCode(to)
    const conflict = await t.request('POST', '/api/v1/auth/verify-register', { body: { username: taken.toUpperCase(), email: to, password: PASSWORD, code } })
    expectProblem(conflict, 409, 'CONFLICT')
    expect(await usersWithEmail(t, to)).toHaveLength(0)
    // the person picks another name with the same code, as the 409 invites them to
    const res = await t.request('POST', '/api/v1/auth/verify-register', { body: { username: username(), email: to, password: PASSWORD, code } })
    expect(res.status).toBe(201)
    expect(res.body.user.email_verified).toBe(true)
  })

  test('password reset: code by mail, 204, every session revoked, only the new password works', async () => {
    const to = email('reset')
    const name = username()
    const newPassword = 'a brand new password 2'
    const reg = await t.request('POST', '/api/v1/auth/register', { body: { username: name, email: to, password: PASSWORD } })
    expect(reg.status).toBe(201)
    const sessions = [reg.body.tokens]
    for (const body of [{ username: name, password: PASSWORD }, { email: to, password: PASSWORD }]) {
      const login = await t.request('POST', '/api/v1/auth/login', { body })
      expect(login.status).toBe(200)
      sessions.push(login.body.tokens)
    }
    for (const s of sessions) expect((await t.request('GET', '/api/v1/auth/me', { token: s.access_token })).status).toBe(200)

    const sent = await t.request('POST', '/api/v1/auth/password/send-code', { body: { email: to } })
    expect(sent.status).toBe(200)
    expect(sent.body).toEqual({ email: to, code_type: 'password_reset', cooldown_seconds: 60, remaining_daily_sends: 9, expire_minutes: 10 })
    const mail = await waitForMail(to)
    expect(mail.subject).toBe('Your Hearth password reset code')
    expect(mail.text).toContain('Use this code to reset your password:')
    const code = codeOf(mail)
    expect(sent.text).not.toContain(code)

    // a register check does not accept a reset code; a reset check does
    expectProblem(await verifyCode(to, code, 'register'), 422, 'VALIDATION_ERROR')
    expect((await verifyCode(to, code, 'password_reset')).status).toBe(200)

    // a wrong code changes nothing
    expectProblem(await t.request('POST', '/api/v1/auth/password/reset', { body: { email: to, code: wrong(code), new_password: newPassword } }), 422, 'VALIDATION_ERROR')
    expect((await t.request('GET', '/api/v1/auth/me', { token: sessions[0]!.access_token })).status).toBe(200)

    const reset = await t.request('POST', '/api/v1/auth/password/reset', { body: { email: to, code, new_password: newPassword } })
    expect(reset.status).toBe(204)
    expect(reset.text).toBe('')

    for (const s of sessions) {
      expectProblem(await t.request('GET', '/api/v1/auth/me', { token: s.access_token }), 401)
      expectProblem(await t.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: s.refresh_token } }), 401)
    }

    // the code is used up
    expectProblem(await t.request('POST', '/api/v1/auth/password/reset', { body: { email: to, code, new_password: 'yet another password 3' } }), 422, 'VALIDATION_ERROR')

    expectProblem(await t.request('POST', '/api/v1/auth/login', { body: { username: name, password: PASSWORD } }), 401, 'INVALID_CREDENTIALS')
    const login = await t.request('POST', '/api/v1/auth/login', { body: { username: name, password: newPassword } })
    expect(login.status).toBe(200)
    expect((await t.request('GET', '/api/v1/auth/me', { token: login.body.tokens.access_token })).status).toBe(200)

    const log = t.logText()
    expect(log).not.toContain(PASSWORD)
    expect(log).not.toContain(newPassword)
    expect(log).not.toContain(code)
  })

  test('password/send-code tells nothing about who is registered: same answer, no mail, same cooldown', async () => {
    const known = email('known')
    const unknown = email('unknown')
    expect((await t.request('POST', '/api/v1/auth/register', { body: { username: username(), email: known, password: PASSWORD } })).status).toBe(201)

    const a = await t.request('POST', '/api/v1/auth/password/send-code', { body: { email: known } })
    const b = await t.request('POST', '/api/v1/auth/password/send-code', { body: { email: unknown } })
    expect(a.status).toBe(200)
    expect(b.status).toBe(200)
    expect(Object.keys(b.body).sort()).toEqual(Object.keys(a.body).sort())
    const { email: ea, ...restA } = a.body
    const { email: eb, ...restB } = b.body
    expect(ea).toBe(known)
    expect(eb).toBe(unknown)
    expect(restB).toEqual(restA)
    expect(b.headers.get('content-type')).toBe(a.headers.get('content-type'))

    await waitForMail(known)
    await Bun.sleep(500)
    expect(mailsTo(unknown)).toHaveLength(0)

    // a made-up code for the unknown address is refused like any wrong code
    expectProblem(await t.request('POST', '/api/v1/auth/password/reset', { body: { email: unknown, code: '000000', new_password: 'whatever password 4' } }), 422, 'VALIDATION_ERROR')

    const a2 = await t.request('POST', '/api/v1/auth/password/send-code', { body: { email: known } })
    const b2 = await t.request('POST', '/api/v1/auth/password/send-code', { body: { email: unknown } })
    expectProblem(a2, 429, 'RATE_LIMITED')
    expectProblem(b2, 429, 'RATE_LIMITED')
    expect(b2.headers.get('retry-after')).not.toBeNull()
    expect(a2.headers.get('retry-after')).not.toBeNull()
    expect(b2.body.code).toBe(a2.body.code)
    expect(Object.keys(b2.body).sort()).toEqual(Object.keys(a2.body).sort())
    await Bun.sleep(200)
    expect(mailsTo(known)).toHaveLength(1)
    expect(mailsTo(unknown)).toHaveLength(0)
  })

  test('no mail for a password reset of a disabled account, same answer', async () => {
    const to = email('disabled')
    const reg = await t.request('POST', '/api/v1/auth/register', { body: { username: username(), email: to, password: PASSWORD } })
    expect(reg.status).toBe(201)
    const { db, t: tables } = t.deps.database
    await db.update(tables.users).set({ isActive: false }).where(eq(tables.users.id, reg.body.user.id))
    const res = await t.request('POST', '/api/v1/auth/password/send-code', { body: { email: to } })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ email: to, code_type: 'password_reset', cooldown_seconds: 60, remaining_daily_sends: 9, expire_minutes: 10 })
    await Bun.sleep(400)
    expect(mailsTo(to)).toHaveLength(0)
  })
})

eachDialect('email codes without SMTP', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  /** logger lines are written on the next tick */
  async function logLine(msg: string, to: string, codeType: 'register' | 'password_reset', timeoutMs = 2000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const line = t.logs.find((l) => l.msg === msg && l.to === to && l.code_type === codeType)
      if (line) return line
      await Bun.sleep(10)
    }
    throw new Error(`no log line ${JSON.stringify(msg)} for ${to} (${codeType})`)
  }

  test('the code goes to the log; the whole flow works with it and no password is ever logged', async () => {
    const to = `nosmtp-${dialect}-${uniq()}@example.com`
    const name = `u_${uniq()}`
    const password = `pw-${uniq()}-register`
    const newPassword = `pw-${uniq()}-reset`

    const sent = await t.request('POST', '/api/v1/auth/send-code', { body: { email: to, code_type: 'register' } })
    expect(sent.status).toBe(200)
    const line = await logLine('mail not sent: HEARTH_SMTP_URL is not set', to, 'register')
    expect(line).toMatchObject({ level: 'info', to, code_type: 'register', subject: 'Your Hearth sign-up code' })
    const code = line.code
    expect(typeof code).toBe('string')
    expect(code as string).toMatch(/^\d{6}$/)
    expect(sent.text).not.toContain(code as string)
    expect(received.some((m) => m.to.includes(to))).toBe(false)

    expect((await t.request('POST', '/api/v1/auth/verify-code', { body: { email: to, code, code_type: 'register' } })).status).toBe(200)
    const reg = await t.request('POST', '/api/v1/auth/verify-register', { body: { username: name, email: to, password, code } })
    expect(reg.status).toBe(201)
    expect(reg.body.user.email_verified).toBe(true)

    // password reset through the logged code
    await backdate(t, to)
    expect((await t.request('POST', '/api/v1/auth/password/send-code', { body: { email: to } })).status).toBe(200)
    const resetLine = await logLine('mail not sent: HEARTH_SMTP_URL is not set', to, 'password_reset')
    expect(resetLine.subject).toBe('Your Hearth password reset code')
    const resetCode = resetLine.code as string
    expect(resetCode).toMatch(/^\d{6}$/)
    expect((await t.request('POST', '/api/v1/auth/password/reset', { body: { email: to, code: resetCode, new_password: newPassword } })).status).toBe(204)
    expectProblem(await t.request('POST', '/api/v1/auth/login', { body: { username: name, password } }), 401, 'INVALID_CREDENTIALS')
    expect((await t.request('POST', '/api/v1/auth/login', { body: { email: to, password: newPassword } })).status).toBe(200)

    // a failed attempt with a wrong password in a well-formed body
    expectProblem(await t.request('POST', '/api/v1/auth/login', { body: { username: name, password: `${password}-wrong` } }), 401, 'INVALID_CREDENTIALS')

    await Bun.sleep(20)
    const log = t.logText()
    for (const secret of [password, newPassword, `${password}-wrong`]) expect(log).not.toContain(secret)
    expect(log).not.toContain(reg.body.tokens.refresh_token)
  })
})

eachDialect('registration mode verify', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect, { HEARTH_REGISTRATION: 'verify', HEARTH_SMTP_URL: smtpUrl })
    // the mode is about everyone after the admin (the first admin's setup token passes any mode)
    await createAdmin(t)
  })
  afterAll(() => t.close())

  test('POST /register is 403; send-code + verify-register is 201', async () => {
    const to = `mode-${dialect}-${uniq()}@example.com`
    const name = `u_${uniq()}`
    const direct = await t.request('POST', '/api/v1/auth/register', { body: { username: name, email: to, password: PASSWORD } })
    expectProblem(direct, 403, 'FORBIDDEN')
    expect(await usersWithEmail(t, to)).toHaveLength(0)

    const sent = await t.request('POST', '/api/v1/auth/send-code', { body: { email: to, code_type: 'register' } })
    expect(sent.status).toBe(200)
    const code = codeOf(await waitForMail(to))
    const res = await t.request('POST', '/api/v1/auth/verify-register', { body: { username: name, email: to, password: PASSWORD, code } })
    expect(res.status).toBe(201)
    expect(res.body.user).toMatchObject({ username: name, email: to, email_verified: true })
    expect(res.headers.get('location')).toBe('/api/v1/users/me')
  })
})

eachDialect('registration mode closed', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect, { HEARTH_REGISTRATION: 'closed', HEARTH_SMTP_URL: smtpUrl })
    // the mode is about everyone after the admin (the first admin's setup token passes any mode)
    await createAdmin(t)
  })
  afterAll(() => t.close())

  test('verify-register is 403 even with a right code, and the code is not used up', async () => {
    const to = `closed-${dialect}-${uniq()}@example.com`
    expect((await t.request('POST', '/api/v1/auth/send-code', { body: { email: to, code_type: 'register' } })).status).toBe(200)
    const code = codeOf(await waitForMail(to))
    expectProblem(await t.request('POST', '/api/v1/auth/verify-register', { body: { username: `u_${uniq()}`, email: to, password: PASSWORD, code } }), 403, 'FORBIDDEN')
    expect(await usersWithEmail(t, to)).toHaveLength(0)
    expect((await t.request('POST', '/api/v1/auth/verify-code', { body: { email: to, code, code_type: 'register' } })).status).toBe(200)
  })
})
