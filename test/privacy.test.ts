/**
 * Privacy settings (GET|PUT /api/v1/users/me/privacy) and the history retention sweep: per user,
 * conversations without activity and finished tasks older than `history_retention_days` go, with
 * their messages, steps, shares and plans; active ones, other users' and files stay. On Postgres
 * two instances sweeping at once: one deletes, the other skips.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq, inArray } from 'drizzle-orm'
import { register, setupCallers, type Account } from './helpers/accounts.ts'
import { createSecondInstance, createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { DIALECTS, eachDialect } from './helpers/db.ts'
import { scenarios, type Scenario, type ScenarioContext } from './helpers/scenarios.ts'

const PATH = '/api/v1/users/me/privacy'
const DAY = 86_400_000
interface Settings {
  history_retention_days: number | null
  memory_enabled: boolean
  usage_visible_to_group_admins: boolean
}
const DEFAULTS: Settings = { history_retention_days: null, memory_enabled: false, usage_visible_to_group_admins: false }
/** the sweep never runs by itself in these suites unless a test asks */
const NO_TIMER = { firstDelayMs: 3_600_000 }

type Credential = 'guest' | 'user' | 'other' | 'admin' | 'api_key' | 'gateway_key'
interface Ctx extends ScenarioContext<Credential> {
  user: Account
}

const settings = (r: TestResponse) => r.body as Settings

async function createKey(t: TestApp, token: string, scopes: string[]) {
  const res = await t.request('POST', '/api/v1/api-keys', { token, body: { name: 'k', scopes } })
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 201 })
  return res.body.key as string
}

async function usersRow(t: TestApp, id: string) {
  const { db, t: tables } = t.deps.database
  return (await db.select().from(tables.users).where(eq(tables.users.id, id)))[0]!
}

