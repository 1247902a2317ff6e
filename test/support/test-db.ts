import { afterAll, beforeAll } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { TEST_DATABASE_URL } from './env.ts'

/** The test database, opened before this file's tests and closed after them: call it in a test. */
export function testDb(poolSize = 4): () => Database {
  let db: Database | undefined
  beforeAll(async () => {
    db = await createDb(loadEnv({ DATABASE_URL: TEST_DATABASE_URL }), { poolSize })
  })
  afterAll(async () => {
    await db?.destroy()
  })
  return () => {
    if (db === undefined) throw new Error('testDb() is read inside a test')
    return db
  }
}
