/**
 * @module The lexer of the SQL check (vet.ts): each database's own lexical rules, as far as they
 * decide where code, strings, quoted names and comments begin and end — Postgres dollar quotes,
 * E'' strings and nested comments, MySQL's `-- ` and `#` comments, backslash escapes and executable
 * comments. What the rules leave ambiguous between servers, or a comment that runs code, is refused.
 */
import type { Driver } from './types.ts'

/** A refusal with its reason for the user (vetSql turns it into `{ ok: false, reason }`). */
export class Refused extends Error {}
export const refuse = (reason: string): never => {
  throw new Refused(reason)
}


export type Kind = 'space' | 'comment' | 'word' | 'qident' | 'string' | 'punct'

export interface Token {
  kind: Kind
  text: string
  start: number
  /** word: lower-cased; qident: the name unquoted; string: the content as written (escapes not undone) */
  value: string
  /** MySQL's "…": a string, or a quoted name under ANSI_QUOTES, so also checked as a name */
  dq?: boolean
}

const isSpace = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v'
const isDigit = (c: string) => c >= '0' && c <= '9'
export const isIdentStart = (c: string) => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_' || c.charCodeAt(0) >= 0x80
const isIdentPart = (c: string) => isIdentStart(c) || isDigit(c) || c === '$'

/** The text as the database reads it, in tokens (spaces and comments included). */
export function lex(sql: string, driver: Driver): Token[] {
  const out: Token[] = []
  const n = sql.length
  let i = 0
  const push = (kind: Kind, start: number, end: number, value = sql.slice(start, end), extra?: Partial<Token>) => {
    out.push({ kind, text: sql.slice(start, end), start, value, ...extra })
    i = end
  }

  while (i < n) {
    const c = sql[i]!
    const next = sql[i + 1] ?? ''
    const start = i

    if (isSpace(c)) {
      let j = i + 1
      while (j < n && isSpace(sql[j]!)) j++
      push('space', start, j)
    } else if (c === '-' && next === '-' && (driver !== 'mysql' || mysqlDashComment(sql, i))) {
      push('comment', start, lineEnd(sql, i, driver))
    } else if (c === '#' && driver === 'mysql') {
      push('comment', start, lineEnd(sql, i, driver))
    } else if (c === '/' && next === '*') {
      push('comment', start, blockCommentEnd(sql, i, driver))
    } else if (c === "'") {
      const end = driver === 'postgres' ? standardStringEnd(sql, i, true) : driver === 'mysql' ? mysqlStringEnd(sql, i) : quotedEnd(sql, i, "'", 'string')
      push('string', start, end, sql.slice(start + 1, end - 1))
    } else if (c === '"') {
      if (driver === 'mysql') {
        const end = mysqlStringEnd(sql, i)
        push('string', start, end, sql.slice(start + 1, end - 1), { dq: true })
      } else {
        const end = quotedEnd(sql, i, '"', 'quoted name')
        push('qident', start, end, sql.slice(start + 1, end - 1).replaceAll('""', '"'))
      }
    } else if (c === '`' && driver !== 'postgres') {
      const end = quotedEnd(sql, i, '`', 'quoted name')
      push('qident', start, end, sql.slice(start + 1, end - 1).replaceAll('``', '`'))
    } else if (c === '[' && driver === 'sqlite') {
      const close = sql.indexOf(']', i + 1)
      if (close < 0) refuse('The SQL has an unterminated [quoted name]')
      push('qident', start, close + 1, sql.slice(start + 1, close))
    } else if (c === '$' && driver === 'postgres') {
      DOLLAR_TAG.lastIndex = i
      const m = DOLLAR_TAG.exec(sql)
      if (m) {
        const close = sql.indexOf(m[0], i + m[0].length)
        if (close < 0) refuse(`The SQL has an unterminated ${m[0].length > 20 ? 'dollar' : m[0]}-quoted string`)
        push('string', start, close + m[0].length, sql.slice(i + m[0].length, close))
      } else if (isDigit(next)) {
        let j = i + 1
        while (j < n && isDigit(sql[j]!)) j++
        push('word', start, j)
      } else push('punct', start, i + 1)
    } else if (isIdentStart(c) || (driver === 'mysql' && c === '$')) {
      let j = i + 1
      while (j < n && isIdentPart(sql[j]!)) j++
      const word = sql.slice(i, j)
      const lower = word.toLowerCase()
      if (driver === 'postgres' && sql[j] === "'" && (lower === 'e' || lower === 'b' || lower === 'x' || lower === 'n')) {
        const end = lower === 'e' ? escapeStringEnd(sql, j) : standardStringEnd(sql, j, true)
        push('string', start, end, sql.slice(j + 1, end - 1))
      } else if (driver === 'postgres' && lower === 'u' && sql[j] === '&' && sql[j + 1] === "'") {
        const end = standardStringEnd(sql, j + 1, false)
        push('string', start, end, sql.slice(j + 2, end - 1))
      } else if (driver === 'postgres' && lower === 'u' && sql[j] === '&' && sql[j + 1] === '"') {
        refuse('Unicode-escaped names (U&"…") are not accepted: write the characters themselves, in double quotes')
      } else push('word', start, j, lower)
    } else if (isDigit(c)) {
      // a number, as the databases read one; letters after it start a new word (old Postgres and
      // MySQL read `1.5into` as 1.5 INTO)
      NUMBER.lastIndex = i
      const end = i + NUMBER.exec(sql)![0].length
      if (driver === 'postgres' && sql[end] === '$') refuse('The SQL has a "$" right after a number, which servers read in different ways')
      push('word', start, end)
    } else {
      push('punct', start, i + 1)
    }
  }
  return out
}

