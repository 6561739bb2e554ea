/**
 * @module Prompts: each user's own versions of the built-in prompts (defaults.ts) that questions
 * over SQL send the model. A user's version is theirs alone: everyone else keeps the default.
 * `render` is what the SQL chat calls: the user's template (or the default) with the values.
 */
import { and, eq, inArray, sql } from 'drizzle-orm'
import type { FieldProblem } from '../../lib/errors.ts'
import type { Database } from '../../db/index.ts'
import { PROMPTS, PROMPT_NAMES, isPromptName, variablesOf, type PromptName } from './defaults.ts'
import { invalidPrompts, nothingToChange, unknownPrompts } from './errors.ts'
import { problemsOf, renderTemplate, type TemplateValues } from './template.ts'

/** The longest a prompt may be, in characters. */
export const MAX_PROMPT_LENGTH = 20_000

export interface Prompt {
  name: PromptName
  description: string
  content: string
  defaultContent: string
  isCustomized: boolean
  variables: string[]
  updatedAt: Date | null
}

export function createPromptsService(deps: { database: Database }) {
  const { db, t } = deps.database

  async function customOf(userId: string): Promise<Map<string, { content: string; updatedAt: Date }>> {
    const rows = await db.select({ name: t.prompts.name, content: t.prompts.content, updatedAt: t.prompts.updatedAt }).from(t.prompts).where(eq(t.prompts.userId, userId))
    return new Map(rows.map((r) => [r.name, r]))
  }

  async function list(userId: string): Promise<Prompt[]> {
    const custom = await customOf(userId)
    return PROMPT_NAMES.map((name) => {
      const own = custom.get(name)
      return { name, description: PROMPTS[name].description, content: own?.content ?? PROMPTS[name].content, defaultContent: PROMPTS[name].content, isCustomized: own !== undefined, variables: variablesOf(name), updatedAt: own?.updatedAt ?? null }
    })
  }

  /** The user's template for a prompt (or the default). */
  async function template(userId: string, name: PromptName): Promise<string> {
    const [row] = await db.select({ content: t.prompts.content }).from(t.prompts).where(and(eq(t.prompts.userId, userId), eq(t.prompts.name, name)))
    return row?.content ?? PROMPTS[name].content
  }

  function unknownOf(names: string[]): void {
    const unknown = names.filter((n) => !isPromptName(n))
    if (unknown.length > 0) throw unknownPrompts(unknown)
  }

  return {
    /** the four prompts, in a fixed order: the user's version where they have one, else the default */
    list,

    /**
     * Set some of the user's prompts at once (all or none: one bad prompt changes nothing). A
     * content equal to the default removes the user's version, so later defaults reach them.
     */
    async update(userId: string, changes: Record<string, string>): Promise<Prompt[]> {
      const names = Object.keys(changes)
      if (names.length === 0) throw nothingToChange()
      unknownOf(names)
      const problems: FieldProblem[] = []
      for (const name of names as PromptName[]) {
        const content = changes[name]!
        if (content.trim() === '') problems.push({ path: name, message: 'must not be empty (to go back to the default, use POST /api/v1/prompts/reset)' })
        else if (content.length > MAX_PROMPT_LENGTH) problems.push({ path: name, message: `must be at most ${MAX_PROMPT_LENGTH} characters` })
        else for (const message of problemsOf(content, variablesOf(name))) problems.push({ path: name, message })
      }
      if (problems.length > 0) throw invalidPrompts(problems)

      const now = new Date()
      const toDefault = (names as PromptName[]).filter((n) => changes[n] === PROMPTS[n].content)
      const toStore = (names as PromptName[]).filter((n) => changes[n] !== PROMPTS[n].content)
      // one statement each, both idempotent: a retried or concurrent PUT ends in the same rows
      if (toDefault.length > 0) await db.delete(t.prompts).where(and(eq(t.prompts.userId, userId), inArray(t.prompts.name, toDefault)))
      if (toStore.length > 0)
        await db
          .insert(t.prompts)
          .values(toStore.map((name) => ({ userId, name, content: changes[name]!, updatedAt: now })))
          .onConflictDoUpdate({ target: [t.prompts.userId, t.prompts.name], set: { content: sql`excluded.content`, updatedAt: now } })
      return list(userId)
    },

    /** Back to the defaults: the named prompts, or all of them. */
    async reset(userId: string, names?: string[]): Promise<Prompt[]> {
      if (names) unknownOf(names)
      await db.delete(t.prompts).where(names ? and(eq(t.prompts.userId, userId), inArray(t.prompts.name, names)) : eq(t.prompts.userId, userId))
      return list(userId)
    },

    template,

    /**
     * The prompt the model is sent: the user's template (or the default) with the values put in.
     * A variable without a value is empty (so is its `{{#section}}`); values for names the prompt
     * does not have are ignored.
     */
    async render(userId: string, name: PromptName, values: TemplateValues): Promise<string> {
      return renderTemplate(await template(userId, name), values, variablesOf(name))
    },
  }
}

export type PromptsService = ReturnType<typeof createPromptsService>
