/**
 * @module What a question over SQL sends the model of its database: the tables most related to
 * the question (ranked by the words their names and columns share with it), rendered as compact
 * `CREATE TABLE` text within a character budget, with the values of small enum-like text columns;
 * and the SQL taken back out of the model's answer. Pure functions: sql-turn.ts drives them.
 */
import type { Driver, DbSchema, SchemaColumn, SchemaTable } from '../connections/types.ts'

/** The schema part of the prompt: about 3,000 tokens at 4 characters a token. */
export const SCHEMA_BUDGET_CHARS = 12_000
/** Text columns whose values are looked up per turn (not cached yet), at most. */
export const MAX_SAMPLED_COLUMNS = 8
/** A column with at most this many distinct values is an enum: they are listed (one more is asked for, to tell). */
export const MAX_ENUM_VALUES = 10
/** The longest value listed; longer ones mean the column is no enum. */
const MAX_VALUE_CHARS = 40
/** What one column's value list may add to the schema text (so sampling cannot blow the budget). */
const MAX_VALUES_LINE = 160

/** A word found in the columns of more than this share of the tables (and of more than 3) does not count for column matches. */
const COMMON_SHARE = 0.2

/** Function words that say nothing about which table is meant. */
const STOPWORDS = new Set(
  'a an the of in on at by for to from with without and or not no is are was were be been be do does did how many much what which who whom whose when where why show list give me my our your their per each every all any some than then there this that these those it its as into over under between about most least top please tell find get'.split(
    ' ',
  ),
)

/** A word reduced to a common form: lower case, English plurals made singular (categories → category, boxes → box, orders → order). */
export function stem(word: string): string {
  const w = word.toLowerCase()
  if (w.length > 4 && w.endsWith('ies')) return `${w.slice(0, -3)}y`
  if (w.length > 4 && /(ses|xes|zes|ches|shes)$/.test(w)) return w.slice(0, -2)
  if (w.length > 3 && w.endsWith('s') && !/(ss|us|is)$/.test(w)) return w.slice(0, -1)
  return w
}

/** The parts of an identifier or a sentence: snake_case, kebab-case, camelCase and digits split, each stemmed; function words left out. */
export function wordsOf(text: string): string[] {
  const spaced = text
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .replace(/([\p{L}])(\d)|(\d)([\p{L}])/gu, '$1$3 $2$4')
  const words: string[] = []
  for (const raw of spaced.split(/[^\p{L}\p{N}]+/u)) {
    if (!raw) continue
    const w = stem(raw)
    if (w.length >= 2 && !STOPWORDS.has(w)) words.push(w)
  }
  return words
}

/** wordsOf for identifiers, remembered: schemas repeat their column names, and a turn ranks every table. */
const identifierWords = new Map<string, string[]>()
const IDENTIFIER_WORDS_KEPT = 50_000
function wordsOfIdentifier(name: string): string[] {
  let words = identifierWords.get(name)
  if (!words) {
    if (identifierWords.size >= IDENTIFIER_WORDS_KEPT) identifierWords.clear()
    words = wordsOf(name)
    identifierWords.set(name, words)
  }
  return words
}

const qualified = (t: Pick<SchemaTable, 'name' | 'schema'>) => (t.schema ? `${t.schema}.${t.name}` : t.name)

/** What a question is matched by: its words, and its lower-cased text (an identifier written in it whole, in a question in any language). */
interface Question {
  words: Set<string>
  text: string
}

const questionOf = (text: string): Question => ({ words: new Set(wordsOf(text)), text: text.toLowerCase() })

/** An identifier of at least 3 characters written in the question as it is (`order_items`, or inside a sentence without spaces). */
function named(q: Question, identifier: string): boolean {
  const id = identifier.toLowerCase()
  if (id.length < 3) return q.words.has(stem(id))
  return q.text.includes(id) || q.words.has(stem(id)) || (id.includes('_') && q.text.includes(id.replace(/_/g, ' ')))
}

export interface RankedTable {
  table: SchemaTable
  score: number
  /** reached through a `<table>_id` column of a table that scored */
  linked: boolean
}

/**
 * The tables by relevance to the question: 5 for the table named whole, 3 for each word of its
 * name the question has, 1 for each other word of the question found in its columns' names (2 for
 * a column named whole, at most 6 from columns so that wide tables do not win by width; words that
 * the columns of more than a fifth of the tables have, such as `id`, do not count). A table
 * that a scoring table refers to by a `<name>_id` column follows it (for the join). Ties keep the
 * schema's order.
 */
