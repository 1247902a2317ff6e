import { sql, type Transaction } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureMemberCard } from '../../src/cards/cards.service.ts'
import { loadEnv } from '../../src/config/env.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import { MAX_MERGE_HOPS } from '../../src/customers/surviving-customer.repo.ts'
import { lockSurvivingCustomer } from '../../src/customers/surviving-customer.service.ts'
import { createDb, type Database, type DB } from '../../src/platform/db.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { backendPid, heldTransaction, lockWaitFor } from '../support/locks.ts'
import { createCustomer, memberCardsOf, mergeInto, writeMergeChain } from './factories.ts'

// The walks that lock the customer they reach (lockSurvivingCustomer: tags, consent; the member
// card's holder): they lead where findSurvivingCustomer does and refuse what it refuses.

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
let db: Database
beforeAll(async () => {
  db = await createDb(env, { poolSize: 5 })
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

  it('lets go of a row found merged while it waited: a merge of its survivor does not deadlock', async () => {
    const [a, b, c] = [await createCustomer(db), await createCustomer(db), await createCustomer(db)]
    // A merge of A into B, committing while the walk waits for A (the merge's own write).
    let firstPid = 0
    const first = await heldTransaction(db, async (trx) => {
      firstPid = await backendPid(trx)
      await sql`update customer set merged_into_id = ${b.id} where id = ${a.id}`.execute(trx)
    })
    // A merge of B into C that has locked B (as mergeCustomers locks both parties first): for no
    // key update here, as the first merge's write of A holds a key share lock on B (A's foreign key).
    let second!: Transaction<DB>
    let secondPid = 0
    const held = await heldTransaction(db, async (trx) => {
      second = trx
      secondPid = await backendPid(trx)
      // Postgres breaks a deadlock by aborting the other side (it looks after 1 s there).
      await sql`set local deadlock_timeout = '60s'`.execute(trx)
      await sql`select id from customer where id = ${b.id} for no key update`.execute(trx)
    })

    const walk = db.transaction().execute(async (trx) => lockSurvivingCustomer(trx, a.id))
    await lockWaitFor(db, firstPid)
    first.commit()
    await first.committed
    // The walk found A merged into B and now waits for B...
    await lockWaitFor(db, secondPid)
    // ...while the merge of B re-points A (merged into B) at C: it waited for A, held by the walk.
    await mergeCustomers(second, { survivorId: c.id, mergedId: b.id, reason: 'test' })
    held.commit()
    await held.committed

    expect((await walk)?.id).toBe(c.id)
    const rows = await db
      .selectFrom('customer')
      .select(['id', 'merged_into_id'])
      .where('id', 'in', [a.id, b.id])
      .orderBy('id')
      .execute()
    expect(new Map(rows.map((r) => [r.id, r.merged_into_id]))).toEqual(
      new Map([
        [a.id, c.id],
        [b.id, c.id],
      ]),
    )
  })
})
