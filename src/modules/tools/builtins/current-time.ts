/** @module The `current_time` built-in: the server's clock, in UTC and in a time zone of the caller's choice. */
import type { BuiltinTool } from '../types.ts'

export const currentTimeTool: BuiltinTool = {
  name: 'current_time',
  description: 'The current date and time: ISO-8601 UTC, and the local time in an IANA time zone (default UTC).',
  inputSchema: {
    type: 'object',
    properties: { timezone: { type: 'string', description: 'IANA time zone, e.g. Europe/Paris (default UTC)', maxLength: 64 } },
    additionalProperties: false,
  },
  async call(args) {
    const timezone = typeof args.timezone === 'string' && args.timezone ? args.timezone : 'UTC'
    const now = new Date()
    let local: string
    try {
      local = new Intl.DateTimeFormat('en-CA', { timeZone: timezone, dateStyle: 'full', timeStyle: 'long' }).format(now)
    } catch {
      return { content: [{ type: 'text', text: `Unknown time zone: ${timezone}` }], isError: true }
    }
    const iso = now.toISOString()
    return { content: [{ type: 'text', text: `${iso} (${local})` }], structuredContent: { iso, timezone, local, unix: Math.floor(now.getTime() / 1000) }, isError: false }
  },
}
