import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { issueMissingMemberCards, memberCardNumberOf } from '../../src/cards/cards.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import type { Database } from '../../src/platform/db.ts'
import type { ScanResponse } from '../../src/pos/pos.schemas.ts'
import {
  legacyCardNumber,
  legacyCardsOf,
  makeStoreKey,
  memberCardNumber,
  misread,
  postPos,
  printedCardNumber,
  receipt,
} from '../purchases/fixtures.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'

// A store that changes MEMBER_CARD_PREFIX issues new cards with the new prefix; the cards in its
// members' wallets (LINE, plastic) keep their numbers and must still scan.

let k: TestKizuna
let db: Database
let key: string
/** A customer whose member card was issued while the prefix was 29. */
let old: { id: string; card: string }

beforeAll(async () => {
  const before = await startTestKizuna({ MEMBER_CARD_PREFIX: '29' })
  try {
    old = await cardHolder(before.deps.db, before.deps.env.MEMBER_CARD_PREFIX, { points: 40 })
  } finally {
    await before.stopAll()
  }
  k = await startTestKizuna({ MEMBER_CARD_PREFIX: '28' })
  db = k.deps.db
  ;({ key } = await makeStoreKey(db))
})
afterAll(async () => {
  await k?.stopAll()
})

const post = (body: unknown) => postPos(k.baseUrl, '/scans', body, key)

/** A customer given a member card as the card service issues them, under `prefix`. */
async function cardHolder(
  database: Database,
  prefix: string,
  opts: { points?: number; legacyCard?: string } = {},
) {
  const { id } = await database
    .insertInto('customer')
    .values({ display_name: 'Sato Card', points: opts.points ?? 0 })
    .returning('id')
    .executeTakeFirstOrThrow()
  await issueMissingMemberCards(database, [id], prefix)
  const card = await memberCardNumberOf(database, id)
  if (!card?.startsWith(prefix)) throw new Error(`no card issued under ${prefix}`)
  if (opts.legacyCard) {
    await database
      .insertInto('identity')
      .values({ customer_id: id, kind: 'legacy_card', value: opts.legacyCard })
      .execute()
  }
  return { id, card }
}

/** A customer with a card of the current prefix (28). */
const makeCustomer = (opts: { legacyCard?: string } = {}) => cardHolder(db, '28', opts)

describe('POST /api/pos/scans after MEMBER_CARD_PREFIX changed (29 → 28)', () => {
  it('finds a member card issued under the earlier prefix, typed plain or as printed', async () => {
    expect(old.card.startsWith('29')).toBe(true)
    for (const barcode of [old.card, printedCardNumber(old.card)]) {
      const res = await post({ barcode })
      expect(res.status, barcode).toBe(200)
      const body = (await res.json()) as ScanResponse
      expect(body.customer).toMatchObject({ id: old.id, points: 40 })
    }
  })

  it('records a receipt against a card issued under the earlier prefix', async () => {
    const r = receipt({ total: 1_000 })
    const res = await post({ barcode: old.card, receipt: r })
    expect(res.status).toBe(200)
    const body = (await res.json()) as ScanResponse
    expect(body.customer.id).toBe(old.id)
    expect(body.purchase).toMatchObject({ total: 1_000, pointsEarned: 10, replayed: false })
  })

  it('reads a wrong check digit as a misread only in the current prefix', async () => {
    const current = memberCardNumber('28')
    const misreadNow = await post({ barcode: misread(current) })
    expect(misreadNow.status).toBe(422)
    // Outside the prefix a wrong check digit is no card of ours: unknown, as before.
    const misreadOld = await post({ barcode: misread(old.card) })
    expect(misreadOld.status).toBe(404)
  })

  it('refuses to link a card issued under the earlier prefix as a legacy card', async () => {
    const c = await makeCustomer()
    const res = await post({ barcode: c.card, linkBarcode: old.card })
    expect(res.status).toBe(400)
    expect(await errorOf(res)).toMatchObject({
      details: [{ field: 'linkBarcode', message: expect.stringContaining('member card') }],
    })
    expect(await legacyCardsOf(db, c.id)).toEqual([])
  })

  it('still finds a legacy card and links one whose number is an EAN-13 outside the prefix', async () => {
    // An old plastic card printed as an EAN-13 in another in-store prefix (20).
    const plastic = memberCardNumber('20')
    const holder = await makeCustomer({ legacyCard: plastic })
    const found = (await (await post({ barcode: plastic })).json()) as ScanResponse
    expect(found.customer.id).toBe(holder.id)

    const another = memberCardNumber('21')
    const c = await makeCustomer()
    const linked = await post({ barcode: c.card, linkBarcode: another })
    expect(linked.status).toBe(200)
    const rescan = (await (await post({ barcode: another })).json()) as ScanResponse
    expect(rescan.customer.id).toBe(c.id)
    expect((await post({ barcode: legacyCardNumber() })).status).toBe(404)
  })

  it('answers 410 for an erased member card issued under the earlier prefix', async () => {
    const { id, card } = await cardHolder(db, '29')
    await eraseCustomer(db, id)
    const res = await post({ barcode: card })
    expect(res.status).toBe(410)
  })
})
