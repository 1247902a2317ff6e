import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { loadConsent } from '../../src/consent/consent.service.ts'
import { listCustomerTags } from '../../src/customers/customer-tag.repo.ts'
import { changeCustomerTags } from '../../src/customers/customer-tag.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { attachIdentity, mergeCustomers } from '../../src/customers/merge.service.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { readBarcode } from '../../src/pos/barcode.ts'
import { resolveBarcode } from '../../src/pos/barcode-owner.ts'
import { TEST_DATABASE_URL } from '../support/env.ts'
import { heldTransaction, lockWaitOn } from '../support/locks.ts'
import {
  cardNumber,
  createCoupon,
  createCustomer,
  createPurchase,
  identityValuesOf,
  mergeInto,
} from './factories.ts'

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
let db: Database
beforeAll(async () => {
  db = await createDb(env)
})
afterAll(async () => {
  await db.destroy()
})

const customer = (id: string) =>
  db.selectFrom('customer').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
const ownerOf = (table: 'identity' | 'purchase' | 'coupon' | 'points_ledger', id: string) =>
  db.selectFrom(table).select('customer_id').where('customer_id', '=', id).execute()

describe('mergeCustomers', () => {
  it('moves identities, LINE user, purchases, points and coupons and writes the audit row', async () => {
    const card = cardNumber()
    const survivor = await createCustomer(db, { line: true, points: 100, displayName: 'Aki' })
    const merged = await createCustomer(db, {
      points: 50,
      email: 'aki@example.com',
      phone: '09011112222',
      identities: [{ kind: 'member_card', value: card }],
    })
    await createPurchase(db, survivor.id, { total: 1000, daysAgo: 10 })
    const old = await createPurchase(db, merged.id, { total: 5000, daysAgo: 400 })
    await createPurchase(db, merged.id, { total: 3000, daysAgo: 5 })
    const coupon = await createCoupon(db, merged.id)

    const result = await db
      .transaction()
      .execute((trx) =>
        mergeCustomers(trx, { survivorId: survivor.id, mergedId: merged.id, reason: 'scan' }),
      )
    expect(result.moved).toMatchObject({ identity: 1, purchase: 2, coupon: 1, points: 50 })

    const s = await customer(survivor.id)
    expect(s).toMatchObject({
      display_name: 'Aki',
      email: 'aki@example.com',
      phone: '09011112222',
      points: 150,
      purchase_count: 3,
      total_spent: '9000',
      spend_12m: '4000',
    })
    expect(s.first_purchase_at).toEqual(old.purchasedAt)
    const m = await customer(merged.id)
    expect(m).toMatchObject({ merged_into_id: survivor.id, email: null, phone: null, points: 0 })
    for (const table of ['identity', 'purchase', 'coupon', 'points_ledger'] as const) {
      expect(await ownerOf(table, merged.id)).toHaveLength(0)
    }
    const cardOwner = await db
      .selectFrom('identity')
      .select('customer_id')
      .where('kind', '=', 'member_card')
      .where('value', '=', card)
      .executeTakeFirstOrThrow()
    expect(cardOwner.customer_id).toBe(survivor.id)
    const couponRow = await db
      .selectFrom('coupon')
      .selectAll()
      .where('code', '=', coupon)
      .executeTakeFirstOrThrow()
    expect(couponRow.customer_id).toBe(survivor.id)

    const audit = await db
      .selectFrom('merge_audit')
      .selectAll()
      .where('merged_customer_id', '=', merged.id)
      .executeTakeFirstOrThrow()
    expect(audit).toMatchObject({ surviving_customer_id: survivor.id, reason: 'scan' })
    expect(audit.moved).toMatchObject({ identity: 1, purchase: 2, coupon: 1, points: 50 })
    expect(JSON.stringify(audit.moved)).not.toContain('example.com')
  })

  it('keeps the most restrictive marketing consent', async () => {
    const survivor = await createCustomer(db, { marketingConsent: true })
    const merged = await createCustomer(db, { marketingConsent: false })
    await db
      .transaction()
      .execute((trx) =>
        mergeCustomers(trx, { survivorId: survivor.id, mergedId: merged.id, reason: 'import' }),
      )
    expect((await loadConsent(db, survivor.id)).marketing).toEqual({ line: false, email: false })
  })

  it('gives the survivor the union of both tag sets, a shared tag once, and audits the move', async () => {
    const survivor = await createCustomer(db)
    const merged = await createCustomer(db)
    await changeCustomerTags(db, survivor.id, { add: ['vip', 'ソファ購入'] })
    await changeCustomerTags(db, merged.id, { add: ['vip', 'garden'] })
    const result = await mergeInto(db, survivor.id, merged.id, 'scan')
    expect(await listCustomerTags(db, survivor.id)).toEqual(['garden', 'vip', 'ソファ購入'])
    expect(await listCustomerTags(db, merged.id)).toEqual([])
    // "garden" moved; "vip" the survivor had already.
    expect(result.moved.customer_tag).toBe(1)
    const audit = await db
      .selectFrom('merge_audit')
      .select('moved')
      .where('merged_customer_id', '=', merged.id)
      .executeTakeFirstOrThrow()
    expect(audit.moved).toMatchObject({ customer_tag: 1 })
  })

  it('refuses two customers with their own LINE account with 409 and changes nothing', async () => {
    const a = await createCustomer(db, { line: true, points: 10 })
    const b = await createCustomer(db, { line: true, points: 20 })
    await createPurchase(db, b.id, { total: 2000 })
    const attempt = db
      .transaction()
      .execute((trx) => mergeCustomers(trx, { survivorId: a.id, mergedId: b.id, reason: 'scan' }))
    await expect(attempt).rejects.toMatchObject({ code: 'CONFLICT', status: 409 })
    expect(await customer(b.id)).toMatchObject({ merged_into_id: null, points: 20 })
    expect(await ownerOf('purchase', b.id)).toHaveLength(1)
    const audits = await db
      .selectFrom('merge_audit')
      .where('merged_customer_id', '=', b.id)
      .selectAll()
      .execute()
    expect(audits).toHaveLength(0)
  })

  it('refuses two customers with their own shop account with 409 and changes nothing', async () => {
    const [a, b] = [`shop-${randomUUID()}`, `shop-${randomUUID()}`]
    const taro = await createCustomer(db, {
      line: true,
      identities: [{ kind: 'online_customer', value: a }],
    })
    const jiro = await createCustomer(db, {
      identities: [{ kind: 'online_customer', value: b }],
    })
    const attempt = db
      .transaction()
      .execute((trx) =>
        mergeCustomers(trx, { survivorId: taro.id, mergedId: jiro.id, reason: 'scan' }),
      )
    await expect(attempt).rejects.toMatchObject({
      code: 'CONFLICT',
      message: expect.stringContaining('two shop accounts are never merged'),
    })
    expect(await customer(jiro.id)).toMatchObject({ merged_into_id: null })
    expect(await identityValuesOf(db, taro.id, 'online_customer')).toEqual([a])
    expect(await identityValuesOf(db, jiro.id, 'online_customer')).toEqual([b])
  })
})

