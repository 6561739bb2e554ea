/**
 * @module The built-in catalogue of well-known MCP servers (GET /mcp/catalog, POST /mcp/install
 * { catalog_id }): what each runs and the environment it needs. `${NAME}` in `args` is replaced by
 * the value of NAME from the server's env or the caller's user_vars when it starts.
 */

export interface CatalogServer {
  id: string
  name: string
  category: string
  description: string
  transport: 'stdio'
  command: string
  args: string[]
  /** what must be set (in env, or named in user_vars) before it can run */
  envRequired: string[]
  homepage: string
}

export const CATALOG_CATEGORIES = [
  { id: 'files', name: 'Files' },
  { id: 'developer', name: 'Development' },
  { id: 'web', name: 'Web and browsers' },
  { id: 'search', name: 'Search' },
  { id: 'data', name: 'Databases' },
  { id: 'productivity', name: 'Productivity' },
  { id: 'utilities', name: 'Utilities' },
] as const

const REFERENCE = 'https://github.com/modelcontextprotocol/servers/tree/main/src'
const ARCHIVED = 'https://github.com/modelcontextprotocol/servers-archived/tree/main/src'

const npx = (pkg: string, ...args: string[]) => ({ command: 'npx', args: ['-y', pkg, ...args] })
const uvx = (pkg: string, ...args: string[]) => ({ command: 'uvx', args: [pkg, ...args] })

const entry = (id: string, name: string, category: (typeof CATALOG_CATEGORIES)[number]['id'], description: string, run: { command: string; args: string[] }, envRequired: string[], homepage: string): CatalogServer => ({
  id,
  name,
  category,
  description,
  transport: 'stdio',
  ...run,
  envRequired,
  homepage,
})

export const CATALOG: CatalogServer[] = [
  entry('filesystem', 'Filesystem', 'files', 'Read, write, search and move files under one directory (FILESYSTEM_ROOT).', npx('@modelcontextprotocol/server-filesystem', '${FILESYSTEM_ROOT}'), ['FILESYSTEM_ROOT'], `${REFERENCE}/filesystem`),
  entry('git', 'Git', 'developer', 'Read and change a local Git repository: status, diff, log, commit, branches.', uvx('mcp-server-git', '--repository', '${GIT_REPOSITORY}'), ['GIT_REPOSITORY'], `${REFERENCE}/git`),
  entry('github', 'GitHub', 'developer', "GitHub's official server: repositories, issues, pull requests, Actions and code search.", { command: 'docker', args: ['run', '-i', '--rm', '-e', 'GITHUB_PERSONAL_ACCESS_TOKEN', 'ghcr.io/github/github-mcp-server'] }, ['GITHUB_PERSONAL_ACCESS_TOKEN'], 'https://github.com/github/github-mcp-server'),
  entry('sentry', 'Sentry', 'developer', 'Issues, events and releases from Sentry.', npx('@sentry/mcp-server'), ['SENTRY_ACCESS_TOKEN'], 'https://github.com/getsentry/sentry-mcp'),
  entry('everything', 'Everything', 'developer', "The MCP reference test server: every protocol feature (echo, sums, long operations, resources, prompts).", npx('@modelcontextprotocol/server-everything'), [], `${REFERENCE}/everything`),
  entry('fetch', 'Fetch', 'web', 'Fetch a web page and convert it to Markdown for the model.', uvx('mcp-server-fetch'), [], `${REFERENCE}/fetch`),
  entry('puppeteer', 'Puppeteer', 'web', 'Drive a headless Chromium: navigate, click, fill forms, take screenshots.', npx('@modelcontextprotocol/server-puppeteer'), [], `${ARCHIVED}/puppeteer`),
  entry('playwright', 'Playwright', 'web', "Microsoft's browser automation server, driven by the page's accessibility tree.", npx('@playwright/mcp@latest'), [], 'https://github.com/microsoft/playwright-mcp'),
  entry('brave-search', 'Brave Search', 'search', 'Web, news, image and local search through the Brave Search API.', npx('@brave/brave-search-mcp-server'), ['BRAVE_API_KEY'], 'https://github.com/brave/brave-search-mcp-server'),
  entry('postgres', 'PostgreSQL', 'data', 'Read-only SQL queries and schema inspection of a PostgreSQL database (POSTGRES_URL).', npx('@modelcontextprotocol/server-postgres', '${POSTGRES_URL}'), ['POSTGRES_URL'], `${ARCHIVED}/postgres`),
  entry('sqlite', 'SQLite', 'data', 'Queries and business-insight memos over a SQLite database file.', uvx('mcp-server-sqlite', '--db-path', '${SQLITE_DB_PATH}'), ['SQLITE_DB_PATH'], `${ARCHIVED}/sqlite`),
  entry('slack', 'Slack', 'productivity', 'Read and post messages, list channels and users of a Slack workspace.', npx('@modelcontextprotocol/server-slack'), ['SLACK_BOT_TOKEN', 'SLACK_TEAM_ID'], `${ARCHIVED}/slack`),
  entry('notion', 'Notion', 'productivity', "Notion's official server: search, read and edit pages and databases.", npx('@notionhq/notion-mcp-server'), ['NOTION_TOKEN'], 'https://github.com/makenotion/notion-mcp-server'),
  entry('memory', 'Memory', 'utilities', 'A knowledge graph the model keeps across conversations.', npx('@modelcontextprotocol/server-memory'), [], `${REFERENCE}/memory`),
  entry('time', 'Time', 'utilities', 'The current time and time zone conversions.', uvx('mcp-server-time'), [], `${REFERENCE}/time`),
  entry('sequential-thinking', 'Sequential Thinking', 'utilities', 'Step-by-step problem solving with revisable thoughts.', npx('@modelcontextprotocol/server-sequential-thinking'), [], `${REFERENCE}/sequentialthinking`),
]

export const catalogEntry = (id: string) => CATALOG.find((s) => s.id === id)
