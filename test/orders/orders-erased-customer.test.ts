import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { attachIdentity } from '../../src/customers/merge.service.ts'
import { TOMBSTONE } from '../../src/identity/tombstone.ts'
import { createCustomer, identityValuesOf } from '../customers/factories.ts'
import { cli } from '../support/cli.ts'
import { tempFiles } from '../support/files.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { backendPid, heldTransaction, lockWaitBehind, lockWaitFor } from '../support/locks.ts'
import { erasedPersonOf, orderOf } from './order-import-fixtures.ts'

// The erasure forgot the person: their shop id and email are left only as tombstones. A new
// order naming either is an order like anyone's (it goes to the live customer its email leads
// to, or waits unmatched), and nothing of it comes back to the erased customer. An order whose
// customer is erased while it waits to be recorded is refused, naming the field that led there.

let kizuna: TestKizuna
let importKey: string
let file: Awaited<ReturnType<typeof tempFiles>>
beforeAll(async () => {
  kizuna = await startTestKizuna()
  importKey = (await createApiKey(kizuna.deps.db, { storeId: null, scopes: ['import'] })).key
  file = await tempFiles('orders-erased')
})
afterAll(async () => {
  await kizuna?.stopAll()
})

const ERASED = 'this customer was erased on request; the order was not saved'

