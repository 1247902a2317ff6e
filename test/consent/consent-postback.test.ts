import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../../src/auth/api-key.service.ts'
import { loadConsent, setConsent } from '../../src/consent/consent.service.ts'
import { processWebhookEvents } from '../../src/webhook/webhook.jobs.ts'
import { insertWebhookBodies } from '../../src/webhook/webhook.repo.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { expectNoRejectedRequests } from '../support/line.ts'
import { eventually, eventuallyProcessed } from '../support/wait.ts'

let k: TestKizuna
let adminKey: string
beforeAll(async () => {
  k = await startTestKizuna()
  adminKey = (await createApiKey(k.deps.db, { storeId: null, scopes: ['admin'] })).key
})
afterAll(async () => {
  await k?.stopAll()
})

async function friend() {
  const user = k.line.users.create()
  await k.line.users.follow(user.userId)
  await eventually(() => expect(k.line.inbox(user.userId)).toHaveLength(1))
  const lineUser = await k.deps.db
    .selectFrom('line_user')
    .select('customer_id')
    .where('line_uid', '=', user.userId)
    .executeTakeFirstOrThrow()
  return { userId: user.userId, customerId: lineUser.customer_id }
}

type QuickReplyText = {
  type: string
  text: string
  quickReply?: { items: { action: { type: string; data?: string } }[] }
}

/** Waits for the user's `n`-th message (1-based) and returns it. */
async function nthMessage(userId: string, n: number): Promise<QuickReplyText> {
  return eventually(() => {
    const inbox = k.line.inbox(userId)
    expect(inbox).toHaveLength(n)
    return inbox[n - 1]?.message as unknown as QuickReplyText
  })
}

const consentRow = (customerId: string, category: string) =>
  k.deps.db
    .selectFrom('consent')
    .select(['granted', 'source'])
    .where('customer_id', '=', customerId)
    .where('category', '=', category)
    .where('channel', '=', 'line')
    .executeTakeFirst()

/** The kinds of the consent confirmations (replies) scheduled for the customer. */
const consentReplies = async (customerId: string) =>
  (
    await k.deps.db
      .selectFrom('delivery')
      .select('kind')
      .where('customer_id', '=', customerId)
      .where('kind', 'like', 'consent-%')
      .execute()
  ).map((d) => d.kind)

