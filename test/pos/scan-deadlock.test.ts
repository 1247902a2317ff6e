import { sql, type Transaction } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database, DB } from '../../src/platform/db.ts'
import { ABORTED_RUNS } from '../../src/platform/run-again.ts'
import type { ScanResponse } from '../../src/pos/pos.schemas.ts'
import { STALE_RUNS } from '../../src/purchases/purchase.service.ts'
import {
  legacyCardNumber,
  makeCoupon,
  makeCustomer,
  makeStoreKey,
  memberCardNumber,
  pointsOf,
  postPos,
  receipt,
} from '../purchases/fixtures.ts'
import { errorOf, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import {
  backendPid,
  customerLock,
  deadlockingTransaction,
  heldTransaction,
  lockWaitFor,
} from '../support/locks.ts'
import { eventually } from '../support/wait.ts'
import { receiptRowsOf } from './receipt-rows.ts'

// A register scan that loses a deadlock (Postgres aborted its whole transaction) against
// `kizuna import customers`, which locks the customers it checks and then ones it finds later,
// is run again rather than answered with a 500. The import's side is a transaction of the test
// taking the same rows in the other order, until the scan's backend finds the deadlock.

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

const post = (body: unknown) => postPos(k.baseUrl, '/scans', body, key)

/** A member scanned with a legacy card to link that another customer holds, sorted ids. */
async function memberAndCardHolder() {
  const legacy = legacyCardNumber()
  const member = await makeCustomer(db)
  const holder = await makeCustomer(db, { legacyCard: legacy })
  const [low, high] = [member.id, holder.id].sort()
  return { legacy, member, holder, low: low as string, high: high as string }
}

/**
 * The import's side of a link's deadlock: it holds the customer the scan locks second, and takes
 * the one it locks first once the scan waits (attachIdentity locks both in id order).
 */
const importLockingBackwards = (low: string, high: string, rounds: number) =>
  deadlockingTransaction(db, {
    first: customerLock(high),
    second: customerLock(low),
    rounds,
  })

const holderOf = async (legacyCard: string) =>
  (
    await db
      .selectFrom('identity')
      .select('customer_id')
      .where('kind', '=', 'legacy_card')
      .where('value', '=', legacyCard)
      .executeTakeFirstOrThrow()
  ).customer_id

const rowsOf = async (customerIds: string[]) => ({
  purchases: await db
    .selectFrom('purchase')
    .select(['id', 'customer_id', 'external_id'])
    .where('customer_id', 'in', customerIds)
    .execute(),
  merges: await db
    .selectFrom('merge_audit')
    .select(['surviving_customer_id', 'merged_customer_id', 'reason'])
    .where('merged_customer_id', 'in', customerIds)
    .execute(),
  followUps: await db
    .selectFrom('delivery')
    .select('id')
    .where('customer_id', 'in', customerIds)
    .where('kind', '=', 'post-purchase')
    .execute(),
  ledger: await db
    .selectFrom('points_ledger')
    .select(['delta', 'reason'])
    .where('customer_id', 'in', customerIds)
    .execute(),
})

describe('POST /api/pos/scans deadlocked by a concurrent customer import', () => {
  it('links the legacy card and records the receipt once after losing a deadlock', async () => {
    const { legacy, member, holder, low, high } = await memberAndCardHolder()
    const importing = await importLockingBackwards(low, high, 1)
    const r = receipt()
    const res = await post({ barcode: member.card, linkBarcode: legacy, receipt: r })
    const status = res.status === 200 ? 200 : (await errorOf(res)).message
    expect(status).toBe(200)
    expect(await importing.done).toBe(1)
    const body = (await res.json()) as ScanResponse
    expect(body.customer.id).toBe(member.id)
    expect(body.purchase).toMatchObject({ total: 8_000, pointsEarned: 80, replayed: false })

    const rows = await rowsOf([member.id, holder.id])
    expect(rows.purchases).toEqual([
      { id: body.purchase?.id, customer_id: member.id, external_id: r.id },
    ])
    expect(rows.merges).toEqual([
      { surviving_customer_id: member.id, merged_customer_id: holder.id, reason: 'scan' },
    ])
    expect(rows.followUps).toHaveLength(1)
    expect(rows.ledger).toEqual([{ delta: 80, reason: 'earn' }])
    expect(await holderOf(legacy)).toBe(member.id)
  })

  it('records a receipt scanned by legacy card once after losing a deadlock over its coupon', async () => {
    const legacy = legacyCardNumber()
    const member = await makeCustomer(db, { legacyCard: legacy })
    const coupon = await makeCoupon(db, member.id)
    // The scan's one statement locks the customer, then the coupon it uses.
    const other = await deadlockingTransaction(db, {
      first: (trx) => sql`select code from coupon where code = ${coupon} for update`.execute(trx),
      second: customerLock(member.id),
    })
    const r = receipt({ couponsUsed: [coupon] })
    const res = await post({ barcode: legacy, receipt: r })
    const status = res.status === 200 ? 200 : (await errorOf(res)).message
    expect(status).toBe(200)
    expect(await other.done).toBe(1)

    const rows = await rowsOf([member.id])
    expect(rows.purchases).toHaveLength(1)
    expect(rows.followUps).toHaveLength(1)
    expect(rows.ledger).toEqual([{ delta: 80, reason: 'earn' }])
    const used = await db
      .selectFrom('coupon')
      .select('used_purchase_id')
      .where('code', '=', coupon)
      .executeTakeFirstOrThrow()
    expect(used.used_purchase_id).toBe(rows.purchases[0]?.id)
  })

  it('answers 503 "scan again" and writes nothing when it loses every time', async () => {
    const { legacy, member, holder, low, high } = await memberAndCardHolder()
    const importing = await importLockingBackwards(low, high, Number.POSITIVE_INFINITY)
    let res: Response
    try {
      res = await post({ barcode: member.card, linkBarcode: legacy, receipt: receipt() })
    } finally {
      importing.end()
    }
    expect(await importing.done).toBe(3)
    expect(res.status).toBe(503)
    const error = await errorOf(res)
    expect(error.code).toBe('UNAVAILABLE')
    expect(error.message).toMatch(/busy.*scan again/)

    const rows = await rowsOf([member.id, holder.id])
    expect(rows).toEqual({ purchases: [], merges: [], followUps: [], ledger: [] })
    expect(await holderOf(legacy)).toBe(holder.id)
  })
})

// A receipt scanned with a card whose binding commits between the statement that records it
// (which found no one) and the lookup that then says why (which finds the card): the receipt is
// recorded for the card's holder, not refused as "no member card … has this number".
//
// The order is forced with locks: the recording statement is held at a table lock it takes
// before its snapshot (points_ledger, held in SHARE mode), after it holds its lock on identity;
// a LOCK TABLE identity queued behind it (and behind the uncommitted binding) makes the lookup
// that follows wait; the binding then commits and the queue is released.

/** Waits until a query naming `text` waits for backend `pid`'s locks (or its place in a queue). */
async function queryWaitsFor(pid: number, text: string): Promise<void> {
  await eventually(async () => {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
      where ${pid}::int = any(pg_blocking_pids(pid)) and query like ${`%${text}%`}`.execute(db)
    expect(rows[0]?.n).toBeGreaterThan(0)
  })
}

describe('POST /api/pos/scans with a receipt, for a card bound meanwhile', () => {
  it('records the receipt for the card bound between the recording statement and the lookup', async () => {
    const c = await makeCustomer(db, { points: 10 })
    const card = memberCardNumber()
    const binding = await heldTransaction(db, async (trx) => {
      await trx
        .insertInto('identity')
        .values({ customer_id: c.id, kind: 'member_card', value: card })
        .execute()
    })
    let ledgerPid = 0
    const ledger = await heldTransaction(db, async (trx) => {
      ledgerPid = await backendPid(trx)
      await sql`lock table points_ledger in share mode`.execute(trx)
    })
    const r = receipt({ total: 2_000 })
    const answer = postPos(k.baseUrl, '/scans', { barcode: card, receipt: r }, key)
    await lockWaitFor(db, ledgerPid) // the recording statement, holding identity, waits

    let queuePid = 0
    let releaseQueue!: () => void
    const queueHeld = new Promise<void>((resolve) => {
      releaseQueue = resolve
    })
    const queue = db.transaction().execute(async (trx) => {
      queuePid = await backendPid(trx)
      await sql`lock table identity in access exclusive mode`.execute(trx)
      await queueHeld
    })
    await eventually(async () => {
      expect(queuePid).toBeGreaterThan(0)
      const { rows } = await sql<{ wait: string | null }>`select wait_event_type as wait
        from pg_stat_activity where pid = ${queuePid}::int`.execute(db)
      expect(rows[0]?.wait).toBe('Lock') // queued behind the statement and the binding
    })
    ledger.commit()
    await ledger.committed
    // The statement found no one (the binding is not committed); the lookup waits in the queue.
    await queryWaitsFor(queuePid, 'from "identity"')
    binding.commit()
    await binding.committed
    releaseQueue()
    await queue

    const res = await answer
    expect(res.status).toBe(200)
    const body = (await res.json()) as ScanResponse
    expect(body.customer.id).toBe(c.id)
    expect(body.purchase).toMatchObject({ total: 2_000, pointsEarned: 20, replayed: false })
    const purchases = await db
      .selectFrom('purchase')
      .select('external_id')
      .where('customer_id', '=', c.id)
      .execute()
    expect(purchases).toEqual([{ external_id: r.id }])
    expect(await pointsOf(db, c.id)).toBe(30)
  })
})

// Many receipts for one customer at once (a shared house card at every register): each one's
// statement waits for the customer row, and finds it changed since its snapshot each time
// another receipt committed first. After rounds of that it is told to scan again (503), not a 500.

/** A change to the customer row (a new row version), as another register's receipt makes. */
const touch = (customerId: string) => (trx: Transaction<DB>) =>
  sql`update customer set updated_at = now() where id = ${customerId}`.execute(trx)

/** A transaction holding a change to the customer, uncommitted; `pid` its backend. */
async function heldChange(customerId: string) {
  let pid = 0
  const held = await heldTransaction(db, async (trx) => {
    pid = await backendPid(trx)
    await touch(customerId)(trx)
  })
  return { ...held, pid }
}

/**
 * A transaction asking for the points_ledger table in share mode, which the recording statement
 * (it may write the ledger) holds while it runs, so it is queued behind that statement; the
 * statement's next run queues behind it in turn, before taking its snapshot. Resolves once it is
 * queued, to `granted`: the held transaction once the statement has ended.
 */
async function queuedGate() {
  let pid = 0
  const granted = heldTransaction(db, async (trx) => {
    pid = await backendPid(trx)
    await sql`lock table points_ledger in share mode`.execute(trx)
  })
  const queued = eventually(async () => {
    expect(pid).toBeGreaterThan(0)
    const { rows } = await sql<{ wait: string | null }>`select wait_event_type as wait
      from pg_stat_activity where pid = ${pid}::int`.execute(db)
    expect(rows[0]?.wait).toBe('Lock')
  })
  await Promise.race([queued, granted])
  return { granted }
}

/**
 * Changes the customer under each run of the recording statement `request` makes, until it
 * answers. The statement takes its snapshot and waits for the row, which a change holds; a gate
 * queues behind the statement; the change commits, so the statement finds the row changed since
 * its snapshot, ends, and gives the gate its turn; the next run waits behind the gate while the
 * next change takes the row, and then runs into it: no run ever finds the row still. Answers
 * the request's answer and how many times the row changed under it.
 */
async function changedEachTime(customerId: string, request: () => Promise<Response>) {
  let holder = await heldChange(customerId)
  let settled = false
  const answer = request().finally(() => {
    settled = true
  })
  let changes = 0
  try {
    while (changes < 100) {
      await Promise.race([lockWaitFor(db, holder.pid), answer])
      if (settled) break
      const { granted } = await queuedGate()
      holder.commit()
      await holder.committed
      changes++
      const gate = await granted
      holder = await heldChange(customerId)
      gate.commit()
      await gate.committed
    }
  } finally {
    holder.commit()
    await holder.committed
  }
  return { res: await answer, changes }
}

describe('POST /api/pos/scans for a customer changing under each try', () => {
  it('answers 503 busy, scan again, and records nothing', async () => {
    const c = await makeCustomer(db, { points: 10 })
    const before = await receiptRowsOf(db, c.id)
    const r = receipt()
    const { res, changes } = await changedEachTime(c.id, () =>
      post({ barcode: c.card, receipt: r }),
    )
    expect(res.status).toBe(503)
    const error = await errorOf(res)
    expect(error.code).toBe('UNAVAILABLE')
    expect(error.message).toMatch(/^busy: .*scan again$/)
    // Each of the scan's runs tried its statement as many times, the row changed under each try.
    expect(changes).toBe(ABORTED_RUNS * STALE_RUNS)
    const after = await receiptRowsOf(db, c.id)
    expect(after.purchases).toEqual(before.purchases)
    expect(after.ledger).toEqual(before.ledger)

    // Once the row holds still, the same receipt is recorded.
    const again = await post({ barcode: c.card, receipt: r })
    expect(again.status).toBe(200)
  })
})
