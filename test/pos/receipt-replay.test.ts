import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../src/platform/db.ts'
import { makeCustomer, makeStoreKey, postPos, receipt } from '../purchases/fixtures.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { receiptRowsOf } from './receipt-rows.ts'

// Another member's register reusing a receipt id (a register whose counter was reset, a typo on
// the staff page) is told the id is taken, and nothing of the sale recorded under it: not its
// total, not that it was voided or when.

let k: TestKizuna
let db: Database
let key: string
beforeAll(async () => {
  k = await startTestKizuna()
  db = k.deps.db
  ;({ key } = await makeStoreKey(db))
})
afterAll(async () => {
  await k.stopAll()
})

const post = (path: string, body: unknown) => postPos(k.baseUrl, path, body, key)

async function expectOtherMember(res: Response) {
  expect(res.status).toBe(409)
  const text = await res.text()
  expect(JSON.parse(text).error).toMatchObject({
    code: 'CONFLICT',
    details: [{ field: 'receipt.id', message: 'already used for another member' }],
  })
  return text
}

describe("a receipt id reused with another member's card", () => {
  it('tells nothing of the first sale when the total differs too', async () => {
    const a = await makeCustomer(db, { displayName: 'Sato Hanako' })
    const b = await makeCustomer(db)
    const r = receipt({ total: 73_210 })
    expect((await post('/scans', { barcode: a.card, receipt: r })).status).toBe(200)
    const before = await receiptRowsOf(db, b.id)
    const text = await expectOtherMember(
      await post('/scans', {
        barcode: b.card,
        receipt: { ...r, ...receipt({ total: 100 }), id: r.id },
      }),
    )
    expect(text).not.toContain('73210')
    expect(text).not.toContain('73,210')
    expect(await receiptRowsOf(db, b.id)).toEqual(before)
  })

  it('tells nothing of the first sale when it was voided', async () => {
    const a = await makeCustomer(db)
    const b = await makeCustomer(db)
    const r = receipt({ total: 8_000 })
    expect((await post('/scans', { barcode: a.card, receipt: r })).status).toBe(200)
    expect((await post(`/receipts/${encodeURIComponent(r.id)}/void`, {})).status).toBe(200)
    for (const body of [r, { ...r, ...receipt({ total: 100 }), id: r.id }]) {
      const text = await expectOtherMember(await post('/scans', { barcode: b.card, receipt: body }))
      expect(text).not.toContain('voided')
      expect(text).not.toContain('8000')
    }
    // The member of the sale is still told it was voided.
    const own = await post('/scans', { barcode: a.card, receipt: r })
    expect((await errorOf(own)).message).toContain('was voided at')
  })
})
