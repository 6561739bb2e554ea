/**
 * @module Layer one of read-only queries (docs/api.md §19 "Read-only by construction"): the SQL is
 * refused unless it is one SELECT, WITH … SELECT or EXPLAIN of one, with no data-modifying part, no
 * row lock, no INTO and no dangerous function. Fail closed: what cannot be read, or reads as
 * something not recognised, is refused.
 *
 * Two readers look at the text, and both must agree it is harmless:
 * - a small lexer (sql-lexer.ts) written for each database's own lexical rules (strings, dollar quotes, E'' strings,
 *   backslash escapes, nested comments, MySQL's `-- ` and `#` comments, executable comments). It
 *   finds where the statement ends, and checks every word the database will see as code: statement
 *   keywords that write or lock, and calls of denied functions. This is the database's view, so a
 *   place where the parser reads the text differently (a string the parser thinks goes on, a comment
 *   it does not know) cannot hide code from the check.
 * - node-sql-parser, in the driver's dialect, on the code the lexer found (comments dropped, strings
 *   replaced by harmless literals, so both read the same tokens). Its tree is walked whole: every node
 *   kind must be one known in a SELECT, every SELECT has no INTO and no lock, every function is checked
 *   against the deny-list, every table use is a read.
 * The node-sql-parser grammars have no EXPLAIN for Postgres, so the lexer reads the EXPLAIN prefix
 * itself and the statement explained is vetted as above.
 */
import { isIdentStart, lex, refuse, Refused, type Token } from './sql-lexer.ts'
import type { Driver } from './types.ts'

export type Vetted = { ok: true } | { ok: false; reason: string }

/** Longer SQL is refused before it is read (a question's SQL is a few hundred characters). */
export const MAX_SQL_LENGTH = 100_000
/**
 * More words, numbers, names and symbols than this are refused before the parser reads them: the
 * parser is synchronous and takes about 0.1 ms per token (a question's SQL has a few hundred).
 */
export const MAX_TOKENS = 4_000
/** Parentheses deeper than this are refused (no reader recurses that deep). */
export const MAX_NESTING = 100
/** A parsed tree deeper than this is refused (long chains of NOT, CASE in CASE …). */
export const MAX_TREE_DEPTH = 1_000

// ------------------------------------------------------------------------------------------------
// The deny-list: functions refused anywhere in the statement (select list, WHERE, FROM, subqueries,
// CTEs, joins, function arguments), matched case-insensitively on the function's own name (a schema
// before it does not matter: `pg_catalog.pg_sleep` is `pg_sleep`).

interface DeniedGroup {
  why: string
  names: string[]
  prefixes?: string[]
}

export const DENIED_FUNCTIONS: readonly DeniedGroup[] = [
  {
    why: 'it waits, or takes or releases locks',
    names: ['sleep', 'benchmark', 'get_lock', 'release_lock', 'release_all_locks', 'master_pos_wait', 'source_pos_wait', 'master_gtid_wait', 'wait_for_executed_gtid_set', 'wait_until_sql_thread_after_gtids'],
    prefixes: ['pg_sleep', 'pg_advisory', 'pg_try_advisory', 'service_get_', 'service_release_'],
  },
  {
    why: 'it reads or writes files on the database server',
    names: ['pg_read_file', 'pg_read_binary_file', 'pg_stat_file', 'pg_logdir_ls', 'load_file', 'readfile', 'writefile', 'edit', 'fsdir', 'zipfile', 'loread', 'lowrite', 'table_import_from_s3', 'query_export_to_s3'],
    prefixes: ['pg_ls_', 'pg_file_', 'lo_'],
  },
  {
    why: 'it runs SQL, a command or a request given as text',
    names: ['ts_stat', 'ts_rewrite', 'connectby', 'xpath_table', 'sys_exec', 'sys_eval', 'sys_get', 'sys_set', 'sys_bineval', 'xp_cmdshell', 'exec', 'execute', 'eval', 'shell', 'http', 'invoke', 'schedule', 'schedule_in_database', 'unschedule', 'alter_job'],
    prefixes: ['dblink', 'query_to_xml', 'cursor_to_xml', 'table_to_xml', 'schema_to_xml', 'database_to_xml', 'crosstab', 'http_', 'pg_background'],
  },
  {
    why: "it changes the server's settings or state",
    names: [
      'set_config', 'pg_reload_conf', 'pg_rotate_logfile', 'pg_promote', 'pg_switch_wal', 'pg_switch_xlog', 'pg_create_restore_point', 'pg_start_backup', 'pg_stop_backup',
      'pg_notify', 'pg_import_system_collations', 'pg_log_backend_memory_contexts', 'pg_log_standby_snapshot', 'pg_sync_replication_slots', 'pg_prewarm', 'pg_drop_replication_slot',
      'pg_truncate_visibility_map',
    ],
    prefixes: [
      'pg_backup_', 'pg_wal_replay_', 'pg_xlog_replay_', 'pg_create_', 'pg_copy_', 'pg_replication_', 'pg_logical_', 'pg_stat_reset', 'pg_stat_statements_reset', 'binary_upgrade_',
      'postgres_fdw_', 'version_tokens_', 'audit_log_', 'keyring_', 'group_replication_', 'asynchronous_connection_failover_', 'mysql_firewall_', 'set_firewall_',
    ],
  },
  { why: 'it signals or ends other sessions', names: [], prefixes: ['pg_terminate_', 'pg_cancel_'] },
  { why: 'it changes a sequence', names: ['nextval', 'setval'] },
  { why: 'it loads code into the database', names: ['load_extension', 'fts3_tokenizer'] },
]

