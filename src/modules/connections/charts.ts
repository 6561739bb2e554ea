/**
 * @module Charts for query results (docs/api.md §19 "Charts"): the chart type is chosen from the
 * result's shape, the model's suggestion may override it when the data can show that type, and
 * every chart carries a complete Vega-Lite v5 spec with its data inline. Pure: no I/O.
 *
 * The rules, in order (column kinds: time, number, category — see `classify`):
 * - no rows or no columns → no chart (null);
 * - 1 row × 1 number column → `number`;
 * - a time column and number columns, 2+ rows → `line` (one line per number column, or per value of
 *   one category column of ≤ 10 values when there is one number column);
 * - one category column and one number column, 2–8 rows, distinct categories, every value ≥ 0 and
 *   some > 0, and a value column whose name is not an average, minimum, maximum, median, rate,
 *   ratio, price or score (those are not parts of a whole) → `pie`;
 * - a category (or time) column of ≤ 30 values and number columns, ≤ 30 rows → `bar` (grouped by
 *   number column; or stacked by a second category column of ≤ 10 values, up to 300 rows);
 * - only number columns, 2 or more of them, 2+ rows → `scatter` (the first two);
 * - anything else → `table`.
 */
import type { QueryResult } from './types.ts'

export type ChartType = 'bar' | 'line' | 'pie' | 'scatter' | 'number' | 'table'

export interface Chart {
  type: ChartType
  title: string
  /** the category, time or first-number column; null for `number` and `table` */
  x: string | null
  /** the value columns (for `table`, every column) */
  y: string[]
  /** the rows as objects keyed by column name (repeated names get `_2`, `_3` …), at most MAX_CHART_ROWS */
  data: Record<string, unknown>[]
  /** true when `data` (and so the chart) shows only part of the result */
  truncated: boolean
  /** a complete Vega-Lite v5 spec, data inline */
  vega_lite: Record<string, unknown>
}

export const CHART_TYPES: readonly ChartType[] = ['bar', 'line', 'pie', 'scatter', 'number', 'table']
export const MAX_CHART_ROWS = 500
export const MAX_BAR_CATEGORIES = 30
export const MAX_PIE_PARTS = 8
export const MAX_SERIES = 10
const MAX_TITLE = 120
const VEGA_LITE_SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json'

type Kind = 'temporal' | 'quantitative' | 'nominal'
interface Column {
  key: string
  kind: Kind
  /** a time column of whole years (2024), drawn with a year time unit */
  year: boolean
  /** distinct non-null values */
  distinct: number
  min: number
  allNonNegative: boolean
  someNull: boolean
}

// ------------------------------------------------------------------------------------------------
// What each column holds

const NUMERIC_TYPE = /\b(?:int|integer|int2|int4|int8|smallint|bigint|tinyint|mediumint|serial|bigserial|smallserial|decimal|numeric|newdecimal|real|float|float4|float8|double|money|number|long|longlong|short|tiny|int24)\b|^(?:u?int\d*|float\d*|double precision)$/i
const TEMPORAL_TYPE = /date|timestamp|^year$/i
const TEXT_TYPE = /char|text|string|uuid|enum|set|json|blob|binary|bytea|bit|bool|inet|cidr|macaddr|interval|^time(?:tz)?\b|^time with/i
const ISO_DATE = /^\d{4}-\d{2}(?:-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?)?$/
const NUMERIC_STRING = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/
/** columns that hold numbers but name things (ids, codes): categories, not quantities */
const IDENTIFIER_NAME = /^(?:id|.*_id|.*_code|code|zip|zipcode|postcode|phone)$/i
const YEAR_NAME = /^(?:year|yr)$|_year$|^year_/i
/** measures that are not parts of a whole, so never a pie */
const NOT_ADDITIVE = /avg|average|mean|median|min|max|rate|ratio|price|score|std|variance/i

function asNumber(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null
  if (typeof v === 'bigint') return Number(v)
  if (typeof v === 'string' && NUMERIC_STRING.test(v.trim())) return Number(v)
  return null
}

function asTemporal(v: unknown): string | null {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString()
  if (typeof v === 'string' && ISO_DATE.test(v) && !Number.isNaN(Date.parse(v.replace(' ', 'T')))) return v.replace(' ', 'T')
  return null
}