const DOLLAR_TAG = /\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/y
const NUMBER = /0[xX][0-9A-Fa-f_]+|0[bB][01_]+|0[oO][0-7_]+|[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9]+)?/y

/** MySQL reads `--` as a comment only when a space or a control character (or the end) follows: `1--1` is 1 - -1. */
function mysqlDashComment(sql: string, i: number): boolean {
  const after = sql.charCodeAt(i + 2)
  return Number.isNaN(after) || after <= 0x20 || after === 0x7f
}

/** A `--` (or MySQL `#`) comment's end: Postgres ends it at CR or LF, MySQL and SQLite at LF only. */
function lineEnd(sql: string, i: number, driver: Driver): number {
  let j = i
  while (j < sql.length && sql[j] !== '\n' && !(driver === 'postgres' && sql[j] === '\r')) {
    // a lone CR in a comment: where the comment ends depends on the reader, so do not guess
    if (sql[j] === '\r' && sql[j + 1] !== '\n') refuse('The SQL has a carriage return inside a -- comment; end comments with a line feed')
    j++
  }
  return j
}

function blockCommentEnd(sql: string, i: number, driver: Driver): number {
  const body = sql.slice(i + 2, i + 4)
  if (driver === 'mysql' && (body.startsWith('!') || body.startsWith('M!') || body.startsWith('m!')))
    refuse('MySQL executable comments (/*! … */) are not accepted: MySQL runs what is inside them')
  if (body.startsWith('+')) refuse('Optimizer hints (/*+ … */) are not accepted: they can change settings such as the time limit')
  if (driver !== 'postgres') {
    const close = sql.indexOf('*/', i + 2)
    if (close >= 0) return close + 2
    if (driver === 'sqlite') return sql.length // SQLite reads an unterminated comment to the end
    return refuse('The SQL has an unterminated /* comment')
  }
  // Postgres comments nest
  let depth = 0
  let j = i
  while (j < sql.length) {
    if (sql[j] === '/' && sql[j + 1] === '*') {
      depth++
      j += 2
    } else if (sql[j] === '*' && sql[j + 1] === '/') {
      depth--
      j += 2
      if (depth === 0) return j
    } else j++
  }
  return refuse('The SQL has an unterminated /* comment')
}

/** The end of a quoted token where the quote is doubled to escape it and backslashes are plain. */
function quotedEnd(sql: string, i: number, q: string, what: string): number {
  let j = i + 1
  for (;;) {
    const close = sql.indexOf(q, j)
    if (close < 0) return refuse(`The SQL has an unterminated ${what}`)
    if (sql[close + 1] === q) j = close + 2
    else return close + 1
  }
}

/** The end of a quoted token where a backslash also escapes the next character (MySQL, Postgres E'…'). */
function backslashQuotedEnd(sql: string, i: number, q: string): number | null {
  let j = i + 1
  while (j < sql.length) {
    const c = sql[j]
    if (c === '\\') j += 2
    else if (c === q) {
      if (sql[j + 1] === q) j += 2
      else return j + 1
    } else j++
  }
  return null
}

/**
 * A Postgres '…' string (standard_conforming_strings on, the default since 9.1). If the server had
 * it off, a backslash would escape the quote: when that would end the string elsewhere, refuse.
 */
function standardStringEnd(sql: string, i: number, checkAmbiguity: boolean): number {
  const end = quotedEnd(sql, i, "'", 'string')
  if (checkAmbiguity && backslashQuotedEnd(sql, i, "'") !== end) refuse(AMBIGUOUS_BACKSLASH)
  return end
}

function escapeStringEnd(sql: string, i: number): number {
  return backslashQuotedEnd(sql, i, "'") ?? refuse('The SQL has an unterminated string')
}

/** A MySQL '…' or "…" string: backslash escapes, unless the server runs with NO_BACKSLASH_ESCAPES — both must agree. */
function mysqlStringEnd(sql: string, i: number): number {
  const q = sql[i]!
  const withEscapes = backslashQuotedEnd(sql, i, q)
  if (withEscapes === null) return refuse(`The SQL has an unterminated ${q === '"' ? '"…" string' : 'string'}`)
  let without: number | null = null
  try {
    without = quotedEnd(sql, i, q, 'string')
  } catch {
    without = null
  }
  if (without !== withEscapes) refuse(AMBIGUOUS_BACKSLASH)
  return withEscapes
}

const AMBIGUOUS_BACKSLASH =
  "The SQL has a backslash right before a quote in a string, which servers read differently depending on their settings (standard_conforming_strings, NO_BACKSLASH_ESCAPES); write a quote inside a string as '' and do not end a string with a backslash"