const deniedExact = new Map<string, string>()
const deniedPrefixes: [string, string][] = []
for (const g of DENIED_FUNCTIONS) {
  for (const n of g.names) deniedExact.set(n, g.why)
  for (const p of g.prefixes ?? []) deniedPrefixes.push([p, g.why])
}

/** Why a function of this name is refused, or null when it is not on the deny-list. */
export function deniedFunction(name: string): string | null {
  const n = name.toLowerCase()
  return deniedExact.get(n) ?? deniedPrefixes.find(([p]) => n.startsWith(p))?.[1] ?? null
}

// ------------------------------------------------------------------------------------------------


export function vetSql(sql: string, driver: Driver): Vetted {
  const key = typeof sql === 'string' && sql.length <= MAX_CACHED_LENGTH ? `${driver}:${sql}` : undefined
  const known = key === undefined ? undefined : cache.get(key)
  if (known) {
    // most recently used last
    cache.delete(key!)
    cache.set(key!, known)
    return known
  }
  // frozen: a verdict handed out is shared with later callers of the same SQL
  const verdict = Object.freeze(vetUncached(sql, driver))
  if (key !== undefined) {
    cache.set(key, verdict)
    if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value!)
  }
  return verdict
}

/**
 * Verdicts of recent statements (the same SQL comes back: a chat's retries, a dashboard's queries,
 * the `sql_query` tool): the check is pure, and parsing is most of its cost.
 */
const cache = new Map<string, Vetted>()
const CACHE_SIZE = 1_000
const MAX_CACHED_LENGTH = 10_000

function vetUncached(sql: string, driver: Driver): Vetted {
  try {
    vet(sql, driver)
    return { ok: true }
  } catch (e) {
    if (e instanceof Refused) return { ok: false, reason: e.message }
    // Anything else (a parser bug, a stack overflow on a pathological input): refused, not allowed.
    return { ok: false, reason: UNREADABLE }
  }
}

const UNREADABLE = 'The SQL could not be parsed as one read-only statement'

function vet(sql: string, driver: Driver) {
  if (typeof sql !== 'string' || sql.trim() === '') refuse('The SQL is empty')
  if (sql.length > MAX_SQL_LENGTH) refuse(`The SQL is longer than ${MAX_SQL_LENGTH} characters`)
  if (sql.includes('\u0000')) refuse('The SQL contains a NUL byte (\\u0000)')

  const tokens = lex(sql, driver)
  const code = tokens.filter((t) => t.kind !== 'space' && t.kind !== 'comment')
  if (code.length === 0) refuse('The SQL is empty (only comments)')
  if (code.length > MAX_TOKENS) refuse(`The SQL is too long to check: more than ${MAX_TOKENS} words, names and symbols`)

  // One statement: nothing but `;`, spaces and comments after the first `;`.
  const semi = code.findIndex((t) => t.kind === 'punct' && t.text === ';')
  if (semi >= 0) {
    const after = code.slice(semi).find((t) => !(t.kind === 'punct' && t.text === ';'))
    if (after) refuse(`Only one statement may run: another statement follows the first ";" (${describe(after)})`)
    if (semi === 0) refuse('The SQL is empty (only ";")')
  }
  const stmt = semi >= 0 ? code.slice(0, semi) : code

  const inner = afterExplain(stmt, driver)
  checkStart(inner)
  checkTokens(inner, driver)
  checkTree(parse(normalise(tokens, inner, driver), driver))
}

