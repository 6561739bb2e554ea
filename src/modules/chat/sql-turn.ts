/**
 * @module A question over SQL: the answer of a turn in a conversation with a data connection. It
 * runs as the chat run of its turn (turns.ts opens it, holds the first call's credits and ends it
 * with `usage`, `title` and `done`), so stop, re-attach and regenerate work as for any answer. In
 * order: the schema part relevant to the question (sql-schema.ts; enum values sampled and cached),
 * the SQL from the user's `sql_generation` prompt, the query through the connections module's
 * read-only guard — a refused or failing statement goes back to the model with the database's
 * message, at most twice — then the result, its chart, and the answer from the `sql_answer`
 * prompt streamed as `delta`s in the user's language. Each model call is a model turn of its own
 * (held, recorded, settled); the one message holds them all.
 */
import { eq } from 'drizzle-orm'
import type { Database } from '../../db/index.ts'
import type { ModelTurns, TurnResult } from '../../generation/model-turn.ts'
import { AppError } from '../../lib/errors.ts'
import type { Logger } from '../../lib/logger.ts'
import type { ChatRequest } from '../../llm/index.ts'
import type { Run } from '../../runs/index.ts'
import type { Principal } from '../auth/service.ts'
import { chartFor, type Chart } from '../connections/charts.ts'
import type { ConnectionsApi, Driver, QueryResult } from '../connections/types.ts'
import type { PromptName } from '../prompts/defaults.ts'
import type { ResolvedModel } from '../providers/service.ts'
import { emitChatEvent as emit, type ConversationRow, type MessageRow } from './model.ts'
import {
  chartHint,
  dialectName,
  enumCandidates,
  enumValues,
  extractSql,
  MAX_ENUM_VALUES,
  MAX_SAMPLED_COLUMNS,
  rankTables,
  renderSchema,
  samplesKey,
  SCHEMA_BUDGET_CHARS,
  selectTables,
  type SampleValues,
} from './sql-schema.ts'

/** Corrections after a failing statement: the model is asked at most this many times again. */
export const MAX_SQL_CORRECTIONS = 2
/** Rows of the result kept in the message's metadata, and the most JSON they may take. */
export const METADATA_ROWS = 20
const METADATA_ROWS_BYTES = 64_000
/** Rows, and characters, of the result the answer prompt is given. */
const PROMPT_ROWS = 50
const PROMPT_RESULT_CHARS = 8_000
/** The `result` event carries the rows up to this much JSON (the rest: `truncated`). */
export const RESULT_EVENT_BYTES = 1_000_000
/** Rows the chart prompt is shown, and the most it may answer (one word). */
const CHART_SAMPLE_ROWS = 10
const CHART_MAX_TOKENS = 16
/** Earlier questions with their SQL that a follow-up question is sent, at most. */
const FOLLOW_UPS = 3
/** How long sampled enum values are reused, and how many are kept. */
const SAMPLE_TTL_MS = 10 * 60_000
const SAMPLE_CACHE_ENTRIES = 5_000
/** How often the answer's row is written while nothing streams into it, as a sign of life (turns.ts STALE_STREAMING_MS). */
const KEEPALIVE_MS = 10_000

/** The prompts module: a user's template (or the default) with its variables filled in (src/modules/prompts). */
export interface PromptRenderer {
  render(userId: string, name: PromptName, values: Record<string, string>): Promise<string>
}

/** What questions over SQL need from the rest of Hearth. */
export interface SqlDeps {
  connections: ConnectionsApi
  prompts: PromptRenderer
  /** HEARTH_SQL_MAX_ROWS: the prompt's {{row_limit}} */
  maxRows: number
}

export interface SqlAnswerInput {
  conversation: ConversationRow
  connection: { id: string; name: string; driver: Driver }
  model: ResolvedModel
  assistantId: string
  /** what turns.ts held for the first model call */
  held: number
  question: string
  language: 'zh' | 'en'
  /** the branch before the question, oldest first (earlier questions over SQL for a follow-up) */
  earlier: MessageRow[]
  contextRounds: number
  temperature?: number
  maxTokens?: number
}