eachDialect('privacy settings: who may do what', (dialect) => {
  let ctx: Ctx
  beforeAll(async () => {
    const t = await createTestApp(dialect, {}, { retentionSweep: NO_TIMER })
    const { accounts } = await setupCallers(t)
    ctx = {
      t,
      user: accounts.user,
      tokens: { user: accounts.user.access, other: accounts.other.access, admin: accounts.admin.access, api_key: await createKey(t, accounts.admin.access, ['api']), gateway_key: await createKey(t, accounts.user.access, ['gateway']) },
    }
  })
  afterAll(() => ctx.t.close())

  const put = (as: Credential, body: unknown, status: number, expected?: Partial<Settings>, name = status === 200 ? 'sets the fields sent, keeps the others' : 'refused'): Scenario<Ctx, Credential> => ({
    name,
    as,
    method: 'PUT',
    path: PATH,
    body,
    status,
    ...(status === 422 ? { code: 'VALIDATION_ERROR' } : {}),
    check: expected && ((r) => expect(settings(r)).toEqual({ ...DEFAULTS, ...expected })),
  })
  const get = (as: Credential, expected: Partial<Settings>, name = 'reads their own settings'): Scenario<Ctx, Credential> => ({ name, as, method: 'GET', path: PATH, status: 200, check: (r) => expect(settings(r)).toEqual({ ...DEFAULTS, ...expected }) })

  scenarios<Ctx, Credential>(() => ctx, [
    { name: 'needs credentials', as: 'guest', method: 'GET', path: PATH, status: 401, code: 'UNAUTHORIZED' },
    { name: 'needs credentials', as: 'guest', method: 'PUT', path: PATH, body: { history_retention_days: 1 }, status: 401, code: 'UNAUTHORIZED' },
    { name: 'a key without the `api` scope: 403', as: 'gateway_key', method: 'GET', path: PATH, status: 403, code: 'FORBIDDEN' },
    { name: 'a key without the `api` scope: 403', as: 'gateway_key', method: 'PUT', path: PATH, body: { history_retention_days: 1 }, status: 403, code: 'FORBIDDEN' },
    get('user', {}, 'defaults: keep everything, memory off, usage hidden'),
    put('user', { history_retention_days: 30 }, 200, { history_retention_days: 30 }),
    put('user', { memory_enabled: true }, 200, { history_retention_days: 30, memory_enabled: true }),
    put('user', {}, 200, { history_retention_days: 30, memory_enabled: true }, 'an empty body changes nothing'),
    {
      name: 'memory_enabled is the preference of the same name',
      as: 'user',
      method: 'GET',
      path: '/api/v1/users/me/preferences',
      status: 200,
      check: async (r, c) => {
        expect(r.body.memory_enabled).toBe(true)
        const prefs = await c.t.request('PUT', '/api/v1/users/me/preferences', { token: c.user.access, body: { memory_enabled: false } })
        expect(prefs.status).toBe(200)
        expect(settings(await c.t.request('GET', PATH, { token: c.user.access }))).toEqual({ ...DEFAULTS, history_retention_days: 30 })
      },
    },
    put('user', { history_retention_days: null, usage_visible_to_group_admins: true, memory_enabled: true }, 200, { usage_visible_to_group_admins: true, memory_enabled: true }, 'null keeps everything again'),
    {
      name: 'stored in the users row (read by group admins) and the preferences, the profile cache follows',
      as: 'user',
      method: 'GET',
      path: '/api/v1/users/me',
      status: 200,
      check: async (r, c) => {
        expect(r.body.preferences.memory_enabled).toBe(true)
        const row = await usersRow(c.t, c.user.id)
        expect({ days: row.historyRetentionDays, visible: row.usageVisibleToGroupAdmins, memory: (row.preferences as { memory_enabled: boolean }).memory_enabled }).toEqual({ days: null, visible: true, memory: true })
      },
    },
    put('user', { history_retention_days: 3650 }, 200, { history_retention_days: 3650, usage_visible_to_group_admins: true, memory_enabled: true }, 'the most: 3650'),
    put('user', { history_retention_days: 1 }, 200, { history_retention_days: 1, usage_visible_to_group_admins: true, memory_enabled: true }, 'the least: 1'),
    ...([0, -1, 3651, 1.5, '30', true] as const).map((days) => put('user', { history_retention_days: days }, 422, undefined, `history_retention_days ${JSON.stringify(days)}: 422`)),
    put('user', { memory_enabled: 'yes' }, 422, undefined, 'memory_enabled must be a boolean'),
    put('user', { usage_visible_to_group_admins: null }, 422, undefined, 'usage_visible_to_group_admins must be a boolean'),
    put('user', { history_retention_days: 9999, memory_enabled: false }, 422, undefined, 'a refused request saves nothing of itself'),
    get('user', { history_retention_days: 1, usage_visible_to_group_admins: true, memory_enabled: true }, 'nothing refused was saved'),
    get('other', {}, "another user's settings are their own"),
    get('admin', {}, "an admin's settings are their own too"),
    put('admin', { history_retention_days: 7 }, 200, { history_retention_days: 7 }),
    get('api_key', { history_retention_days: 7 }, 'an `api` key reads its owner’s settings'),
    put('api_key', { usage_visible_to_group_admins: true }, 200, { history_retention_days: 7, usage_visible_to_group_admins: true }, 'an `api` key changes them'),
    get('other', {}, 'still untouched by the others'),
  ])
})

// -------------------------------------------------------------------------------------------------

/** What the sweep must delete and keep, made straight in the tables with ages relative to `now`. */
interface World {
  now: Date
  /** ids the sweep must delete, and must keep */
  gone: { conversations: string[]; tasks: string[]; toolLogs: string[] }
  kept: { conversations: string[]; tasks: string[]; toolLogs: string[] }
  fileId: string
}

const ago = (now: Date, days: number) => new Date(now.getTime() - days * DAY)

async function setRetention(t: TestApp, a: Account, days: number | null) {
  const res = await t.request('PUT', PATH, { token: a.access, body: { history_retention_days: days } })
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 200, body: { history_retention_days: days } })
}

/**
 * Three users: keep (null), week (7 days), month (30 days). Each conversation has two messages
 * (and some a share); each task a step (and a plan task its plans row, one a task share).
 */