export function rankTables(schema: DbSchema, questionText: string): RankedTable[] {
  const q = questionOf(questionText)
  // a column word most tables have (`id`, `created`) tells nothing about which table is meant
  const tablesWith = new Map<string, number>()
  const columnWords = schema.tables.map((table) => table.columns.map((c) => wordsOfIdentifier(c.name)))
  for (const words of columnWords) for (const w of new Set(words.flat())) tablesWith.set(w, (tablesWith.get(w) ?? 0) + 1)
  const common = Math.max(3, COMMON_SHARE * schema.tables.length)
  const telling = (w: string) => (tablesWith.get(w) ?? 0) <= common
  const scored = schema.tables.map((table, index) => {
    let score = named(q, table.name) ? 5 : 0
    const nameWords = new Set(wordsOfIdentifier(table.name))
    for (const w of nameWords) if (q.words.has(w)) score += 3
    let fromColumns = 0
    const seen = new Set<string>()
    for (const [i, c] of table.columns.entries()) {
      const words = columnWords[index]![i]!
      if (c.name.length >= 3 && named(q, c.name) && words.some(telling)) fromColumns += 2
      for (const w of words) if (q.words.has(w) && !nameWords.has(w) && !seen.has(w) && telling(w)) (seen.add(w), (fromColumns += 1))
    }
    return { table, index, score: score + Math.min(fromColumns, 6), linked: false }
  })
  const byStem = new Map<string, (typeof scored)[number]>()
  for (const s of scored) {
    const key = stem(s.table.name)
    if (!byStem.has(key)) byStem.set(key, s)
  }
  for (const s of scored.filter((x) => x.score > 0)) {
    for (const c of s.table.columns) {
      const m = /^(.+)_id$/i.exec(c.name) ?? /^(.*[a-z])Id$/.exec(c.name)
      const target = m ? byStem.get(stem(m[1]!)) : undefined
      if (target && target !== s && target.score === 0) target.linked = true
    }
  }
  return scored
    .sort((a, b) => b.score - a.score || Number(b.linked) - Number(a.linked) || a.index - b.index)
    .map(({ table, score, linked }) => ({ table, score, linked }))
}

/** A name as the dialect quotes it, when it needs quoting. */
function quoteName(name: string, driver: Driver): string {
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return name
  return driver === 'mysql' ? `\`${name.replace(/`/g, '``')}\`` : `"${name.replace(/"/g, '""')}"`
}

const sampleKey = (t: Pick<SchemaTable, 'name' | 'schema'>, column: string) => `${qualified(t)}\u0000${column}`

/** Values of enum-like columns, by table and column (what `valuesLine` shows). */
export type SampleValues = Map<string, unknown[]>

function valuesLine(values: unknown[]): string {
  let line = ''
  for (const v of values) {
    const piece = `${line ? ', ' : ''}${typeof v === 'string' ? `'${v.replace(/'/g, "''")}'` : String(v)}`
    if (line.length + piece.length > MAX_VALUES_LINE) return `${line}, …`
    line += piece
  }
  return line
}

/** One table as compact DDL: columns with type, NOT NULL and PRIMARY KEY, row count and enum values as comments; at most `maxChars` (columns cut, with a note). */
function tableText(table: SchemaTable, driver: Driver, samples: SampleValues, maxChars = Infinity): string {
  const rows = table.row_count === null ? '' : ` -- about ${table.row_count.toLocaleString('en-US')} rows`
  const head = `CREATE TABLE ${table.schema ? `${quoteName(table.schema, driver)}.` : ''}${quoteName(table.name, driver)} (${rows}`
  const lines: string[] = []
  let size = head.length + 4
  for (const [i, c] of table.columns.entries()) {
    const values = samples.get(sampleKey(table, c.name))
    const line = `  ${quoteName(c.name, driver)} ${c.type || 'UNKNOWN'}${c.primary ? ' PRIMARY KEY' : c.nullable ? '' : ' NOT NULL'}${i < table.columns.length - 1 ? ',' : ''}${values?.length ? ` -- values: ${valuesLine(values)}` : ''}`
    if (size + line.length + 1 > maxChars) {
      lines.push(`  -- … ${table.columns.length - i} more columns`)
      break
    }
    lines.push(line)
    size += line.length + 1
  }
  return `${head}\n${lines.join('\n')}\n);`
}

export interface SchemaPart {
  /** the text for the prompt's {{schema}} */
  text: string
  /** the tables it holds, qualified names in order */
  tables: string[]
}

/**
 * The tables to describe, most relevant first, within `budgetChars`: every table when the whole
 * schema fits; otherwise those that scored (or are linked to one that did) as long as they fit —
 * or, when none scored, the schema's first tables. A first table larger than the budget alone is
 * cut to its first columns.
 */
export function selectTables(ranked: RankedTable[], driver: Driver, budgetChars: number): SchemaTable[] {
  const empty: SampleValues = new Map()
  const sizes = ranked.map((r) => tableText(r.table, driver, empty).length + 2)
  const all = sizes.reduce((n, s) => n + s, 0)
  if (all <= budgetChars) return ranked.map((r) => r.table)
  const anyScored = ranked.some((r) => r.score > 0 || r.linked)
  const chosen: SchemaTable[] = []
  let used = 0
  for (const [i, r] of ranked.entries()) {
    if (anyScored && r.score === 0 && !r.linked) break
    if (used + sizes[i]! > budgetChars) {
      if (!chosen.length) chosen.push(r.table) // cut when rendered
      continue
    }
    chosen.push(r.table)
    used += sizes[i]!
  }
  return chosen
}