const describe = (t: Token) => (t.kind === 'word' ? t.text.toUpperCase() : t.kind === 'string' ? 'a string' : t.kind === 'qident' ? `"${t.value}"` : `"${t.text}"`).slice(0, 40)

// ------------------------------------------------------------------------------------------------
// The statement's shape, on the database's tokens.

const isWord = (t: Token | undefined, ...words: string[]) => t?.kind === 'word' && words.includes(t.value)
const isPunct = (t: Token | undefined, p: string) => t?.kind === 'punct' && t.text === p

/** The tokens of the statement an EXPLAIN explains (or the statement itself). */
function afterExplain(stmt: Token[], driver: Driver): Token[] {
  if (!isWord(stmt[0], 'explain')) return stmt
  let k = 1
  if (driver === 'postgres') {
    if (isPunct(stmt[k], '(')) {
      // EXPLAIN (option [value], …): options and values are plain words, numbers or strings
      k++
      while (k < stmt.length && !isPunct(stmt[k], ')')) {
        const t = stmt[k]!
        if (!(t.kind === 'word' && PG_EXPLAIN_WORDS.has(t.value)) && !isPunct(t, ',') && t.kind !== 'string') refuse(`EXPLAIN has an option this check does not know (${describe(t)})`)
        k++
      }
      if (!isPunct(stmt[k], ')')) refuse(UNREADABLE)
      k++
    } else {
      if (isWord(stmt[k], 'analyze', 'analyse')) k++
      if (isWord(stmt[k], 'verbose')) k++
    }
  } else if (driver === 'mysql') {
    for (;;) {
      if (isWord(stmt[k], 'analyze', 'extended', 'partitions')) k++
      else if (isWord(stmt[k], 'format') && isPunct(stmt[k + 1], '=') && isWord(stmt[k + 2], 'traditional', 'json', 'tree')) k += 3
      else break
    }
  } else if (isWord(stmt[k], 'query') && isWord(stmt[k + 1], 'plan')) k += 2
  const inner = stmt.slice(k)
  if (!isWord(inner[0], 'select', 'with') && !isPunct(inner[0], '(')) refuse(`EXPLAIN may only explain a SELECT${inner[0] ? `, not ${describe(inner[0])}` : ''}`)
  return inner
}

const PG_EXPLAIN_WORDS = new Set([
  'analyze', 'analyse', 'verbose', 'costs', 'settings', 'generic_plan', 'buffers', 'serialize', 'wal', 'timing', 'summary', 'memory', 'format',
  'true', 'false', 'on', 'off', '1', '0', 'text', 'xml', 'json', 'yaml', 'none', 'binary',
])

function checkStart(stmt: Token[]) {
  const first = stmt[0]!
  if (isWord(first, 'select', 'with') || isPunct(first, '(')) return
  if (isWord(first, 'table', 'values')) refuse(`${first.value.toUpperCase()} statements are not accepted: write the query as a SELECT`)
  if (isWord(first, 'show', 'describe', 'desc', 'pragma')) refuse(`Only a SELECT (or WITH … SELECT, or EXPLAIN of one) may run, not ${describe(first)}: the schema endpoint lists tables and columns`)
  refuse(`Only a SELECT (or WITH … SELECT, or EXPLAIN of one) may run, not ${describe(first)}`)
}

/** Words that write or lock, wherever they stand (a data-modifying CTE, SELECT … INTO, FOR UPDATE). */
const WRITING_WORDS: Record<string, string> = {
  insert: 'INSERT writes data',
  update: 'UPDATE writes data (or locks rows, in FOR UPDATE)',
  delete: 'DELETE writes data',
  merge: 'MERGE writes data',
  returning: 'RETURNING belongs to statements that write',
  into: 'SELECT … INTO writes (a table, a file or variables)',
  lock: 'row locks (LOCK IN SHARE MODE) are not allowed',
  procedure: 'PROCEDURE clauses are not allowed',
}

