import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sha256 } from '../../src/linking/link-crypto.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import {
  customerLock,
  deadlockingTransaction,
  lockWaitBehind,
  pausedErasure,
} from '../support/locks.ts'
import { logSink } from '../support/log-sink.ts'
import {
  friend,
  linkReads,
  onlineCustomer,
  proveEmail,
  type Smtp,
  startSmtp,
  tapLinkToken,
} from './support.ts'

// LINE's accountLink event merges the shop account's customer into the LINE friend's. When that
// merge loses a deadlock against `kizuna import customers` (which locks customers it checks,
// then ones it finds later), the event's transaction is run again at once: the link is made once,
// the shopper told once, and the job does not fail.

let k: TestKizuna
let smtp: Smtp
const logs = logSink()

beforeAll(async () => {
  smtp = await startSmtp()
  k = await startTestKizuna(
    { SMTP_URL: smtp.url, PUBLIC_BASE_URL: 'https://shop.example' },
    { log: createLogger('info', logs.sink) },
  )
})
afterAll(async () => {
  await k?.stopAll()
  await smtp?.close()
})

const { lineUser, identitiesOf, purchasesOf, texts, waitForText } = linkReads(() => k)

describe('LINE account link deadlocked by a concurrent customer import', () => {
  it('merges the shop account once after losing a deadlock, and the job does not fail', async () => {
    const email = `shopper-${randomUUID().slice(0, 8)}@example.jp`
    const online = await onlineCustomer(k, { email })
    const user = await friend(k)
    const linkToken = await tapLinkToken(k, user.userId)
    const dialog = await proveEmail(k, smtp, linkToken, email)
    const friendCustomer = (await lineUser(user.userId)).customer_id
    // The merge locks both customers in id order; the import holds the second and then wants
    // the first.
    const [low, high] = [online, friendCustomer].sort() as [string, string]
    const importing = await deadlockingTransaction(k.deps.db, {
      first: customerLock(high),
      second: customerLock(low),
    })

    await k.line.users.accountLink(user.userId, dialog)
    await waitForText(user.userId, 'now linked')
    expect(await importing.done).toBe(1)

    expect(await identitiesOf(friendCustomer)).toEqual(['email', 'line', 'member_card'])
    expect(await purchasesOf(friendCustomer)).toBe(1)
    const merged = await k.deps.db
      .selectFrom('customer')
      .select('merged_into_id')
      .where('id', '=', online)
      .executeTakeFirstOrThrow()
    expect(merged.merged_into_id).toBe(friendCustomer)
    const audits = await k.deps.db
      .selectFrom('merge_audit')
      .select('reason')
      .where('merged_customer_id', '=', online)
      .execute()
    expect(audits).toEqual([{ reason: 'account-link' }])
    const links = await k.deps.db
      .selectFrom('link_audit')
      .select('action')
      .where('line_user_id', '=', (await lineUser(user.userId)).id)
      .execute()
    expect(links.map((l) => l.action)).toEqual(['link'])
    // Told once, and nothing on the link's way failed (a failed job would be tried again later).
    // Rich-menu link jobs are left out: they link against whatever menus the shared test
    // database holds live, which a fresh stand-in may not know (a 404 then fails the job by
    // design, richmenu-link-refused-menu.test.ts), and the merge is not theirs.
    expect(texts(user.userId).filter((t) => t.includes('now linked'))).toHaveLength(1)
    const failed = logs
      .entries()
      .filter((e) => e.msg === 'job attempt failed' || e.level === 50)
      .filter((e) => e.queue !== 'richmenu')
      .map((e) => ({ msg: e.msg, err: (e.err as { message?: string } | undefined)?.message }))
    expect(failed).toEqual([])
  })
})

describe('LINE account link while its person is being erased', () => {
  it('waits for the erasure holding nothing the erasure needs, then links no one', async () => {
    const email = `shopper-${randomUUID().slice(0, 8)}@example.jp`
    const user = await friend(k)
    const linkToken = await tapLinkToken(k, user.userId)
    const dialog = await proveEmail(k, smtp, linkToken, email)
    const erased = await lineUser(user.userId)
    const db = k.deps.db
    // The erasure holds the LINE user and the customer, and will clear the person's link nonces;
    // the accountLink event comes now (stored after the erasure locked the person's events).
    const erasure = await pausedErasure(db, erased.customer_id)
    await k.line.users.accountLink(user.userId, dialog)
    await lockWaitBehind(db, erasure.pid, 2)
    // Waiting for the LINE user, the event holds no lock on the nonce: locked before the LINE
    // user, the erasure's write to it would wait for the event, which waits for the erasure.
    const nonceFree = await db.transaction().execute(async (trx) => {
      const { rows } = await sql<{ nonce_hash: string }>`select nonce_hash from link_nonce
        where nonce_hash = ${sha256(dialog.nonce)} for update skip locked`.execute(trx)
      return rows.length === 1
    })
    await erasure.release()
    expect(nonceFree).toBe(true)

    expect((await erasure.erasing).alreadyErased).toBe(false)
    // The nonce lost its address to the erasure: the event links nothing and says so.
    await waitForText(user.userId, 'expired or was already used')
    const links = await db
      .selectFrom('account_link')
      .select('id')
      .where('line_user_id', '=', erased.id)
      .execute()
    expect(links).toEqual([])
    const identities = await db
      .selectFrom('identity')
      .select('kind')
      .where('value', '=', email)
      .execute()
    expect(identities).toEqual([])
  })
})