function classify(key: string, name: string, type: string, values: unknown[]): Column {
  const present = values.filter((v) => v !== null && v !== undefined)
  const col: Column = { key, kind: 'nominal', year: false, distinct: new Set(present.map((v) => (v instanceof Date ? v.getTime() : typeof v === 'object' ? JSON.stringify(v) : v))).size, min: 0, allNonNegative: false, someNull: present.length < values.length }
  if (present.length === 0) return { ...col, kind: NUMERIC_TYPE.test(type) && !IDENTIFIER_NAME.test(name) ? 'quantitative' : TEMPORAL_TYPE.test(type) ? 'temporal' : 'nominal' }
  const textual = TEXT_TYPE.test(type) && !TEMPORAL_TYPE.test(type)

  if (!textual && present.every((v) => asTemporal(v) !== null)) return { ...col, kind: 'temporal' }
  const numbers = present.map(asNumber)
  const numeric = numbers.every((n) => n !== null) && (NUMERIC_TYPE.test(type) || TEMPORAL_TYPE.test(type) || present.every((v) => typeof v !== 'string') || (!textual && type !== ''))
  if (numeric && !textual) {
    const ns = numbers as number[]
    if ((YEAR_NAME.test(name) || /^year$/i.test(type)) && ns.every((n) => Number.isInteger(n) && n >= 1000 && n <= 9999)) return { ...col, kind: 'temporal', year: true }
    if (IDENTIFIER_NAME.test(name)) return col
    return { ...col, kind: 'quantitative', min: Math.min(...ns), allNonNegative: ns.every((n) => n >= 0) }
  }
  return col
}

/** A cell as the chart's data holds it: numbers as numbers, times as ISO strings, years as "2024", the rest JSON-safe. */
function cell(v: unknown, col: Column): unknown {
  if (v === null || v === undefined) return null
  if (col.kind === 'quantitative') return asNumber(v)
  if (col.kind === 'temporal') return col.year ? String(asNumber(v)) : asTemporal(v)
  if (typeof v === 'bigint') return v.toString()
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString()
  if (v instanceof Uint8Array) return `[${v.byteLength} bytes]`
  if (typeof v === 'object') return JSON.stringify(v)
  return v
}

// ------------------------------------------------------------------------------------------------
// Which chart the data can show

interface Shape {
  cols: Column[]
  rows: number
  time: Column[]
  numbers: Column[]
  categories: Column[]
}

interface Plan {
  type: ChartType
  x: Column | null
  y: Column[]
  /** a category column that splits lines or stacks bars */
  series?: Column
}

function planNumber(s: Shape, strict: boolean): Plan | null {
  if (s.rows !== 1 || s.numbers.length === 0) return null
  if (strict && s.cols.length !== 1) return null
  return { type: 'number', x: null, y: [s.numbers[0]!] }
}

function planLine(s: Shape, strict: boolean): Plan | null {
  if (s.rows < 2) return null
  const x = s.time[0] ?? (strict ? undefined : (s.categories[0] ?? s.numbers[0]))
  if (!x) return null
  const y = s.numbers.filter((c) => c !== x)
  if (y.length === 0) return null
  const rest = s.categories.filter((c) => c !== x)
  if (y.length === 1 && rest.length === 1 && rest[0]!.distinct <= MAX_SERIES) return { type: 'line', x, y, series: rest[0] }
  if (strict && rest.length > 0) return null
  return { type: 'line', x, y: y.slice(0, MAX_SERIES) }
}

function planPie(s: Shape, strict: boolean): Plan | null {
  if (s.cols.length !== 2 || s.categories.length !== 1 || s.numbers.length !== 1) return null
  const [x, y] = [s.categories[0]!, s.numbers[0]!]
  if (s.rows < 2 || s.rows > MAX_PIE_PARTS || x.distinct !== s.rows || x.someNull) return null
  if (!y.allNonNegative || y.someNull || (y.min === 0 && y.distinct <= 1)) return null
  if (strict && NOT_ADDITIVE.test(y.key)) return null
  return { type: 'pie', x, y: [y] }
}

function planBar(s: Shape): Plan | null {
  const x = s.categories.find((c) => c.distinct <= MAX_BAR_CATEGORIES) ?? s.time.find((c) => c.distinct <= MAX_BAR_CATEGORIES)
  if (!x || s.numbers.length === 0) return null
  const rest = s.categories.filter((c) => c !== x)
  if (s.numbers.length === 1 && rest.length >= 1 && rest[0]!.distinct <= MAX_SERIES && s.rows <= MAX_BAR_CATEGORIES * MAX_SERIES) return { type: 'bar', x, y: s.numbers, series: rest[0] }
  if (s.rows > MAX_BAR_CATEGORIES) return null
  return { type: 'bar', x, y: s.numbers.slice(0, MAX_SERIES) }
}

