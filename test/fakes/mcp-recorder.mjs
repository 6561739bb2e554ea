// A stdio MCP server in front of another: runs the command in its arguments, passes stdin and stdout
// through, and appends every byte it receives on stdin to $MCP_RECORD_FILE, so tests can read what a
// client really sent (notifications/cancelled). Its child's pid goes to $MCP_PID_FILE: the child is a
// grandchild of Hearth, which must stop it too. Run with node.
import { spawn } from 'node:child_process'
import { appendFileSync, writeFileSync } from 'node:fs'

const [command, ...args] = process.argv.slice(2)
const child = spawn(command, args, { stdio: ['pipe', 'inherit', 'inherit'] })
if (process.env.MCP_PID_FILE) writeFileSync(process.env.MCP_PID_FILE, String(child.pid))
process.stdin.on('data', (chunk) => {
  if (process.env.MCP_RECORD_FILE) appendFileSync(process.env.MCP_RECORD_FILE, chunk)
  child.stdin.write(chunk)
})
process.stdin.on('end', () => child.stdin.end())
child.on('exit', (code) => process.exit(code ?? 1))
