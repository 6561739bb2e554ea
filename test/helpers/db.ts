/**
 * A fresh, migrated database per call: a SQLite file in a temp dir, or a new Postgres database
 * (created next to TEST_DATABASE_URL) dropped by `drop()`. Every database suite runs on SQLite,
 * and also on Postgres when TEST_DATABASE_URL is set: wrap it in `eachDialect`.
 */
import { describe } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { createDb, type Database } from '../../src/db/index.ts'
import { migrate } from '../../src/db/migrate.ts'

import type { Dialect } from '../../src/db/index.ts'

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined
export const DIALECTS: Dialect[] = TEST_DATABASE_URL ? ['sqlite', 'postgres'] : ['sqlite']

/** `describe` the suite once per dialect under test. */
export function eachDialect(name: string, suite: (dialect: Dialect) => void) {
  for (const dialect of DIALECTS) describe(`${name} [${dialect}]`, () => suite(dialect))
}

export interface TestDatabase {
  database: Database
  /** where the database lives: the Postgres URL, or the SQLite data dir */
  url: string | undefined
  dataDir: string
  /** close the handle and remove the database and its files */
  drop(): Promise<void>
}

let counter = 0

/** A database with no migrations applied (for migration tests). */
export async function createEmptyTestDatabase(dialect: Dialect): Promise<TestDatabase> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hearth-test-'))
  if (dialect === 'sqlite') {
    const database = createDb({ dataDir })
    return {
      database,
      url: undefined,
      dataDir,
      async drop() {
        await database.close()
        rmSync(dataDir, { recursive: true, force: true })
      },
    }
  }
  if (!TEST_DATABASE_URL) throw new Error('Postgres suites need TEST_DATABASE_URL')
  const name = `hearth_t_${process.pid}_${Date.now().toString(36)}_${counter++}`
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} })
  try {
    await admin.unsafe(`CREATE DATABASE "${name}"`)
  } finally {
    await admin.end()
  }
  const url = withDatabase(TEST_DATABASE_URL, name)
  const database = createDb({ url, dataDir })
  return {
    database,
    url,
    dataDir,
    async drop() {
      await database.close()
      const a = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} })
      try {
        await a.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
      } finally {
        await a.end()
        rmSync(dataDir, { recursive: true, force: true })
      }
    },
  }
}

export async function createTestDatabase(dialect: Dialect): Promise<TestDatabase> {
  const test = await createEmptyTestDatabase(dialect)
  await migrate(test.database)
  return test
}

export function withDatabase(url: string, name: string): string {
  const u = new URL(url)
  u.pathname = '/' + name
  return u.toString()
}