function planScatter(s: Shape, strict: boolean): Plan | null {
  if (s.rows < 2 || s.numbers.length < 2) return null
  if (strict && (s.categories.length > 0 || s.time.length > 0)) return null
  return { type: 'scatter', x: s.numbers[0]!, y: [s.numbers[1]!] }
}

const planTable = (s: Shape): Plan => ({ type: 'table', x: null, y: s.cols })

/** The type the result's shape calls for. */
function auto(s: Shape): Plan {
  return planNumber(s, true) ?? planLine(s, true) ?? planPie(s, true) ?? planBar(s) ?? planScatter(s, true) ?? planTable(s)
}

/** The suggested type, when the data can show it (a pie of negative numbers cannot). */
function suggested(s: Shape, type: ChartType): Plan | null {
  switch (type) {
    case 'number':
      return planNumber(s, false)
    case 'line':
      return planLine(s, false)
    case 'pie':
      return planPie(s, false)
    case 'bar':
      return planBar(s)
    case 'scatter':
      return planScatter(s, false)
    case 'table':
      return planTable(s)
  }
}

const SYNONYMS: Record<string, ChartType> = {
  bar: 'bar', bars: 'bar', column: 'bar', columns: 'bar', histogram: 'bar',
  line: 'line', lines: 'line', area: 'line', timeseries: 'line',
  pie: 'pie', donut: 'pie', doughnut: 'pie',
  scatter: 'scatter', point: 'scatter', points: 'scatter', bubble: 'scatter',
  number: 'number', kpi: 'number', metric: 'number', single: 'number', value: 'number',
  table: 'table', grid: 'table',
}

/** The chart type a free-text suggestion names ("bar", "a pie chart", "Line"), or null. */
export function parseSuggestion(suggestion: string | undefined): ChartType | null {
  if (!suggestion) return null
  for (const word of suggestion.toLowerCase().slice(0, 200).split(/[^a-z]+/)) {
    const type = SYNONYMS[word]
    if (type) return type
  }
  return null
}

// ------------------------------------------------------------------------------------------------

/** The chart for a query result, or null when there is nothing to draw (no rows or no columns). */
export function chartFor(result: QueryResult, opts: { suggestion?: string; title?: string } = {}): Chart | null {
  if (result.columns.length === 0 || result.rows.length === 0) return null

  const keys = uniqueKeys(result.columns.map((c) => c.name))
  const cols = result.columns.map((c, i) => classify(keys[i]!, c.name, c.type ?? '', result.rows.map((r) => r[i])))
  const shape: Shape = {
    cols,
    rows: result.rows.length,
    time: cols.filter((c) => c.kind === 'temporal'),
    numbers: cols.filter((c) => c.kind === 'quantitative'),
    categories: cols.filter((c) => c.kind === 'nominal'),
  }
  const wanted = parseSuggestion(opts.suggestion)
  const plan = (wanted && suggested(shape, wanted)) || auto(shape)

  const data = result.rows.slice(0, MAX_CHART_ROWS).map((r) => Object.fromEntries(cols.map((c, i) => [c.key, cell(r[i], c)])))
  const truncated = result.truncated || result.rows.length > MAX_CHART_ROWS
  const title = (opts.title?.trim() || defaultTitle(plan)).slice(0, MAX_TITLE)
  return {
    type: plan.type,
    title,
    x: plan.x?.key ?? null,
    y: plan.y.map((c) => c.key),
    data,
    truncated,
    vega_lite: vegaLite(plan, title, data),
  }
}

function uniqueKeys(names: string[]): string[] {
  const seen = new Set<string>()
  return names.map((raw) => {
    const base = raw === '' ? 'column' : raw
    let key = base
    for (let n = 2; seen.has(key); n++) key = `${base}_${n}`
    seen.add(key)
    return key
  })
}

function defaultTitle(p: Plan): string {
  const ys = p.y.map((c) => c.key)
  if (p.type === 'table') return 'Result'
  if (p.type === 'number') return ys[0]!
  if (p.type === 'scatter') return `${ys[0]} vs ${p.x!.key}`
  return `${ys.join(', ')} by ${p.x!.key}${p.series ? ` and ${p.series.key}` : ''}`
}

// ------------------------------------------------------------------------------------------------
// Vega-Lite

/** A field name as Vega-Lite reads it: `.` and `[ ]` would mean nested access, so they are escaped. */
const field = (name: string) => name.replace(/[\\.[\]]/g, (c) => `\\${c}`)
const FOLD_KEY = '__series'
const FOLD_VALUE = '__value'

