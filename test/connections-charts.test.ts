/**
 * Charts for query results (src/modules/connections/charts.ts): each result shape → its chart type,
 * the model's suggestion overriding only when the data can show it, the data capped, and every
 * Vega-Lite spec compiled by the real `vega-lite` with no warning and drawn by `vega` (headless)
 * with one mark per row.
 */
import { describe, expect, test } from 'bun:test'
import * as vega from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'
import type { LoggerInterface } from 'vega-util'
import { MAX_CHART_ROWS, chartFor, parseSuggestion, type Chart, type ChartType } from '../src/modules/connections/charts.ts'
import type { QueryResult } from '../src/modules/connections/types.ts'

const result = (columns: [string, string][], rows: unknown[][], truncated = false): QueryResult => ({
  columns: columns.map(([name, type]) => ({ name, type })),
  rows,
  rows_count: rows.length,
  truncated,
  duration_ms: 3,
})

const months = ['2024-01-01', '2024-02-01', '2024-03-01', '2024-04-01', '2024-05-01', '2024-06-01']
const fruits = ['apples', 'pears', 'plums', 'figs', 'kiwis']

/** Every message the compiler or the runtime logs, so a test can insist on none. */
function collectingLogger(into: string[]): LoggerInterface {
  const logger: Record<string, (...a: unknown[]) => unknown> = {
    level: () => logger,
    error: (...a: unknown[]) => (into.push(`error: ${a.join(' ')}`), logger),
    warn: (...a: unknown[]) => (into.push(`warn: ${a.join(' ')}`), logger),
    info: () => logger,
    debug: () => logger,
  }
  return logger as unknown as LoggerInterface
}

/** Compile with vega-lite (no warnings allowed) and draw with vega; the marks drawn, by kind. */
async function draw(chart: Chart): Promise<{ warnings: string[]; marks: Record<string, number>; svg: string }> {
  const warnings: string[] = []
  const vl = chart.vega_lite as unknown as TopLevelSpec
  expect(vl.$schema).toBe('https://vega.github.io/schema/vega-lite/v5.json')
  compile(vl, { logger: collectingLogger(warnings) })
  // headless there is no container to fit: draw at a fixed width (the same spec otherwise)
  const { spec } = compile({ ...vl, ...((vl as { width?: unknown }).width === 'container' ? { width: 400 } : {}) } as TopLevelSpec, { logger: collectingLogger(warnings) })
  const view = new vega.View(vega.parse(spec), { renderer: 'none', logger: collectingLogger(warnings) as never, logLevel: vega.Warn })
  await view.runAsync()
  const marks: Record<string, number> = {}
  const walk = (node: { marktype?: string; role?: string; items?: unknown[] }) => {
    if (node.marktype && node.role === 'mark') marks[node.marktype] = (marks[node.marktype] ?? 0) + (node.items?.length ?? 0)
    for (const item of node.items ?? []) walk(item as never)
  }
  walk((view.scenegraph() as unknown as { root: never }).root)
  const svg = await view.toSVG()
  // a line is one mark whatever its points: count the lines drawn instead
  if (marks.line) marks.line = svg.split('class="mark-line').length - 1
  view.finalize()
  return { warnings, marks, svg }
}

interface Case {
  name: string
  result: QueryResult
  suggestion?: string
  type: ChartType | null
  x?: string | null
  y?: string[]
  /** marks drawn by kind (a subset) */
  marks?: Record<string, number>
}

