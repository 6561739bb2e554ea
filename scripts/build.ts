/** Builds dist/hearth: one executable with the migrations and the /docs assets inside. */
import { statSync } from 'node:fs'
import { join } from 'node:path'

const root = join(import.meta.dir, '..')
const outfile = join(root, 'dist/hearth')
const proc = Bun.spawnSync([process.execPath, 'build', '--compile', '--minify', '--sourcemap', '--bytecode', join(root, 'src/index.ts'), '--outfile', outfile], {
  cwd: root,
  stdout: 'inherit',
  stderr: 'inherit',
})
if (proc.exitCode !== 0) process.exit(proc.exitCode ?? 1)
console.log(`dist/hearth: ${(statSync(outfile).size / 1024 / 1024).toFixed(1)} MB`)
