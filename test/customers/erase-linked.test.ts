import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { MAX_LINKED_CUSTOMERS } from '../../src/customers/linked-customers.repo.ts'
import { attachIdentity, mergeCustomers } from '../../src/customers/merge.service.ts'
import { sha256 } from '../../src/linking/link-crypto.ts'
import { issueNonceRedirect } from '../../src/linking/link-login.service.ts'
import { recordOrder } from '../../src/orders/order.service.ts'
import type { Database } from '../../src/platform/db.ts'
import {
  linkReads,
  onlineCustomer,
  onlineOrder,
  post,
  proveEmail,
  tapLink,
  tapLinkToken,
} from '../linking/support.ts'
import { cli } from '../support/cli.ts'
import { findAnywhere } from '../support/find-anywhere.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { type Smtp, startSmtp } from '../support/smtp.ts'
import { eventually } from '../support/wait.ts'
import { chunkBodies, createCustomer } from './factories.ts'

// Erasure and account linking: a link proved that a LINE account and an online account are
// one person, and an unlink splits them over two customers.
let smtp: Smtp
let k: TestKizuna
let db: Database
beforeAll(async () => {
  smtp = await startSmtp()
  k = await startTestKizuna({ SMTP_URL: smtp.url, PUBLIC_BASE_URL: 'https://shop.example' })
  db = k.deps.db
})
afterAll(async () => {
  await k?.stopAll()
  await smtp?.close()
})

const { lineUser, waitForText } = linkReads(() => k)

/** `kizuna customers erase ID [flags]`, with LINE credentials (the stand-in). */
const eraseByCli = (id: string, ...flags: string[]) =>
  cli(['customers', 'erase', id, ...flags], {
    LINE_CHANNEL_SECRET: k.deps.env.LINE_CHANNEL_SECRET ?? '',
    LINE_CHANNEL_ACCESS_TOKEN: k.deps.env.LINE_CHANNEL_ACCESS_TOKEN ?? '',
    LINE_API_BASE_URL: k.line.apiBaseUrl,
    LINE_DATA_API_BASE_URL: k.line.dataApiBaseUrl,
  })

/**
 * An online customer (name, email, an order) whose LINE friend links the account, then
 * unlinks: the online side stays on `online`, the LINE account goes to `split`.
 */
async function linkedThenUnlinked() {
  const tag = randomUUID().replaceAll('-', '').slice(0, 10)
  const shopName = `Shop${tag}`
  const lineName = `Line${tag}`
  const email = `split.${tag}@example.jp`
  await db.transaction().execute(async (trx) => {
    const { id } = await trx
      .insertInto('customer')
      .values({ display_name: shopName })
      .returning('id')
      .executeTakeFirstOrThrow()
    await attachIdentity(trx, id, 'email', email, { env: k.deps.env })
    await recordOrder(trx, k.deps.env, onlineOrder({ email }))
  })
  const user = k.line.users.create({ displayName: lineName })
  await k.line.users.follow(user.userId)
  await eventually(async () => expect((await lineUser(user.userId)).display_name).toBe(lineName))
  const linkToken = await tapLinkToken(k, user.userId)
  const dialog = await proveEmail(k, smtp, linkToken, email)
  await k.line.users.accountLink(user.userId, dialog)
  await waitForText(user.userId, 'now linked')
  const online = (await lineUser(user.userId)).customer_id
  await k.line.users.postback(user.userId, 'action=unlink')
  await waitForText(user.userId, 'has been unlinked')
  const split = (await lineUser(user.userId)).customer_id
  expect(split).not.toBe(online)
  const secrets = [email, user.userId, lineName, shopName]
  expect((await findAnywhere(db, secrets)).length).toBeGreaterThan(0)
  return { online, split, secrets }
}

