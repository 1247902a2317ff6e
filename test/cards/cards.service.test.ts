import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { lineLoadsImageUrl } from '../../src/cards/card-url.ts'
import {
  ensureMemberCard,
  issueMissingMemberCards,
  memberCardContent,
  memberCardNumberOf,
  memberCardVars,
} from '../../src/cards/cards.service.ts'
import { isValidEan13 } from '../../src/cards/ean13.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import { erasedValue } from '../../src/customers/tombstones.ts'
import { renderMessage } from '../../src/flex/message-template.ts'
import { TOMBSTONE } from '../../src/identity/tombstone.ts'
import { insertDeliveries } from '../../src/messaging/delivery.repo.ts'
import { claimDeliveries, SENDING_LEASE_SECONDS } from '../../src/messaging/delivery-claim.repo.ts'
import type { SendTools } from '../../src/messaging/delivery-send.service.ts'
import { deliveryRow, emailCustomer, sendJob, sendTools } from '../messaging/support.ts'
import { makeCustomer, memberCardNumber } from '../purchases/fixtures.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { backendPid, heldTransaction, lockWaitFor, lockWaitOn } from '../support/locks.ts'
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

  it('draws another number when the one drawn is taken, and can leave the coupon out (imports)', async () => {
    const other = await newCustomer()
    // The number drawn first is already someone's (e.g. an imported card), twice over.
    const [taken, fresh] = [memberCardNumber(), memberCardNumber()]
    await k.deps.db
      .insertInto('identity')
      .values({ customer_id: other, kind: 'member_card', value: taken })
      .execute()
    const drawn = [taken, taken, fresh]
    const draws: string[] = []
    const drawNumber = (prefix: string) => {
      expect(prefix).toBe('29')
      const next = drawn[draws.length] ?? memberCardNumber()
      draws.push(next)
      return next
    }
    const customerId = await newCustomer()
    const { card, issued } = await k.deps.db.transaction().execute((trx) =>
      ensureMemberCard(trx, customerId, {
        prefix: '29',
        now: new Date(),
        welcomeCoupon: false,
        drawNumber,
      }),
    )
    expect(issued).toBe(true)
    expect(card.value).toBe(fresh)
    expect(draws).toEqual([taken, taken, fresh])
    expect(await count('coupon', customerId)).toBe(0)
  })

  it("never issues an erased member's number again (its tombstone), and gives up after 10 taken draws", async () => {
    const erased = memberCardNumber()
    const gone = await newCustomer()
    await k.deps.db
      .insertInto('identity')
      .values({ customer_id: gone, kind: 'member_card', value: erasedValue('member_card', erased) })
      .execute()
    const fresh = memberCardNumber()
    const drawn = [erased, fresh]
    const customerId = await newCustomer()
    const { card } = await k.deps.db.transaction().execute((trx) =>
      ensureMemberCard(trx, customerId, {
        prefix: '29',
        now: new Date(),
        drawNumber: () => drawn.shift() ?? memberCardNumber(),
      }),
    )
    expect(card.value).toBe(fresh)

    // Every draw taken: the retries are bounded, and nothing is written.
    let draws = 0
    const unlucky = await newCustomer()
    const issuing = k.deps.db.transaction().execute((trx) =>
      ensureMemberCard(trx, unlucky, {
        prefix: '29',
        now: new Date(),
        drawNumber: () => {
          draws++
          return fresh
        },
      }),
    )
    await expect(issuing).rejects.toThrow('no free member-card number after 10 tries')
    expect(draws).toBe(10)
    expect(await count('identity', unlucky)).toBe(0)
    expect(await count('coupon', unlucky)).toBe(0)
  })
})

describe('member-card numbers', () => {
  /** The serials of these numbers (the digits between prefix and check digit), as issued. */
  const serials = (numbers: string[], prefix: string) =>
    numbers.map((n) => Number(n.slice(prefix.length, 12)))

  /** Numbers issued one after another are no guide to each other: not consecutive, spread out. */
  function expectUnguessable(numbers: string[], prefix: string) {
    for (const n of numbers) {
      expect(n).toMatch(new RegExp(`^${prefix}\\d{${13 - prefix.length}}$`))
      expect(isValidEan13(n), n).toBe(true)
    }
    expect(new Set(numbers).size).toBe(numbers.length)
    const s = serials(numbers, prefix)
    const steps = s.slice(1).map((x, i) => Math.abs(x - (s[i] ?? 0)))
    // Sequential numbers step by 1: a shopper adding 1 to their own has someone else's card.
    expect(steps.filter((step) => step <= 100)).toEqual([])
    // Spread over the prefix's serial space (10^(10 - extra prefix digits)), not one corner of it.
    const space = 10 ** (12 - prefix.length)
    expect(Math.max(...s) - Math.min(...s)).toBeGreaterThan(space / 10)
  }

  it('are drawn at random within the prefix, one at a time (a friend add) or for an import', async () => {
    for (const prefix of ['29', '250']) {
      const oneByOne: string[] = []
      for (let i = 0; i < 25; i++) {
        const customerId = await newCustomer()
        const { card } = await k.deps.db
          .transaction()
          .execute((trx) => ensureMemberCard(trx, customerId, { prefix, now: new Date() }))
        oneByOne.push(card.value)
      }
      expectUnguessable(oneByOne, prefix)

      const batch = await Promise.all(Array.from({ length: 25 }, () => newCustomer()))
      expect(await issueMissingMemberCards(k.deps.db, batch, prefix)).toBe(25)
      const rows = await k.deps.db
        .selectFrom('identity')
        .select(['customer_id', 'value'])
        .where('customer_id', 'in', batch)
        .where('kind', '=', 'member_card')
        .execute()
      const byCustomer = new Map(rows.map((r) => [r.customer_id, r.value]))
      expectUnguessable(
        batch.map((id) => byCustomer.get(id) ?? ''),
        prefix,
      )
    }
  })
})