/** The schema part of the prompt for `tables` (as selectTables chose them), with the sampled values; `total` tables exist. */
export function renderSchema(tables: SchemaTable[], driver: Driver, samples: SampleValues, total: number, budgetChars = SCHEMA_BUDGET_CHARS): SchemaPart {
  const head = tables.length < total ? `-- ${tables.length} of the ${total} tables: those most related to the question` : `-- all ${total} tables`
  const parts = [head]
  let used = head.length
  for (const table of tables) {
    const text = tableText(table, driver, samples, Math.max(200, budgetChars - used))
    parts.push(text)
    used += text.length + 2
  }
  return { text: parts.join('\n\n'), tables: tables.map(qualified) }
}

const TEXT_TYPE = /char|text|string|enum|clob|citext|^name$/i
/** Names of columns whose values are never listed: free text, identities and secrets. */
const NEVER_SAMPLED = /(^|_)(id|uuid|guid|name|title|description|desc|comment|comments|note|notes|text|body|content|message|email|phone|url|uri|link|address|street|password|passwd|pwd|hash|salt|token|secret|key|ssn|iban|card)$/i
/** Names that promise few values: these are looked up first. */
const ENUM_HINT = /(^|_)(status|state|type|kind|category|class|level|role|gender|sex|country|region|currency|channel|method|priority|tier|plan|segment|stage|source|grade|color|colour|size|mode|department|unit|flag|group)$/i

/** The text columns of `tables` worth listing values for, most promising first: (table, column) pairs. */
export function enumCandidates(tables: SchemaTable[]): { table: SchemaTable; column: SchemaColumn }[] {
  const found: { table: SchemaTable; column: SchemaColumn; hinted: boolean; order: number }[] = []
  for (const table of tables) {
    if (table.row_count === 0) continue
    for (const column of table.columns) {
      if (column.primary || !TEXT_TYPE.test(column.type) || NEVER_SAMPLED.test(column.name)) continue
      found.push({ table, column, hinted: ENUM_HINT.test(column.name), order: found.length })
    }
  }
  return found.sort((a, b) => Number(b.hinted) - Number(a.hinted) || a.order - b.order).map(({ table, column }) => ({ table, column }))
}

/** Sampled values as an enum's: at most MAX_ENUM_VALUES distinct short ones, or none (not an enum). */
export function enumValues(values: unknown[]): unknown[] | null {
  const kept = values.filter((v) => v !== null && v !== undefined && v !== '')
  if (values.length > MAX_ENUM_VALUES || !kept.length) return null
  if (kept.some((v) => typeof v === 'string' && v.length > MAX_VALUE_CHARS)) return null
  return kept
}

export const samplesKey = sampleKey

/** How a driver's SQL is named to the model. */
export const dialectName = (driver: Driver) => ({ sqlite: 'SQLite', postgres: 'PostgreSQL', mysql: 'MySQL (or MariaDB)' })[driver]

/**
 * The SQL of a model's answer: the first ```sql fence (or the first fence of any language), else
 * the text from its first line that starts with SELECT, WITH or EXPLAIN, else the whole text;
 * reasoning in <think> tags and a trailing `;` left out. Undefined when nothing is left.
 */
export function extractSql(answer: string): string | undefined {
  const text = answer.replace(/<think>[\s\S]*?(<\/think>|$)/gi, '')
  const fences = [...text.matchAll(/```[ \t]*([\w-]*)[^\n]*\n([\s\S]*?)(?:```|$)/g)]
  const fence = fences.find((f) => /^(sql|sqlite|postgres|postgresql|pgsql|mysql|mariadb)$/i.test(f[1]!)) ?? fences.find((f) => !f[1]) ?? fences[0]
  let sql: string
  if (fence) sql = fence[2]!
  else {
    const start = /^[ \t]*(?:sql[ \t]*:[ \t]*)?((?:select|with|explain)\b[\s\S]*)$/im.exec(text)
    sql = start ? start[1]! : text
  }
  sql = sql
    .replace(CHART_COMMENT, '')
    .trim()
    .replace(/(;\s*)+$/, '')
    .trim()
  return sql || undefined
}

const CHART_TYPES = 'bar|line|pie|scatter|number|table'
/** A line of SQL that is only a chart hint (`-- chart: bar`): left out of the SQL that runs. */
const CHART_COMMENT = new RegExp(`^[ \\t]*--[ \\t]*chart[ \\t]*[:=][ \\t]*(${CHART_TYPES})[ \\t]*$`, 'gim')

/** A chart type the model named in its answer (`chart: bar`, e.g. as a SQL comment), if any. */
export function chartHint(answer: string): string | undefined {
  return new RegExp(`\\bchart\\s*[:=]\\s*(${CHART_TYPES})\\b`, 'i').exec(answer)?.[1]?.toLowerCase()
}
