import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { createCustomer } from '../customers/factories.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { customerLock, deadlockingTransaction } from '../support/locks.ts'

// An online order that gives its shop account id to the customer its email names (attachIdentity:
// the orders that waited for that id come along) is run again when Postgres aborted it in a
// deadlock with a transaction taking the same rows the other way round.

let k: TestKizuna
let importKey: string
beforeAll(async () => {
  k = await startTestKizuna()
  importKey = (await createApiKey(k.deps.db, { storeId: null, scopes: ['import'] })).key
})
afterAll(async () => {
  await k?.stopAll()
})

const postOrder = (customer: Record<string, string>) =>
  fetch(`${k.baseUrl}/api/orders`, {
    method: 'POST',
    headers: { authorization: `Bearer ${importKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      source: 'webshop',
      orderId: `W-${randomUUID()}`,
      customer,
      orderedAt: new Date().toISOString(),
      lines: [{ sku: 'SOFA-1', quantity: 1, unitPrice: 8_000 }],
      total: 8_000,
    }),
  })

describe('POST /api/orders deadlocked by a concurrent transaction', () => {
  it('records the order once and attaches the waiting one after losing a deadlock', async () => {
    const shopId = `shop-${randomUUID()}`
    const email = `buyer-${randomUUID().slice(0, 8)}@example.jp`
    const waiting = await postOrder({ externalId: shopId })
    expect(waiting.status).toBe(201)
    const { purchaseId: waitingId } = (await waiting.json()) as { purchaseId: string }
    const customer = await createCustomer(k.deps.db, {
      email,
      identities: [{ kind: 'email', value: email }],
    })
    // The order locks the customer, then the purchase that waited for the shop account id.
    const other = await deadlockingTransaction(k.deps.db, {
      first: (trx) => sql`select id from purchase where id = ${waitingId} for update`.execute(trx),
      second: customerLock(customer.id),
    })

    const res = await postOrder({ externalId: shopId, email })
    expect(res.status === 201 ? 201 : (await errorOf(res)).message).toBe(201)
    expect(await other.done).toBe(1)
    expect(await res.json()).toMatchObject({ created: true, customerId: customer.id })
    const purchases = await k.deps.db
      .selectFrom('purchase')
      .select('id')
      .where('customer_id', '=', customer.id)
      .execute()
    expect(purchases.map((p) => p.id)).toContain(waitingId)
    expect(purchases).toHaveLength(2)
    const shopAccount = await k.deps.db
      .selectFrom('identity')
      .select('customer_id')
      .where('kind', '=', 'online_customer')
      .where('value', '=', shopId)
      .execute()
    expect(shopAccount).toEqual([{ customer_id: customer.id }])
  })
})
