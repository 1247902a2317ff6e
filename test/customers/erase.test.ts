import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config/env.ts'
import { loadConsent } from '../../src/consent/consent.service.ts'
import { eraseCustomer, erasedValue } from '../../src/customers/erase.service.ts'
import { closeDeps, createDeps } from '../../src/main/deps.ts'
import { createDb, type Database } from '../../src/platform/db.ts'
import { createLogger } from '../../src/platform/logger.ts'
import { recordPurchase } from '../../src/purchases/purchase.service.ts'
import { processWebhookEvent } from '../../src/webhook/webhook.jobs.ts'
import { legacyCardNumber, makeCustomer } from '../purchases/fixtures.ts'
import { cli } from '../support/cli.ts'
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/env.ts'

const env = loadEnv({ DATABASE_URL: TEST_DATABASE_URL })
let db: Database
beforeAll(async () => {
  db = await createDb(env, { poolSize: 2 })
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
    .set({ email, phone: '09012345678', birthday: new Date('1990-01-02') })
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

describe('eraseCustomer', () => {
  it('removes personal data and identities, keeps card tombstones and anonymised purchases', async () => {
    const p = await personWithEverything()
    expect(await eraseCustomer(db, p.id)).toEqual({ customerId: p.id, alreadyErased: false })

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
    const deps = await createDeps(
      loadEnv({
        DATABASE_URL: TEST_DATABASE_URL,
        REDIS_URL: TEST_REDIS_URL,
        LINE_CHANNEL_SECRET: 'erase-test',
        LINE_CHANNEL_ACCESS_TOKEN: 'erase-test',
      }),
      {
        log: createLogger('silent'),
      },
    )
    try {
      await processWebhookEvent(deps, p.eventIds[1]!)
    } finally {
      await closeDeps(deps)
    }
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

    expect(await eraseCustomer(db, back.id)).toEqual({ customerId: back.id, alreadyErased: false })
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
})