async function buildWorld(t: TestApp, now: Date): Promise<World> {
  const { db, t: tables } = t.deps.database
  const [keep, week, month] = [await register(t, 'keep'), await register(t, 'week'), await register(t, 'month')]
  await setRetention(t, keep, null)
  await setRetention(t, week, 7)
  await setRetention(t, month, 30)
  const world: World = { now, gone: { conversations: [], tasks: [], toolLogs: [] }, kept: { conversations: [], tasks: [], toolLogs: [] }, fileId: '' }

  async function conversation(owner: Account, ageDays: number, fate: 'gone' | 'kept', opts: { streaming?: boolean; share?: boolean } = {}) {
    const at = ago(now, ageDays)
    const [c] = await db.insert(tables.conversations).values({ userId: owner.id, title: `${ageDays}d`, messageCount: 2, createdAt: ago(now, ageDays + 1), updatedAt: at }).returning()
    const [q] = await db.insert(tables.messages).values({ conversationId: c!.id, role: 'user', content: 'question', createdAt: at, updatedAt: at }).returning()
    await db.insert(tables.messages).values({ conversationId: c!.id, parentId: q!.id, role: 'assistant', content: 'answer', status: opts.streaming ? 'streaming' : 'complete', createdAt: at, updatedAt: at })
    if (opts.share) await db.insert(tables.shares).values({ conversationId: c!.id, tokenHash: `hash-${c!.id}`, snapshot: { title: null, messages: [] } })
    world[fate].conversations.push(c!.id)
  }

  type Status = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled'
  async function task(owner: Account, status: Status, created: number, finished: number | null, fate: 'gone' | 'kept', opts: { plan?: boolean; share?: boolean } = {}) {
    const [k] = await db
      .insert(tables.tasks)
      .values({ userId: owner.id, kind: opts.plan ? 'plan' : 'agent', status, createdAt: ago(now, created), updatedAt: ago(now, finished ?? created), finishedAt: finished === null ? null : ago(now, finished), lastSeq: 1 })
      .returning()
    await db.insert(tables.taskSteps).values({ taskId: k!.id, seq: 1, step: 'task_started', data: {}, timestamp: ago(now, created) })
    if (opts.plan) await db.insert(tables.plans).values({ userId: owner.id, type: 'outline', taskId: k!.id, input: {} })
    if (opts.share) await db.insert(tables.taskShares).values({ taskId: k!.id, tokenHash: `hash-${k!.id}`, snapshot: {} })
    world[fate].tasks.push(k!.id)
  }

  async function toolLog(owner: Account, ageDays: number, fate: 'gone' | 'kept') {
    const [l] = await db.insert(tables.toolLogs).values({ userId: owner.id, tool: 'http_fetch', arguments: { url: 'https://example.com' }, resultPreview: 'private page text', source: 'chat', createdAt: ago(now, ageDays) }).returning()
    world[fate].toolLogs.push(l!.id)
  }

  // keep: nothing goes, however old
  await conversation(keep, 400, 'kept')
  await task(keep, 'completed', 401, 400, 'kept')
  await toolLog(keep, 400, 'kept')
  // week: older than 7 days goes (7 days exactly is not older)
  await conversation(week, 1, 'kept')
  await conversation(week, 6, 'kept')
  await conversation(week, 7, 'kept')
  await conversation(week, 8, 'gone', { share: true })
  await conversation(week, 29, 'gone')
  await conversation(week, 31, 'gone')
  await conversation(week, 400, 'gone')
  await conversation(week, 40, 'kept', { streaming: true })
  await task(week, 'completed', 9, 8, 'gone', { share: true })
  await task(week, 'failed', 40, 6, 'kept')
  await task(week, 'cancelled', 10, null, 'gone')
  await task(week, 'completed', 10, 9, 'gone', { plan: true })
  await task(week, 'pending', 40, null, 'kept')
  await task(week, 'running', 40, null, 'kept')
  await task(week, 'completed', 3, 2, 'kept')
  await toolLog(week, 8, 'gone')
  await toolLog(week, 400, 'gone')
  await toolLog(week, 6, 'kept')
  // month
  await conversation(month, 8, 'kept')
  await conversation(month, 29, 'kept')
  await conversation(month, 31, 'gone')
  await conversation(month, 400, 'gone')
  await task(month, 'completed', 9, 8, 'kept')
  await task(month, 'failed', 32, 31, 'gone')
  await toolLog(month, 8, 'kept')
  await toolLog(month, 31, 'gone')
  // a file of the week user, old: files are the user's, not the conversations'
  const [f] = await db.insert(tables.files).values({ userId: week.id, purpose: 'attachment', fileName: 'old.txt', fileSize: 1, contentType: 'text/plain', sha256: 'x', storageKey: 'nowhere', createdAt: ago(now, 400) }).returning()
  world.fileId = f!.id
  return world
}