function checkTokens(stmt: Token[], driver: Driver) {
  let depth = 0
  for (let k = 0; k < stmt.length; k++) {
    const t = stmt[k]!
    const next = stmt[k + 1]
    if (isPunct(t, '(')) {
      if (++depth > MAX_NESTING) refuse(`The query is nested too deeply (more than ${MAX_NESTING} levels of parentheses)`)
    } else if (isPunct(t, ')')) depth--
    else if (isPunct(t, '#') && driver !== 'postgres') refuse('The SQL has a "#" outside a string')

    if (t.kind === 'word') {
      const why = WRITING_WORDS[t.value]
      // MySQL's INSERT(str, pos, len, newstr) is a string function
      if (why && !(t.value === 'insert' && driver === 'mysql' && isPunct(next, '('))) refuse(`Not a read-only query: ${why} (if it is a column name, quote it)`)
      if (t.value === 'for' && isWord(next, 'share', 'key', 'no', 'update')) refuse('Row locks (FOR UPDATE, FOR SHARE) are not allowed in a read-only query')
    }
    // a call of a denied function, by a plain or a quoted name (MySQL "…" too: a name under ANSI_QUOTES)
    if ((t.kind === 'word' || t.kind === 'qident' || t.dq) && isPunct(next, '(')) {
      const why = deniedFunction(t.value)
      if (why) refuse(`The function ${t.value}() is not allowed: ${why}`)
    }
  }
}

// ------------------------------------------------------------------------------------------------
// The parser, on the code the lexer found.

/**
 * The statement as the parser should read it: comments become spaces, strings become plain literals
 * (their content only when it has no quote, backslash or control character), quoted names are quoted
 * the way the dialect's grammar expects, plain names with `$` or non-ASCII letters are quoted (the
 * grammars only know ASCII letters), so are Postgres' CURRENT_USER and the like, and MySQL's `--` operator pair is spaced so that no reader takes it for a comment.
 */
