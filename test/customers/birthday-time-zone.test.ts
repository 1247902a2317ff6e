import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { getCustomerProfileByIdentity } from '../../src/customers/customer-profile.service.ts'
import { migrateToLatest } from '../../src/main/migrate.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { cardNumber } from './factories.ts'

// A `date` (the birthday) is a calendar day, not an instant: read as text on both engines. PGlite
// read it as UTC midnight, which the profile then showed in the process's zone: west of UTC, the
// day before. Node takes a TZ set at run time; the files of a run go one after another, and
// this one puts the zone back after.
const zone = process.env.TZ
let db: Database
let embedded: Database
let dataDir: string
beforeAll(async () => {
  process.env.TZ = 'America/New_York'
  db = await createDb({ DATABASE_URL: TEST_DATABASE_URL, DATA_DIR: '' }, { poolSize: 2 })
  dataDir = await mkdtemp(join(tmpdir(), 'kizuna-birthday-'))
  embedded = await createDb({ DATABASE_URL: undefined, DATA_DIR: dataDir })
  await migrateToLatest(embedded)
})
afterAll(async () => {
  if (zone === undefined) delete process.env.TZ
  else process.env.TZ = zone
  await db?.destroy()
  await embedded?.destroy()
  if (dataDir) await rm(dataDir, { recursive: true, force: true })
})

describe('a birthday west of UTC', () => {
  it('is the day stored, on Postgres and on embedded PGlite', async () => {
    expect(new Date(2026, 0, 1).getTimezoneOffset()).toBe(300)
    for (const [engine, on] of [
      ['postgres', () => db],
      ['pglite', () => embedded],
    ] as const) {
      const card = cardNumber()
      const { id } = await on()
        .insertInto('customer')
        .values({ birthday: '1990-04-01' })
        .returning('id')
        .executeTakeFirstOrThrow()
      await on()
        .insertInto('identity')
        .values({ customer_id: id, kind: 'member_card', value: card })
        .execute()
      const row = await on()
        .selectFrom('customer')
        .select('birthday')
        .where('id', '=', id)
        .executeTakeFirstOrThrow()
      expect(row.birthday, engine).toBe('1990-04-01')
      const profile = await getCustomerProfileByIdentity(on(), {
        kind: 'member_card',
        value: card,
        typed: card,
      })
      expect(profile.birthday, engine).toBe('1990-04-01')
    }
  })
})
