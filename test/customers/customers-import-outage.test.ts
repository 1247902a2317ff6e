import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { findCustomerByIdentity } from '../../src/customers/customer-lookup.service.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { tempFiles } from '../support/files.ts'
import { cliCutOffWhileWaiting, cliReadOnly, expectStoppedAt } from '../support/import-stops.ts'
import { customerLock, heldTransaction } from '../support/locks.ts'
import { createCustomer } from './factories.ts'

// `kizuna import customers` when Postgres goes away, cannot write (a failed-over primary) or
// gives up on a row (a lock or statement timeout): it stops saying what it saved before which
// line, as the orders import does, or runs the row again; it never reports the rest as bad rows.

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
let db: Database
let file: Awaited<ReturnType<typeof tempFiles>>
beforeAll(async () => {
  db = await createDb(env, { poolSize: 4 })
  file = await tempFiles('customers-outage')
})
afterAll(async () => {
  await db.destroy()
})

/**
 * A customer with a shop id, held by the test, and a file: a new customer (line 2), a bad row
 * (line 3), a row updating the held customer (line 4), another new customer (line 5).
 */
async function scene() {
  const tag = randomUUID().slice(0, 8)
  const held = await createCustomer(db, {
    identities: [{ kind: 'online_customer', value: `held-${tag}` }],
  })
  const csv = await file('csv', [
    'external_id,name,birthday',
    `first-${tag},First,`,
    `bad-${tag},Bad,not a date`,
    `held-${tag},Held,`,
    `last-${tag},Last,`,
  ])
  return { tag, held, csv }
}

const exists = async (shopId: string) =>
  (await findCustomerByIdentity(db, 'online_customer', shopId)) !== undefined

describe('kizuna import customers when Postgres cannot write or goes away', () => {
  it('stops at the first row, saying Postgres cannot write', async () => {
    const { tag, csv } = await scene()
    const result = await cliReadOnly(['import', 'customers', csv])

    expectStoppedAt(
      result,
      2,
      'created 0, updated 0, unchanged 0, member cards issued 0 (skipped 0: reported above); ' +
        'the rows from line 2 on are not saved, or not all. Import the file again once ' +
        'Postgres is back: the rows saved are then counted unchanged',
    )
    expect(result.stderr).toContain('read-only transaction')
    expect(result.stderr).not.toMatch(/^line \d+:/m)
    expect(await exists(`first-${tag}`)).toBe(false)
  })

  it('stops at the row it was writing when Postgres goes away, with what it saved before', async () => {
    const { tag, held, csv } = await scene()
    const result = await cliCutOffWhileWaiting(
      db,
      ['import', 'customers', csv],
      customerLock(held.id),
    )

    expectStoppedAt(
      result,
      4,
      'created 1, updated 0, unchanged 0, member cards issued 0 (skipped 1: reported above)',
    )
    expect(result.stderr.match(/^line \d+:/gm)).toEqual(['line 3:'])
    expect(await exists(`first-${tag}`)).toBe(true)
    expect(await exists(`last-${tag}`)).toBe(false)
  })
})

describe('kizuna import customers when Postgres gives up on a row', () => {
  it('runs the row again, and reports it by line after the last run, going on with the rest', async () => {
    const { tag, held, csv } = await scene()
    const lock = await heldTransaction(db, async (trx) => {
      await customerLock(held.id)(trx)
    })
    try {
      const result = await cli(['import', 'customers', csv], {
        PGOPTIONS: '-c lock_timeout=200ms',
      })

      expect(result.code, result.stderr).toBe(2) // rows skipped
      expect(result.stderr).toMatch(
        /^line 4: \(row\): Postgres gave up on it \(a lock or statement timeout\) each time; run the import again$/m,
      )
      expect(result.stdout).toContain('created 2, updated 0, unchanged 0, skipped 2')
      expect(await exists(`last-${tag}`)).toBe(true)
    } finally {
      lock.commit()
      await lock.committed
    }
  })
})
