import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { attachIdentity } from '../../src/customers/merge.service.ts'
import { type Order, orderSchema } from '../../src/orders/order.schemas.ts'
import { recordOrder } from '../../src/orders/order.service.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { createCustomer, identityValuesOf } from '../customers/factories.ts'
import { orderOf } from '../orders/order-import-fixtures.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { insertWaitingOrders, statsOfWaitingOrders } from './fixtures.ts'

// Orders wait unmatched on a shop account (online customer id) and on an email nobody holds yet.
// A customer who gets the email later gets them as recordOrder would have given them had they
// held the email when the orders came: the shop account of the first such order becomes theirs
// with its orders, and an order naming another shop account keeps waiting for its own (two shop
// accounts are never merged), whichever came first.

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL, TIER_THRESHOLDS: 'silver:10000,gold:50000' })
let db: Database
beforeAll(async () => {
  db = await createDb(env, { poolSize: 4 })
})
afterAll(async () => {
  await db.destroy()
})

const tag = () => randomUUID().slice(0, 8)
/**
 * An order time this many days back from now (at the same time of day): the 12-month spend
 * asserted counts them whenever the test runs.
 */
const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString()

function order(customer: Order['customer'], total: number, orderedAt: string): Order {
  return orderSchema.parse({ ...orderOf(`shop-${tag()}`, customer, total), orderedAt })
}
const record = (o: Order) => db.transaction().execute((trx) => recordOrder(trx, env, o))
const attachEmail = (customerId: string, email: string) =>
  db
    .transaction()
    .execute((trx) => attachIdentity(trx, customerId, 'email', email, { env, reason: 'test' }))

const purchaseOf = (o: Order) =>
  db
    .selectFrom('purchase')
    .select(['customer_id', 'pending_identity_kind', 'pending_identity_value', 'pending_email'])
    .where('source', '=', o.source)
    .where('external_id', '=', o.orderId)
    .executeTakeFirstOrThrow()
/** The customer's shop accounts (online customer ids). */
const shopAccountsOf = (customerId: string) => identityValuesOf(db, customerId, 'online_customer')
const statsOf = (customerId: string) =>
  db
    .selectFrom('customer')
    .select(['purchase_count', 'total_spent', 'points', 'spend_12m', 'tier'])
    .where('id', '=', customerId)
    .executeTakeFirstOrThrow()
const ledgerOf = async (customerId: string) => {
  const row = await db
    .selectFrom('points_ledger')
    .select([
      (eb) => eb.fn.countAll<string>().as('n'),
      (eb) => eb.fn.sum<string>('delta').as('sum'),
    ])
    .where('customer_id', '=', customerId)
    .executeTakeFirstOrThrow()
  return { n: Number(row.n), sum: Number(row.sum ?? 0) }
}

/** Shop accounts Z and W, and an email both of their orders name. */
function accounts() {
  const t = tag()
  return { z: `Z-${t}`, w: `W-${t}`, x: `X-${t}`, email: `late-${t}@example.com` }
}

/**
 * O1 (Z, the email), then O5 (W, the email), and an order naming Z alone; `emailFirst`: the
 * customer holds the email before they come, else gets it after (attachIdentity).
 */
async function ordersAndEmail(emailFirst: boolean) {
  const a = accounts()
  const o1 = order({ externalId: a.z, email: a.email }, 5_000, daysAgo(70))
  const o5 = order({ externalId: a.w, email: a.email }, 7_000, daysAgo(66))
  const zOnly = order({ externalId: a.z }, 3_000, daysAgo(68))
  const c = await createCustomer(db)
  if (emailFirst) await attachEmail(c.id, a.email)
  for (const o of [o1, zOnly, o5]) await record(o)
  if (!emailFirst) await attachEmail(c.id, a.email)
  return { ...a, c, o1, o5, zOnly }
}