function vegaLite(p: Plan, title: string, values: Record<string, unknown>[]): Record<string, unknown> {
  const base: Record<string, unknown> = { $schema: VEGA_LITE_SCHEMA, title, data: { values }, width: 'container', autosize: { type: 'fit', contains: 'padding' } }
  const enc = (c: Column, extra: Record<string, unknown> = {}) => ({
    field: field(c.key),
    type: c.kind,
    title: c.key,
    ...(c.kind === 'temporal' ? { scale: { type: 'utc' }, ...(c.year ? { timeUnit: 'utcyear' } : {}) } : {}),
    ...extra,
  })
  const tooltip = (cs: Column[]) => cs.map((c) => ({ field: field(c.key), type: c.kind, title: c.key, ...(c.year ? { timeUnit: 'utcyear' } : {}) }))

  switch (p.type) {
    case 'number': {
      const y = p.y[0]!
      return { ...base, height: 120, mark: { type: 'text', fontSize: 48, fontWeight: 'bold' }, encoding: { text: { field: field(y.key), type: 'quantitative', format: ',' }, tooltip: tooltip([y]) } }
    }
    case 'pie': {
      const [x, y] = [p.x!, p.y[0]!]
      return { ...base, height: 300, mark: { type: 'arc', tooltip: true }, encoding: { theta: { ...enc(y), stack: true }, color: { ...enc(x), sort: null }, tooltip: tooltip([x, y]) } }
    }
    case 'scatter': {
      const [x, y] = [p.x!, p.y[0]!]
      return { ...base, height: 300, mark: { type: 'point', filled: true }, encoding: { x: enc(x), y: enc(y), tooltip: tooltip([x, y]) } }
    }
    case 'line':
    case 'bar': {
      const x = p.x!
      const mark = p.type === 'line' ? { type: 'line', point: true } : { type: 'bar' }
      const xEnc = p.type === 'bar' ? { ...enc(x, { type: x.kind === 'temporal' ? 'ordinal' : 'nominal' }), sort: null, ...(x.kind === 'temporal' ? { timeUnit: x.year ? 'utcyear' : 'utcyearmonthdate', scale: undefined } : {}) } : enc(x)
      if (p.series) {
        const y = p.y[0]!
        const color = { ...enc(p.series), sort: null }
        return clean({ ...base, height: 300, mark, encoding: { x: clean(xEnc), y: enc(y), color, tooltip: tooltip([x, p.series, y]) } })
      }
      if (p.y.length === 1) {
        const y = p.y[0]!
        return { ...base, height: 300, mark, encoding: { x: clean(xEnc), y: enc(y), tooltip: tooltip([x, y]) } }
      }
      // several number columns: folded into one series per column
      const fold = { fold: p.y.map((c) => field(c.key)), as: [FOLD_KEY, FOLD_VALUE] }
      const series = { field: FOLD_KEY, type: 'nominal', title: null, sort: p.y.map((c) => c.key) }
      return {
        ...base,
        height: 300,
        transform: [fold],
        mark,
        encoding: {
          x: clean(xEnc),
          y: { field: FOLD_VALUE, type: 'quantitative', title: null },
          color: series,
          ...(p.type === 'bar' ? { xOffset: { field: FOLD_KEY, sort: p.y.map((c) => c.key) } } : {}),
          tooltip: [...tooltip([x]), { field: FOLD_KEY, type: 'nominal', title: 'series' }, { field: FOLD_VALUE, type: 'quantitative', title: 'value' }],
        },
      }
    }
    case 'table': {
      // a table drawn with text marks: one row per result row, one column per result column
      const keys = p.y.map((c) => c.key)
      // discrete both ways: a step per column and per row (a container width would be dropped with a warning)
      return {
        ...base,
        width: { step: 150 },
        height: { step: 20 },
        autosize: { type: 'pad' },
        transform: [{ window: [{ op: 'row_number', as: '__row' }] }, { fold: keys.map(field), as: ['__column', '__cell'] }],
        mark: { type: 'text', align: 'left', limit: 200 },
        encoding: {
          y: { field: '__row', type: 'ordinal', axis: null },
          x: { field: '__column', type: 'nominal', sort: keys, axis: { orient: 'top', labelAngle: 0, title: null, domain: false, ticks: false } },
          text: { field: '__cell', type: 'nominal' },
        },
        config: { view: { stroke: null } },
      }
    }
  }
}

/** Drop undefined entries (the spec is sent as JSON and compiled: no holes). */
function clean<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T
}
