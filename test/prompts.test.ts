/**
 * Prompts: each user's own versions of the built-in prompts of questions over SQL (`GET|PUT
 * /prompts`, `POST /prompts/reset`), invisible to everyone else, checked for their variables, and
 * rendered by `prompts.render` — which the chat's titles use too.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { PROMPTS, PROMPT_NAMES, variablesOf } from '../src/modules/prompts/defaults.ts'
import { MAX_PROMPT_LENGTH } from '../src/modules/prompts/service.ts'
import { problemsOf, renderTemplate, tokenize } from '../src/modules/prompts/template.ts'
import { register, setupCallers, useCallers, type CallersContext } from './helpers/accounts.ts'
import { createTestApp, type TestApp, type TestResponse } from './helpers/app.ts'
import { eachDialect } from './helpers/db.ts'
import { expectProblem } from './helpers/problems.ts'
import { scenarios, type Scenario } from './helpers/scenarios.ts'
import { startFakeLlm, type FakeLlm } from './fakes/llm.ts'

type Json = Record<string, any>
const byName = (r: TestResponse) => Object.fromEntries((r.body.items as Json[]).map((i) => [i.name, i]))
const SECRET = 'SECRET-house-style: answer like a pirate. {{question}}'

// -------------------------------------------------------------------------------------------------

eachDialect('prompts: who may do what', (dialect) => {
  let ctx: CallersContext
  beforeAll(async () => {
    const t = await createTestApp(dialect)
    ctx = await setupCallers(t)
    const res = await t.request('PUT', '/api/v1/prompts', { token: ctx.accounts.user.access, body: { sql_answer: SECRET } })
    expect(res.status).toBe(200)
  })
  afterAll(() => ctx.t.close())

  const endpoints: [string, string, unknown?][] = [
    ['GET', '/api/v1/prompts'],
    ['PUT', '/api/v1/prompts', { title: 'x {{question}}' }],
    ['POST', '/api/v1/prompts/reset'],
  ]
  const defaultsOnly = (r: TestResponse) => {
    const items = byName(r)
    expect(Object.keys(items)).toEqual([...PROMPT_NAMES])
    for (const name of PROMPT_NAMES) expect({ name, content: items[name].content, is_customized: items[name].is_customized }).toEqual({ name, content: PROMPTS[name].content, is_customized: false })
  }

  scenarios<CallersContext>(() => ctx, [
    ...endpoints.map(([method, path, body]): Scenario<CallersContext> => ({ name: 'needs credentials', as: 'guest', method, path, body, status: 401, code: 'UNAUTHORIZED', notContains: ['SECRET-house-style'] })),
    ...(['other', 'admin'] as const).flatMap((as): Scenario<CallersContext>[] => [
      { name: "sees the defaults, not another user's version", as, method: 'GET', path: '/api/v1/prompts', status: 200, notContains: ['SECRET-house-style'], check: defaultsOnly },
      { name: "resetting their own prompts leaves another user's alone", as, method: 'POST', path: '/api/v1/prompts/reset', status: 200, notContains: ['SECRET-house-style'], check: defaultsOnly },
      { name: 'a version of their own is theirs alone', as, method: 'PUT', path: '/api/v1/prompts', body: { title: `${as}'s titles: {{question}}` }, status: 200, notContains: ['SECRET-house-style'], check: (r) => expect(byName(r).title).toMatchObject({ content: `${as}'s titles: {{question}}`, is_customized: true }) },
    ]),
    {
      name: "the owner's version is unchanged by the others, and the others' are not the owner's",
      as: 'user',
      method: 'GET',
      path: '/api/v1/prompts',
      status: 200,
      check: (r) => {
        const items = byName(r)
        expect(items.sql_answer).toMatchObject({ content: SECRET, default_content: PROMPTS.sql_answer.content, is_customized: true })
        expect(items.title).toMatchObject({ content: PROMPTS.title.content, is_customized: false })
      },
    },
  ])

  test("render: each user's own template, or the default", async () => {
    const { prompts } = ctx.t.deps.services
    expect(await prompts.render(ctx.accounts.user.id, 'sql_answer', { question: 'How many?' })).toBe('SECRET-house-style: answer like a pirate. How many?')
    expect(await prompts.render(ctx.accounts.other.id, 'sql_answer', { question: 'How many?' })).not.toContain('SECRET')
    expect(await prompts.render(ctx.accounts.other.id, 'title', { question: 'Q?' })).toBe("other's titles: Q?")
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect('prompts', (dialect) => {
  let t: TestApp
  let ctx: CallersContext
  let user: string
  useCallers(dialect, (app, callers) => ((t = app), (ctx = callers), (user = callers.accounts.user.access)))

  const get = () => t.request('GET', '/api/v1/prompts', { token: user })
  const put = (body: unknown) => t.request('PUT', '/api/v1/prompts', { token: user, body })
  const reset = (body?: unknown) => t.request('POST', '/api/v1/prompts/reset', { token: user, ...(body === undefined ? {} : { body }) })
  const paths = (r: TestResponse) => (r.body.errors as { path: string }[]).map((e) => e.path)

  test('GET: the four prompts in order, with their defaults and variables', async () => {
    const res = await get()
    expect(res.status).toBe(200)
    expect(res.body.items.map((i: Json) => i.name)).toEqual(['sql_generation', 'sql_answer', 'chart', 'title'])
    for (const item of res.body.items as Json[]) {
      expect(Object.keys(item).sort()).toEqual(['content', 'default_content', 'description', 'is_customized', 'name', 'variables'])
      expect(item.content).toBe(item.default_content)
      expect(item.is_customized).toBe(false)
    }
    const items = byName(res)
    expect(items.sql_generation.variables).toEqual(['dialect', 'schema', 'question', 'language', 'today', 'row_limit', 'history', 'previous_sql', 'error'])
    expect(items.sql_answer.variables).toEqual(['question', 'sql', 'result', 'rows_count', 'truncated', 'language'])
    expect(items.chart.variables).toEqual(['columns', 'sample', 'question'])
    expect(items.title.variables).toEqual(['question', 'answer'])
    // every default uses only its own variables, with balanced sections
    for (const name of PROMPT_NAMES) expect({ name, problems: problemsOf(PROMPTS[name].content, variablesOf(name)) }).toEqual({ name, problems: [] })
  })

  test('PUT sets the prompts named, answers the list; GET reads them back; the others keep their defaults', async () => {
    const res = await put({ sql_generation: 'Write {{dialect}} SQL for: {{question}}\n{{schema}}', chart: 'Pick a chart for {{columns}}' })
    expect(res.status).toBe(200)
    const items = byName(res)
    expect(items.sql_generation).toMatchObject({ content: 'Write {{dialect}} SQL for: {{question}}\n{{schema}}', default_content: PROMPTS.sql_generation.content, is_customized: true })
    expect(items.chart).toMatchObject({ content: 'Pick a chart for {{columns}}', is_customized: true })
    expect(items.sql_answer.is_customized).toBe(false)
    expect((await get()).body).toEqual(res.body)
    // a second PUT replaces the content
    expect(byName(await put({ chart: 'Chart: {{ columns }} / {{sample}}' })).chart.content).toBe('Chart: {{ columns }} / {{sample}}')
    await reset()
  })

  test('PUT with the default content goes back to the default', async () => {
    await put({ title: 'Mine: {{question}}' })
    const res = await put({ title: PROMPTS.title.content })
    expect(byName(res).title).toMatchObject({ content: PROMPTS.title.content, is_customized: false })
  })

  const invalid: [string, unknown, string[], string][] = [
    ['an unknown prompt', { sql_magic: 'x' }, ['sql_magic'], 'Unknown prompt'],
    ['unknown prompts with a valid one (nothing is changed)', { title: 'T {{question}}', nope: 'x', also_nope: 'y' }, ['nope', 'also_nope'], 'Unknown prompts'],
    ['an empty prompt', { title: '' }, ['title'], 'must not be empty'],
    ['a blank prompt', { sql_answer: ' \n\t ' }, ['sql_answer'], 'must not be empty'],
    [`a prompt over ${MAX_PROMPT_LENGTH} characters`, { chart: 'x'.repeat(MAX_PROMPT_LENGTH + 1) }, ['chart'], ''],
    ['an unknown variable', { title: 'Title for {{question}} in {{langauge}}' }, ['title'], 'unknown variable {{langauge}}'],
    ["another prompt's variable", { chart: 'Chart for {{sql}}' }, ['chart'], 'unknown variable {{sql}}'],
    ['an unclosed section', { sql_generation: '{{#error}}Fix: {{error}}' }, ['sql_generation'], '{{#error}} is never closed'],
    ['a stray close', { sql_generation: '{{question}}{{/error}}' }, ['sql_generation'], 'closes a section that was not opened'],
    ['crossed sections', { sql_generation: '{{#error}}{{#history}}{{/error}}{{/history}}' }, ['sql_generation'], 'sections must close in order'],
    ['problems in two prompts: each named', { title: '{{nope}}', chart: '' }, ['title', 'chart'], '2 problems'],
    ['a number as content', { title: 42 }, ['title'], ''],
    ['null as content', { title: null }, ['title'], ''],
    ['an empty body', {}, [''], 'at least one prompt'],
  ]
  for (const [name, body, expectedPaths, detail] of invalid) {
    test(`PUT: ${name} → 422 naming it, nothing changed`, async () => {
      const before = (await get()).body
      const res = await put(body)
      expectProblem(res, 422, 'VALIDATION_ERROR')
      expect(paths(res)).toEqual(expectedPaths)
      expect(res.body.detail).toContain(detail)
      expect((await get()).body).toEqual(before)
    })
  }

  test('PUT: a JSON array or a string is not a body of prompts → 422; malformed JSON → 400', async () => {
    expectProblem(await put(['title']), 422, 'VALIDATION_ERROR')
    expectProblem(await put('title'), 422, 'VALIDATION_ERROR')
    expectProblem(await t.request('PUT', '/api/v1/prompts', { token: user, raw: '{"title":', headers: { 'content-type': 'application/json' } }), 400, 'VALIDATION_ERROR')
  })

  test(`PUT: exactly ${MAX_PROMPT_LENGTH} characters is allowed; a {{ that starts no variable is plain text`, async () => {
    const long = `{{question}}${'y'.repeat(MAX_PROMPT_LENGTH - 12)}`
    expect(byName(await put({ sql_answer: long })).sql_answer.content).toHaveLength(MAX_PROMPT_LENGTH)
    const json = 'Reply as JSON like {{"type": "bar"}} or {{ not a variable! }} for {{columns}}'
    expect(byName(await put({ chart: json })).chart.content).toBe(json)
    await reset()
  })

  test('reset: the names given, or all of them without a body or without names', async () => {
    await put({ sql_generation: 'A {{question}}', sql_answer: 'B {{question}}', title: 'C {{question}}' })
    let items = byName(await reset({ names: ['sql_answer', 'title'] }))
    expect(PROMPT_NAMES.map((n) => items[n].is_customized)).toEqual([true, false, false, false])
    await put({ title: 'C {{question}}' })
    items = byName(await reset())
    expect(PROMPT_NAMES.map((n) => items[n].is_customized)).toEqual([false, false, false, false])
    await put({ title: 'C {{question}}' })
    const res = await reset({})
    expect(res.status).toBe(200)
    expect(byName(res).title.is_customized).toBe(false)
    // resetting what is already the default is fine
    expect((await reset({ names: ['chart'] })).status).toBe(200)
  })

  test('reset: unknown names → 422 naming them, nothing reset; an empty list → 422', async () => {
    await put({ title: 'C {{question}}' })
    const res = await reset({ names: ['title', 'bogus'] })
    expectProblem(res, 422, 'VALIDATION_ERROR')
    expect(paths(res)).toEqual(['bogus'])
    expect(byName(await get()).title.is_customized).toBe(true)
    expectProblem(await reset({ names: [] }), 422, 'VALIDATION_ERROR')
    expectProblem(await reset({ names: 'title' }), 422, 'VALIDATION_ERROR')
    await reset()
  })

  test('the service checks too (for callers other than the routes)', async () => {
    const { prompts } = t.deps.services
    await expect(prompts.update(ctx.accounts.user.id, { title: '   ' })).rejects.toMatchObject({ status: 422, code: 'VALIDATION_ERROR' })
    await expect(prompts.update(ctx.accounts.user.id, { title: 'x'.repeat(MAX_PROMPT_LENGTH + 1) })).rejects.toMatchObject({ status: 422 })
    await expect(prompts.update(ctx.accounts.user.id, { nope: 'x' })).rejects.toMatchObject({ status: 422, errors: [{ path: 'nope' }] })
    await expect(prompts.reset(ctx.accounts.user.id, ['nope'])).rejects.toMatchObject({ status: 422 })
  })

  test('render: the default prompts with values, sections shown only with a value', async () => {
    const { prompts } = t.deps.services
    const first = await prompts.render(ctx.accounts.user.id, 'sql_generation', { dialect: 'PostgreSQL', schema: 'orders(id int, total numeric)', question: 'Total sales?', row_limit: 1000, today: '2026-01-15' })
    expect(first).toContain('You are an expert data analyst who writes PostgreSQL SQL.')
    expect(first).toContain('orders(id int, total numeric)')
    expect(first).toContain('Question: Total sales?')
    expect(first).toContain('LIMIT 1000')
    expect(first).toContain('Today is 2026-01-15')
    expect(first).not.toContain('previous query failed')
    expect(first).not.toContain('Earlier in this conversation')
    expect(first).not.toContain('{{')
    const retry = await prompts.render(ctx.accounts.user.id, 'sql_generation', { dialect: 'SQLite', schema: 's', question: 'q', previous_sql: 'SELECT nope FROM t', error: 'no such column: nope' })
    expect(retry).toContain('Your previous query failed.')
    expect(retry).toContain('SELECT nope FROM t')
    expect(retry).toContain('The database answered: no such column: nope')
    expect(retry).not.toContain('Today is')
    const answer = await prompts.render(ctx.accounts.user.id, 'sql_answer', { question: 'q', sql: 'SELECT 1', result: '| n |\n| 1 |', rows_count: 1, language: 'French', truncated: false })
    expect(answer).toContain('Answer in French')
    expect(answer).toContain('(rows: 1)')
    expect(answer).not.toContain('only the first rows')
    const noLanguage = await prompts.render(ctx.accounts.user.id, 'sql_answer', { question: 'q', sql: 's', result: 'r', rows_count: 5, truncated: true })
    expect(noLanguage).toContain('in the language of the question')
    expect(noLanguage).toContain('only the first rows were read')
  })

  test("render: a user's template; values are put in once, and unknown ones are ignored", async () => {
    const { prompts } = t.deps.services
    await put({ title: 'Q={{question}} A={{answer}}{{#answer}}!{{/answer}}' })
    expect(await prompts.render(ctx.accounts.user.id, 'title', { question: '{{answer}}', answer: '' })).toBe('Q={{answer}} A=')
    expect(await prompts.render(ctx.accounts.user.id, 'title', { question: 'x', answer: 'y', sql: 'ignored' } as never)).toBe('Q=x A=y!')
    await reset()
  })
})

// -------------------------------------------------------------------------------------------------

eachDialect("prompts: the chat's titles use the user's title prompt", (dialect) => {
  let t: TestApp
  let fake: FakeLlm
  beforeAll(async () => {
    fake = await startFakeLlm()
    t = await createTestApp(dialect)
  })
  afterAll(async () => {
    await t.close()
    await fake.stop()
  })

  test("a user's title prompt reaches the model; another user's titles keep the default", async () => {
    const admin = await register(t, 'admin')
    const a = await register(t, 'titler')
    const b = await register(t, 'plain')
    const provider = await t.request('POST', '/api/v1/providers', { token: admin.access, body: { name: 'fake', type: 'openai_compatible', base_url: `${fake.url}/v1`, api_key: 'k', scope: 'global' } })
    expect(provider.status).toBe(201)
    expect((await t.request('POST', '/api/v1/models', { token: admin.access, body: { provider_id: provider.body.id, name: 'quick', model_id: 'fake:tokens=3', is_default: true } })).status).toBe(201)
    expect((await t.request('PUT', '/api/v1/prompts', { token: a.access, body: { title: 'TITLE-MARKER name this: {{question}} / {{answer}}' } })).status).toBe(200)

    const titleRequests = () => fake.requests.map((r) => JSON.stringify(r.body)).filter((s) => s.includes('TITLE-MARKER') || s.includes('Write a title'))
    for (const [who, question] of [[a, 'How many orders in May?'], [b, 'Which shop sold most?']] as const) {
      const c = await t.request('POST', '/api/v1/conversations', { token: who.access, body: {} })
      const sent = await t.request('POST', `/api/v1/conversations/${c.body.id}/messages`, { token: who.access, body: { content: question }, headers: { accept: 'text/event-stream' } })
      expect(sent.status).toBe(200)
      expect(sent.text).toContain('event: title')
    }
    const [mine, theirs] = titleRequests()
    expect(mine).toContain('TITLE-MARKER name this: How many orders in May? / tok0 tok1 tok2')
    expect(theirs).toContain('Write a title of at most six words')
    expect(theirs).toContain('User: Which shop sold most?')
    expect(theirs).not.toContain('TITLE-MARKER')
  }, 20_000)
})

// -------------------------------------------------------------------------------------------------

describe('the template language', () => {
  test('tokenize: variables, sections, plain text (spaces in braces allowed)', () => {
    expect(tokenize('a {{ x }} {{#y}}b{{/y}}{{^z}}c{{/z}} {{ not one }} {{"json": 1}}')).toEqual([
      { kind: 'text', text: 'a ' },
      { kind: 'var', name: 'x' },
      { kind: 'text', text: ' ' },
      { kind: 'open', name: 'y', inverted: false },
      { kind: 'text', text: 'b' },
      { kind: 'close', name: 'y' },
      { kind: 'open', name: 'z', inverted: true },
      { kind: 'text', text: 'c' },
      { kind: 'close', name: 'z' },
      { kind: 'text', text: ' {{ not one }} {{"json": 1}}' },
    ])
  })

  const rows: [string, Record<string, unknown>, string][] = [
    ['Hello {{name}}!', { name: 'Ada' }, 'Hello Ada!'],
    ['Hello {{name}}!', {}, 'Hello !'],
    ['{{#a}}A={{a}}{{/a}}{{^a}}no a{{/a}}', { a: 'x' }, 'A=x'],
    ['{{#a}}A={{a}}{{/a}}{{^a}}no a{{/a}}', { a: '' }, 'no a'],
    ['{{#a}}A{{/a}}', { a: 0 }, 'A'],
    ['{{#a}}A{{/a}}', { a: false }, ''],
    ['{{#a}}A{{/a}}', { a: true }, 'A'],
    ['{{#a}}[{{#b}}B{{/b}}]{{/a}}', { a: '1', b: '' }, '['.concat(']')],
    ['{{#a}}[{{#b}}B{{/b}}]{{/a}}', { a: '', b: '1' }, ''],
    ['x\n\n\n\n{{#a}}y{{/a}}\n\n\nz', {}, 'x\n\nz'],
    ['{{v}}', { v: '{{w}}', w: 'no' }, '{{w}}'],
    ['{{#open}}never closed {{v}}', { open: '1', v: 'v' }, 'never closed v'],
    ['stray {{/close}}close', {}, 'stray close'],
  ]
  for (const [template, values, expected] of rows)
    test(`${JSON.stringify(template)} with ${JSON.stringify(values)}`, () => expect(renderTemplate(template, values as never)).toBe(expected))

  test('render ignores values of names the prompt does not allow', () => {
    expect(renderTemplate('{{a}}{{b}}', { a: '1', b: '2' }, ['a'])).toBe('1')
  })
})