describe('issueMissingMemberCards', () => {
  it('issues no second card to a customer whose card was issued while the import waited for them', async () => {
    // A follow (or a 会員証 tap) issues the card and holds the customer until it commits; the
    // customer import's batch waits for the customer, then must see the card it holds now.
    const customerId = await newCustomer()
    let pid = 0
    const following = await heldTransaction(k.deps.db, async (trx) => {
      pid = await backendPid(trx)
      await ensureMemberCard(trx, customerId, { prefix: '250', now: new Date() })
    })
    const importing = issueMissingMemberCards(k.deps.db, [customerId], '250')
    await lockWaitFor(k.deps.db, pid)
    following.commit()
    await following.committed
    expect(await importing).toBe(0)
    expect(await count('identity', customerId)).toBe(1)
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

describe('an erased customer', () => {
  const issue = (id: string) =>
    k.deps.db
      .transaction()
      .execute((trx) => ensureMemberCard(trx, id, { prefix: '250', now: new Date() }))

  it('gets no card nor coupon, however their id leads to them (GONE)', async () => {
    // A delivery read for `merged` before its survivor was erased: the walk ends at the erasure.
    const [merged, survivor] = [await newCustomer(), await newCustomer()]
    await k.deps.db
      .transaction()
      .execute((trx) =>
        mergeCustomers(trx, { survivorId: survivor, mergedId: merged, reason: 'test' }),
      )
    await eraseCustomer(k.deps.db, survivor)
    for (const id of [merged, survivor]) {
      await expect(issue(id)).rejects.toMatchObject({ code: 'GONE' })
    }
    for (const id of [merged, survivor]) {
      expect(await count('identity', id)).toBe(0)
      expect(await count('coupon', id)).toBe(0)
    }
  })

  it('has no card number: the tombstone of their card is not one', async () => {
    const customerId = await newCustomer()
    await issue(customerId)
    await eraseCustomer(k.deps.db, customerId)
    expect(await memberCardNumberOf(k.deps.db, customerId)).toBeNull()
    await expect(issue(customerId)).rejects.toMatchObject({ code: 'GONE' })
    const [card] = await k.deps.db
      .selectFrom('identity')
      .select('value')
      .where('customer_id', '=', customerId)
      .execute()
    expect(card?.value.startsWith(TOMBSTONE)).toBe(true)
    expect(await count('identity', customerId)).toBe(1)
  })
})

describe('a member-card delivery whose customer is erased', () => {
  /** A customer without LINE nor card, and a member card for them, written, not queued. */
  async function cardDelivery() {
    const customer = await emailCustomer(k.deps)
    const [row] = await insertDeliveries(k.deps.db, [
      {
        dedupeKey: `card-test:${randomUUID()}`,
        kind: 'member-card',
        category: 'transactional',
        customerId: customer.id,
        content: memberCardContent(),
      },
    ])
    return { customerId: customer.id, id: row!.id }
  }

  const expectSkippedWithoutCard = async (customerId: string, id: string) => {
    const row = await deliveryRow(k, id)
    expect([row.status, row.skip_reason]).toEqual(['skipped', 'erased'])
    expect(await count('identity', customerId)).toBe(0)
    expect(await count('coupon', customerId)).toBe(0)
  }

  it('is skipped, issuing no card nor welcome coupon, when the erasure commits as it is rendered', async () => {
    const { customerId, id } = await cardDelivery()
    const tools = sendTools(k)
    const erasingFirst: SendTools = {
      ...tools,
      loaders: {
        ...tools.loaders,
        'member-card': async (deps, delivery) => {
          await eraseCustomer(k.deps.db, delivery.customerId)
          return tools.loaders['member-card']!(deps, delivery)
        },
      },
    }
    await sendJob(k, erasingFirst)([id])
    await expectSkippedWithoutCard(customerId, id)
  })

  it('is skipped, issuing no card nor welcome coupon, when taken over after the erasure (a worker stopped)', async () => {
    const { customerId, id } = await cardDelivery()
    // A worker claimed it and stopped; the erasure leaves a row in `sending` as it is.
    await claimDeliveries(k.deps.db, [id])
    await eraseCustomer(k.deps.db, customerId)
    await sql`update delivery set updated_at = now() - make_interval(secs => ${SENDING_LEASE_SECONDS + 1})
      where id = ${id}`.execute(k.deps.db)
    await sendJob(k)([id])
    await expectSkippedWithoutCard(customerId, id)
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
