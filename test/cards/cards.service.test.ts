import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { lineLoadsImageUrl } from '../../src/cards/card-url.ts'
import { ensureMemberCard, memberCardVars } from '../../src/cards/cards.service.ts'
import { formatCardNumber, isValidEan13 } from '../../src/cards/ean13.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import { renderMessage } from '../../src/flex/message-template.ts'
import { makeCustomer } from '../purchases/fixtures.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { heldTransaction, lockWaitOn } from '../support/locks.ts'
import { eventually } from '../support/wait.ts'

let k: TestKizuna

beforeAll(async () => {
  k = await startTestKizuna()
})
afterAll(async () => {
  await k.stopAll()
})

async function newCustomer(): Promise<string> {
  const row = await k.deps.db
    .insertInto('customer')
    .defaultValues()
    .returning('id')
    .executeTakeFirstOrThrow()
  return row.id
}

const count = async (table: 'identity' | 'coupon', customerId: string) =>
  (await k.deps.db.selectFrom(table).select('id').where('customer_id', '=', customerId).execute())
    .length

describe('ensureMemberCard', () => {
  it('issues one card and one coupon however many callers race for it', async () => {
    const customerId = await newCustomer()
    const opts = { prefix: '250', now: new Date() }
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        k.deps.db.transaction().execute((trx) => ensureMemberCard(trx, customerId, opts)),
      ),
    )
    expect(results.filter((r) => r.issued)).toHaveLength(1)
    expect(new Set(results.map((r) => r.card.value)).size).toBe(1)
    const number = results[0]!.card.value
    expect(number).toMatch(/^250\d{10}$/)
    expect(isValidEan13(number)).toBe(true)
    expect(await count('identity', customerId)).toBe(1)
    expect(await count('coupon', customerId)).toBe(1)
  })

  it('skips a number already taken and can leave the coupon out (imports)', async () => {
    const other = await newCustomer()
    // The number the sequence hands out next is already someone's (e.g. an imported card).
    const { rows } = await sql<{
      n: string
    }>`select last_value::text as n from member_card_seq`.execute(k.deps.db)
    const next = BigInt(rows[0]!.n) + 1n
    const taken = formatCardNumber('29', next)
    await k.deps.db
      .insertInto('identity')
      .values({ customer_id: other, kind: 'member_card', value: taken })
      .execute()

    const customerId = await newCustomer()
    const { card, issued } = await k.deps.db
      .transaction()
      .execute((trx) =>
        ensureMemberCard(trx, customerId, { prefix: '29', now: new Date(), welcomeCoupon: false }),
      )
    expect(issued).toBe(true)
    expect(card.value).not.toBe(taken)
    expect(await count('coupon', customerId)).toBe(0)
  })
})

describe('memberCardVars', () => {
  it("renders the survivor's card when the customer is merged away meanwhile, and issues none", async () => {
    for (let round = 0; round < 3; round++) {
      const merged = await makeCustomer(k.deps.db)
      const survivor = await makeCustomer(k.deps.db, { points: 300 })
      // The delivery was read for `merged`; the merge commits while its card is being rendered.
      const merging = await heldTransaction(k.deps.db, async (trx) => {
        await mergeCustomers(trx, { survivorId: survivor.id, mergedId: merged.id, reason: 'test' })
      })
      const rendering = memberCardVars(k.deps, { customerId: merged.id })
      await lockWaitOn(k.deps.db, 'customer')
      merging.commit()
      await merging.committed
      const vars = await rendering
      expect(await count('identity', merged.id)).toBe(0)
      expect(await count('coupon', merged.id)).toBe(0)
      expect([merged.card, survivor.card]).toContain(vars.cardNumber)
      expect(vars.points).toBe('300 pt')
      expect(await count('identity', survivor.id)).toBe(2)
    }
  })
})

describe('barcode image URL', () => {
  it('LINE itself loads only https images; the stand-in takes http too', () => {
    const real = { lineStandIn: false }
    const standIn = { lineStandIn: true }
    expect(lineLoadsImageUrl(real, 'https://shop.example/cards/t/barcode.png')).toBe(true)
    expect(lineLoadsImageUrl(real, 'http://localhost:3000/cards/t/barcode.png')).toBe(false)
    expect(lineLoadsImageUrl(standIn, 'http://localhost:3000/cards/t/barcode.png')).toBe(true)
  })

  it('with LINE credentials and LINE_API_BASE_URL naming another host (a proxy), follows LINE: no http barcode', async () => {
    // This Kizuna is not told its LINE is a stand-in, as one reaching LINE through a proxy.
    const proxied = await startTestKizuna({}, { lineStandIn: false })
    try {
      expect(new URL(proxied.deps.env.LINE_API_BASE_URL).hostname).not.toBe('api.line.me')
      const user = proxied.line.users.create()
      await proxied.line.users.follow(user.userId)
      const card = await eventually(() => {
        const [entry] = proxied.line.inbox(user.userId)
        expect(entry?.message.type).toBe('flex')
        return entry!.message as { contents: { hero?: unknown; body: unknown } }
      })
      expect(card.contents.hero).toBeUndefined()
      expect(JSON.stringify(card.contents.body)).toMatch(/\b29\d{11}\b/)
    } finally {
      await proxied.stopAll()
    }
  })

  it('sends the card without the barcode image when real LINE could not load it', async () => {
    const customerId = await newCustomer()
    const deps = { ...k.deps, lineStandIn: false }
    const vars = await memberCardVars(deps, { customerId })
    expect(vars.barcodeUrl).toBeUndefined()
    const contents = renderMessage('member-card', vars).line.contents as {
      hero?: unknown
      body: unknown
    }
    expect(contents.hero).toBeUndefined()
    const [card] = await k.deps.db
      .selectFrom('identity')
      .select('value')
      .where('customer_id', '=', customerId)
      .execute()
    expect(JSON.stringify(contents.body)).toContain(card!.value)
  })
})