/** Erases `id` by the CLI: nothing of the person is left, and both customers are named. */
async function eraseBoth(id: string, p: Awaited<ReturnType<typeof linkedThenUnlinked>>) {
  const erased = await eraseByCli(id, '--with-linked')
  expect(erased.stderr).toBe('')
  expect(erased.code).toBe(0)
  expect(await findAnywhere(db, p.secrets)).toEqual([])
  for (const customer of [p.online, p.split]) {
    expect(erased.stdout).toContain(`erased customer ${customer}`)
  }
  const rows = await db
    .selectFrom('customer')
    .select('erased_at')
    .where('id', 'in', [p.online, p.split])
    .execute()
  expect(rows.map((r) => r.erased_at !== null)).toEqual([true, true])
  return erased.stdout
}

describe('customers erase after an account link and unlink', () => {
  it('erasing the online customer (found by email) erases the LINE customer split off it', async () => {
    const p = await linkedThenUnlinked()
    const stdout = await eraseBoth(p.online, p)
    // The LINE account is on the split-off customer: its menu was unlinked at LINE too.
    expect(stdout).toContain('rich menu unlinked at LINE for 1 LINE user(s)')
  }, 60_000)

  it('erasing the split-off LINE customer erases the online customer it was linked to', async () => {
    const p = await linkedThenUnlinked()
    await eraseBoth(p.split, p)
  }, 60_000)
})

describe('customers erase of a customer with linked customers, without --with-linked', () => {
  it('refuses by default, naming the other customer and why, and changes nothing', async () => {
    const p = await linkedThenUnlinked()
    const res = await eraseByCli(p.online)
    expect(res.code).toBe(1)
    expect(res.stdout).toBe('')
    expect(res.stderr).toContain(p.split)
    expect(res.stderr).toContain('account link, later unlinked')
    expect(res.stderr).toContain('--with-linked')
    expect(res.stderr).toContain('--only')
    expect(await erasedOf([p.online, p.split])).toEqual([])
    expect((await findAnywhere(db, p.secrets)).length).toBeGreaterThan(0)
    // Nothing was unlinked at LINE either: the LINE account is on the split-off customer.
    const lineUid = p.secrets[1] ?? ''
    expect(k.line.requestsTo('DELETE', `/v2/bot/user/${lineUid}/richmenu`)).toEqual([])
  }, 60_000)

  it('--only erases just this customer and leaves the linked one intact', async () => {
    const p = await linkedThenUnlinked()
    const [email, lineUid] = p.secrets as [string, string]
    const res = await eraseByCli(p.split, '--only')
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    expect(res.stdout).toContain(`erased customer ${p.split}`)
    expect(res.stdout).not.toContain(p.online)
    expect(await erasedOf([p.online, p.split])).toEqual([p.split])
    // The LINE account is gone; the online customer keeps its name and email.
    expect(await findAnywhere(db, [lineUid])).toEqual([])
    const online = await db
      .selectFrom('customer')
      .select(['display_name', 'email'])
      .where('id', '=', p.online)
      .executeTakeFirstOrThrow()
    expect(online.display_name).not.toBeNull()
    expect((await findAnywhere(db, [email])).length).toBeGreaterThan(0)
  }, 60_000)

  it('refuses both flags at once', async () => {
    const res = await eraseByCli(randomUUID(), '--only', '--with-linked')
    expect(res.code).toBe(1)
    expect(res.stderr).toContain('--only')
  })
})

describe("an erased person's link token", () => {
  it('no longer opens the link page nor takes an email, though it has not expired', async () => {
    const user = k.line.users.create()
    await k.line.users.follow(user.userId)
    await eventually(() => expect(k.line.inbox(user.userId)).toHaveLength(1))
    const url = await tapLink(k, user.userId)
    const linkToken = url.searchParams.get('linkToken') ?? ''
    await eraseCustomer(db, (await lineUser(user.userId)).customer_id)

    const page = await fetch(`${k.baseUrl}/link?linkToken=${encodeURIComponent(linkToken)}`)
    expect(page.status).toBe(410)
    expect(await page.text()).not.toContain('name="email"')
    const email = `after.${randomUUID().slice(0, 8)}@example.jp`
    const mails = smtp.mails.length
    const res = await post(`${k.baseUrl}/link/email`, { linkToken, email })
    expect(res.status).toBe(410)
    expect(await res.text()).toContain('open LINE and tap')
    expect(smtp.mails.length).toBe(mails)
    expect(await findAnywhere(db, [email])).toEqual([])
  })
})