const cases: Case[] = [
  // no chart
  { name: 'no rows', result: result([['n', 'int4']], []), type: null },
  { name: 'no columns', result: result([], [[]]), type: null },
  // one value
  { name: 'one number', result: result([['count', 'int8']], [[42]]), type: 'number', x: null, y: ['count'], marks: { text: 1 } },
  { name: 'one decimal as a string (pg numeric)', result: result([['total', 'numeric']], [['1234.50']]), type: 'number', y: ['total'] },
  { name: 'one bigint', result: result([['n', 'BIGINT']], [[12345678901234n]]), type: 'number', y: ['n'] },
  { name: 'one text value', result: result([['name', 'text']], [['Ada']]), type: 'table' },
  { name: 'one row of several numbers', result: result([['count', 'int8'], ['avg', 'float8']], [[3, 2.5]]), type: 'table' },
  // time + numbers
  { name: 'dates as strings + a number', result: result([['month', 'date'], ['total', 'numeric']], months.map((m, i) => [m, String(i * 10)])), type: 'line', x: 'month', y: ['total'], marks: { line: 1, symbol: 6 } },
  { name: 'Date objects + a number', result: result([['day', 'timestamptz'], ['n', 'int4']], months.map((m, i) => [new Date(m), i])), type: 'line', x: 'day', y: ['n'] },
  { name: 'YYYY-MM strings from an untyped column (SQLite strftime)', result: result([['month', ''], ['sales', 'REAL']], [['2024-01', 1.5], ['2024-02', 2.5], ['2024-03', 2]]), type: 'line', x: 'month' },
  { name: 'MySQL DATETIME strings', result: result([['at', 'DATETIME'], ['n', 'LONG']], [['2024-01-01 10:00:00', 1], ['2024-01-01 11:00:00', 3]]), type: 'line', x: 'at' },
  { name: 'time + two numbers: a line each', result: result([['month', 'date'], ['revenue', 'numeric'], ['cost', 'numeric']], months.map((m, i) => [m, i * 10, i * 4])), type: 'line', x: 'month', y: ['revenue', 'cost'], marks: { line: 2 } },
  { name: 'time + a category + a number: a line per category', result: result([['month', 'date'], ['region', 'text'], ['sales', 'int4']], months.flatMap((m, i) => [[m, 'north', i], [m, 'south', i * 2]])), type: 'line', x: 'month', y: ['sales'], marks: { line: 2 } },
  { name: 'whole years in an int column named year', result: result([['year', 'int4'], ['orders', 'int8']], [[2021, 5], [2022, 8], [2023, 13]]), type: 'line', x: 'year', y: ['orders'] },
  { name: 'a MySQL YEAR column', result: result([['y', 'YEAR'], ['orders', 'LONGLONG']], [[2021, 5], [2022, 8]]), type: 'line', x: 'y' },
  { name: 'one time row: a bar', result: result([['month', 'date'], ['total', 'int4']], [['2024-01-01', 5]]), type: 'bar', x: 'month', marks: { rect: 1 } },
  // parts of a whole
  { name: 'five categories with counts: a pie', result: result([['fruit', 'text'], ['count', 'int8']], fruits.map((f, i) => [f, i + 1])), type: 'pie', x: 'fruit', y: ['count'], marks: { arc: 5 } },
  { name: 'eight parts: still a pie', result: result([['k', 'text'], ['n', 'int4']], Array.from({ length: 8 }, (_, i) => [`k${i}`, i + 1])), type: 'pie' },
  { name: 'nine parts: a bar', result: result([['k', 'text'], ['n', 'int4']], Array.from({ length: 9 }, (_, i) => [`k${i}`, i + 1])), type: 'bar', marks: { rect: 9 } },
  { name: 'a negative part: a bar', result: result([['fruit', 'text'], ['profit', 'numeric']], fruits.map((f, i) => [f, i - 2])), type: 'bar' },
  { name: 'averages are not parts of a whole: a bar', result: result([['fruit', 'text'], ['avg_price', 'numeric']], fruits.map((f, i) => [f, i + 1])), type: 'bar' },
  { name: 'a repeated category: a bar', result: result([['fruit', 'text'], ['n', 'int4']], [['a', 1], ['a', 2], ['b', 3]]), type: 'bar' },
  { name: 'all zero: a bar', result: result([['fruit', 'text'], ['n', 'int4']], [['a', 0], ['b', 0]]), type: 'bar' },
  // categories + numbers
  { name: 'top 20 customers by revenue: a bar', result: result([['customer', 'varchar'], ['revenue', 'NEWDECIMAL']], Array.from({ length: 20 }, (_, i) => [`c${i}`, `${1000 - i * 10}.00`])), type: 'bar', x: 'customer', y: ['revenue'], marks: { rect: 20 } },
  { name: 'a category + two numbers: grouped bars', result: result([['fruit', 'text'], ['sold', 'int4'], ['returned', 'int4']], fruits.map((f, i) => [f, i + 5, i])), type: 'bar', y: ['sold', 'returned'], marks: { rect: 10 } },
  { name: 'two categories + a number: stacked bars', result: result([['fruit', 'text'], ['shop', 'text'], ['n', 'int4']], fruits.flatMap((f, i) => [[f, 'east', i + 1], [f, 'west', i + 2]])), type: 'bar', x: 'fruit', y: ['n'], marks: { rect: 10 } },
  { name: '31 categories: a table', result: result([['k', 'text'], ['n', 'int4']], Array.from({ length: 31 }, (_, i) => [`k${i}`, i])), type: 'table' },
  { name: 'ids are categories, not numbers', result: result([['customer_id', 'int4'], ['orders', 'int4']], [[1, 5], [2, 3], [3, 9]]), type: 'pie', x: 'customer_id', y: ['orders'] },
  { name: 'numeric-looking text (zip codes) is a category', result: result([['zip', 'text'], ['n', 'int4']], [['02134', 5], ['10001', 3], ['94103', 4]]), type: 'pie', x: 'zip' },
  // two numbers
  { name: 'price vs quantity: a scatter', result: result([['price', 'numeric'], ['quantity', 'int4']], Array.from({ length: 40 }, (_, i) => [i * 1.5, 100 - i])), type: 'scatter', x: 'price', y: ['quantity'], marks: { symbol: 40 } },
  { name: 'three number columns: a scatter of the first two', result: result([['a', 'float8'], ['b', 'float8'], ['c', 'float8']], [[1, 2, 3], [2, 3, 4]]), type: 'scatter', x: 'a', y: ['b'] },
  // tables
  { name: 'names and emails', result: result([['name', 'text'], ['email', 'text']], [['Ada', 'ada@x'], ['Bob', 'bob@x']]), type: 'table', x: null, y: ['name', 'email'], marks: { text: 4 } },
  { name: 'many rows of categories and numbers', result: result([['k', 'text'], ['n', 'int4']], Array.from({ length: 200 }, (_, i) => [`k${i}`, i])), type: 'table' },
  { name: 'JSON, booleans, binary and nulls', result: result([['doc', 'jsonb'], ['ok', 'bool'], ['blob', 'bytea'], ['note', 'text']], [[{ a: 1 }, true, new Uint8Array([1, 2]), null], [[1, 2], false, null, 'x']]), type: 'table' },
  // suggestions
  { name: 'suggested bar on a pie shape', result: result([['fruit', 'text'], ['count', 'int8']], fruits.map((f, i) => [f, i + 1])), suggestion: 'bar', type: 'bar' },
  { name: 'suggested "a pie chart" on averages (the name rule is only for the automatic choice)', result: result([['fruit', 'text'], ['avg_price', 'numeric']], fruits.map((f, i) => [f, i + 1])), suggestion: 'a pie chart', type: 'pie' },
  { name: 'suggested pie on negative numbers: ignored', result: result([['fruit', 'text'], ['profit', 'numeric']], fruits.map((f, i) => [f, i - 2])), suggestion: 'pie', type: 'bar' },
  { name: 'suggested pie on 20 parts: ignored', result: result([['k', 'text'], ['n', 'int4']], Array.from({ length: 20 }, (_, i) => [`k${i}`, i + 1])), suggestion: 'pie', type: 'bar' },
  { name: 'suggested doughnut: a pie', result: result([['fruit', 'text'], ['n', 'int4']], [['a', 1], ['b', 2], ['c', 3], ['d', 4], ['e', 5], ['f', 6], ['g', 7], ['h', 8]]), suggestion: 'Doughnut', type: 'pie' },
  { name: 'suggested line over categories', result: result([['step', 'text'], ['users', 'int4']], [['visit', 100], ['signup', 40], ['pay', 10]]), suggestion: 'line', type: 'line', x: 'step' },
  { name: 'suggested table on a line shape', result: result([['month', 'date'], ['n', 'int4']], months.map((m, i) => [m, i])), suggestion: 'TABLE', type: 'table' },
  { name: 'suggested scatter without two numbers: ignored', result: result([['fruit', 'text'], ['n', 'int4']], [['a', 1], ['b', 2]]), suggestion: 'scatter', type: 'pie' },
  { name: 'suggested number on many rows: ignored', result: result([['month', 'date'], ['n', 'int4']], months.map((m, i) => [m, i])), suggestion: 'number', type: 'line' },
  { name: 'suggested number on one row of several values: the first number', result: result([['label', 'text'], ['total', 'int4'], ['avg', 'float8']], [['all', 10, 2.5]]), suggestion: 'kpi', type: 'number', y: ['total'] },
  { name: 'suggested bar on 200 categories: ignored', result: result([['k', 'text'], ['n', 'int4']], Array.from({ length: 200 }, (_, i) => [`k${i}`, i])), suggestion: 'bar', type: 'table' },
  { name: 'a suggestion naming no chart: ignored', result: result([['fruit', 'text'], ['count', 'int8']], fruits.map((f, i) => [f, i + 1])), suggestion: 'sparkles', type: 'pie' },
]

