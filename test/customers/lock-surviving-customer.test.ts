import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureMemberCard } from '../../src/cards/cards.service.ts'
import { loadEnv } from '../../src/config/env.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { MAX_MERGE_HOPS } from '../../src/customers/surviving-customer.repo.ts'
import { lockSurvivingCustomer } from '../../src/customers/surviving-customer.service.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { createCustomer, memberCardsOf, mergeInto, writeMergeChain } from './factories.ts'

// The walks that lock the customer they reach (lockSurvivingCustomer: tags, consent; the member
// card's holder): they lead where findSurvivingCustomer does and refuse what it refuses.

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
let db: Database
beforeAll(async () => {
  db = await createDb(env, { poolSize: 2 })
})
afterAll(async () => {
  await db.destroy()
})

const locked = (id: string) =>
  db.transaction().execute(async (trx) => lockSurvivingCustomer(trx, id))
const cardFor = (id: string) =>
  db
    .transaction()
    .execute((trx) =>
      ensureMemberCard(trx, id, { prefix: env.MEMBER_CARD_PREFIX, now: new Date() }),
    )

describe('lockSurvivingCustomer and the member card', () => {
  it('lead a merged customer to its survivor: one merge, chains of 2 and MAX_MERGE_HOPS', async () => {
    const a = await createCustomer(db)
    const b = await createCustomer(db)
    await mergeInto(db, b.id, a.id)
    expect((await locked(a.id))?.id).toBe(b.id)
    expect((await cardFor(a.id)).customerId).toBe(b.id)
    for (const hops of [2, MAX_MERGE_HOPS]) {
      const ids = await writeMergeChain(db, hops)
      expect((await locked(ids[0] as string))?.id, `${hops}`).toBe(ids[hops])
      const { customerId } = await cardFor(ids[0] as string)
      expect(customerId, `${hops}`).toBe(ids[hops])
      expect(await memberCardsOf(db, ids[0] as string)).toEqual([])
    }
  })

  it('lead a customer merged, then whose survivor was erased, to the erased survivor', async () => {
    const a = await createCustomer(db)
    const b = await createCustomer(db)
    await mergeInto(db, b.id, a.id)
    await eraseCustomer(db, b.id)
    const found = await locked(a.id)
    expect(found?.id).toBe(b.id)
    expect(found?.erased_at).not.toBeNull()
  })

  it('refuse a chain longer than MAX_MERGE_HOPS, locking or carding no one', async () => {
    for (const hops of [MAX_MERGE_HOPS + 1, 2 * MAX_MERGE_HOPS + 1]) {
      const ids = await writeMergeChain(db, hops)
      await expect(locked(ids[0] as string), `${hops}`).rejects.toThrow(
        'customer merge chain is too long',
      )
      await expect(cardFor(ids[0] as string), `${hops}`).rejects.toThrow(
        'customer merge chain is too long',
      )
      for (const id of ids) expect(await memberCardsOf(db, id)).toEqual([])
    }
  })
})