describe('an erasure and the nonces naming the person', () => {
  it("clears a nonce holding the person's shop account id, issued under another LINE user's link token", async () => {
    const externalId = `SHOP-${randomUUID().slice(0, 8)}`
    // Someone logged in to the shop as this person from their own LINE account, before the
    // shop account reached Kizuna: the nonce names no customer.
    const other = await lineCustomer()
    const linkToken = `token-${randomUUID()}`
    const token = { linkToken, tokenHash: sha256(linkToken), lineUserId: other.lineUserId }
    await issueNonceRedirect(k.deps, token, { kind: 'online_customer', value: externalId })
    const person = await onlineCustomer(k, { externalId })

    await eraseCustomer(db, person)
    const nonces = await db
      .selectFrom('link_nonce')
      .select('identity_value')
      .where('link_token_hash', '=', token.tokenHash)
      .execute()
    expect(nonces).toEqual([{ identity_value: null }])
    expect(await findAnywhere(db, [externalId])).toEqual([])
  })
})

/** A customer with a LINE account of its own: a LINE-only customer, as an unlink leaves. */
async function lineCustomer(): Promise<{ id: string; lineUserId: string }> {
  const { id } = await createCustomer(db, { line: true })
  const lineUser = await db
    .selectFrom('line_user')
    .select('id')
    .where('customer_id', '=', id)
    .executeTakeFirstOrThrow()
  return { id, lineUserId: lineUser.id }
}

/** What an unlink records: the LINE account left `from` for `to`. */
async function unlinked(from: string, to: { id: string; lineUserId: string }) {
  await db
    .insertInto('account_link')
    .values({
      line_user_id: to.lineUserId,
      customer_id: from,
      identity_kind: 'email',
      unlinked_at: new Date(),
      unlinked_to_customer_id: to.id,
    })
    .execute()
}

const erasedOf = async (ids: string[]) =>
  (await db.selectFrom('customer').select(['id', 'erased_at']).where('id', 'in', ids).execute())
    .filter((c) => c.erased_at !== null)
    .map((c) => c.id)
    .sort()

