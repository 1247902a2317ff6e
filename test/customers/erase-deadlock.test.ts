import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { erasedValue } from '../../src/customers/tombstones.ts'
import { lockLineUid } from '../../src/identity/identity.repo.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { customerLock, deadlockingTransaction } from '../support/locks.ts'
import { createCustomer } from './factories.ts'

// An erasure Postgres aborted in a deadlock is run again rather than failing `kizuna customers
// erase`: here a transaction holds the customer and then wants the LINE user the erasure
// locked before it (the other way round from the erasure and the webhook worker).

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
let db: Database
beforeAll(async () => {
  db = await createDb(env, { poolSize: 4 })
})
afterAll(async () => {
  await db.destroy()
})

describe('eraseCustomer deadlocked by a concurrent transaction', () => {
  it('erases the customer after losing a deadlock', async () => {
    const email = `erase-${randomUUID().slice(0, 8)}@example.com`
    const c = await createCustomer(db, {
      line: true,
      email,
      identities: [{ kind: 'email', value: email }],
    })
    const lineUid = c.lineUid ?? ''
    const other = await deadlockingTransaction(db, {
      first: customerLock(c.id),
      second: (trx) => lockLineUid(trx, lineUid),
    })

    expect(await eraseCustomer(db, c.id)).toEqual({
      customerId: c.id,
      alreadyErased: false,
      linked: [],
      menuUnlinks: [expect.any(String)],
    })
    expect(await other.done).toBe(1)
    const row = await db
      .selectFrom('customer')
      .select(['email', 'erased_at'])
      .where('id', '=', c.id)
      .executeTakeFirstOrThrow()
    expect(row).toEqual({ email: null, erased_at: expect.any(Date) })
    const identities = await db
      .selectFrom('identity')
      .select(['kind', 'value'])
      .where('customer_id', '=', c.id)
      .execute()
    expect(identities).toEqual([{ kind: 'email', value: erasedValue('email', email) }])
  })
})