/** How the answer ended, for turns.ts to announce (`usage`, `error`, `title`, `done`). */
export interface SqlOutcome {
  status: 'complete' | 'stopped' | 'error'
  finishReason: TurnResult['finishReason']
  text: string
  error?: { code: string; message: string }
  usage: { inputTokens: number; outputTokens: number }
  cost: number
  settled: Promise<void>
}

/** A stop noticed between calls. */
class SqlTurnStopped extends Error {}

/** A failure that ends the answer with an `error` event (the message keeps what happened). */
class SqlTurnFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

const languageName = (l: 'zh' | 'en') => (l === 'zh' ? 'Chinese' : 'English')

/** A value as the answer prompt shows it. */
function cell(v: unknown): string {
  if (v === null || v === undefined) return 'NULL'
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v)
  return s.length > 200 ? `${s.slice(0, 200)}…` : s.replace(/[\r\n|]+/g, ' ')
}

/** The result for the answer prompt: a pipe table of its first rows, bounded, saying how much is left out. */
export function resultForPrompt(r: QueryResult): string {
  const lines = [r.columns.map((c) => c.name).join(' | ')]
  let size = lines[0]!.length
  let shown = 0
  for (const row of r.rows.slice(0, PROMPT_ROWS)) {
    const line = row.map(cell).join(' | ')
    if (size + line.length > PROMPT_RESULT_CHARS) break
    lines.push(line)
    size += line.length + 1
    shown++
  }
  const more = r.rows_count > shown || r.truncated ? `\n(${shown} of ${r.truncated ? 'more than ' : ''}${r.rows_count} rows shown)` : ''
  return `${lines.join('\n')}${more}`
}

/** The first rows whose JSON stays within `bytes` (characters; the rows are mostly ASCII). */
function rowsWithin(rows: unknown[][], bytes: number): { rows: unknown[][]; cut: boolean } {
  let size = 2
  for (const [i, row] of rows.entries()) {
    size += JSON.stringify(row).length + 1
    if (size > bytes) return { rows: rows.slice(0, i), cut: true }
  }
  return { rows, cut: false }
}

/** The message a query failure is told as (to the model, in `retrying`), from the connections module's error. */
function queryProblem(error: AppError): string {
  const sql = error.errors?.find((e) => e.path === 'sql')?.message
  return (sql ?? error.detail).slice(0, 2_000)
}