describe('attachIdentity', () => {
  it('creates a new identity, merges the holder of an existing one, and refuses a second LINE account', async () => {
    const friend = await createCustomer(db, { line: true })
    const card = cardNumber()
    const created = await db
      .transaction()
      .execute((trx) => attachIdentity(trx, friend.id, 'member_card', card, { env }))
    expect(created).toEqual({ customerId: friend.id, created: true, mergedCustomerId: null })

    // An online account imported earlier merges into the LINE friend, who survives.
    const onlineId = `shop-${randomUUID()}`
    const online = await createCustomer(db, {
      identities: [{ kind: 'online_customer', value: onlineId }],
    })
    const merged = await db
      .transaction()
      .execute((trx) => attachIdentity(trx, online.id, 'member_card', card, { env }))
    expect(merged).toEqual({ customerId: friend.id, created: false, mergedCustomerId: online.id })

    const other = await createCustomer(db, { line: true })
    const refused = db
      .transaction()
      .execute((trx) => attachIdentity(trx, other.id, 'member_card', card, { env }))
    await expect(refused).rejects.toMatchObject({ code: 'CONFLICT' })
    expect((await customer(other.id)).merged_into_id).toBeNull()
  })

  it('never gives a customer a second shop account, itself or by merging its holder (409, nothing changed)', async () => {
    const [a, b, c] = [`shop-${randomUUID()}`, `shop-${randomUUID()}`, `shop-${randomUUID()}`]
    const email = `jiro-${randomUUID().slice(0, 8)}@example.com`
    const taro = await createCustomer(db, {
      line: true,
      identities: [{ kind: 'online_customer', value: a }],
    })
    const jiro = await createCustomer(db, {
      identities: [
        { kind: 'online_customer', value: b },
        { kind: 'email', value: email },
      ],
    })
    // A shop account nobody holds, B held by Jiro, and Jiro's email (an account link by email).
    for (const [kind, value] of [
      ['online_customer', c],
      ['online_customer', b],
      ['email', email],
    ] as const) {
      const attached = db
        .transaction()
        .execute((trx) => attachIdentity(trx, taro.id, kind, value, { env }))
      await expect(attached).rejects.toMatchObject({
        code: 'CONFLICT',
        message: expect.stringContaining('two shop accounts are never merged'),
      })
    }
    expect(await identityValuesOf(db, taro.id, 'online_customer')).toEqual([a])
    expect(await identityValuesOf(db, jiro.id, 'online_customer')).toEqual([b])
    expect(await identityValuesOf(db, jiro.id, 'email')).toEqual([email])
    expect(await customer(jiro.id)).toMatchObject({ merged_into_id: null })
    // The one it holds is attached again as before: nothing changes.
    const again = await db
      .transaction()
      .execute((trx) => attachIdentity(trx, taro.id, 'online_customer', a, { env }))
    expect(again).toEqual({ customerId: taro.id, created: false, mergedCustomerId: null })
  })

  it('attaches going opposite ways at once (an account link and a register link) without a deadlock', async () => {
    for (let round = 0; round < 3; round++) {
      // A LINE friend links the shop account of a customer whose legacy card the register is
      // linking to the friend's member card at the same moment.
      const card = cardNumber()
      const shopId = `shop-${randomUUID()}`
      const legacy = `L${randomUUID().slice(0, 10)}`
      const friend = await createCustomer(db, {
        line: true,
        identities: [{ kind: 'member_card', value: card }],
      })
      const shopper = await createCustomer(db, {
        identities: [
          { kind: 'online_customer', value: shopId },
          { kind: 'legacy_card', value: legacy },
        ],
      })
      // Both held, so both attaches wait at their first lock and go on together.
      const held = await heldTransaction(db, async (trx) => {
        await trx
          .selectFrom('customer')
          .select('id')
          .where('id', 'in', [friend.id, shopper.id])
          .forUpdate()
          .execute()
      })
      const attach = (id: string, kind: 'online_customer' | 'member_card', value: string) =>
        db.transaction().execute((trx) => attachIdentity(trx, id, kind, value, { env }))
      const attaching = Promise.allSettled([
        attach(friend.id, 'online_customer', shopId),
        attach(shopper.id, 'member_card', card),
      ])
      await lockWaitOn(db, 'customer', 2)
      held.commit()
      await held.committed
      const outcomes = await attaching
      expect(
        outcomes.map((o) =>
          o.status === 'fulfilled' ? o.value.customerId : String(o.reason?.code ?? o.reason),
        ),
      ).toEqual([friend.id, friend.id])
      expect((await customer(shopper.id)).merged_into_id).toBe(friend.id)
      const values = await db
        .selectFrom('identity')
        .select('value')
        .where('customer_id', '=', friend.id)
        .where('kind', '!=', 'line')
        .execute()
      expect(values.map((v) => v.value).sort()).toEqual([card, legacy, shopId].sort())
    }
  })

  it("refuses an erased customer's card with 410 and binds it to no one", async () => {
    const legacy = `L${randomUUID().slice(0, 10)}`
    const card = cardNumber()
    const erased = await createCustomer(db, {
      identities: [
        { kind: 'legacy_card', value: legacy },
        { kind: 'member_card', value: card },
      ],
    })
    await eraseCustomer(db, erased.id)
    const other = await createCustomer(db, { line: true })
    for (const [kind, value] of [
      ['legacy_card', legacy],
      ['member_card', card],
    ] as const) {
      const attached = db
        .transaction()
        .execute((trx) => attachIdentity(trx, other.id, kind, value, { env, reason: 'scan' }))
      await expect(attached).rejects.toMatchObject({ code: 'GONE' })
    }
    const live = await db
      .selectFrom('identity')
      .select('customer_id')
      .where('value', 'in', [legacy, card])
      .execute()
    expect(live).toEqual([])
    await expect(resolveBarcode(db, readBarcode(legacy, '29'))).rejects.toMatchObject({
      code: 'GONE',
    })
  })

  it('refuses a card whose holder is erased while the attach waits for them, and binds it to no one', async () => {
    const legacy = `L${randomUUID().slice(0, 10)}`
    const holder = await createCustomer(db, {
      identities: [{ kind: 'legacy_card', value: legacy }],
    })
    const other = await createCustomer(db, { line: true })
    // Something holds the card's holder (a scan, say); the erasure waits for it, and then the
    // register's link of the card to another member, which reads the card as still live.
    const held = await heldTransaction(db, async (trx) => {
      await trx
        .selectFrom('customer')
        .select('id')
        .where('id', '=', holder.id)
        .forUpdate()
        .execute()
    })
    const erasing = eraseCustomer(db, holder.id)
    await lockWaitOn(db, 'customer', 1)
    const attaching = db
      .transaction()
      .execute((trx) =>
        attachIdentity(trx, other.id, 'legacy_card', legacy, { env, reason: 'scan' }),
      )
      .catch((error: unknown) => error)
    await lockWaitOn(db, 'customer', 2)
    held.commit()
    await held.committed
    await erasing
    expect(await attaching).toMatchObject({ code: 'GONE' })
    const live = await db
      .selectFrom('identity')
      .select('customer_id')
      .where('value', '=', legacy)
      .execute()
    expect(live).toEqual([])
    await expect(resolveBarcode(db, readBarcode(legacy, '29'))).rejects.toMatchObject({
      code: 'GONE',
    })
  })
})
