/**
 * Builds client/dist/index.d.ts, the `hearth-client` package's one file: the declaration of
 * client/index.ts, which spells out every route's types and imports nothing but `elysia`. Fails on
 * a declaration that would point anywhere else (into the server's sources or their dependencies),
 * since a frontend installing the package has neither.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import ts from 'typescript'

const root = join(import.meta.dir, '..')
export const CLIENT_ENTRY = join(root, 'client/index.ts')
export const CLIENT_DECLARATION = join(root, 'client/dist/index.d.ts')

/** The declaration's text and what is wrong with it (nothing, when it can ship). */
export function buildClientDeclaration(): { text: string; errors: string[] } {
  const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })
  if (!config) return { text: '', errors: ['tsconfig.json could not be read'] }
  const options: ts.CompilerOptions = { ...config.options, noEmit: false, declaration: true, emitDeclarationOnly: true, outDir: undefined, declarationDir: undefined }
  const program = ts.createProgram({ rootNames: [CLIENT_ENTRY], options })
  const entry = program.getSourceFile(CLIENT_ENTRY)!
  let text = ''
  const result = program.emit(entry, (_name, data) => (text = data), undefined, true)
  const format = (d: ts.Diagnostic) => ts.formatDiagnostic(d, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' }).trim()
  const errors = [...ts.getPreEmitDiagnostics(program, entry), ...result.diagnostics].map(format)
  const imports = [...text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)|\bfrom\s+["']([^"']+)["']|<reference\s+(?:path|types)=["']([^"']+)["']/g)].map((m) => m[1] ?? m[2] ?? m[3]!)
  for (const name of new Set(imports)) if (name !== 'elysia') errors.push(`the declaration refers to '${name}': only 'elysia' is installed beside it`)
  return { text, errors }
}

if (import.meta.main) {
  const started = performance.now()
  const built = buildClientDeclaration()
  if (built.errors.length) {
    for (const e of built.errors) console.error(e)
    process.exit(1)
  }
  mkdirSync(dirname(CLIENT_DECLARATION), { recursive: true })
  writeFileSync(CLIENT_DECLARATION, built.text)
  console.log(`client/dist/index.d.ts: ${(built.text.length / 1024).toFixed(0)} KB in ${((performance.now() - started) / 1000).toFixed(1)} s`)
}
