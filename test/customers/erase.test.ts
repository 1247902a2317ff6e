import { randomInt, randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { loadConsent } from '../../src/consent/consent.service.ts'
import { changeCustomerTags } from '../../src/customers/customer-tag.service.ts'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { ERROR_REMOVED } from '../../src/customers/erase-traces.repo.ts'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import { erasedValue } from '../../src/customers/tombstones.ts'
import { createMailer } from '../../src/email/mailer.ts'
import { insertSandboxMail } from '../../src/email/sandbox-mailbox.ts'
import { lockLineUid } from '../../src/identity/identity.repo.ts'
import { sha256 } from '../../src/linking/link-crypto.ts'
import { requestLinkCode } from '../../src/linking/link-login.service.ts'
import { closeDeps, createDeps } from '../../src/main/deps.ts'
import { insertDeliveries } from '../../src/messaging/delivery.repo.ts'
import { recordOutcomes } from '../../src/messaging/delivery-outcomes.repo.ts'
import { systemClock } from '../../src/platform/clock.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import type { Deps } from '../../src/platform/deps.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { recordPurchase } from '../../src/purchases/purchase.service.ts'
import { processWebhookEvent } from '../../src/webhook/webhook.jobs.ts'
import { legacyCardNumber, makeCustomer } from '../purchases/fixtures.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env.ts'
import { heldTransaction, lockWaitOn } from '../support/locks.ts'
import { chunkBodies, keyedPhoneTombstone, mergeInto } from './factories.ts'

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
let db: Database
beforeAll(async () => {
  db = await createDb(env, { poolSize: 4 })
})
afterAll(async () => {
  await db.destroy()
})

async function personWithEverything() {
  const legacy = legacyCardNumber()
  const c = await makeCustomer(db, { legacyCard: legacy, points: 40, displayName: 'Suzuki Ichiro' })
  const lineUid = `U${randomUUID().replaceAll('-', '')}`
  const email = `ichiro.${randomUUID().slice(0, 8)}@example.com`
  await db
    .updateTable('customer')
    .set({ email, phone: '09012345678', birthday: '1990-01-02' })
    .where('id', '=', c.id)
    .execute()
  await db
    .insertInto('identity')
    .values([
      { customer_id: c.id, kind: 'line', value: lineUid },
      { customer_id: c.id, kind: 'email', value: email },
    ])
    .execute()
  await db
    .insertInto('line_user')
    .values({
      customer_id: c.id,
      line_uid: lineUid,
      status: 'friend',
      status_changed_at: new Date(),
      display_name: 'Ichiro',
      picture_url: 'https://example.com/p.png',
    })
    .execute()
  await db.transaction().execute((trx) =>
    recordPurchase(trx, env, {
      channel: 'store',
      source: 'S-ERASE',
      externalId: randomUUID(),
      customerId: c.id,
      purchasedAt: new Date(),
      lines: [{ sku: 'CHAIR', quantity: 2, unitPrice: 1_500 }],
      total: 3_000,
    }),
  )
  // A campaign waiting to go out, personalised with the name.
  await db
    .insertInto('delivery')
    .values({
      dedupe_key: `erase-test:${c.id}`,
      kind: 'campaign',
      category: 'marketing',
      customer_id: c.id,
      template_id: 'campaign-sample',
      vars: JSON.stringify({ displayName: 'Suzuki Ichiro' }),
      send_after: new Date(Date.now() + 86_400_000),
    })
    .execute()
  // What LINE sent: a message from this person (handled) and a postback still pending, and a
  // message from someone else.
  const otherUid = `U${randomUUID().replaceAll('-', '')}`
  const prefix = `01ERASE${randomUUID().replaceAll('-', '').slice(0, 18).toUpperCase()}`
  const event = (uid: string, n: number, extra: object) => ({
    webhook_event_id: `${prefix}${n}`,
    type: 'message',
    mode: 'active',
    occurred_at: new Date(),
    payload: JSON.stringify({ type: 'message', source: { type: 'user', userId: uid }, ...extra }),
  })
  const events = [
    { ...event(lineUid, 1, { message: { type: 'text', text: 'Suzuki here, call 09012345678' } }) },
    { ...event(lineUid, 2, { postback: { data: 'action=card' } }), type: 'postback' },
    { ...event(otherUid, 3, { message: { type: 'text', text: 'someone else' } }) },
  ]
  await db
    .insertInto('webhook_event')
    .values(events.map((e, i) => ({ ...e, status: i === 0 ? 'done' : 'pending' })))
    .execute()
  return { ...c, legacy, lineUid, email, eventIds: events.map((e) => e.webhook_event_id) }
}

/** A worker's deps (processWebhookEvent) for the length of `work`. */
async function withWorkerDeps<T>(work: (deps: Deps) => Promise<T>): Promise<T> {
  const deps = await createDeps(
    loadEnv({
      DATABASE_URL: TEST_DATABASE_URL,
      REDIS_URL: TEST_REDIS_URL,
      LINE_CHANNEL_SECRET: 'erase-test',
      LINE_CHANNEL_ACCESS_TOKEN: 'erase-test',
    }),
    { log: createLogger('silent') },
  )
  try {
    return await work(deps)
  } finally {
    await closeDeps(deps)
  }
}

describe('eraseCustomer', () => {
  it('removes personal data and identities, keeps card tombstones and anonymised purchases', async () => {
    const p = await personWithEverything()
    const result = await eraseCustomer(db, p.id)
    expect(result).toEqual({
      customerId: p.id,
      alreadyErased: false,
      linked: [],
      menuUnlinks: [expect.any(String)],
    })
    // The one row left holding the LINE user id: the unlink at LINE, until LINE confirms it.
    const unlinks = await db
      .selectFrom('erased_menu_unlink')
      .select('line_uid')
      .where('id', 'in', result.menuUnlinks)
      .execute()
    expect(unlinks).toEqual([{ line_uid: p.lineUid }])

    const customer = await db
      .selectFrom('customer')
      .selectAll()
      .where('id', '=', p.id)
      .executeTakeFirstOrThrow()
    expect(customer).toMatchObject({
      display_name: null,
      email: null,
      phone: null,
      birthday: null,
      points: 0,
      purchase_count: 1,
      total_spent: '3000',
    })
    expect(customer.erased_at).toBeInstanceOf(Date)
    expect((await loadConsent(db, p.id)).marketing).toEqual({ line: false, email: false })

    const identities = await db
      .selectFrom('identity')
      .select(['kind', 'value'])
      .where('customer_id', '=', p.id)
      .orderBy('kind')
      .execute()
    expect(identities).toEqual([
      { kind: 'email', value: erasedValue('email', p.email) },
      { kind: 'legacy_card', value: erasedValue('legacy_card', p.legacy) },
      { kind: 'member_card', value: erasedValue('member_card', p.card) },
    ])
    const lineUser = await db
      .selectFrom('line_user')
      .selectAll()
      .where('customer_id', '=', p.id)
      .executeTakeFirstOrThrow()
    expect(lineUser).toMatchObject({ status: 'blocked', display_name: null, picture_url: null })
    expect(lineUser.line_uid).toBe(erasedValue('line', p.lineUid))
    // The sweeper never asks LINE for an erased person's profile.
    expect(lineUser.profile_fetched_at).not.toBeNull()

    const purchases = await db
      .selectFrom('purchase')
      .select(['total', 'result'])
      .where('customer_id', '=', p.id)
      .execute()
    expect(purchases).toEqual([{ total: 3_000, result: null }])
    const deliveries = await db
      .selectFrom('delivery')
      .select(['status', 'vars', 'messages'])
      .where('customer_id', '=', p.id)
      .execute()
    expect(deliveries).toEqual([{ status: 'skipped', vars: {}, messages: [] }])
    const events = await db
      .selectFrom('webhook_event')
      .select(['webhook_event_id', 'type', 'payload', 'status'])
      .where('webhook_event_id', 'in', p.eventIds)
      .orderBy('webhook_event_id')
      .execute()
    expect(events.map((e) => e.payload)).toEqual([
      { type: 'message', webhookEventId: p.eventIds[0], erased: true },
      { type: 'postback', webhookEventId: p.eventIds[1], erased: true },
      expect.objectContaining({ message: { type: 'text', text: 'someone else' } }),
    ])
    // The pending one is then done without acting on it.
    await withWorkerDeps((deps) => processWebhookEvent(deps, p.eventIds[1]!))
    const processed = await db
      .selectFrom('webhook_event')
      .select(['status', 'outcome'])
      .where('webhook_event_id', '=', p.eventIds[1]!)
      .executeTakeFirstOrThrow()
    expect(processed).toEqual({ status: 'done', outcome: 'erased' })
    const everything = JSON.stringify({ customer, identities, lineUser, deliveries, events })
    for (const secret of ['Suzuki', p.email, '0901234', p.card, p.legacy, p.lineUid]) {
      expect(everything).not.toContain(secret)
    }
  })

  it('erases a merged id while its survivor is merged on into a third customer (no deadlock)', async () => {
    // Its own pool: the held lock, the merge, the erasure and the lock watch each need a connection.
    const racing = await createDb(env, { poolSize: 4 })
    try {
      for (let round = 0; round < 3; round++) {
        const a = await makeCustomer(db)
        const [b, c] = (await Promise.all([makeCustomer(db), makeCustomer(db)])).sort((x, y) =>
          x.id < y.id ? -1 : 1,
        )
        const merge = (survivorId: string, mergedId: string) =>
          racing
            .transaction()
            .execute((trx) => mergeCustomers(trx, { survivorId, mergedId, reason: 'test' }))
        await merge(b.id, a.id)
        // The merge of b into c locks b (the lower id) and waits for c, held here, while the
        // erasure of a walks a → b. Released, the merge re-points a at c.
        const held = await heldTransaction(racing, async (trx) => {
          await trx.selectFrom('customer').select('id').where('id', '=', c.id).forUpdate().execute()
        })
        const merging = merge(c.id, b.id)
        await lockWaitOn(racing, 'customer', 1)
        const erasing = eraseCustomer(racing, a.id)
        await lockWaitOn(racing, 'customer', 2)
        held.commit()
        await held.committed
        const outcomes = await Promise.allSettled([merging, erasing])
        expect(
          outcomes.map((o) =>
            o.status === 'fulfilled' ? 'ok' : String(o.reason?.code ?? o.reason),
          ),
        ).toEqual(['ok', 'ok'])
        expect(await erasing).toMatchObject({ customerId: c.id, alreadyErased: false, linked: [] })
        const rows = await db
          .selectFrom('customer')
          .select(['id', 'merged_into_id', 'erased_at'])
          .where('id', 'in', [a.id, b.id, c.id])
          .execute()
        expect(rows.find((r) => r.id === c.id)?.erased_at).not.toBeNull()
        expect(rows.filter((r) => r.merged_into_id === c.id)).toHaveLength(2)
      }
    } finally {
      await racing.destroy()
    }
  })

  it('erases a person whose unfollow a worker is applying at that moment (no deadlock)', async () => {
    const p = await personWithEverything()
    const eventId = `01UNFOLLOW${randomUUID().replaceAll('-', '').slice(0, 16).toUpperCase()}`
    const at = Date.now()
    await db
      .insertInto('webhook_event')
      .values({
        webhook_event_id: eventId,
        type: 'unfollow',
        mode: 'active',
        occurred_at: new Date(at),
        status: 'pending',
        payload: JSON.stringify({
          type: 'unfollow',
          mode: 'active',
          timestamp: at,
          webhookEventId: eventId,
          deliveryContext: { isRedelivery: false },
          source: { type: 'user', userId: p.lineUid },
        }),
      })
      .execute()
    await withWorkerDeps(async (deps) => {
      // The worker locks the event, then waits for its LINE user (held here, as by another of
      // their events); the erasure starts meanwhile. Let go, the worker blocks the LINE user.
      const held = await heldTransaction(db, (trx) => lockLineUid(trx, p.lineUid))
      const applying = processWebhookEvent(deps, eventId)
      await lockWaitOn(db, 'pg_advisory_xact_lock')
      const erasing = eraseCustomer(db, p.id)
      await lockWaitOn(db, 'webhook_event')
      held.commit()
      await held.committed
      const outcomes = await Promise.allSettled([applying, erasing])
      expect(outcomes.map((o) => (o.status === 'fulfilled' ? 'ok' : String(o.reason)))).toEqual([
        'ok',
        'ok',
      ])
    })
    const event = await db
      .selectFrom('webhook_event')
      .select(['status', 'outcome', 'payload'])
      .where('webhook_event_id', '=', eventId)
      .executeTakeFirstOrThrow()
    expect(event).toEqual({
      status: 'done',
      outcome: 'handled',
      payload: { type: 'unfollow', webhookEventId: eventId, erased: true },
    })
    const lineUser = await db
      .selectFrom('line_user')
      .select(['status', 'line_uid'])
      .where('customer_id', '=', p.id)
      .executeTakeFirstOrThrow()
    expect(lineUser).toEqual({ status: 'blocked', line_uid: erasedValue('line', p.lineUid) })
  })

  it('keeps no error text from a send whose outcome is recorded while they are being erased', async () => {
    const c = await makeCustomer(db, { displayName: 'Kato Jun' })
    const email = `jun.${randomUUID().slice(0, 8)}@example.com`
    await db.updateTable('customer').set({ email }).where('id', '=', c.id).execute()
    const notice = (n: number) => ({
      dedupeKey: `erase-outcome:${randomUUID()}`,
      kind: 'notice',
      category: 'transactional' as const,
      customerId: c.id,
      content: { messages: [{ type: 'text' as const, text: `お知らせ ${n}` }] },
    })
    const [sending, pending] = await insertDeliveries(db, [notice(1), notice(2)])
    // One being sent again, its earlier try's error kept (the erasure locks it to scrub that).
    await db
      .updateTable('delivery')
      .set({ status: 'sending', channel: 'email', last_error: '421 try again later' })
      .where('id', '=', sending!.id)
      .execute()
    // The erasure held up at their other delivery (locked here), the first already locked.
    const held = await heldTransaction(db, async (trx) => {
      await trx
        .selectFrom('delivery')
        .select('id')
        .where('id', '=', pending!.id)
        .forUpdate()
        .execute()
    })
    const erasing = eraseCustomer(db, c.id)
    await lockWaitOn(db, 'delivery', 1)
    // The relay refuses the email meanwhile, quoting the address; its outcome waits for the
    // erasure, then is written.
    const recording = recordOutcomes(
      db,
      [
        {
          id: sending!.id,
          status: 'failed',
          error: `550 5.1.1 <${email}>: Recipient address rejected`,
        },
      ],
      // Claimed by no job here: its count of attempts as written.
      new Map([[sending!.id, 0]]),
    )
    await lockWaitOn(db, 'delivery', 2)
    held.commit()
    await held.committed
    await erasing
    await recording
    const row = await db
      .selectFrom('delivery')
      .select(['status', 'last_error'])
      .where('id', '=', sending!.id)
      .executeTakeFirstOrThrow()
    expect(row).toEqual({ status: 'failed', last_error: ERROR_REMOVED })
  })

  it("deletes the person's tags (a tag can say something personal), a merged customer's too", async () => {
    const survivor = await makeCustomer(db, {})
    const merged = await makeCustomer(db, {})
    const other = await makeCustomer(db, {})
    await changeCustomerTags(db, merged.id, { add: ['妊娠中', 'vip'] })
    await changeCustomerTags(db, other.id, { add: ['vip'] })
    await mergeInto(db, survivor.id, merged.id)
    await eraseCustomer(db, merged.id)
    const tags = await db
      .selectFrom('customer_tag')
      .select(['customer_id', 'tag'])
      .where('customer_id', 'in', [survivor.id, merged.id, other.id])
      .execute()
    expect(tags).toEqual([{ customer_id: other.id, tag: 'vip' }])
  })

  it('is idempotent, and the CLI erases by id and refuses a bad id', async () => {
    const p = await personWithEverything()
    const first = await cli(['customers', 'erase', p.id])
    expect(first).toMatchObject({ code: 0 })
    expect(first.stdout).toContain(`erased customer ${p.id}`)
    const before = await db
      .selectFrom('identity')
      .selectAll()
      .where('customer_id', '=', p.id)
      .execute()
    const again = await cli(['customers', 'erase', p.id])
    expect(again.code).toBe(0)
    expect(again.stdout).toContain('already erased')
    const after = await db
      .selectFrom('identity')
      .selectAll()
      .where('customer_id', '=', p.id)
      .execute()
    expect(after).toEqual(before)

    const bad = await cli(['customers', 'erase', 'nope'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('not a uuid')
    const missing = await cli(['customers', 'erase', randomUUID()])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('no customer')
  })

  it('names the given id and the survivor it leads to when the CLI erases a merged id', async () => {
    const survivor = await makeCustomer(db, {})
    const merged = await makeCustomer(db, {})
    await mergeInto(db, survivor.id, merged.id)
    const result = await cli(['customers', 'erase', merged.id])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(`erased customer ${merged.id} (merged into ${survivor.id})`)
  })

  it('erases a person who came back after an erasure (same LINE account and email) again', async () => {
    const p = await personWithEverything()
    await eraseCustomer(db, p.id)
    const back = await makeCustomer(db, { displayName: 'Ichiro' })
    await db
      .insertInto('identity')
      .values([
        { customer_id: back.id, kind: 'line', value: p.lineUid },
        { customer_id: back.id, kind: 'email', value: p.email },
      ])
      .execute()
    const row = await db
      .insertInto('line_user')
      .values({
        customer_id: back.id,
        line_uid: p.lineUid,
        status: 'friend',
        status_changed_at: new Date(),
      })
      .returning('id')
      .executeTakeFirstOrThrow()

    expect(await eraseCustomer(db, back.id)).toEqual({
      customerId: back.id,
      alreadyErased: false,
      linked: [],
      menuUnlinks: [expect.any(String)],
    })
    const lineUser = await db
      .selectFrom('line_user')
      .select('line_uid')
      .where('id', '=', row.id)
      .executeTakeFirstOrThrow()
    expect(lineUser.line_uid).toBe(`erased:${row.id}`)
    // One tombstone per value: the email keeps the one the first erasure left.
    const identities = await db
      .selectFrom('identity')
      .select(['kind', 'customer_id'])
      .where('value', 'in', [p.email, p.lineUid, erasedValue('email', p.email)])
      .execute()
    expect(identities).toEqual([{ kind: 'email', customer_id: p.id }])
  })

  it("keeps a phone's tombstone keyed with the database's secret, one for a shared phone", async () => {
    // Japanese phone numbers are few enough (~3×10^8) to hash them all: a plain SHA-256 of the
    // phone would keep it.
    const phone = `090${randomInt(10 ** 8)
      .toString()
      .padStart(8, '0')}`
    const withPhone = async () => {
      const c = await makeCustomer(db)
      await db
        .insertInto('identity')
        .values({ customer_id: c.id, kind: 'phone', value: phone })
        .execute()
      return c.id
    }
    const first = await withPhone()
    await eraseCustomer(db, first)
    // A household member takes the phone afterwards (an import row naming them by another id),
    // and is erased too: the tombstone the first erasure left stays the one.
    const second = await withPhone()
    await eraseCustomer(db, second)

    const tombstones = await db
      .selectFrom('identity')
      .select(['customer_id', 'value'])
      .where('kind', '=', 'phone')
      .where('customer_id', 'in', [first, second])
      .execute()
    const { keyed } = await keyedPhoneTombstone(db, phone)
    expect(tombstones).toEqual([{ customer_id: first, value: keyed }])
  })

  it('leaves neither the email nor the LINE user id in any row around the person', async () => {
    const p = await personWithEverything()
    const lineUser = await db
      .selectFrom('line_user')
      .select('id')
      .where('line_uid', '=', p.lineUid)
      .executeTakeFirstOrThrow()
    const tokenHash = `erase-test-${randomUUID()}`
    const expiresAt = new Date(Date.now() + 600_000)
    await db
      .insertInto('link_token')
      .values({ token_hash: tokenHash, line_user_id: lineUser.id, expires_at: expiresAt })
      .execute()
    // Codes sent to the address, one of them asked for by someone else, and one to a typo.
    const typo = p.email.replace('@', '@@')
    await db
      .insertInto('link_code')
      .values(
        [
          [tokenHash, p.email],
          [`someone-else-${randomUUID()}`, p.email],
          [tokenHash, typo],
        ].map(([hash, email]) => ({
          link_token_hash: hash as string,
          email: email as string,
          code_hash: 'x',
          expires_at: expiresAt,
        })),
      )
      .execute()
    // An abandoned nonce still holding the address.
    await db
      .insertInto('link_nonce')
      .values({
        nonce_hash: `erase-test-${randomUUID()}`,
        link_token_hash: tokenHash,
        line_user_id: lineUser.id,
        identity_kind: 'email',
        identity_value: p.email,
        expires_at: expiresAt,
      })
      .execute()
    // A multicast chunk LINE took shared with someone else, one that reached only this person,
    // one shared whose outcome is unknown (a 5xx), and an SMTP rejection quoting the address.
    const other = `U${randomUUID().replaceAll('-', '')}`
    const messages = [{ type: 'text', text: 'Sale' }]
    const chunks = await db
      .insertInto('multicast_request')
      .values([
        { body: JSON.stringify({ to: [p.lineUid, other], messages }), line_request_id: 'r-1' },
        { body: JSON.stringify({ to: [p.lineUid], messages }), line_request_id: 'r-2' },
        { body: JSON.stringify({ to: [p.lineUid, other], messages }) },
      ])
      .returning('id')
      .execute()
    const delivery = (n: number, extra: object) => ({
      dedupe_key: `erase-test:${p.id}:${n}`,
      kind: 'campaign',
      category: 'marketing',
      customer_id: p.id,
      template_id: 'campaign-sample',
      status: 'sent',
      ...extra,
    })
    await db
      .insertInto('delivery')
      .values([
        delivery(1, { multicast_request_id: chunks[0]!.id }),
        delivery(2, { multicast_request_id: chunks[1]!.id }),
        delivery(5, { status: 'pending', multicast_request_id: chunks[2]!.id }),
        delivery(3, {
          status: 'failed',
          channel: 'email',
          last_error: `email: all recipients were rejected: 550 5.1.1 <${p.email}>: User unknown`,
        }),
        // A push kept for its retry, byte for byte.
        delivery(4, {
          status: 'sending',
          push_body: JSON.stringify({ to: p.lineUid, messages }),
        }),
      ])
      .execute()
    // The person joining a group the account is in, and someone else mentioning them there:
    // LINE names them outside `source`.
    const group = { type: 'group', groupId: `C${randomUUID().replaceAll('-', '')}` }
    const eventId = () => `01GRP${randomUUID().replaceAll('-', '').toUpperCase()}`
    await db
      .insertInto('webhook_event')
      .values([
        {
          webhook_event_id: eventId(),
          type: 'memberJoined',
          mode: 'active',
          occurred_at: new Date(),
          payload: JSON.stringify({
            type: 'memberJoined',
            source: group,
            joined: { members: [{ type: 'user', userId: p.lineUid }] },
          }),
          status: 'done',
        },
        {
          webhook_event_id: eventId(),
          type: 'message',
          mode: 'active',
          occurred_at: new Date(),
          payload: JSON.stringify({
            type: 'message',
            source: { ...group, userId: other },
            message: {
              type: 'text',
              id: '468789577898262530',
              text: '@Ichiro see you at the shop',
              mention: {
                mentionees: [{ index: 0, length: 7, type: 'user', userId: p.lineUid }],
              },
            },
          }),
          status: 'done',
        },
      ])
      .execute()
    // Online orders waiting for the address to appear, or for a shop account id with the
    // address beside it.
    const order = {
      channel: 'online',
      source: 'shop',
      purchased_at: new Date(),
      total: 1_000,
      line_skus: ['SOFA-1'],
      line_names: ['Sofa'],
      line_quantities: [1],
      line_unit_prices: [1_000],
    }
    await db
      .insertInto('purchase')
      .values([
        {
          ...order,
          external_id: randomUUID(),
          pending_identity_kind: 'email',
          pending_identity_value: p.email,
        },
        {
          ...order,
          external_id: randomUUID(),
          pending_identity_kind: 'online_customer',
          pending_identity_value: `shop-${randomUUID()}`,
          pending_email: p.email,
        },
      ])
      .execute()

    await eraseCustomer(db, p.id)

    // Every table but the sandbox mailbox, which stands for the person's own inbox.
    const { rows: tables } = await sql<{ name: string }>`
      select table_name as name from information_schema.tables
      where table_schema = 'public' and table_type = 'BASE TABLE'
        and table_name not like 'kysely%' and table_name <> 'sandbox_mail'`.execute(db)
    expect(tables.map((t) => t.name)).toEqual(
      expect.arrayContaining(['link_code', 'link_nonce', 'multicast_request', 'delivery']),
    )
    const found: string[] = []
    for (const { name } of tables) {
      for (const secret of [p.email, p.lineUid]) {
        const { rows } = await sql<{ n: number }>`
          select count(*)::int as n from ${sql.table(name)} t
          where strpos(t::text, ${secret}) > 0`.execute(db)
        if (rows[0]?.n) found.push(`${name}: ${rows[0].n} row(s) with ${secret}`)
      }
    }
    // One row holds the LINE user id on: the unlink of their menu at LINE, until LINE confirms
    // it (erase-richmenu-later.test.ts); this test has no LINE.
    expect(found).toEqual([`erased_menu_unlink: 1 row(s) with ${p.lineUid}`])
    const codes = await db
      .selectFrom('link_code')
      .select('email')
      .where('email', 'in', [p.email, typo])
      .execute()
    expect(codes).toEqual([])
    // The chunk LINE took keeps its body for a retry of the others (answered 409), without this
    // person; one LINE may not have taken cannot go again changed, and keeps none.
    expect(
      await chunkBodies(
        db,
        chunks.map((c) => c.id),
      ),
    ).toEqual([null, null, JSON.stringify({ to: [other], messages })])
  })

  it('removes the mail a sandbox run kept for the person (codes, campaigns with their name)', async () => {
    const p = await personWithEverything()
    const other = `someone.${randomUUID().slice(0, 8)}@example.com`
    const mail = (to: string) => ({
      from: 'shop@kizuna.test',
      to,
      subject: 'Winter sale',
      text: 'Dear Suzuki Ichiro, …',
      html: '<p>Dear Suzuki Ichiro</p>',
    })
    await insertSandboxMail(db, mail(p.email))
    await insertSandboxMail(db, mail(p.email.toUpperCase()))
    await insertSandboxMail(db, mail(other))
    // The code they asked for to link their LINE account, sent to an address they typed and
    // never proved: it is theirs too.
    const typed = `ichiro.private.${randomUUID().slice(0, 8)}@example.com`
    const lineUser = await db
      .selectFrom('line_user')
      .select('id')
      .where('line_uid', '=', p.lineUid)
      .executeTakeFirstOrThrow()
    const linkToken = `erase-test-${randomUUID()}`
    const token = { linkToken, tokenHash: sha256(linkToken), lineUserId: lineUser.id }
    await db
      .insertInto('link_token')
      .values({
        token_hash: token.tokenHash,
        line_user_id: lineUser.id,
        expires_at: new Date(Date.now() + 600_000),
      })
      .execute()
    const sandbox = createMailer(env, db, { sandbox: true })
    const deps = { db, clock: systemClock, log: createLogger('silent') }
    await requestLinkCode(deps, sandbox, token, typed)

    await eraseCustomer(db, p.id)
    const left = await db
      .selectFrom('sandbox_mail')
      .select('to_address')
      .where(sql<string>`lower(to_address)`, 'in', [p.email, other, typed])
      .execute()
    expect(left).toEqual([{ to_address: other }])
  })
})