describe('LINE postbacks action=optout / action=optin', () => {
  it('opts out of marketing on LINE, replies with a way back, and opts in again', async () => {
    const { userId, customerId } = await friend()
    await k.line.users.postback(userId, 'action=optout')
    const stopped = await nthMessage(userId, 2)
    expect(k.line.inbox(userId)[1]?.endpoint).toBe('reply')
    expect(stopped.text).toContain('no longer receive offers')
    expect(stopped.quickReply?.items[0]?.action).toMatchObject({
      type: 'postback',
      data: 'action=optin&category=marketing',
    })
    expect(await consentRow(customerId, 'marketing')).toEqual({
      granted: false,
      source: 'line-postback',
    })
    const afterOptOut = await loadConsent(k.deps.db, customerId)
    expect(afterOptOut.marketing.line).toBe(false)
    expect(afterOptOut.transactional.line).toBe(true)

    // The shopper taps the quick reply.
    await k.line.users.postback(userId, stopped.quickReply?.items[0]?.action.data ?? '')
    const resumed = await nthMessage(userId, 3)
    expect(resumed.text).toContain('again')
    expect(resumed.quickReply?.items[0]?.action.data).toBe('action=optout&category=marketing')
    expect(await consentRow(customerId, 'marketing')).toEqual({
      granted: true,
      source: 'line-postback',
    })
    expectNoRejectedRequests(k.line)
  })

  it('records each tap in the consent history, with the time it was tapped and no key', async () => {
    const { userId, customerId } = await friend()
    const tappedAt = Date.now() - 2_000
    const optout = k.line.buildEvent(
      'postback',
      userId,
      { data: 'action=optout' },
      { timestamp: tappedAt },
    )
    expect((await k.line.deliverWebhook([optout])).status).toBe(200)
    await eventuallyProcessed(k.deps.db, optout.webhookEventId)
    const history = await k.deps.db
      .selectFrom('consent_history')
      .select(['category', 'channel', 'granted', 'previous', 'source', 'api_key_id', 'decided_at'])
      .where('customer_id', '=', customerId)
      .execute()
    expect(history).toEqual([
      {
        category: 'marketing',
        channel: 'line',
        granted: false,
        previous: true,
        source: 'line-postback',
        api_key_id: null,
        decided_at: new Date(tappedAt),
      },
    ])
  })

  it('opts out of transactional messages on LINE only, keeping marketing', async () => {
    const { userId, customerId } = await friend()
    await k.line.users.postback(userId, 'action=optout&category=transactional')
    // The confirmation still goes out: it answers the person's own tap.
    const confirmation = await nthMessage(userId, 2)
    expect(JSON.stringify(confirmation)).toContain('receipts')
    // The row is marked sent once LINE's answer is back, just after the message arrives.
    await eventually(async () => {
      const reply = await k.deps.db
        .selectFrom('delivery')
        .select(['status', 'channel'])
        .where('customer_id', '=', customerId)
        .where('kind', '=', 'consent-optout')
        .executeTakeFirstOrThrow()
      expect(reply).toEqual({ status: 'sent', channel: 'line' })
    })
    expect(await loadConsent(k.deps.db, customerId)).toEqual({
      transactional: { line: false, email: true },
      marketing: { line: true, email: false },
    })
  })

  it('leaves an unknown or empty category unrouted, as an unknown action: nothing changes, no reply', async () => {
    const { userId, customerId } = await friend()
    for (const data of ['action=optout&category=everything', 'action=optin&category=']) {
      const result = await k.line.users.postback(userId, data)
      const eventId = result.body.events[0]!.webhookEventId
      await eventuallyProcessed(k.deps.db, eventId)
      const event = await k.deps.db
        .selectFrom('webhook_event')
        .select('outcome')
        .where('webhook_event_id', '=', eventId)
        .executeTakeFirstOrThrow()
      expect(event.outcome).toBe('unrouted')
    }
    const unknownAction = await k.line.users.postback(userId, 'action=everything')
    await eventuallyProcessed(k.deps.db, unknownAction.body.events[0]!.webhookEventId)
    expect(await consentRow(customerId, 'marketing')).toBeUndefined()
    // A reply is a delivery row written in the event's transaction (it reaches LINE later).
    expect(await consentReplies(customerId)).toEqual([])
    expect(k.line.inbox(userId)).toHaveLength(1)
  })

  it('ends with the last tap when an earlier opt-out is processed after a later opt-in', async () => {
    const { userId, customerId } = await friend()
    const tappedAt = Date.now()
    const optout = k.line.buildEvent(
      'postback',
      userId,
      { data: 'action=optout' },
      { timestamp: tappedAt },
    )
    const optin = k.line.buildEvent(
      'postback',
      userId,
      { data: 'action=optin' },
      { timestamp: tappedAt + 1_000 },
    )
    const doneAt = (webhookEventId: string) => eventuallyProcessed(k.deps.db, webhookEventId)
    // Two requests in the wrong order (LINE does not promise order; a retried job does the same).
    expect((await k.line.deliverWebhook([optin])).status).toBe(200)
    await doneAt(optin.webhookEventId)
    expect((await k.line.deliverWebhook([optout])).status).toBe(200)
    await doneAt(optout.webhookEventId)

    expect((await loadConsent(k.deps.db, customerId)).marketing.line).toBe(true)
    // Only the choice that stands was confirmed.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(await consentReplies(customerId)).toEqual(['consent-optin'])
  })

  it('records an opt-out tapped while another channel holds the chat (standby), sending nothing', async () => {
    const { userId, customerId } = await friend()
    const optout = k.line.buildEvent(
      'postback',
      userId,
      { data: 'action=optout' },
      { mode: 'standby' },
    )
    k.line.clearRequests()
    expect((await k.line.deliverWebhook([optout])).status).toBe(200)
    await eventuallyProcessed(k.deps.db, optout.webhookEventId)
    expect((await loadConsent(k.deps.db, customerId)).marketing.line).toBe(false)
    // LINE gives no reply token in standby and the bot must send nothing.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(k.line.requestsTo('POST', /\/v2\/bot\/message\//)).toHaveLength(0)
    expect(await consentReplies(customerId)).toEqual([])
  })

  it('a tap made before staff changed the consent does not undo the change', async () => {
    const { userId, customerId } = await friend()
    const tappedAt = Date.now() - 5_000
    await setConsent(k.deps.db, customerId, {
      category: 'marketing',
      channel: 'line',
      granted: false,
      source: 'admin',
    })
    const optin = k.line.buildEvent(
      'postback',
      userId,
      { data: 'action=optin' },
      { timestamp: tappedAt },
    )
    expect((await k.line.deliverWebhook([optin])).status).toBe(200)
    await eventuallyProcessed(k.deps.db, optin.webhookEventId)
    expect(await consentRow(customerId, 'marketing')).toEqual({ granted: false, source: 'admin' })

    // A tap after the change applies as usual.
    await k.line.users.postback(userId, 'action=optin')
    await eventually(async () =>
      expect(await consentRow(customerId, 'marketing')).toEqual({
        granted: true,
        source: 'line-postback',
      }),
    )
  })

  it("applies an opt-out tapped just after staff granted consent, though the database's clock runs ahead of LINE's", async () => {
    const { userId, customerId } = await friend()
    await setConsent(k.deps.db, customerId, {
      category: 'marketing',
      channel: 'line',
      granted: true,
      source: 'admin',
    })
    // The tap comes after the grant; LINE's clock reads 30 s behind the database's (which
    // stamped the grant), so by the two clocks the tap looks older than the grant.
    const optout = k.line.buildEvent(
      'postback',
      userId,
      { data: 'action=optout' },
      { timestamp: Date.now() - 30_000 },
    )
    expect((await k.line.deliverWebhook([optout])).status).toBe(200)
    await eventuallyProcessed(k.deps.db, optout.webhookEventId)
    expect(await consentRow(customerId, 'marketing')).toEqual({
      granted: false,
      source: 'line-postback',
    })
    expect(JSON.stringify(await nthMessage(userId, 2))).toContain('no longer receive offers')
  })

  it("keeps a staff opt-out made after an opt-in reached us, though LINE's clock runs ahead of the database's", async () => {
    const { userId, customerId } = await friend()
    // The tap is stored (its time 30 s ahead of the database's), then staff opt the person
    // out before a worker gets to the event.
    const optin = k.line.buildEvent(
      'postback',
      userId,
      { data: 'action=optin' },
      { timestamp: Date.now() + 30_000 },
    )
    await insertWebhookBodies(k.deps.db, [JSON.stringify(k.line.envelope([optin]))])
    await setConsent(k.deps.db, customerId, {
      category: 'marketing',
      channel: 'line',
      granted: false,
      source: 'admin',
    })
    await processWebhookEvents.run(k.deps, { webhookEventIds: [optin.webhookEventId] }, {} as never)
    expect(await consentRow(customerId, 'marketing')).toEqual({ granted: false, source: 'admin' })
  })

  describe('staff deciding the value a row already holds, with a tap stored between', () => {
    /** Staff's `PUT /api/customers/:id/consent` setting marketing on LINE. */
    const staffSets = async (customerId: string, granted: boolean) => {
      const res = await fetch(`${k.baseUrl}/api/customers/${customerId}/consent`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ category: 'marketing', channel: 'line', granted }),
      })
      expect(res.status).toBe(200)
    }
    const staffOptOut = (customerId: string) => staffSets(customerId, false)
    const staffOptIn = (customerId: string) => staffSets(customerId, true)
    /**
     * A tap made now (after what came before it, by both clocks) and stored, left for a worker
     * that gets to it late.
     */
    const storedTap = async (userId: string, action: 'optin' | 'optout') => {
      await new Promise((resolve) => setTimeout(resolve, 20))
      const tap = k.line.buildEvent('postback', userId, { data: `action=${action}` })
      await insertWebhookBodies(k.deps.db, [JSON.stringify(k.line.envelope([tap]))])
      // The staff decision after it comes later by both clocks.
      await new Promise((resolve) => setTimeout(resolve, 20))
      return tap.webhookEventId
    }
    const storedOptIn = (userId: string) => storedTap(userId, 'optin')
    const process = (webhookEventId: string) =>
      processWebhookEvents.run(k.deps, { webhookEventIds: [webhookEventId] }, {} as never)

    it('a delayed opt-in tapped before staff opted the person out again does not undo it', async () => {
      const { userId, customerId } = await friend()
      await staffOptOut(customerId)
      const optin = await storedOptIn(userId)
      await staffOptOut(customerId)
      await process(optin)
      expect(await consentRow(customerId, 'marketing')).toEqual({ granted: false, source: 'admin' })
      expect(await consentReplies(customerId)).toEqual([])
    })

    it("nor does it when the row held the person's own earlier opt-out tap", async () => {
      const { userId, customerId } = await friend()
      const optout = await k.line.users.postback(userId, 'action=optout')
      await eventuallyProcessed(k.deps.db, optout.body.events[0]!.webhookEventId)
      expect(await consentRow(customerId, 'marketing')).toEqual({
        granted: false,
        source: 'line-postback',
      })
      const optin = await storedOptIn(userId)
      await staffOptOut(customerId)
      await process(optin)
      expect(await consentRow(customerId, 'marketing')).toEqual({ granted: false, source: 'admin' })
      expect(await consentReplies(customerId)).toEqual(['consent-optout'])
    })

    it('a delayed opt-out tapped after staff opted the person in still applies when staff opt them in again', async () => {
      // Staff granting again (a CRM sync) re-stamped the row, so the opt-out, tapped before
      // that, looked overtaken: offers went on after the person had said stop.
      const { userId, customerId } = await friend()
      await staffOptIn(customerId)
      const optout = await storedTap(userId, 'optout')
      await staffOptIn(customerId)
      await process(optout)
      expect(await consentRow(customerId, 'marketing')).toEqual({
        granted: false,
        source: 'line-postback',
      })
      expect(await consentReplies(customerId)).toEqual(['consent-optout'])
    })
  })
})
