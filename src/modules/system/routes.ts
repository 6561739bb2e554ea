/** @module Service endpoints: /health, /ready, the OpenAPI document and the offline /docs page. */
import { openapi } from '@elysiajs/openapi'
import scalarBundlePath from '@scalar/api-reference/browser/standalone.js' with { type: 'file' }
import { Elysia } from 'elysia'
import { z } from 'zod'
import type { Database } from '../../db/index.ts'
import { AppError } from '../../lib/errors.ts'
import { problemSchema } from '../../lib/schemas.ts'
import { finishDocument } from '../../plugins/openapi-document.ts'

const SCALAR_PATH = '/docs/assets/scalar.js'

export function serviceRoutes(deps: { database: Database; version: string }) {
  const scalar = lazyAsset(scalarBundlePath)
  return new Elysia({ name: 'hearth.service', detail: { tags: ['Service'] } })
    // applies to the plugin's document route, which is registered after it
    .onAfterHandle(({ path, response }) => {
      if (path === '/openapi.json') finishDocument(response as Parameters<typeof finishDocument>[0])
    })
    .use(
      openapi({
        path: '/docs',
        specPath: '/openapi.json',
        documentation: {
          info: { title: 'Hearth API', version: deps.version, description: 'Accounts, model providers, streaming chat, tasks, tools and files for AI applications. Guide: docs/api.md in the repository.' },
          components: {
            securitySchemes: {
              bearer: { type: 'http', scheme: 'bearer', description: 'An access JWT or an API key (hk_…)' },
              cookie: { type: 'apiKey', in: 'cookie', name: 'hearth_access' },
            },
          },
        },
        mapJsonSchema: { zod: (schema: z.ZodType) => toJsonSchema(schema) },
        // The page's script is served by Hearth itself, so /docs works with no internet.
        scalar: { url: '/openapi.json', cdn: SCALAR_PATH, withDefaultFonts: false, hideClientButton: true, telemetry: false, agent: { disabled: true } } as never,
      }),
    )
    .get(SCALAR_PATH, ({ request }) => scalar(request), { detail: { hide: true } })
    .get('/health', () => ({ status: 'healthy' as const }), {
      response: { 200: z.object({ status: z.literal('healthy') }) },
      detail: { summary: 'The process is up' },
    })
    .get(
      '/ready',
      async () => {
        try {
          await deps.database.ping()
        } catch {
          throw new AppError(503, 'SERVICE_UNAVAILABLE', 'The database does not answer')
        }
        return { status: 'ready' as const, database: deps.database.dialect }
      },
      {
        response: { 200: z.object({ status: z.literal('ready'), database: z.enum(['sqlite', 'postgres']) }), 503: problemSchema },
        detail: { summary: 'The database answers' },
      },
    )
}

/** JSON Schema for the OpenAPI document, without the per-schema `$schema` noise. */
function toJsonSchema(schema: z.ZodType) {
  const json = z.toJSONSchema(schema, { unrepresentable: 'any', io: 'output' }) as Record<string, unknown>
  delete json.$schema
  return json
}

/** Serve a static file read once, gzipped once, with long caching. */
function lazyAsset(path: string) {
  let plain: Uint8Array | undefined
  let gzipped: Uint8Array | undefined
  return async (request: Request) => {
    plain ??= new Uint8Array(await Bun.file(path).arrayBuffer())
    const headers: Record<string, string> = { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'public, max-age=86400', vary: 'accept-encoding' }
    if (request.headers.get('accept-encoding')?.includes('gzip')) {
      gzipped ??= Bun.gzipSync(plain as Uint8Array<ArrayBuffer>)
      return new Response(gzipped as Uint8Array<ArrayBuffer>, { headers: { ...headers, 'content-encoding': 'gzip' } })
    }
    return new Response(plain as Uint8Array<ArrayBuffer>, { headers })
  }
}
