import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { findCustomerByIdentity } from '../../src/customers/customer-lookup.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import type { Database } from '../../src/platform/db.ts'
import {
  fullWidth,
  legacyCardNumber,
  makeCustomer,
  makeStoreKey,
  postPos,
  receipt,
} from '../purchases/fixtures.ts'
import { cli } from '../support/cli.ts'
import { tempFiles } from '../support/files.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { createCustomer, identityValuesOf } from './factories.ts'

// Before card numbers were read with NFKC, a legacy card linked while the register's scanner
// typed through the IME in full-width mode was stored as it came ("Ｌ１２３"), and an erasure
// kept the hash of that form. The migration rewrote the live cards, not the hashes: the card
// must still be the erased person's wherever it turns up again in full width.

let k: TestKizuna
let db: Database
let posKey: string
let adminKey: string
let file: Awaited<ReturnType<typeof tempFiles>>
beforeAll(async () => {
  k = await startTestKizuna()
  db = k.deps.db
  posKey = (await makeStoreKey(db)).key
  adminKey = (await createApiKey(db, { storeId: null, scopes: ['admin'] })).key
  file = await tempFiles('erase-typed-cards')
})
afterAll(async () => {
  await k?.stopAll()
})

const posScan = (body: unknown) => postPos(k.baseUrl, '/scans', body, posKey)

/** A person whose legacy card was stored in full width, as before NFKC, then erased. */
async function erasedWithWideCard() {
  const wide = fullWidth(legacyCardNumber())
  const gone = await createCustomer(db, {
    displayName: 'Sora',
    identities: [{ kind: 'legacy_card', value: wide }],
  })
  await eraseCustomer(db, gone.id)
  return { wide, goneId: gone.id }
}

describe("an erased person's legacy card stored in full width", () => {
  it('answers 410 when it is scanned in full width again, with or without a receipt', async () => {
    const { wide } = await erasedWithWideCard()
    for (const body of [{ barcode: wide }, { barcode: ` ${wide}\u3000`, receipt: receipt() }]) {
      const res = await posScan(body)
      expect(res.status, JSON.stringify(body)).toBe(410)
      expect(await errorOf(res)).toMatchObject({ details: [{ field: 'barcode' }] })
    }
  })

  it('is never linked to another member at the register', async () => {
    const { wide } = await erasedWithWideCard()
    const member = await makeCustomer(db)
    const res = await posScan({ barcode: member.card, linkBarcode: wide })
    expect(res.status).toBe(410)
    expect(await identityValuesOf(db, member.id, 'legacy_card')).toEqual([])
  })

  it('answers 410 at the admin lookup', async () => {
    const { wide } = await erasedWithWideCard()
    const res = await fetch(
      `${k.baseUrl}/api/customers?identity=${encodeURIComponent(`legacy_card:${wide}`)}`,
      { headers: { authorization: `Bearer ${adminKey}` } },
    )
    expect(res.status).toBe(410)
  })

  it('refuses the old CSV row, which would bring back the name and email', async () => {
    const { wide } = await erasedWithWideCard()
    const email = `sora.${randomUUID().slice(0, 8)}@example.com`
    const result = await cli([
      'import',
      'customers',
      await file('csv', ['name,email,legacy_card', `Sora,${email},${wide}`]),
    ])
    expect(result.stderr).toContain('line 2: legacy_card: this customer was erased on request')
    expect(result.stdout).toContain('created 0, updated 0, unchanged 0, skipped 1')
    expect(await findCustomerByIdentity(db, 'email', email)).toBeUndefined()
    expect(await findCustomerByIdentity(db, 'legacy_card', wide.normalize('NFKC'))).toBeUndefined()
  })
})