describe('attachIdentity of an email that orders naming shop accounts wait on', () => {
  it("gives the customer the first order's shop account and its orders; another shop account's order keeps waiting", async () => {
    const { z, w, x, email, c, o1, o5, zOnly } = await ordersAndEmail(false)

    expect(await shopAccountsOf(c.id)).toEqual([z])
    expect((await purchaseOf(o1)).customer_id).toBe(c.id)
    expect((await purchaseOf(zOnly)).customer_id).toBe(c.id)
    expect(await purchaseOf(o5)).toEqual({
      customer_id: null,
      pending_identity_kind: 'online_customer',
      pending_identity_value: w,
      pending_email: email,
    })
    expect(await statsOf(c.id)).toMatchObject({
      purchase_count: 2,
      total_spent: '8000',
      spend_12m: '8000',
      points: 80,
    })
    expect(await ledgerOf(c.id)).toEqual({ n: 2, sum: 80 })

    // Later orders follow the same rule: another shop account with the email is kept apart,
    // one naming Z alone is the customer's.
    const other = await record(order({ externalId: x, email }, 4_000, daysAgo(36)))
    expect(other).toMatchObject({ created: true, customerId: null })
    const zLater = await record(order({ externalId: z }, 2_000, daysAgo(35)))
    expect(zLater).toMatchObject({ created: true, customerId: c.id })
    expect(await shopAccountsOf(c.id)).toEqual([z])
    expect(await statsOf(c.id)).toMatchObject({ purchase_count: 3, total_spent: '10000' })
  })

  it('ends as it does when the customer held the email before the orders came', async () => {
    const outcome = async (emailFirst: boolean) => {
      const r = await ordersAndEmail(emailFirst)
      const owner = async (o: Order) => {
        const p = await purchaseOf(o)
        return p.customer_id === r.c.id ? 'c' : p.customer_id === null ? 'waiting' : 'other'
      }
      return {
        shops: (await shopAccountsOf(r.c.id)).map((s) => s.slice(0, 1)),
        o1: await owner(r.o1),
        zOnly: await owner(r.zOnly),
        o5: await owner(r.o5),
        o5WaitsFor: (await purchaseOf(r.o5)).pending_identity_value === r.w,
        stats: await statsOf(r.c.id),
      }
    }
    const before = await outcome(true)
    expect(before).toMatchObject({ shops: ['Z'], o1: 'c', zOnly: 'c', o5: 'waiting' })
    expect(await outcome(false)).toEqual(before)
  })

  it('leaves the orders alone for a customer who holds another shop account', async () => {
    const a = accounts()
    const c = await createCustomer(db, { identities: [{ kind: 'online_customer', value: a.x }] })
    const o1 = order({ externalId: a.z, email: a.email }, 5_000, daysAgo(70))
    await record(o1)
    await attachEmail(c.id, a.email)
    expect(await shopAccountsOf(c.id)).toEqual([a.x])
    expect((await purchaseOf(o1)).customer_id).toBeNull()
    expect(await statsOf(c.id)).toMatchObject({ purchase_count: 0, points: 0 })
  })

  it("leaves an order whose shop account another customer holds to them: it is theirs, the email's holder gets none", async () => {
    const a = accounts()
    const o1 = order({ externalId: a.z, email: a.email }, 5_000, daysAgo(70))
    await record(o1)
    // Z given to Hanako by a write that did not see the waiting order (as a race leaves it).
    const hanako = await createCustomer(db, {
      identities: [{ kind: 'online_customer', value: a.z }],
    })
    const c = await createCustomer(db)
    await attachEmail(c.id, a.email)
    expect(await shopAccountsOf(c.id)).toEqual([])
    expect(await shopAccountsOf(hanako.id)).toEqual([a.z])
    expect((await purchaseOf(o1)).customer_id).toBeNull()
  })

  it('attaches 17,000 orders waiting on one email at once, with their points and stats', async () => {
    const a = accounts()
    const n = 17_000
    await insertWaitingOrders(db, n, { kind: 'online_customer', value: a.z }, a.email)
    const c = await createCustomer(db)
    await attachEmail(c.id, a.email)
    expect(await shopAccountsOf(c.id)).toEqual([a.z])
    expect(await statsOf(c.id)).toMatchObject(statsOfWaitingOrders(n))
    expect(await ledgerOf(c.id)).toEqual({ n, sum: n * 10 })
    const { rows } = await sql<{ first: Date; last: Date }>`
      select first_purchase_at as first, last_purchase_at as last from customer
      where id = ${c.id}`.execute(db)
    const { rows: span } = await sql<{ first: Date; last: Date }>`
      select min(purchased_at) as first, max(purchased_at) as last from purchase
      where customer_id = ${c.id}`.execute(db)
    expect(rows[0]).toEqual(span[0])
  })
})