/** which of `ids` are still in the tables, and how many rows of theirs each dependent table has */
async function remaining(t: TestApp, ids: { conversations: string[]; tasks: string[]; toolLogs: string[] }) {
  const { db, t: tables } = t.deps.database
  const none = ['-']
  const conversations = ids.conversations.length ? ids.conversations : none
  const tasks = ids.tasks.length ? ids.tasks : none
  const rows = async (q: Promise<unknown[]>) => (await q).length
  return {
    conversations: (await db.select({ id: tables.conversations.id }).from(tables.conversations).where(inArray(tables.conversations.id, conversations))).map((r) => r.id).sort(),
    messages: await rows(db.select().from(tables.messages).where(inArray(tables.messages.conversationId, conversations))),
    shares: await rows(db.select().from(tables.shares).where(inArray(tables.shares.conversationId, conversations))),
    tasks: (await db.select({ id: tables.tasks.id }).from(tables.tasks).where(inArray(tables.tasks.id, tasks))).map((r) => r.id).sort(),
    steps: await rows(db.select().from(tables.taskSteps).where(inArray(tables.taskSteps.taskId, tasks))),
    taskShares: await rows(db.select().from(tables.taskShares).where(inArray(tables.taskShares.taskId, tasks))),
    plans: await rows(db.select().from(tables.plans).where(inArray(tables.plans.taskId, tasks))),
    toolLogs: (await db.select({ id: tables.toolLogs.id }).from(tables.toolLogs).where(inArray(tables.toolLogs.id, ids.toolLogs.length ? ids.toolLogs : none))).map((r) => r.id).sort(),
  }
}

async function expectSwept(t: TestApp, world: World) {
  const gone = await remaining(t, world.gone)
  expect(gone).toEqual({ conversations: [], messages: 0, shares: 0, tasks: [], steps: 0, taskShares: 0, plans: 0, toolLogs: [] })
  const kept = await remaining(t, world.kept)
  expect({ conversations: kept.conversations, tasks: kept.tasks, toolLogs: kept.toolLogs, messages: kept.messages, steps: kept.steps }).toEqual({
    conversations: [...world.kept.conversations].sort(),
    tasks: [...world.kept.tasks].sort(),
    toolLogs: [...world.kept.toolLogs].sort(),
    messages: world.kept.conversations.length * 2,
    steps: world.kept.tasks.length,
  })
  const { db, t: tables } = t.deps.database
  expect(await db.select({ id: tables.files.id }).from(tables.files).where(eq(tables.files.id, world.fileId))).toEqual([{ id: world.fileId }])
}

const EXPECTED = { conversations: 6, tasks: 4, toolLogs: 3 }

