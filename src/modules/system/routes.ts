/** @module Service endpoints (docs/api.md §3): /health, /ready, the OpenAPI document and the offline /docs page. */
import { openapi } from '@elysiajs/openapi'
import scalarBundlePath from '@scalar/api-reference/browser/standalone.js' with { type: 'file' }
import { Elysia, type InternalRoute } from 'elysia'
import { z } from 'zod'
import type { Database } from '../../db/index.ts'
import { problems } from '../../lib/schemas.ts'
import { databaseUnavailable } from './errors.ts'
import { finishDocument, jsonSchemaOf, type OpenAPIDocument } from '../../plugins/openapi-document.ts'

const SCALAR_PATH = '/docs/assets/scalar.js'

export function serviceRoutes(deps: { database: Database; version: string }) {
  const scalar = lazyAsset(scalarBundlePath)
  return new Elysia({ name: 'hearth.service', detail: { tags: ['Service'] } })
    .use(openapiDocs(deps.version))
    .get(SCALAR_PATH, ({ request }) => scalar(request), { detail: { hide: true } })
    .get('/health', () => ({ status: 'healthy' as const }), {
      response: { 200: z.object({ status: z.literal('healthy') }) },
      detail: { summary: 'Liveness', description: 'Answers while the process is up, without touching the database: use it as a liveness probe. Never rate-limited.' },
    })
    .get(
      '/ready',
      async () => {
        try {
          await deps.database.ping()
        } catch {
          throw databaseUnavailable()
        }
        return { status: 'ready' as const, database: deps.database.dialect }
      },
      {
        response: { 200: z.object({ status: z.literal('ready'), database: z.enum(['sqlite', 'postgres']) }), ...problems(503) },
        detail: { summary: 'Readiness', description: 'Answers `200` when the database answers within 2 s, else `503 SERVICE_UNAVAILABLE`: use it for readiness and load-balancer checks. Never rate-limited.' },
      },
    )
}

/** /openapi.json and the /docs page, the document finished by plugins/openapi-document.ts. */
function openapiDocs(version: string) {
  const docs = new Elysia({ name: 'hearth.openapi' })
  // the routes of the whole app, as the OpenAPI plugin reads them (the method is protected in Elysia's types)
  const routes = () => (docs as unknown as { getGlobalRoutes(): InternalRoute[] }).getGlobalRoutes()
  const merged = new WeakSet<object>()
  return docs
    .onAfterHandle(({ response }) => {
      if (response && typeof response === 'object' && 'paths' in response && !merged.has(response)) {
        finishDocument(response as OpenAPIDocument, routes())
        merged.add(response)
      }
    })
    .use(
      openapi({
        path: '/docs',
        specPath: '/openapi.json',
        documentation: {
          info: { title: 'Hearth API', version, description: 'Accounts, model providers, streaming chat, tasks, tools and files for AI applications. Guide: docs/api.md in the repository.' },
          components: {
            securitySchemes: {
              bearer: { type: 'http', scheme: 'bearer', description: 'An access JWT or an API key (hk_…)' },
              cookie: { type: 'apiKey', in: 'cookie', name: 'hearth_access' },
            },
          },
        },
        // The plugin does not say whether a schema is an input or an output: it gets outputs here, and
        // finishDocument converts the inputs (bodies, query and path parameters) again as inputs.
        mapJsonSchema: { zod: (schema: z.ZodType) => jsonSchemaOf(schema, 'output') },
        // The page's script is served by Hearth itself, so /docs works with no internet.
        scalar: { url: '/openapi.json', cdn: SCALAR_PATH, withDefaultFonts: false, hideClientButton: true, telemetry: false, agent: { disabled: true } } as never,
      }),
    )
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
