import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { erasedValue } from '../../src/customers/tombstones.ts'
import { createCustomer } from '../customers/factories.ts'
import { cli } from '../support/cli.ts'
import { tempFiles } from '../support/files.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { backendPid, customerLock, heldTransaction, lockWaitFor } from '../support/locks.ts'
import { erasedHolderOf, orderOf } from './order-import-fixtures.ts'

// An order that leads to a customer erased on request is refused, naming the field that leads
// there (as every other refusal names its field), in the API and in the import.

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
  kizuna.deps.db.selectFrom('purchase').select('id').where('source', '=', source).execute()

/** A live customer's email, and a shop id whose holder was erased (erasedHolderOf). */
async function erasedShopAccount() {
  const source = `shop${randomUUID().slice(0, 8)}`
  const shopId = `gone-${randomUUID()}`
  const email = `buyer-${randomUUID().slice(0, 8)}@example.jp`
  await createCustomer(kizuna.deps.db, { identities: [{ kind: 'email', value: email }] })
  await erasedHolderOf(kizuna.deps.db, shopId)
  return { source, shopId, email }
}

describe('an order whose shop id belonged to a customer erased on request', () => {
  it('is refused by POST /api/orders naming customer.externalId', async () => {
    const { source, shopId, email } = await erasedShopAccount()
    const res = await postOrder(orderOf(source, { externalId: shopId, email }, 5_000))

    expect(res.status).toBe(410)
    expect(await errorOf(res)).toMatchObject({
      code: 'GONE',
      message: `customer.externalId: ${ERASED}`,
      details: [{ field: 'customer.externalId', message: ERASED }],
    })
    expect(await purchasesOf(source)).toEqual([])
  })

  it('is reported by the import by line and field: its path in NDJSON, its column in CSV', async () => {
    const { source, shopId, email } = await erasedShopAccount()
    const ndjson = await file('ndjson', [
      JSON.stringify(orderOf(source, { externalId: shopId, email }, 5_000)),
    ])
    const csv = await file('csv', [
      'source,order_id,customer_external_id,customer_email,ordered_at,sku,quantity,unit_price,total',
      `${source},C-${randomUUID()},${shopId},${email},2026-11-03T12:00:00Z,SOFA-1,1,5000,5000`,
    ])

    for (const [input, reported] of [
      [ndjson, `line 1: customer.externalId: ${ERASED}\n`],
      [csv, `line 2: customer_external_id: ${ERASED}\n`],
    ] as const) {
      const result = await cli(['import', 'orders', input])
      expect(result.code, result.stderr).toBe(2) // rows skipped
      expect(result.stderr).toBe(reported)
      expect(result.stdout).toContain('orders: created 0, unmatched 0, unchanged 0, skipped 1\n')
    }
    expect(await purchasesOf(source)).toEqual([])
  })
})

describe('an order whose customer is erased while it waits to be recorded', () => {
  it('is refused by POST /api/orders naming the field it was matched by', async () => {
    const source = `shop${randomUUID().slice(0, 8)}`
    const email = `buyer-${randomUUID().slice(0, 8)}@example.jp`
    const customer = await createCustomer(kizuna.deps.db, {
      identities: [{ kind: 'email', value: email }],
    })
    // The erasure holds the customer; the order, matched by email, waits for it, and the
    // erasure commits: the customer erased, the email a tombstone.
    let holder = 0
    let erase!: () => void
    const erasing = new Promise<void>((resolve) => {
      erase = resolve
    })
    const lock = await heldTransaction(kizuna.deps.db, async (trx) => {
      holder = await backendPid(trx)
      await customerLock(customer.id)(trx)
      void erasing.then(async () => {
        await trx
          .updateTable('customer')
          .set({ erased_at: new Date() })
          .where('id', '=', customer.id)
          .execute()
        await trx
          .updateTable('identity')
          .set({ value: erasedValue('email', email) })
          .where('customer_id', '=', customer.id)
          .execute()
        lock.commit()
      })
    })
    const posting = postOrder(orderOf(source, { email }, 5_000))
    await lockWaitFor(kizuna.deps.db, holder)
    erase()
    await lock.committed
    const res = await posting

    expect(res.status).toBe(410)
    expect(await errorOf(res)).toMatchObject({
      code: 'GONE',
      details: [{ field: 'customer.email', message: ERASED }],
    })
    expect(await purchasesOf(source)).toEqual([])
  })
})
