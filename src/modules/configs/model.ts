/** @module The configs wire: the Config object, the known-names listing and the request bodies, and the mappings to and from the service's camelCase. */
import { z } from 'zod'
import { isoDate } from '../../lib/schemas.ts'
import type { ConfigInput, ConfigsService, ShownConfig } from './service.ts'

/** a group or a name: letters, digits, `_ . -`, folded to lower case (`GOOGLE_API_KEY` is `google_api_key`) */
export const configKey = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - (case does not matter)')
  .toLowerCase()
const configValue = z.string().max(65_536).nullable()
export const configScope = z.enum(['personal', 'global'])

export const configSchema = z
  .object({
    id: z.string(),
    config_group: z.string(),
    config_name: z.string(),
    config_value: z.string().nullable().meta({ description: 'the value; for a secret only a hint (`sk-...abcd`); `null` when unset, and for a global secret shown to a non-admin' }),
    is_secret: z.boolean(),
    has_value: z.boolean().meta({ description: 'whether a value is set (also when `config_value` is hidden)' }),
    scope: configScope,
    created_at: isoDate,
    updated_at: isoDate,
  })
  .meta({ id: 'Config' })

export const configInfoSchema = z.array(z.object({ config_group: z.string(), names: z.array(z.object({ config_name: z.string(), description: z.string(), secret: z.boolean() })) }))

export const configBody = z.object({ config_group: configKey, config_name: configKey, config_value: configValue, is_secret: z.boolean().optional(), scope: configScope.optional() })
export const configValueBody = z.object({ config_value: configValue })
export const configListFilter = z.object({ config_group: configKey.optional(), scope: configScope.optional() })

export const toConfigDto = (c: ShownConfig): z.infer<typeof configSchema> => ({
  id: c.id,
  config_group: c.configGroup,
  config_name: c.configName,
  config_value: c.shownValue,
  is_secret: c.isSecret,
  has_value: c.configValue !== null,
  scope: c.scope,
  created_at: c.createdAt.toISOString(),
  updated_at: c.updatedAt.toISOString(),
})

export const toConfigInfoDto = (info: ReturnType<ConfigsService['info']>): z.infer<typeof configInfoSchema> =>
  info.map((g) => ({ config_group: g.group, names: g.names.map(({ name, ...n }) => ({ config_name: name, ...n })) }))

export const fromConfigBody = (b: z.infer<typeof configBody>): ConfigInput => ({ group: b.config_group, name: b.config_name, value: b.config_value, isSecret: b.is_secret, scope: b.scope })