function normalise(all: Token[], stmt: Token[], driver: Driver): string {
  const first = stmt[0]!.start
  const last = stmt[stmt.length - 1]!
  const end = last.start + last.text.length
  const q = driver === 'mysql' ? '`' : '"'
  let out = ''
  let prev: Token | undefined
  for (const t of all) {
    if (t.start < first || t.start >= end) continue
    switch (t.kind) {
      case 'space':
        out += t.text
        break
      case 'comment':
        out += ' '
        break
      case 'string':
        out += /^[^'"\\\u0000-\u001f]*$/.test(t.value) ? `'${t.value}'` : "'s'"
        break
      case 'qident':
        out += q + t.value.replaceAll(q, q + q) + q
        break
      case 'word':
        // names with `$` or non-ASCII letters (Postgres and MySQL take them, the grammars do not)
        out += (isIdentStart(t.text[0]!) && !/^[A-Za-z0-9_]*$/.test(t.text)) || (driver === 'postgres' && PG_NILADIC.has(t.value)) ? q + t.text.replaceAll(q, q + q) + q : t.text
        break
      case 'punct':
        if (t.text === '-' && prev?.kind === 'punct' && prev.text === '-' && prev.start + 1 === t.start) out += ' '
        out += t.text
        break
    }
    prev = t
  }
  return out
}

/** Postgres' functions called without parentheses that its grammar here does not know: read as names (harmless either way). */
const PG_NILADIC = new Set(['current_user', 'session_user', 'current_role', 'current_catalog', 'current_schema', 'user'])

type Ast = Record<string, unknown>
interface SqlParser {
  parse(sql: string, opt: { database: string }): { tableList: string[]; ast: Ast | Ast[] }
}

const parsers = new Map<string, SqlParser>()
function parserFor(database: 'postgresql' | 'mysql' | 'mariadb' | 'sqlite'): SqlParser {
  let p = parsers.get(database)
  if (!p) {
    // one grammar per dialect (a few hundred kB each), loaded on first use
    const mod = database === 'postgresql' ? require('node-sql-parser/build/postgresql') : database === 'mysql' ? require('node-sql-parser/build/mysql') : database === 'mariadb' ? require('node-sql-parser/build/mariadb') : require('node-sql-parser/build/sqlite')
    p = new mod.Parser() as SqlParser
    parsers.set(database, p)
  }
  return p
}

/**
 * The grammars tried, in order; the first that reads the statement gives the tree. MySQL connections
 * also serve MariaDB: MySQL's grammar or MariaDB's. node-sql-parser's SQLite grammar lacks window
 * frames, INTERSECT/EXCEPT and RIGHT JOIN, so Postgres' (the closest) is tried second: a SQLite SELECT
 * cannot write, and the words and calls were already checked on SQLite's own tokens.
 */
const DIALECTS: Record<Driver, ('postgresql' | 'mysql' | 'mariadb' | 'sqlite')[]> = { postgres: ['postgresql'], mysql: ['mysql', 'mariadb'], sqlite: ['sqlite', 'postgresql'] }

function parse(text: string, driver: Driver): { tableList: string[]; ast: Ast } {
  let where = ''
  for (const database of DIALECTS[driver]) {
    try {
      const { tableList, ast } = parserFor(database).parse(text, { database })
      const list = Array.isArray(ast) ? ast : [ast]
      if (list.length !== 1 || !list[0]) refuse('Only one statement may run')
      return { tableList, ast: list[0]! }
    } catch (e) {
      if (e instanceof Refused) throw e
      const loc = (e as { location?: { start?: { line?: number; column?: number } } }).location?.start
      if (loc && !where) where = ` (the reading stopped at line ${loc.line}, column ${loc.column})`
    }
  }
  return refuse(UNREADABLE + where)
}

/**
 * Every kind of node node-sql-parser builds for a SELECT in these dialects (and the `type` values
 * of its helper objects: DISTINCT, ORDER BY directions, window frames …). Anything else is refused.
 */
const KNOWN_NODES = new Set([
  'select', 'expr', 'expr_list', 'column_ref', 'star', 'function', 'aggr_func', 'window_func', 'binary_expr', 'unary_expr', 'case', 'when', 'else', 'cast',
  'datatype', 'interval', 'extract', 'fulltext_search', 'array', 'values', 'window', 'distinct', 'distinct on', 'asc', 'desc', 'origin', 'var', 'param',
  'number', 'bigint', 'bool', 'boolean', 'null', 'default', 'single_quote_string', 'double_quote_string', 'backticks_quote_string', 'natural_string',
  'hex_string', 'full_hex_string', 'bit_string', 'date', 'datetime', 'time', 'timestamp', 'collate', 'escape',
])

/** Keys that hold a SELECT's writing or locking clauses in the parser's tree. */
const LOCKING_KEYS = ['locking_read', 'for_update', 'lock', 'for']

function checkTree({ tableList, ast }: { tableList: string[]; ast: Ast }) {
  if (ast.type !== 'select') refuse(`Only a SELECT may run, not ${String(ast.type).toUpperCase()}`)
  const writes = tableList.find((t) => !t.startsWith('select::'))
  if (writes) refuse(`Not a read-only query: it would ${writes.split('::')[0]} ${writes.split('::')[2]}`)

  const stack: [unknown, number][] = [[ast, 0]]
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!
    if (depth > MAX_TREE_DEPTH) refuse(`The query is nested too deeply (more than ${MAX_TREE_DEPTH} levels)`)
    if (Array.isArray(node)) {
      for (const child of node) if (child && typeof child === 'object') stack.push([child, depth + 1])
      continue
    }
    if (!node || typeof node !== 'object') continue
    const n = node as Ast
    if (typeof n.type === 'string') {
      const type = n.type.toLowerCase()
      if (!KNOWN_NODES.has(type)) refuse(`The statement has a part this check does not recognise (${type.slice(0, 40)}), so it is refused to be safe`)
      if (type === 'select') checkSelect(n)
      if (type === 'function' || type === 'aggr_func' || type === 'window_func') {
        const name = functionName(n.name)
        if (name === null) return refuse('The statement calls a function whose name this check cannot read, so it is refused to be safe')
        const why = deniedFunction(name)
        if (why) refuse(`The function ${name}() is not allowed: ${why}`)
      }
    }
    for (const [key, child] of Object.entries(n)) {
      if (key === 'loc') continue
      if (child && typeof child === 'object') stack.push([child, depth + 1])
    }
  }
}

function checkSelect(n: Ast) {
  const into = n.into as Ast | null | undefined
  if (into && (into.expr || into.keyword || into.type)) refuse('Not a read-only query: SELECT … INTO writes (a table, a file or variables)')
  for (const key of LOCKING_KEYS) if (n[key]) refuse('Row locks (FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE) are not allowed in a read-only query')
}

/** The function's own name from the parser's forms: 'NAME', { name: [{ value: 'schema' }, { value: 'fn' }] }, { schema, name } … */
function functionName(name: unknown): string | null {
  if (typeof name === 'string') return name
  if (!name || typeof name !== 'object') return null
  const parts = (name as { name?: unknown }).name
  if (Array.isArray(parts)) {
    const last = parts[parts.length - 1] as { value?: unknown } | undefined
    return typeof last?.value === 'string' ? last.value : null
  }
  if (typeof parts === 'string') return parts
  const value = (name as { value?: unknown }).value
  return typeof value === 'string' ? value : null
}
