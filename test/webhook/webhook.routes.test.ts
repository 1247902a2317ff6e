import { randomUUID } from 'node:crypto'
import { validateSignature } from '@line/bot-sdk'
import { Hono } from 'hono'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createInbox } from '../../src/webhook/inbox.ts'
import { webhookRoutes } from '../../src/webhook/webhook.routes.ts'
import { OFFICIAL_VECTOR } from '../support/env.ts'
import { errorOf, postWebhook, sign, startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'

let k: TestKizuna

beforeAll(async () => {
  k = await startTestKizuna()
})
afterAll(async () => {
  await k.stopAll()
})

const eventRow = (webhookEventId: string) =>
  k.deps.db
    .selectFrom('webhook_event')
    .selectAll()
    .where('webhook_event_id', '=', webhookEventId)
    .executeTakeFirst()

/** The deliveries (replies, pushes) written for a LINE user. */
const deliveriesTo = (lineUid: string) =>
  k.deps.db
    .selectFrom('delivery')
    .innerJoin('line_user', 'line_user.id', 'delivery.line_user_id')
    .select('delivery.kind')
    .where('line_user.line_uid', '=', lineUid)
    .execute()

/** kizuna_webhook_events_total for the events of a type the route took, new and duplicate. */
async function countedOf(type: string) {
  const values = (await k.deps.metrics.webhookEvents.get()).values
  const of = (outcome: string) =>
    values.find((v) => v.labels.type === type && v.labels.outcome === outcome)?.value ?? 0
  return { received: of('received'), duplicate: of('duplicate') }
}

describe('POST /webhooks/line', () => {
  it("accepts LINE's official signature test vector", async () => {
    expect(
      validateSignature(OFFICIAL_VECTOR.body, OFFICIAL_VECTOR.secret, OFFICIAL_VECTOR.signature),
    ).toBe(true)
    const res = await postWebhook(k.baseUrl!, OFFICIAL_VECTOR.body, {
      'x-line-signature': OFFICIAL_VECTOR.signature,
    })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({})
  })

  it('returns 401 for a missing or wrong signature and stores nothing', async () => {
    const user = k.line.users.create()
    const event = k.line.buildEvent('text', user.userId, { text: 'hello' })
    const body = JSON.stringify(k.line.envelope([event]))

    const missing = await postWebhook(k.baseUrl!, body, {})
    expect(missing.status).toBe(401)
    expect((await errorOf(missing)).code).toBe('UNAUTHORIZED')

    const tampered = body.replace('hello', 'hellO')
    const res = await postWebhook(k.baseUrl!, tampered, { 'x-line-signature': sign(body) })
    expect(res.status).toBe(401)
    const viaSandbox = await k.line.deliverWebhook([event], { signatureOverride: 'AAAA' })
    expect(viaSandbox.status).toBe(401)
    expect(await eventRow(event.webhookEventId)).toBeUndefined()
  })

  it('verifies the signature over the raw bytes of a pretty-printed body with \\u escapes', async () => {
    const user = k.line.users.create()
    const event = k.line.buildEvent('text', user.userId, { text: 'placeholder' })
    const pretty = JSON.stringify(k.line.envelope([event]), null, 2).replace(
      '"placeholder"',
      '"face \\uD83E\\uDD28 and \\n newline"',
    )
    const res = await postWebhook(k.baseUrl!, pretty)
    expect(res.status).toBe(200)
    const row = await eventRow(event.webhookEventId)
    expect((row!.payload as { message: { text: string } }).message.text).toBe(
      'face 🤨 and \n newline',
    )
  })

  it('takes an emoji text from the LINE stand-in, which writes it as \\u escapes, and stores its text', async () => {
    // The stand-in writes non-ASCII as escapes, as LINE's bodies may: a signature checked over
    // the body parsed and serialised again (emoji written out) would refuse this one.
    const user = k.line.users.create()
    const text = 'ありがとう 🤨🎉'
    const sent = await k.line.users.sendText(user.userId, text)
    expect(sent.status).toBe(200)
    // Stored before the 200 (LINE redelivers nothing by default).
    const row = await eventRow(sent.body.events[0]!.webhookEventId)
    expect((row!.payload as { message: { text: string } }).message.text).toBe(text)
  })

  it('stores a text with a NUL character (jsonb has none) as U+FFFD, alone or with others', async () => {
    const user = k.line.users.create()
    const bodies = ['nul', 'other'].map((text) =>
      JSON.stringify(k.line.envelope([k.line.buildEvent('text', user.userId, { text })])).replace(
        '"text":"nul"',
        '"text":"a\\u0000b \\\\u0000 kept"',
      ),
    )
    expect(bodies[0]).toContain('a\\u0000b')
    const alone = await postWebhook(k.baseUrl!, bodies[0]!)
    expect(alone.status).toBe(200)
    // Again together with another request (one grouped insert): both are stored.
    const again = bodies.map((b) =>
      b.replaceAll(/"webhookEventId":"[^"]+"/g, () => `"webhookEventId":"${randomUUID()}"`),
    )
    const both = await Promise.all(
      again.map((b) => postWebhook(k.baseUrl!, b, { 'x-line-signature': sign(b) })),
    )
    expect(both.map((r) => r.status)).toEqual([200, 200])
    for (const body of [bodies[0]!, ...again]) {
      const id = JSON.parse(body).events[0].webhookEventId as string
      const row = await eventRow(id)
      expect(row).toBeDefined()
      const text = (row!.payload as { message: { text: string } }).message.text
      expect(text === 'other' || text === 'a\ufffdb \\u0000 kept').toBe(true)
    }
  })

  it('stores lone surrogate escapes (jsonb has none) as U+FFFD, with the other events', async () => {
    const [a, b] = [k.line.users.create(), k.line.users.create()]
    const lone = k.line.buildEvent('text', a.userId, { text: 'lone' })
    const other = k.line.buildEvent('text', b.userId, { text: 'fine' })
    // As a client may send it: a high and a low surrogate without their pair, a correct pair,
    // and escaped backslashes before surrogate-like text (kept as it is).
    const body = JSON.stringify(k.line.envelope([lone, other])).replace(
      '"text":"lone"',
      String.raw`"text":"a\ud83db\udc00 \ud83e\udd28 \\ud83d \\\udc00"`,
    )
    const res = await postWebhook(k.baseUrl!, body)
    expect(res.status).toBe(200)
    const textOf = async (id: string) =>
      ((await eventRow(id))?.payload as { message: { text: string } } | undefined)?.message.text
    expect(await textOf(lone.webhookEventId)).toBe('a\uFFFDb\uFFFD 🤨 \\ud83d \\\uFFFD')
    expect(await textOf(other.webhookEventId)).toBe('fine')
  })

  it('answers 200 to an empty events array (the console Verify button)', async () => {
    const body = JSON.stringify({ destination: k.line.botUserId, events: [] })
    expect((await postWebhook(k.baseUrl!, body)).status).toBe(200)
  })

  it('returns 400 naming the field for a malformed envelope, and 400 for bad JSON', async () => {
    const badJson = '{"destination":'
    const res1 = await postWebhook(k.baseUrl!, badJson)
    expect(res1.status).toBe(400)
    expect(await errorOf(res1)).toMatchObject({
      message: '(body): is not valid JSON',
      details: [{ field: '(body)', message: 'is not valid JSON' }],
    })

    const body = JSON.stringify({
      destination: k.line.botUserId,
      events: [{ type: 'follow', timestamp: Date.now(), mode: 'active' }],
    })
    const res2 = await postWebhook(k.baseUrl!, body)
    expect(res2.status).toBe(400)
    const error = await errorOf(res2)
    expect(error.message).toContain('events.0.webhookEventId')
    expect(error.requestId).toBeTruthy()
  })

  it('returns 400 naming the field for an event id holding a NUL or a lone surrogate, and stores nothing', async () => {
    // Postgres would store either as U+FFFD: another id than the one the request is answered
    // by, and the same as another event's (a\u0000 and a\ud800 would be one event).
    const user = k.line.users.create()
    for (const bad of ['\\u0000', '\\ud83d', '\\udc00']) {
      const good = k.line.buildEvent('text', user.userId, { text: 'fine' })
      const odd = k.line.buildEvent('text', user.userId, { text: 'odd' })
      const oddId = `${odd.webhookEventId.slice(0, 20)}${bad}`
      const body = JSON.stringify(k.line.envelope([good, odd])).replace(
        `"webhookEventId":"${odd.webhookEventId}"`,
        `"webhookEventId":"${oddId}"`,
      )
      expect(body).toContain(oddId)
      const res = await postWebhook(k.baseUrl!, body)
      expect(res.status).toBe(400)
      expect(await errorOf(res)).toMatchObject({
        code: 'BAD_REQUEST',
        details: [{ field: 'events.1.webhookEventId', message: expect.any(String) }],
      })
      expect(await eventRow(good.webhookEventId)).toBeUndefined()
    }
  })

  it('returns 413 for a body over 1 MB', async () => {
    const body = JSON.stringify({ destination: 'U0', events: [], pad: 'x'.repeat(1024 * 1024) })
    const res = await postWebhook(k.baseUrl!, body)
    expect(res.status).toBe(413)
    expect((await errorOf(res)).code).toBe('PAYLOAD_TOO_LARGE')
  })

  it('stores duplicate and redelivered events once', async () => {
    const user = k.line.users.create()
    const event = k.line.buildEvent('text', user.userId, { text: 'not a keyword' })
    const body = JSON.stringify(k.line.envelope([event, event]))
    const before = await countedOf('message')
    expect((await postWebhook(k.baseUrl!, body)).status).toBe(200)
    expect((await postWebhook(k.baseUrl!, body)).status).toBe(200)
    expect((await k.line.deliverWebhook([event], { redelivery: true })).status).toBe(200)
    const after = await countedOf('message')
    expect([after.received - before.received, after.duplicate - before.duplicate]).toEqual([1, 4])
    const rows = await k.deps.db
      .selectFrom('webhook_event')
      .select(['status', 'attempts', 'outcome'])
      .where('webhook_event_id', '=', event.webhookEventId)
      .execute()
    expect(rows).toHaveLength(1)
    await eventually(async () => {
      const row = await eventRow(event.webhookEventId)
      expect(row?.status).toBe('done')
      expect(row?.outcome).toBe('unrouted')
      expect(row?.attempts).toBe(1)
    })
  })

  it('counts an event that two requests of one insert carry as received once', async () => {
    // Requests waiting behind an insert go into Postgres together: an uncommitted row holds the
    // first insert, the two requests carrying the same event queue behind it, then it is let go.
    const inbox = createInbox(k.deps, { storeTimeoutMs: 60_000 })
    let stores = 0
    const routes = webhookRoutes(k.deps, {
      ...inbox,
      store: (request) => {
        stores += 1
        return inbox.store(request)
      },
    })
    const app = new Hono().route('/webhooks', routes)
    const post = (body: string) =>
      app.request('/webhooks/line', {
        method: 'POST',
        headers: { 'x-line-signature': sign(body), 'content-type': 'application/json' },
        body,
      })
    const user = k.line.users.create()
    const held = k.line.buildEvent('text', user.userId, { text: 'held' })
    const twin = {
      type: 'twinEvent',
      mode: 'active',
      timestamp: Date.now(),
      webhookEventId: `01TWIN${randomUUID().replaceAll('-', '').slice(0, 20).toUpperCase()}`,
      deliveryContext: { isRedelivery: false },
      source: { type: 'user', userId: user.userId },
    }
    let release = () => {}
    const released = new Promise<void>((resolve) => {
      release = resolve
    })
    const holding = Promise.withResolvers<void>()
    const blocker = k.deps.db
      .transaction()
      .execute(async (trx) => {
        await trx
          .insertInto('webhook_event')
          .values({
            webhook_event_id: held.webhookEventId,
            type: 'message',
            mode: 'active',
            occurred_at: new Date(),
            payload: JSON.stringify(held),
          })
          .execute()
        holding.resolve()
        await released
        throw new Error('rolled back: the held event is the request to store')
      })
      .catch(() => {})
    await holding.promise
    const first = post(JSON.stringify(k.line.envelope([held])))
    await eventually(() => expect(stores).toBe(1))
    const body = JSON.stringify(k.line.envelope([twin as never]))
    const both = [post(body), post(body)]
    await eventually(() => expect(stores).toBe(3))
    release()
    await blocker
    expect((await first).status).toBe(200)
    expect((await Promise.all(both)).map((r) => r.status)).toEqual([200, 200])
    expect(await countedOf('twinEvent')).toEqual({ received: 1, duplicate: 1 })
    await inbox.drain()
    await eventually(async () => expect((await eventRow(twin.webhookEventId))?.status).toBe('done'))
  })

  it('stores the events of a request whose insert deadlocked with another insert', async () => {
    // Another inbox insert (another web process, or one that timed out and commits late) has
    // stored A and B and is about to store C; this request carries them as C, B, A. It stores
    // C and waits for B; the other then waits for its C: a deadlock. Postgres aborts this
    // request's insert (it waited first), which is run again once the other has committed.
    const user = k.line.users.create()
    const prefix = `01ORDER${randomUUID().replaceAll('-', '').slice(0, 16).toUpperCase()}`
    const [a, b, c] = ['A', 'B', 'C'].map((letter) => ({
      ...k.line.buildEvent('unfollow', user.userId, {}),
      webhookEventId: `${prefix}00${letter}`,
    }))
    const row = (event: typeof a) => ({
      webhook_event_id: event!.webhookEventId,
      type: event!.type,
      mode: 'active',
      occurred_at: new Date(),
      payload: JSON.stringify(event),
    })
    let request: Promise<Response> | undefined
    await k.deps.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('webhook_event')
        .values([row(a), row(b)])
        .execute()
      const { rows } = await sql<{ xid: string }>`select txid_current()::text as xid`.execute(trx)
      request = postWebhook(k.baseUrl!, JSON.stringify(k.line.envelope([c!, b!, a!])))
      // The request's insert is waiting for this transaction.
      await eventually(async () => {
        const waiting = await sql<{ n: number }>`select count(*)::int as n from pg_locks
          where locktype = 'transactionid' and transactionid::text = ${rows[0]!.xid}
            and not granted`.execute(k.deps.db)
        expect(waiting.rows[0]!.n).toBe(1)
      })
      await trx.insertInto('webhook_event').values(row(c)).execute()
    })
    expect((await request!).status).toBe(200)
  })

  it('stores standby events and sends nothing for them', async () => {
    const user = k.line.users.create()
    const event = k.line.buildEvent('follow', user.userId, {}, { mode: 'standby' })
    k.line.clearRequests()
    expect((await k.line.deliverWebhook([event])).status).toBe(200)
    await eventually(async () => {
      expect((await eventRow(event.webhookEventId))?.outcome).toBe('standby')
    })
    const friend = await k.deps.db
      .selectFrom('line_user')
      .select('status')
      .where('line_uid', '=', user.userId)
      .executeTakeFirstOrThrow()
    expect(friend.status).toBe('friend')
    expect(await deliveriesTo(user.userId)).toHaveLength(0)
    expect(k.line.requestsTo('POST', /\/v2\/bot\/message\//)).toHaveLength(0)
  })

  it('stores an event of a mode it does not know with the others, and sends nothing for it', async () => {
    // A mode LINE may add one day: refusing the request would lose its other events (LINE
    // redelivers nothing by default). Anything but active is held back, as standby is.
    const [a, b] = [k.line.users.create(), k.line.users.create()]
    const active = k.line.buildEvent('follow', a.userId, {})
    const other = { ...k.line.buildEvent('follow', b.userId, {}), mode: 'passive' }
    const body = JSON.stringify(k.line.envelope([active, other as never]))
    expect((await postWebhook(k.baseUrl!, body)).status).toBe(200)
    await eventually(async () => {
      expect((await eventRow(active.webhookEventId))?.outcome).toBe('handled')
      expect(await eventRow(other.webhookEventId)).toMatchObject({
        status: 'done',
        mode: 'passive',
        outcome: 'standby',
      })
    })
    expect(await deliveriesTo(a.userId)).not.toEqual([])
    expect(await deliveriesTo(b.userId)).toEqual([])
  })

  it('stores unknown event types and marks them done', async () => {
    const webhookEventId = `01UNKNOWN${randomUUID().replaceAll('-', '').slice(0, 17).toUpperCase()}`
    const body = JSON.stringify({
      destination: k.line.botUserId,
      events: [
        {
          type: 'somethingNew',
          mode: 'active',
          timestamp: Date.now(),
          webhookEventId,
          deliveryContext: { isRedelivery: false },
          source: { type: 'user', userId: k.line.users.create().userId },
        },
      ],
    })
    expect((await postWebhook(k.baseUrl!, body)).status).toBe(200)
    await eventually(async () => {
      const row = await eventRow(webhookEventId)
      expect(row?.status).toBe('done')
      expect(row?.outcome).toBe('ignored')
    })
  })

  it('stores membership events for a later feature, as LINE sent them', async () => {
    const user = k.line.users.create()
    const webhookEventId = `01MEMBER${randomUUID().replaceAll('-', '').slice(0, 18).toUpperCase()}`
    const body = JSON.stringify({
      destination: k.line.botUserId,
      events: [
        {
          type: 'membership',
          mode: 'active',
          timestamp: Date.now(),
          webhookEventId,
          deliveryContext: { isRedelivery: false },
          source: { type: 'user', userId: user.userId },
          replyToken: 'a'.repeat(32),
          membership: { type: 'joined', membershipId: 3189 },
        },
      ],
    })
    expect((await postWebhook(k.baseUrl!, body)).status).toBe(200)
    await eventually(async () => {
      const row = await eventRow(webhookEventId)
      expect(row?.outcome).toBe('stored')
      expect(
        (row!.payload as { membership: { membershipId: number } }).membership.membershipId,
      ).toBe(3189)
    })
  })
})
