import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { MAX_MERGE_HOPS } from '../../src/customers/surviving-customer.repo.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { createCustomer, mergeInto, writeMergeChain } from './factories.ts'

// An erasure finds the customers an unlink split off (findLinkedCustomers) through merges on
// either side: the side merged since leads to its survivor, and a customer merged into the one
// erased brings its unlinks. Both walks keep to MAX_MERGE_HOPS as every walk of merges does, and
// refuse a longer chain rather than name a merged customer or miss a linked one.

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
let db: Database
beforeAll(async () => {
  db = await createDb(env, { poolSize: 2 })
})
afterAll(async () => {
  await db.destroy()
})

/** What an unlink records: the LINE account `lineOf`'s customer held left `from` for `to`. */
async function unlinked(from: string, to: string) {
  const lineUser = await createCustomer(db, { line: true })
  const row = await db
    .selectFrom('line_user')
    .select('id')
    .where('customer_id', '=', lineUser.id)
    .executeTakeFirstOrThrow()
  await db
    .insertInto('account_link')
    .values({
      line_user_id: row.id,
      customer_id: from,
      identity_kind: 'email',
      unlinked_at: new Date(),
      unlinked_to_customer_id: to,
    })
    .execute()
}

const linkedNamed = async (id: string) => {
  const error = await eraseCustomer(db, id).then(
    () => undefined,
    (e: unknown) => e,
  )
  return (error as { details?: { linked?: string[] } } | undefined)?.details?.linked
}
const isErased = async (id: string) =>
  (
    await db
      .selectFrom('customer')
      .select('erased_at')
      .where('id', '=', id)
      .executeTakeFirstOrThrow()
  ).erased_at !== null

describe('an erasure, when the customer split off by an unlink was merged since', () => {
  it('names the customer the merges lead to: one merge, a chain of 2 and of MAX_MERGE_HOPS', async () => {
    const a = await createCustomer(db)
    const b = await createCustomer(db)
    const s = await createCustomer(db)
    await unlinked(a.id, b.id)
    await mergeInto(db, s.id, b.id)
    expect(await linkedNamed(a.id)).toEqual([s.id])
    for (const hops of [2, MAX_MERGE_HOPS]) {
      const x = await createCustomer(db)
      const ids = await writeMergeChain(db, hops)
      await unlinked(x.id, ids[0] as string)
      expect(await linkedNamed(x.id), `${hops}`).toEqual([ids[hops]])
    }
  })

  it('erases it with the one asked for, or finds it already erased', async () => {
    const a = await createCustomer(db)
    const b = await createCustomer(db)
    const s = await createCustomer(db)
    await unlinked(a.id, b.id)
    await mergeInto(db, s.id, b.id)
    await eraseCustomer(db, s.id, { linked: 'only' })
    const erased = await eraseCustomer(db, a.id, { linked: 'erase' })
    expect(erased.linked).toEqual([{ customerId: s.id, alreadyErased: true }])
  })

  it('refuses a chain longer than MAX_MERGE_HOPS, naming no merged customer, erasing nothing', async () => {
    for (const hops of [MAX_MERGE_HOPS + 1, 2 * MAX_MERGE_HOPS + 1]) {
      const a = await createCustomer(db)
      const ids = await writeMergeChain(db, hops)
      await unlinked(a.id, ids[0] as string)
      await expect(eraseCustomer(db, a.id), `${hops}`).rejects.toThrow(
        'customer merge chain is too long',
      )
      await expect(eraseCustomer(db, a.id, { linked: 'erase' }), `${hops}`).rejects.toThrow(
        'customer merge chain is too long',
      )
      expect(await isErased(a.id)).toBe(false)
    }
  })
})

describe('an erasure, when a customer merged into the one erased was split by an unlink', () => {
  it('names the other side: one merge, a chain of 2 and of MAX_MERGE_HOPS', async () => {
    const a = await createCustomer(db)
    const s = await createCustomer(db)
    const other = await createCustomer(db)
    await unlinked(a.id, other.id)
    await mergeInto(db, s.id, a.id)
    expect(await linkedNamed(s.id)).toEqual([other.id])
    for (const hops of [2, MAX_MERGE_HOPS]) {
      const ids = await writeMergeChain(db, hops)
      const o = await createCustomer(db)
      await unlinked(ids[0] as string, o.id)
      expect(await linkedNamed(ids[hops] as string), `${hops}`).toEqual([o.id])
    }
  })

  it('refuses a chain longer than MAX_MERGE_HOPS rather than miss the unlink', async () => {
    for (const hops of [MAX_MERGE_HOPS + 1, 2 * MAX_MERGE_HOPS + 1]) {
      const ids = await writeMergeChain(db, hops)
      const o = await createCustomer(db)
      await unlinked(ids[0] as string, o.id)
      const last = ids[hops] as string
      await expect(eraseCustomer(db, last), `${hops}`).rejects.toThrow(
        'customer merge chain is too long',
      )
      expect(await isErased(last)).toBe(false)
    }
  })
})
