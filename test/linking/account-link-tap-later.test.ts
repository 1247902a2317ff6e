import { afterAll, describe, expect, it } from 'vitest'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { sha256 } from '../../src/linking/link-crypto.ts'
import { sweepOnce } from '../../src/maintenance/sweep.jobs.ts'
import type { InboxEntry } from '../../src/sandbox/state.ts'
import { applyEvent, processWebhookEvent } from '../../src/webhook/webhook.jobs.ts'
import { insertWebhookBodies } from '../../src/webhook/webhook.repo.ts'
import { startTestKizuna } from '../support/harness.ts'
import { startPrivateDeps, startQueueWorkers } from '../support/private-deps.ts'
import { eventually } from '../support/wait.ts'
import { friend } from './support.ts'

// A tap on "link" is answered by a delivery written in the event's own transaction: the LINE
// call that issues the link token is made when that delivery is sent, not after the commit.

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn()
})

const invitesIn = (inbox: InboxEntry[]) => inbox.filter((e) => e.message.type === 'template')

describe('a tap on "link"', () => {
  it('is answered by the sweeper and the send job when its worker stopped after the event committed', async () => {
    // Its own database: the sweeper takes every unfinished row it sees. An SMTP_URL: a way to
    // prove an online account (no mail is sent here).
    const { deps, env, line } = await startPrivateDeps(cleanups, {
      SMTP_URL: 'smtp://127.0.0.1:2525',
      PUBLIC_BASE_URL: 'https://shop.example',
    })
    const user = line.users.create()
    user.friendship = 'friend'
    const follow = line.buildEvent('follow', user.userId, {})
    const tap = line.buildEvent('postback', user.userId, { data: 'action=link' })
    await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([follow, tap]))])
    startQueueWorkers(cleanups, deps, env, ['delivery'])
    await processWebhookEvent(deps, follow.webhookEventId)
    await eventually(() => expect(line.inbox(user.userId)).toHaveLength(1))

    // The event's transaction commits, and the worker stops before the work left for after it.
    const { result } = await applyEvent(deps, tap.webhookEventId)
    expect(result).toMatchObject({ outcome: 'handled' })
    expect(line.requestsTo('POST', `/v2/bot/user/${user.userId}/linkToken`)).toEqual([])

    // The sweeper finds the answer's delivery, and a send job takes it out.
    expect(await sweepOnce(deps, 0)).toMatchObject({ deliveries: 1 })
    const invite = await eventually(() => {
      const invites = invitesIn(line.inbox(user.userId))
      expect(invites).toHaveLength(1)
      return invites[0]!
    })
    expect(line.requestsTo('POST', `/v2/bot/user/${user.userId}/linkToken`)).toHaveLength(1)
    const uri = (invite.message.template as { actions: { uri: string }[] }).actions[0]?.uri ?? ''
    const url = new URL(uri)
    expect(`${url.origin}${url.pathname}`).toBe('https://shop.example/link')
    expect(invite.endpoint).toMatch(/^(reply|push)$/)
    // The token it carries is the one stored (by its hash) for the LINE account.
    const tokens = await deps.db
      .selectFrom('link_token')
      .innerJoin('line_user', 'line_user.id', 'link_token.line_user_id')
      .select('token_hash')
      .where('line_user.line_uid', '=', user.userId)
      .execute()
    expect(tokens).toEqual([{ token_hash: sha256(url.searchParams.get('linkToken') ?? '') }])
    const answers = line
      .inbox(user.userId)
      .filter((e) => JSON.stringify(e.message).includes('Link your online shop account'))
    expect(answers).toHaveLength(1)
  })

  it('sends nothing to a person erased while LINE was issuing their link token', async () => {
    const { deps, env, line } = await startPrivateDeps(cleanups, {
      SMTP_URL: 'smtp://127.0.0.1:2525',
      PUBLIC_BASE_URL: 'https://shop.example',
    })
    startQueueWorkers(cleanups, deps, env, ['delivery'])
    const user = line.users.create()
    user.friendship = 'friend'
    const follow = line.buildEvent('follow', user.userId, {})
    await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([follow]))])
    await processWebhookEvent(deps, follow.webhookEventId)
    await eventually(() => expect(line.inbox(user.userId)).toHaveLength(1))
    const { customer_id: customerId } = await deps.db
      .selectFrom('line_user')
      .select('customer_id')
      .where('line_uid', '=', user.userId)
      .executeTakeFirstOrThrow()

    const held = line.holdNext({ method: 'POST', path: `/v2/bot/user/${user.userId}/linkToken` })
    const tap = line.buildEvent('postback', user.userId, { data: 'action=link' })
    await insertWebhookBodies(deps.db, [JSON.stringify(line.envelope([tap]))])
    await processWebhookEvent(deps, tap.webhookEventId)
    await held.arrived
    await eraseCustomer(deps.db, customerId)
    held.release()
    await eventually(async () => {
      const row = await deps.db
        .selectFrom('delivery')
        .select(['status', 'skip_reason'])
        .where('dedupe_key', '=', `reply:${tap.webhookEventId}`)
        .executeTakeFirstOrThrow()
      expect(row).toEqual({ status: 'skipped', skip_reason: 'erased' })
    })
    expect(line.inbox(user.userId)).toHaveLength(1)
    expect(line.requestsTo('POST', /\/v2\/bot\/message\/(reply|push)$/)).toHaveLength(1)
  })

  it('leaves its webhook job done while LINE has not yet answered the link token request', async () => {
    const k = await startTestKizuna({
      SMTP_URL: 'smtp://127.0.0.1:2525',
      PUBLIC_BASE_URL: 'https://shop.example',
      // Longer than the wait below: a job awaiting the held call would still be running.
      LINE_TIMEOUT_MS: '60000',
    })
    cleanups.push(() => k.stopAll())
    const user = await friend(k)
    const held = k.line.holdNext({
      method: 'POST',
      path: `/v2/bot/user/${user.userId}/linkToken`,
    })
    await k.line.users.postback(user.userId, 'action=link')
    await held.arrived
    // The event is done and its job finished, though LINE holds the link token request.
    await eventually(async () => {
      const counts = await k.deps.queues.byName.webhook.getJobCounts('active', 'wait')
      expect(counts).toMatchObject({ active: 0, wait: 0 })
    })
    held.release()
    await eventually(() => expect(invitesIn(k.line.inbox(user.userId))).toHaveLength(1))
    expect(k.line.requestsTo('POST', `/v2/bot/user/${user.userId}/linkToken`)).toHaveLength(1)
  })
})
