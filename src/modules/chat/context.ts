/**
 * @module What the model is sent for a chat answer: the system prompt (the conversation's, its
 * preset's or the instance default), the user's memories when they turned memory on, and as much of
 * the branch as the user's `context_rounds` and the model's context window allow — never dropping
 * the system prompt or the new message.
 */
import { DEFAULT_MAX_OUTPUT } from '../../generation/model-turn.ts'
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
}

const estimateTokens = (text: string) => Math.ceil(text.length / 4) + 4

export function buildContext(input: ContextInput): Pick<ChatRequest, 'system' | 'messages'> {
  const system: string[] = []
  if (input.basePrompt) system.push(input.basePrompt)
  if (input.memories.length) system.push(`Things the user asked you to remember:\n${input.memories.map((f) => `- ${f}`).join('\n')}`)
  if (input.language) system.push(input.language === 'zh' ? 'Answer in Chinese.' : 'Answer in English.')
  const { history } = input
  const newest = history[history.length - 1]!
  let earlier = history.slice(0, -1).filter((m) => (m.role === 'user' || m.role === 'assistant') && m.content && m.status !== 'error')
  // context_rounds: the last N user→assistant exchanges (0: only the new message)
  let seen = 0
  let start = earlier.length
  while (start > 0 && seen < input.contextRounds) {
    start--
    if (earlier[start]!.role === 'user') seen++
  }
  earlier = earlier.slice(start)
  // the model's context window: drop the oldest turns (never the system prompt or the new message)
  const window = input.model.model.contextWindow
  if (window) {
    const budget = window - (input.maxTokens ?? Math.min(DEFAULT_MAX_OUTPUT, Math.floor(window / 4)))
    let used = estimateTokens(system.join('\n')) + estimateTokens(newest.content)
    let keepFrom = earlier.length
    while (keepFrom > 0 && used + estimateTokens(earlier[keepFrom - 1]!.content) <= budget) used += estimateTokens(earlier[--keepFrom]!.content)
    earlier = earlier.slice(keepFrom)
  }
  return {
    system: system.length ? system.join('\n\n') : undefined,
    messages: [...earlier, newest].map((m) => ({ role: m.role as 'user' | 'assistant', content: m.content })),
  }
}