export function createSqlTurns(deps: SqlDeps & { database: Database; logger: Logger; turns: ModelTurns }) {
  const { database, turns, connections, prompts } = deps
  const { db, t } = database
  const sampleCache = new Map<string, { values: unknown[] | null; at: number }>()

  /** The values of the enum-like text columns of `tables` (cached per connection and schema read; at most MAX_SAMPLED_COLUMNS looked up per turn). */
  async function sampled(p: Principal, connectionId: string, fetchedAt: string, tables: Parameters<typeof enumCandidates>[0]): Promise<SampleValues> {
    const samples: SampleValues = new Map()
    const now = Date.now()
    const todo: { key: string; cacheKey: string; table: (typeof tables)[number]; column: string }[] = []
    for (const { table, column } of enumCandidates(tables)) {
      const key = samplesKey(table, column.name)
      const cacheKey = `${connectionId}\u0000${fetchedAt}\u0000${key}`
      const cached = sampleCache.get(cacheKey)
      if (cached && now - cached.at < SAMPLE_TTL_MS) {
        if (cached.values) samples.set(key, cached.values)
      } else if (todo.length < MAX_SAMPLED_COLUMNS) todo.push({ key, cacheKey, table, column: column.name })
    }
    await Promise.all(
      todo.map(async ({ key, cacheKey, table, column }) => {
        let values: unknown[] | null = null
        try {
          values = enumValues(await connections.sampleValues(p, connectionId, { name: table.name, schema: table.schema }, column, MAX_ENUM_VALUES + 1))
        } catch (error) {
          deps.logger.debug('enum values not sampled', { error, connection_id: connectionId, column })
        }
        sampleCache.delete(cacheKey)
        sampleCache.set(cacheKey, { values, at: Date.now() })
        if (values) samples.set(key, values)
      }),
    )
    while (sampleCache.size > SAMPLE_CACHE_ENTRIES) sampleCache.delete(sampleCache.keys().next().value!)
    return samples
  }

  /** The earlier questions of the branch answered with SQL, with their SQL, oldest first (what a follow-up question is sent as {{history}}). */
  function followUps(earlier: MessageRow[], rounds: number): { question: string; sql: string }[] {
    const pairs: { question: string; sql: string }[] = []
    for (let i = earlier.length - 1; i > 0 && pairs.length < Math.min(FOLLOW_UPS, rounds); i--) {
      const a = earlier[i]!
      const q = earlier[i - 1]!
      if (a.role !== 'assistant' || q.role !== 'user' || typeof a.metadata.sql !== 'string' || a.status === 'error') continue
      pairs.unshift({ question: q.content.slice(0, 2_000), sql: a.metadata.sql })
    }
    return pairs
  }

  /**
   * The `chart` prompt's suggestion for a result that could be drawn more than one way (two or
   * more rows and columns); undefined when it cannot, or when the call gives nothing usable.
   */
  async function chartSuggestion(userId: string, question: string, r: QueryResult, call: (request: Omit<ChatRequest, 'model'>) => Promise<TurnResult>): Promise<string | undefined> {
    if (r.rows.length < 2 || r.columns.length < 2) return undefined
    const prompt = await prompts.render(userId, 'chart', {
      question,
      columns: r.columns.map((c) => `${c.name} (${c.type || 'unknown'})`).join(', '),
      sample: resultForPrompt({ ...r, rows: r.rows.slice(0, CHART_SAMPLE_ROWS) }),
    })
    const turn = await call({ messages: [{ role: 'user', content: prompt }], maxTokens: CHART_MAX_TOKENS, temperature: 0 })
    return turn.status === 'complete' ? turn.text.slice(0, 200) : undefined
  }

  return {
    /**
     * Answer `question` from the connection into the assistant message `assistantId`. Never throws
     * for what the model or the database did: it ends `error` (or `stopped`) and says why.
     */
    async answer(p: Principal, run: Run, ctx: SqlAnswerInput): Promise<SqlOutcome> {
      const { model, connection } = ctx
      const { signal } = run
      const started = performance.now()
      const usage = { inputTokens: 0, outputTokens: 0 }
      let cost = 0
      const settled: Promise<void>[] = []
      const attempts: { sql: string | null; error: string }[] = []
      let held: number | undefined = ctx.held
      let sql: string | undefined
      let result: QueryResult | undefined
      let chart: Chart | null = null
      let answerTurn: TurnResult | undefined
      let failure: SqlTurnFailure | undefined
      const write = (values: Partial<MessageRow>) => db.update(t.messages).set({ ...values, updatedAt: new Date() }).where(eq(t.messages.id, ctx.assistantId))
      const keepAlive = setInterval(() => void write({}).catch(() => {}), KEEPALIVE_MS)

      /** One model call: its own hold (the first one's was taken by turns.ts), usage added up. */
      async function call(request: Omit<ChatRequest, 'model'>, sink: Parameters<ModelTurns['run']>[0]['sink']): Promise<TurnResult> {
        let hold = held
        held = undefined
        if (hold === undefined) {
          try {
            hold = await turns.reserve(p, model, { inputChars: request.messages.reduce((n, m) => n + (typeof m.content === 'string' ? m.content.length : 0), (request.system ?? '').length), maxTokens: request.maxTokens ?? ctx.maxTokens })
          } catch (error) {
            if (error instanceof AppError && error.status === 402) throw new SqlTurnFailure('QUOTA_EXCEEDED', error.detail)
            throw error
          }
        }
        const turn = await turns.run({ principal: p, model, request: { temperature: ctx.temperature, maxTokens: ctx.maxTokens, ...request }, source: 'chat', held: hold, signal, sink, logFields: { conversation_id: ctx.conversation.id } })
        settled.push(turn.settled)
        usage.inputTokens += turn.usage.inputTokens
        usage.outputTokens += turn.usage.outputTokens
        cost += turn.cost
        if (turn.status === 'error') throw new SqlTurnFailure(turn.error?.code ?? 'UPSTREAM_ERROR', turn.error?.message ?? 'The model call failed')
        return turn
      }
      const stopped = () => signal.aborted

      try {
        emit(run, 'progress', { stage: 'analyzing', message: `Reading the tables of ${connection.name} that the question is about` })
        const schema = await connections.schema(p, connection.id)
        const earlier = followUps(ctx.earlier, ctx.contextRounds)
        const ranked = rankTables(schema, [ctx.question, ...earlier.map((e) => e.question)].join('\n'))
        const tables = selectTables(ranked, connection.driver, SCHEMA_BUDGET_CHARS - MAX_SAMPLED_COLUMNS * 160)
        const samples = await sampled(p, connection.id, schema.fetched_at, tables)
        const schemaPart = renderSchema(tables, connection.driver, samples, schema.tables.length)
        const language = languageName(ctx.language)
        const base = { dialect: dialectName(connection.driver), question: ctx.question, language }
        const generation = {
          ...base,
          schema: schemaPart.text,
          today: new Date().toISOString().slice(0, 10),
          row_limit: String(deps.maxRows),
          history: earlier.map((e) => `Question: ${e.question}\nSQL: ${e.sql}`).join('\n\n'),
        }
        let suggestion: string | undefined

        for (let attempt = 0; !result; attempt++) {
          if (stopped()) break
          const last = attempts.at(-1)
          emit(run, 'progress', { stage: 'generating_sql', message: last ? `Writing the SQL again (correction ${attempt} of ${MAX_SQL_CORRECTIONS})` : `Writing the SQL for ${dialectName(connection.driver)}` })
          let prompt = await prompts.render(ctx.conversation.userId, 'sql_generation', { ...generation, error: last?.error ?? '', previous_sql: last?.sql ?? '' })
          // a prompt that leaves the error out (a user's own) still tells the model what to correct
          if (last && !prompt.includes(last.error)) prompt += `\n\nThe previous SQL failed.\n${last.sql ? `SQL: ${last.sql}\n` : ''}Error: ${last.error}\nWrite a corrected query.`
          const turn = await call({ messages: [{ role: 'user', content: prompt }] }, { persist: () => write({}) })
          if (turn.status === 'stopped') break
          sql = extractSql(turn.text)
          suggestion = chartHint(turn.text) ?? suggestion
          let problem: string
          if (!sql) problem = 'The answer held no SQL statement: reply with one SELECT statement in a ```sql code block'
          else {
            emit(run, 'progress', { stage: 'executing', message: `Running the query on ${connection.name}` })
            try {
              result = await connections.query(p, connection.id, sql, { signal })
              break
            } catch (error) {
              if (stopped()) break
              if (!(error instanceof AppError)) throw error
              // only a statement the guard refused or the database failed can be corrected by the model
              if (error.status !== 422 && error.status !== 413) throw new SqlTurnFailure(error.code, error.detail)
              problem = queryProblem(error)
            }
          }
          attempts.push({ sql: sql ?? null, error: problem })
          if (attempt >= MAX_SQL_CORRECTIONS) throw new SqlTurnFailure('UPSTREAM_ERROR', `No working SQL after ${attempt + 1} attempts: ${problem}`)
          emit(run, 'progress', { stage: 'retrying', message: problem })
        }

        if (result && sql && !stopped()) {
          const shown = rowsWithin(result.rows, RESULT_EVENT_BYTES)
          emit(run, 'result', { sql, columns: result.columns, rows: shown.rows, rows_count: result.rows_count, truncated: result.truncated || shown.cut, duration_ms: result.duration_ms })
          // the model's word on the chart: a hint in its SQL answer, else the chart prompt's (a failing call only loses the suggestion)
          suggestion ??= await chartSuggestion(ctx.conversation.userId, ctx.question, result, (request) => call(request, {})).catch((error) => {
            if (error instanceof SqlTurnFailure && error.code === 'QUOTA_EXCEEDED') throw error
            return undefined
          })
          if (stopped()) throw new SqlTurnStopped()
          chart = chartFor(result, { suggestion, title: ctx.question.slice(0, 120) })
          // a table is what `result` already is: only a chart is announced (and kept as the visualization)
          if (chart && chart.type === 'table') chart = null
          if (chart) emit(run, 'visualization', { chart })
          await write({ metadata: sqlMetadata() })
          const prompt = await prompts.render(ctx.conversation.userId, 'sql_answer', {
            ...base,
            sql,
            result: resultForPrompt(result),
            rows_count: String(result.rows_count),
            truncated: result.truncated ? 'true' : '',
          })
          answerTurn = await call(
            { system: `Answer in ${language}.`, messages: [{ role: 'user', content: prompt }] },
            { text: (text) => emit(run, 'delta', { text }), persist: (content) => write({ content }) },
          )
        }
      } catch (error) {
        if (error instanceof SqlTurnFailure) failure = error
        else if (stopped()) {
          // a stop in the middle of a call that threw for it
        } else if (error instanceof AppError) failure = new SqlTurnFailure(error.code, error.detail)
        else {
          deps.logger.error('question over SQL failed', { error, conversation_id: ctx.conversation.id })
          failure = new SqlTurnFailure('INTERNAL_ERROR', 'The question could not be answered')
        }
      } finally {
        clearInterval(keepAlive)
        // the first call's hold, when it never came to be made
        if (held !== undefined) await turns.release(p, held).catch((error) => deps.logger.warn('credits hold not released', { error }))
      }

      function sqlMetadata() {
        return {
          model: model.model.name,
          provider_id: model.provider.id,
          connection_id: connection.id,
          sql: sql ?? null,
          execution_time: result?.duration_ms ?? null,
          rows_count: result?.rows_count ?? null,
          truncated: result?.truncated ?? false,
          columns: result?.columns ?? [],
          rows: result ? rowsWithin(result.rows.slice(0, METADATA_ROWS), METADATA_ROWS_BYTES).rows : [],
          visualization: chart,
          ...(attempts.length ? { sql_attempts: attempts } : {}),
        }
      }

      const status: SqlOutcome['status'] = failure ? 'error' : stopped() || !answerTurn || answerTurn.status === 'stopped' ? 'stopped' : 'complete'
      const finishReason: SqlOutcome['finishReason'] = status === 'error' ? 'error' : status === 'stopped' ? 'stopped' : answerTurn!.finishReason
      const text = answerTurn?.text ?? ''
      await write({
        content: text,
        status,
        metadata: {
          ...sqlMetadata(),
          input_tokens: usage.inputTokens,
          output_tokens: usage.outputTokens,
          cost,
          latency_ms: Math.round(performance.now() - started),
          ttft_ms: answerTurn?.ttftMs ?? null,
          finish_reason: finishReason,
          ...(failure ? { error: failure.message, ...(failure.code === 'QUOTA_EXCEEDED' ? { error_code: failure.code } : {}) } : {}),
        },
      })
      await db.update(t.conversations).set({ updatedAt: new Date() }).where(eq(t.conversations.id, ctx.conversation.id))
      return { status, finishReason, text, error: failure ? { code: failure.code, message: failure.message } : undefined, usage, cost, settled: Promise.all(settled).then(() => {}) }
    },
  }
}

export type SqlTurns = ReturnType<typeof createSqlTurns>