describe('eraseCustomer and account links', () => {
  it('follows links transitively and through merges: two LINE accounts of one person on one online account', async () => {
    // The online account; the person's first LINE account links it and unlinks.
    const { id: online } = await db
      .insertInto('customer')
      .defaultValues()
      .returning('id')
      .executeTakeFirstOrThrow()
    const first = await lineCustomer()
    await unlinked(online, first)
    // Their second LINE account links the same online account (merged into its customer), and
    // unlinks too.
    const second = await lineCustomer()
    await db
      .transaction()
      .execute((trx) =>
        mergeCustomers(trx, { survivorId: second.id, mergedId: online, reason: 'account-link' }),
      )
    const third = await lineCustomer()
    await unlinked(second.id, third)
    const stranger = await lineCustomer()

    const result = await eraseCustomer(db, first.id, { linked: 'erase' })
    expect(result.customerId).toBe(first.id)
    const all = [first.id, second.id, third.id].sort()
    expect(result.linked.map((l) => l.customerId)).toEqual(all.filter((id) => id !== first.id))
    expect(await erasedOf([...all, online, stranger.id])).toEqual(all)
    // Run again from the merged online id: the same three, already erased.
    const again = await eraseCustomer(db, online, { linked: 'erase' })
    expect(again.customerId).toBe(second.id)
    expect([again, ...again.linked].every((r) => r.alreadyErased)).toBe(true)
  })

  it('refuses by default, and erases only the one asked for with linked: only', async () => {
    const a = await lineCustomer()
    const b = await lineCustomer()
    await unlinked(a.id, b)
    await expect(eraseCustomer(db, a.id)).rejects.toThrow(b.id)
    expect(await erasedOf([a.id, b.id])).toEqual([])
    const result = await eraseCustomer(db, a.id, { linked: 'only' })
    expect(result.linked).toEqual([])
    expect(await erasedOf([a.id, b.id])).toEqual([a.id])
  })

  it("with linked: only, takes their LINE user id out of the chunks the other customer's deliveries went in", async () => {
    // A campaign went to the LINE account while it was on the online customer's side, by
    // multicast (LINE took one chunk, the other's outcome is unknown); then it was unlinked.
    const online = await lineCustomer()
    const split = await lineCustomer()
    const { line_uid: lineUid } = await db
      .updateTable('line_user')
      .set({ customer_id: split.id })
      .where('customer_id', '=', online.id)
      .returning('line_uid')
      .executeTakeFirstOrThrow()
    await unlinked(online.id, split)
    const other = `U${randomUUID().replaceAll('-', '')}`
    const messages = [{ type: 'text', text: 'Sale' }]
    const body = JSON.stringify({ to: [other, lineUid], messages })
    const chunks = await db
      .insertInto('multicast_request')
      // The one LINE took is three days old: the nightly job that drops day-old requests did not
      // run (a worker down at 04:55), and the erasure must find it all the same.
      .values([
        { body, line_request_id: 'r-1', created_at: new Date(Date.now() - 3 * 86_400_000) },
        { body },
      ])
      .returning('id')
      .execute()
    await db
      .insertInto('delivery')
      .values(
        chunks.map((chunk) => ({
          dedupe_key: `erase-test:${randomUUID()}`,
          kind: 'campaign',
          category: 'marketing',
          customer_id: online.id,
          template_id: 'campaign-sample',
          status: 'sent',
          multicast_request_id: chunk.id,
        })),
      )
      .execute()

    await eraseCustomer(db, split.id, { linked: 'only' })
    // The id is out of the chunk LINE took; the one it may not have keeps no request.
    expect(
      await chunkBodies(
        db,
        chunks.map((c) => c.id),
      ),
    ).toEqual([null, JSON.stringify({ to: [other], messages })])
    expect(await erasedOf([online.id, split.id])).toEqual([split.id])
  })

  it(`erases ${MAX_LINKED_CUSTOMERS} customers linked together`, async () => {
    const chain = [await lineCustomer()]
    for (let i = 1; i < MAX_LINKED_CUSTOMERS; i++) {
      const next = await lineCustomer()
      await unlinked(chain.at(-1)?.id ?? '', next)
      chain.push(next)
    }
    const atBound = await eraseCustomer(db, chain[1]?.id ?? '', { linked: 'erase' })
    expect(atBound.linked).toHaveLength(MAX_LINKED_CUSTOMERS - 1)
    expect(await erasedOf(chain.map((c) => c.id))).toHaveLength(MAX_LINKED_CUSTOMERS)
  })

  it(`refuses, erasing nothing, when links lead to more than ${MAX_LINKED_CUSTOMERS} customers`, async () => {
    const chain = [await lineCustomer()]
    for (let i = 0; i < MAX_LINKED_CUSTOMERS; i++) {
      const next = await lineCustomer()
      await unlinked(chain.at(-1)?.id ?? '', next)
      chain.push(next)
    }
    await expect(eraseCustomer(db, chain[0]?.id ?? '', { linked: 'erase' })).rejects.toThrow(
      `more than ${MAX_LINKED_CUSTOMERS} customers; nothing was changed`,
    )
    expect(await erasedOf(chain.map((c) => c.id))).toEqual([])
  })
})