const postOrder = (body: unknown) =>
  fetch(`${kizuna.baseUrl}/api/orders`, {
    method: 'POST',
    headers: { authorization: `Bearer ${importKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })

const purchasesOf = (source: string) =>
  kizuna.deps.db
    .selectFrom('purchase')
    .select(['customer_id', 'total', 'pending_identity_kind', 'pending_identity_value'])
    .where('source', '=', source)
    .orderBy('total')
    .execute()

/** The shop ids (online customer ids) a customer holds. */
const shopIdsOf = (customerId: string) =>
  identityValuesOf(kizuna.deps.db, customerId, 'online_customer')

/**
 * A person who held a shop id and an email and bought once, erased on request (erasedPersonOf),
 * and a live customer holding another email.
 */
async function erasedPerson() {
  const source = `shop${randomUUID().slice(0, 8)}`
  const shopId = `gone-${randomUUID()}`
  const email = `gone-${randomUUID().slice(0, 8)}@example.jp`
  const personId = await erasedPersonOf(kizuna.deps.db, { shopId, email })
  const liveEmail = `buyer-${randomUUID().slice(0, 8)}@example.jp`
  const live = await createCustomer(kizuna.deps.db, {
    identities: [{ kind: 'email', value: liveEmail }],
  })
  return { source, shopId, email, personId, live, liveEmail }
}

/** Nothing came back to the erased person: tombstones only, their one purchase, no points. */
async function expectNothingBackTo(p: Awaited<ReturnType<typeof erasedPerson>>) {
  const db = kizuna.deps.db
  const identities = await db
    .selectFrom('identity')
    .select(['kind', 'value'])
    .where('customer_id', '=', p.personId)
    .execute()
  expect(identities.map((i) => i.kind).sort()).toEqual(['email', 'online_customer'])
  expect(identities.every((i) => i.value.startsWith(TOMBSTONE))).toBe(true)
  const purchases = await db
    .selectFrom('purchase')
    .select('total')
    .where('customer_id', '=', p.personId)
    .execute()
  expect(purchases).toEqual([{ total: 3_000 }])
  const person = await db
    .selectFrom('customer')
    .select(['points', 'purchase_count', 'erased_at'])
    .where('id', '=', p.personId)
    .executeTakeFirstOrThrow()
  expect(person).toMatchObject({ points: 0, purchase_count: 0, erased_at: expect.any(Date) })
}

describe("an order naming an erased person's old shop id or email", () => {
  it('goes, by POST /api/orders, to the live customer its other email leads to, who gets the shop id', async () => {
    const p = await erasedPerson()
    const res = await postOrder(
      orderOf(p.source, { externalId: p.shopId, email: p.liveEmail }, 5_000),
    )

    expect(res.status).toBe(201)
    expect(await res.json()).toMatchObject({ created: true, customerId: p.live.id })
    expect(await purchasesOf(p.source)).toEqual([
      {
        customer_id: p.live.id,
        total: 5_000,
        pending_identity_kind: null,
        pending_identity_value: null,
      },
    ])
    expect(await shopIdsOf(p.live.id)).toEqual([p.shopId])
    await expectNothingBackTo(p)
  })

  it('waits unmatched when it names nothing else, as for anyone unknown; a newcomer proving the email gets it', async () => {
    const p = await erasedPerson()
    for (const customer of [{ externalId: p.shopId }, { email: p.email }]) {
      const res = await postOrder(orderOf(p.source, customer, customer.email ? 2_000 : 1_000))
      expect(res.status).toBe(201)
      expect(await res.json()).toMatchObject({ created: true, customerId: null })
    }
    expect(await purchasesOf(p.source)).toEqual([
      {
        customer_id: null,
        total: 1_000,
        pending_identity_kind: 'online_customer',
        pending_identity_value: p.shopId,
      },
      {
        customer_id: null,
        total: 2_000,
        pending_identity_kind: 'email',
        pending_identity_value: p.email,
      },
    ])
    await expectNothingBackTo(p)

    // Someone who proves the email now (an account link) is its live holder: the order waiting
    // on it is theirs, never the erased person's.
    const newcomer = await createCustomer(kizuna.deps.db)
    await kizuna.deps.db.transaction().execute((trx) =>
      attachIdentity(trx, newcomer.id, 'email', p.email, {
        env: kizuna.deps.env,
        reason: 'test',
      }),
    )
    expect((await purchasesOf(p.source)).map((r) => r.customer_id)).toEqual([null, newcomer.id])
    await expectNothingBackTo(p)
  })

  it('is imported the same way, in NDJSON and in CSV: one order created, one unmatched', async () => {
    for (const format of ['ndjson', 'csv'] as const) {
      const p = await erasedPerson()
      const toLive = orderOf(p.source, { externalId: p.shopId, email: p.liveEmail }, 5_000)
      const waiting = orderOf(p.source, { email: p.email }, 2_000)
      const input =
        format === 'ndjson'
          ? await file('ndjson', [JSON.stringify(toLive), JSON.stringify(waiting)])
          : await file('csv', [
              'source,order_id,customer_external_id,customer_email,ordered_at,sku,quantity,unit_price,total',
              `${p.source},${toLive.orderId},${p.shopId},${p.liveEmail},2026-11-03T12:00:00Z,SOFA-1,1,5000,5000`,
              `${p.source},${waiting.orderId},,${p.email},2026-11-03T12:00:00Z,SOFA-1,1,2000,2000`,
            ])

      const result = await cli(['import', 'orders', input])
      expect(result.code, result.stderr).toBe(0)
      expect(result.stderr).toBe('')
      expect(result.stdout).toContain('orders: created 1, unmatched 1, unchanged 0, skipped 0\n')
      expect((await purchasesOf(p.source)).map((r) => r.customer_id)).toEqual([null, p.live.id])
      expect(await shopIdsOf(p.live.id)).toEqual([p.shopId])
      await expectNothingBackTo(p)
    }
  })
})

describe('an order whose customer is erased while it waits to be recorded', () => {
  it('is refused by POST /api/orders naming the field it was matched by', async () => {
    const db = kizuna.deps.db
    const source = `shop${randomUUID().slice(0, 8)}`
    const email = `buyer-${randomUUID().slice(0, 8)}@example.jp`
    const customer = await createCustomer(db, { identities: [{ kind: 'email', value: email }] })
    // The erasure (eraseCustomer) locks the customer, then waits for their email's identity row,
    // which this transaction holds; the order, matched by the email, waits for the customer.
    let holder = 0
    const lock = await heldTransaction(db, async (trx) => {
      holder = await backendPid(trx)
      await sql`select id from identity where customer_id = ${customer.id} for update`.execute(trx)
    })
    const erasing = eraseCustomer(db, customer.id)
    await lockWaitFor(db, holder)
    const posting = postOrder(orderOf(source, { email }, 5_000))
    await lockWaitBehind(db, holder, 2)
    lock.commit()
    await lock.committed
    expect(await erasing).toMatchObject({ customerId: customer.id, alreadyErased: false })
    const res = await posting

    expect(res.status).toBe(410)
    expect(await errorOf(res)).toMatchObject({
      code: 'GONE',
      message: `customer.email: ${ERASED}`,
      details: [{ field: 'customer.email', message: ERASED }],
    })
    expect(await purchasesOf(source)).toEqual([])
  })
})
