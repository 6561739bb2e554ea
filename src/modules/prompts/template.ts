/**
 * @module The prompt templates' language, a small subset of Mustache without HTML escaping:
 * `{{name}}` is the value; `{{#name}}…{{/name}}` is kept only when the value is not empty and
 * `{{^name}}…{{/name}}` only when it is (sections nest). Spaces inside the braces are allowed.
 * A `{{` that does not start such a tag is plain text. Values are inserted as they are, once: a
 * value that contains `{{…}}` is not read again.
 */

export type TemplateToken =
  | { kind: 'text'; text: string }
  | { kind: 'var'; name: string }
  | { kind: 'open'; name: string; inverted: boolean }
  | { kind: 'close'; name: string }

const TAG = /\{\{\s*([#^/]?)\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g

export function tokenize(template: string): TemplateToken[] {
  const out: TemplateToken[] = []
  let last = 0
  for (const m of template.matchAll(TAG)) {
    if (m.index > last) out.push({ kind: 'text', text: template.slice(last, m.index) })
    const [, sigil, name] = m as unknown as [string, string, string]
    out.push(sigil === '' ? { kind: 'var', name } : sigil === '/' ? { kind: 'close', name } : { kind: 'open', name, inverted: sigil === '^' })
    last = m.index + m[0].length
  }
  if (last < template.length) out.push({ kind: 'text', text: template.slice(last) })
  return out
}

/** What is wrong with a template for these variables: the unknown names, unbalanced sections. Empty when it is fine. */
export function problemsOf(template: string, allowed: readonly string[]): string[] {
  const problems: string[] = []
  const unknown = new Set<string>()
  const open: string[] = []
  // the first section problem is told; what follows it would only repeat it
  let broken = false
  for (const t of tokenize(template)) {
    if (t.kind === 'text') continue
    if (!allowed.includes(t.name)) unknown.add(t.name)
    if (broken) continue
    if (t.kind === 'open') open.push(t.name)
    else if (t.kind === 'close') {
      const top = open.pop()
      if (top === undefined) problems.push(`{{/${t.name}}} closes a section that was not opened`)
      else if (top !== t.name) problems.push(`{{/${t.name}}} closes {{#${top}}}: sections must close in order`)
      broken = problems.length > 0
    }
  }
  if (broken) open.length = 0
  for (const name of open) problems.push(`{{#${name}}} is never closed with {{/${name}}}`)
  if (unknown.size > 0) problems.unshift(`unknown variable${unknown.size > 1 ? 's' : ''} ${[...unknown].map((n) => `{{${n}}}`).join(', ')}; this prompt may use ${allowed.map((n) => `{{${n}}}`).join(', ')}`)
  return problems
}

export type TemplateValues = Record<string, string | number | boolean | null | undefined>

const text = (v: TemplateValues[string]): string => (v === null || v === undefined || v === false ? '' : String(v))

/**
 * The template with its values: a name without a value (or not allowed) is empty; an unclosed
 * section runs to the end, a stray close is ignored (stored templates are checked; this never throws).
 */
export function renderTemplate(template: string, values: TemplateValues, allowed?: readonly string[]): string {
  const value = (name: string) => (allowed && !allowed.includes(name) ? '' : text(values[name]))
  let out = ''
  // each open section: whether its content is shown
  const shown: { name: string; on: boolean }[] = []
  const visible = () => shown.every((s) => s.on)
  for (const t of tokenize(template)) {
    if (t.kind === 'open') shown.push({ name: t.name, on: (value(t.name) !== '') !== t.inverted })
    else if (t.kind === 'close') {
      const i = shown.map((s) => s.name).lastIndexOf(t.name)
      if (i >= 0) shown.splice(i)
    } else if (visible()) out += t.kind === 'text' ? t.text : value(t.name)
  }
  return out.replace(/\n{3,}/g, '\n\n').trim()
}