eachDialect('history retention sweep', (dialect) => {
  let t: TestApp
  // two rows per statement, so a user's deletions take several batches
  beforeAll(async () => (t = await createTestApp(dialect, {}, { retentionSweep: { ...NO_TIMER, batchSize: 2 } })))
  afterAll(() => t.close())

  test('deletes exactly what is older than each user’s retention, with what it owns', async () => {
    const world = await buildWorld(t, new Date())
    expect([world.gone.conversations.length, world.gone.tasks.length, world.gone.toolLogs.length]).toEqual([EXPECTED.conversations, EXPECTED.tasks, EXPECTED.toolLogs])
    const before = await remaining(t, world.gone)
    expect({ messages: before.messages, shares: before.shares, steps: before.steps, taskShares: before.taskShares, plans: before.plans }).toEqual({ messages: 12, shares: 1, steps: 4, taskShares: 1, plans: 1 })

    expect(await t.deps.services.privacy.sweep(world.now)).toEqual({ ...EXPECTED, skipped: false })
    await expectSwept(t, world)
    expect(t.logs.find((l) => l.msg === 'history retention sweep')).toMatchObject({ conversations: EXPECTED.conversations, tasks: EXPECTED.tasks, tool_logs: EXPECTED.toolLogs })

    // nothing more is older: a second sweep deletes nothing
    expect(await t.deps.services.privacy.sweep(world.now)).toEqual({ conversations: 0, tasks: 0, toolLogs: 0, skipped: false })
    await expectSwept(t, world)
  })

  test('a sweep already under way makes another skip at once', async () => {
    let enter!: () => void
    let release!: () => void
    const entered = new Promise<void>((r) => (enter = r))
    const gate = new Promise<void>((r) => (release = r))
    const held = await createTestApp(dialect, {}, { retentionSweep: { ...NO_TIMER, whileLocked: () => (enter(), gate) } })
    try {
      const first = held.deps.services.privacy.sweep()
      await entered
      expect(await held.deps.services.privacy.sweep()).toEqual({ conversations: 0, tasks: 0, toolLogs: 0, skipped: true })
      release()
      expect(await first).toEqual({ conversations: 0, tasks: 0, toolLogs: 0, skipped: false })
    } finally {
      release()
      await held.close()
    }
  })
})

eachDialect('history retention sweep on its timer', (dialect) => {
  test('runs soon after start and again after each interval', async () => {
    const t = await createTestApp(dialect, {}, { retentionSweep: { firstDelayMs: 20, intervalMs: 50 } })
    try {
      const { db, t: tables } = t.deps.database
      const a = await register(t, 'timer')
      await setRetention(t, a, 1)
      const old = async () => (await db.insert(tables.conversations).values({ userId: a.id, updatedAt: ago(new Date(), 2) }).returning())[0]!.id
      const gone = async (id: string) => {
        while ((await db.select().from(tables.conversations).where(eq(tables.conversations.id, id))).length) await Bun.sleep(10)
      }
      await gone(await old())
      // a later one goes too: the sweep keeps running
      await gone(await old())
    } finally {
      await t.close()
    }
  }, 15_000)
})

// -------------------------------------------------------------------------------------------------

for (const dialect of DIALECTS.filter((d) => d === 'postgres')) {
  describe('history retention sweep: two instances on one Postgres [postgres]', () => {
    test('sweeping at the same moment, one instance deletes and the other skips', async () => {
      let enter!: () => void
      let release!: () => void
      const entered = new Promise<void>((r) => (enter = r))
      const gate = new Promise<void>((r) => (release = r))
      let hold = true
      const a = await createTestApp(dialect, {}, { retentionSweep: { ...NO_TIMER, whileLocked: () => (hold ? (enter(), gate) : Promise.resolve()) } })
      const b = await createSecondInstance(a, {}, { retentionSweep: NO_TIMER })
      try {
        const world = await buildWorld(a, new Date())
        const first = a.deps.services.privacy.sweep(world.now)
        await entered
        // a holds the lock now, on its own connection: b does nothing and says so
        const second = await b.deps.services.privacy.sweep(world.now)
        expect(second).toEqual({ conversations: 0, tasks: 0, toolLogs: 0, skipped: true })
        release()
        const done = await first
        expect(done).toEqual({ ...EXPECTED, skipped: false })
        expect(done.conversations + second.conversations).toBe(EXPECTED.conversations)
        await expectSwept(b, world)
        // the lock is free again once a is done: b sweeps (and finds nothing left)
        hold = false
        expect(await b.deps.services.privacy.sweep(world.now)).toEqual({ conversations: 0, tasks: 0, toolLogs: 0, skipped: false })
      } finally {
        release()
        await b.close()
        await a.close()
      }
    }, 30_000)
  })
}
