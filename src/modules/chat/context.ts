/**
 * @module What the model is sent for a chat answer: the system prompt (the conversation's, its
 * preset's or the instance default), the user's memories when they turned memory on, and as much of
 * the branch as the user's `context_rounds` and the model's context window allow — never dropping
 * the system prompt or the new message. Earlier rounds of tool calls go back as calls paired with
 * their results, so that a follow-up question works on every provider.
 */
import type { ModelMessage } from 'ai'
import { DEFAULT_MAX_OUTPUT, type ToolCall } from '../../generation/model-turn.ts'
import { roundMessages } from '../../generation/tool-loop.ts'
import type { ChatRequest } from '../../llm/index.ts'
import type { ResolvedModel } from '../providers/service.ts'
import type { MessageRow } from './model.ts'

/** The path from the root to `leafId`, oldest first. */
export function branchOf(all: MessageRow[], leafId: string | null): MessageRow[] {
  const byId = new Map(all.map((m) => [m.id, m]))
  const path: MessageRow[] = []
  for (let m = leafId ? byId.get(leafId) : undefined; m; m = m.parentId ? byId.get(m.parentId) : undefined) path.push(m)
  return path.reverse()
}

export interface ContextInput {
  /** the system prompt to use, if any */
  basePrompt: string | null | undefined
  /** remembered facts, when the user has memory on */
  memories: string[]
  language?: 'zh' | 'en'
  /** the branch up to and including the new user message, oldest first */
  history: MessageRow[]
  contextRounds: number
  model: ResolvedModel
  maxTokens: number | undefined
  /** tools are offered: earlier tool rounds go as calls and results; without, only their text goes */
  withTools: boolean
}

const estimateTokens = (text: string) => Math.ceil(text.length / 4) + 4

/** A piece of the history that is kept or dropped whole: a question, an answer, or a round of tool calls with their results. */
interface Unit {
  messages: ModelMessage[]
  tokens: number
  isQuestion: boolean
}

/** The stored tool calls of an answer (its metadata's `tool_calls`). */
function callsOf(m: MessageRow): ToolCall[] {
  const calls = m.metadata.tool_calls
  return Array.isArray(calls) ? (calls as ToolCall[]).filter((c) => c && typeof c.id === 'string' && typeof c.name === 'string') : []
}

/**
 * The earlier messages as units. An answer followed by tool messages is a round: with tools, its
 * calls and their results are sent paired by call id (roundMessages); without, only its text. Failed
 * answers, and the tool messages of a failed round, are left out.
 */
function unitsOf(earlier: MessageRow[], withTools: boolean): Unit[] {
  const units: Unit[] = []
  for (let i = 0; i < earlier.length; i++) {
    const m = earlier[i]!
    let end = i + 1
    while (end < earlier.length && earlier[end]!.role === 'tool') end++
    const results = earlier.slice(i + 1, end)
    if (m.role === 'tool' || m.status === 'error' || (m.role !== 'user' && m.role !== 'assistant')) continue
    const calls = m.role === 'assistant' ? callsOf(m) : []
    if (withTools && calls.length && results.length) {
      const messages = roundMessages(m.content, calls, results.map((r) => ({ id: String(r.metadata.tool_call_id ?? ''), text: r.content, isError: r.metadata.is_error === true })))
      const chars = m.content.length + calls.reduce((n, c) => n + c.arguments.length, 0) + results.reduce((n, r) => n + r.content.length, 0)
      units.push({ messages, tokens: Math.ceil(chars / 4) + 4 * (1 + results.length), isQuestion: false })
      i = end - 1
    } else if (m.content) units.push({ messages: [{ role: m.role, content: m.content }], tokens: estimateTokens(m.content), isQuestion: m.role === 'user' })
  }
  return units
}

export function buildContext(input: ContextInput): Pick<ChatRequest, 'system' | 'messages'> {
  const system: string[] = []
  if (input.basePrompt) system.push(input.basePrompt)
  if (input.memories.length) system.push(`Things the user asked you to remember:\n${input.memories.map((f) => `- ${f}`).join('\n')}`)
  if (input.language) system.push(input.language === 'zh' ? 'Answer in Chinese.' : 'Answer in English.')
  const { history } = input
  const newest = history[history.length - 1]!
  let earlier = unitsOf(history.slice(0, -1), input.withTools)
  // context_rounds: the last N user→assistant exchanges (0: only the new message)
  let seen = 0
  let start = earlier.length
  while (start > 0 && seen < input.contextRounds) {
    start--
    if (earlier[start]!.isQuestion) seen++
  }
  earlier = earlier.slice(start)
  // the model's context window: drop the oldest turns (never the system prompt or the new message)
  const window = input.model.model.contextWindow
  if (window) {
    const budget = window - (input.maxTokens ?? Math.min(DEFAULT_MAX_OUTPUT, Math.floor(window / 4)))
    let used = estimateTokens(system.join('\n')) + estimateTokens(newest.content)
    let keepFrom = earlier.length
    while (keepFrom > 0 && used + earlier[keepFrom - 1]!.tokens <= budget) used += earlier[--keepFrom]!.tokens
    earlier = earlier.slice(keepFrom)
  }
  return {
    system: system.length ? system.join('\n\n') : undefined,
    messages: [...earlier.flatMap((u) => u.messages), { role: 'user', content: newest.content }],
  }
}