describe('chartFor: the type follows the shape', () => {
  for (const c of cases) {
    test(c.name, async () => {
      const chart = chartFor(c.result, { suggestion: c.suggestion })
      if (c.type === null) return expect(chart).toBeNull()
      expect(chart).not.toBeNull()
      const picked = { type: chart!.type, ...(c.x !== undefined ? { x: chart!.x } : {}), ...(c.y ? { y: chart!.y } : {}) }
      expect(picked).toEqual({ type: c.type, ...(c.x !== undefined ? { x: c.x } : {}), ...(c.y ? { y: c.y } : {}) })
      expect(chart!.data).toHaveLength(c.result.rows.length)
      expect((chart!.vega_lite.data as { values: unknown[] }).values).toEqual(chart!.data)
      expect(JSON.parse(JSON.stringify(chart))).toEqual(chart!) // JSON-safe: it goes into events and message metadata
      const drawn = await draw(chart!)
      expect(drawn.warnings).toEqual([])
      if (c.marks) expect(drawn.marks).toMatchObject(c.marks)
    })
  }
})

describe('chartFor: data and spec', () => {
  test('numbers from strings and bigints become numbers; times become ISO strings; years "2024"', () => {
    const chart = chartFor(result([['day', 'timestamptz'], ['total', 'numeric'], ['n', 'int8']], [[new Date('2024-01-02T03:04:05Z'), '12.50', 7n], [new Date('2024-01-03T00:00:00Z'), '-3', 8n]]))!
    expect(chart.data).toEqual([{ day: '2024-01-02T03:04:05.000Z', total: 12.5, n: 7 }, { day: '2024-01-03T00:00:00.000Z', total: -3, n: 8 }])
    const years = chartFor(result([['year', 'int4'], ['n', 'int4']], [[2023, 1], [2024, 2]]))!
    expect(years.data).toEqual([{ year: '2023', n: 1 }, { year: '2024', n: 2 }])
    expect((years.vega_lite.encoding as Record<string, { timeUnit?: string }>).x!.timeUnit).toBe('utcyear')
  })

  test(`data is capped at ${MAX_CHART_ROWS} rows and says so`, async () => {
    const rows = Array.from({ length: 1200 }, (_, i) => [new Date(Date.UTC(2020, 0, 1) + i * 86_400_000), i % 17])
    const chart = chartFor(result([['day', 'date'], ['n', 'int4']], rows))!
    expect({ type: chart.type, rows: chart.data.length, truncated: chart.truncated }).toEqual({ type: 'line', rows: MAX_CHART_ROWS, truncated: true })
    expect((await draw(chart)).warnings).toEqual([])
    const small = chartFor(result([['day', 'date'], ['n', 'int4']], rows.slice(0, 10)))!
    expect(small.truncated).toBe(false)
    // a result the row cap already cut is partial too
    expect(chartFor(result([['day', 'date'], ['n', 'int4']], rows.slice(0, 10), true))!.truncated).toBe(true)
  })

  test('repeated column names get their own keys; names with dots and brackets are escaped for Vega-Lite', async () => {
    const chart = chartFor(result([['id', 'text'], ['id', 'text'], ['a.b', 'int4'], ['c[0]', 'int4']], [['x', 'y', 1, 2], ['z', 'w', 3, 4]]))!
    expect(Object.keys(chart.data[0]!)).toEqual(['id', 'id_2', 'a.b', 'c[0]'])
    expect(chart.type).toBe('bar')
    expect(chart.y).toEqual(['a.b', 'c[0]'])
    const drawn = await draw(chart)
    expect(drawn.warnings).toEqual([])
    expect(drawn.marks.rect).toBe(4)
    expect(JSON.stringify(chart.vega_lite)).toContain('a\\\\.b')
  })

  test('the title: given, or made from the columns', () => {
    const r = result([['fruit', 'text'], ['count', 'int8']], fruits.map((f, i) => [f, i + 1]))
    expect(chartFor(r)!.title).toBe('count by fruit')
    expect(chartFor(r, { title: '  Fruit sold  ' })!.title).toBe('Fruit sold')
    expect(chartFor(r, { title: 'x'.repeat(500) })!.title).toHaveLength(120)
    expect(chartFor(r)!.vega_lite.title).toBe('count by fruit')
    expect(chartFor(result([['n', 'int4']], [[1]]))!.title).toBe('n')
    expect(chartFor(result([['a', 'text']], [['x']]))!.title).toBe('Result')
  })

  test('the drawn pie has a slice per part and the drawn table a cell per value', async () => {
    const pie = await draw(chartFor(result([['fruit', 'text'], ['count', 'int8']], fruits.map((f, i) => [f, i + 1])))!)
    expect(pie.marks.arc).toBe(5)
    const table = await draw(chartFor(result([['a', 'text'], ['b', 'text'], ['c', 'int4']], [['x', 'y', 1], ['z', 'w', 2], ['u', 'v', 3]]), { suggestion: 'table' })!)
    expect(table.marks.text).toBe(9)
    expect(table.svg).toContain('>z<')
  })
})

describe('parseSuggestion', () => {
  const rows: [string | undefined, ChartType | null][] = [
    ['bar', 'bar'], ['Bar chart', 'bar'], ['column', 'bar'], ['line', 'line'], ['area', 'line'], ['pie', 'pie'], ['donut', 'pie'],
    ['scatter plot', 'scatter'], ['number', 'number'], ['KPI', 'number'], ['table', 'table'], ['a pie chart would be best', 'pie'],
    [undefined, null], ['', null], ['chart', null], ['heatmap', null], ['x'.repeat(10_000), null],
  ]
  for (const [input, expected] of rows) test(`${JSON.stringify(input?.slice(0, 30))} → ${expected}`, () => expect(parseSuggestion(input)).toBe(expected))
})
