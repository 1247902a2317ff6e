import { randomInt, randomUUID } from 'node:crypto'
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
// must still be the erased person's wherever it turns up again, in full width or as a register
// reads it now (ASCII).

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

/** A person whose legacy card was stored as `stored` (before NFKC: as it came), then erased. */
async function erasedWithCard(stored: string) {
  const gone = await createCustomer(db, {
    displayName: 'Sora',
    identities: [{ kind: 'legacy_card', value: stored }],
  })
  await eraseCustomer(db, gone.id)
  return gone.id
}

/** A person whose legacy card was stored in full width, as before NFKC, then erased. */
async function erasedWithWideCard() {
  const ascii = legacyCardNumber()
  const wide = fullWidth(ascii)
  const goneId = await erasedWithCard(wide)
  return { wide, ascii, goneId }
}

async function expectErased(barcode: string) {
  for (const body of [{ barcode }, { barcode, receipt: receipt() }]) {
    const res = await posScan(body)
    expect(res.status, JSON.stringify(body)).toBe(410)
    expect(await errorOf(res)).toMatchObject({ details: [{ field: 'barcode' }] })
  }
}

const adminLookup = (card: string) =>
  fetch(`${k.baseUrl}/api/customers?identity=${encodeURIComponent(`legacy_card:${card}`)}`, {
    headers: { authorization: `Bearer ${adminKey}` },
  })

describe("an erased person's legacy card stored in full width", () => {
  it('answers 410 when it is scanned in full width again, with or without a receipt', async () => {
    const { wide } = await erasedWithWideCard()
    for (const typed of [wide, ` ${wide}\u3000`]) await expectErased(typed)
  })

  it('answers 410 when the register sends it in ASCII, as it reads every scan now', async () => {
    const { ascii } = await erasedWithWideCard()
    // Its letter and digits typed each way: every one read as the card the live one became.
    for (const typed of [ascii, `L${fullWidth(ascii.slice(1))}`, ` ${ascii}\u3000`]) {
      await expectErased(typed)
    }
  })

  it('is never linked to another member at the register, in full width or ASCII', async () => {
    const { wide, ascii } = await erasedWithWideCard()
    const member = await makeCustomer(db)
    for (const linkBarcode of [wide, ascii]) {
      const res = await posScan({ barcode: member.card, linkBarcode })
      expect(res.status, linkBarcode).toBe(410)
    }
    expect(await identityValuesOf(db, member.id, 'legacy_card')).toEqual([])
  })

  it('answers 410 at the admin lookup, in full width or ASCII', async () => {
    const { wide, ascii } = await erasedWithWideCard()
    for (const card of [wide, ascii]) expect((await adminLookup(card)).status, card).toBe(410)
  })

  it('refuses the old CSV row, which would bring back the name and email', async () => {
    const { wide, ascii } = await erasedWithWideCard()
    for (const card of [wide, ascii]) {
      const email = `sora.${randomUUID().slice(0, 8)}@example.com`
      const result = await cli([
        'import',
        'customers',
        await file('csv', ['name,email,legacy_card', `Sora,${email},${card}`]),
      ])
      expect(result.stderr).toContain('line 2: legacy_card: this customer was erased on request')
      expect(result.stdout).toContain('created 0, updated 0, unchanged 0, skipped 1')
      expect(await findCustomerByIdentity(db, 'email', email)).toBeUndefined()
    }
    expect(await findCustomerByIdentity(db, 'legacy_card', ascii)).toBeUndefined()
  })
})

describe("an erased person's legacy card in any width, with spaces or hyphens inside", () => {
  it('answers 410 for a card stored in ASCII and scanned in full width', async () => {
    const ascii = legacyCardNumber()
    await erasedWithCard(ascii)
    await expectErased(fullWidth(ascii))
    expect((await adminLookup(fullWidth(ascii))).status).toBe(410)
  })

  it('answers 410 for every form read as the number stored, and 404 for another number', async () => {
    const n = String(randomInt(10 ** 7, 10 ** 8))
    const [a, b] = [n.slice(0, 4), n.slice(4)]
    const cases = [
      // A scanner typing through the IME: signs and spaces in full width too.
      { stored: fullWidth(`AB-${a} ${b}`), scans: [`AB-${a} ${b}`, `ＡＢ-${a}　${b}`] },
      // A spreadsheet's digits in full width, its hyphen in ASCII.
      { stored: `${fullWidth(a)}-${fullWidth(b)}`, scans: [`${a}-${b}`, fullWidth(`${a}-${b}`)] },
      // An old plastic card's number with our prefix, spaced: a legacy card's own.
      { stored: fullWidth(`29 ${a} ${b} 123`), scans: [`29 ${a} ${b} 123`, `29　${a}　${b}　123`] },
    ]
    for (const { stored, scans } of cases) {
      await erasedWithCard(stored)
      for (const scan of scans) await expectErased(scan)
      expect((await adminLookup(scans[0] ?? '')).status, stored).toBe(410)
    }
    // Without the hyphen it is another number: the live card was not found by it either.
    const res = await posScan({ barcode: `${a}${b}` })
    expect(res.status).toBe(404)
  })
})
