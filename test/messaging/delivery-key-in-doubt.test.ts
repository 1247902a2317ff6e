import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { setConsent } from '../../src/consent/consent.service.ts'
import { createSendDeliveries } from '../../src/messaging/delivery.jobs.ts'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { RATE_LIMITED } from '../../src/sandbox/request-pipeline.ts'
import { cli } from '../support/cli.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { type Smtp, startSmtp } from '../support/smtp.ts'
import {
  blockAccount,
  campaign,
  campaignInbox,
  deliveryRow,
  deliveryRows,
  type Friend,
  MULTICAST,
  newFriend,
  optOutOfLineMarketing,
  PUSH,
  playingWorkers,
  pushesTo,
  sendTools,
  WEEK_MS,
} from './support.ts'

/**
 * A delivery whose request got a 5xx or no answer may have reached LINE under its retry key: it
 * counts in the weekly cap, and it goes again only as that request, never by email. A rate-limit
 * 429 is LINE refusing the request: nothing was taken under the key.
 */
describe('a delivery whose LINE request may have arrived', () => {
  let k: TestKizuna
  let smtp: Smtp

  beforeAll(async () => {
    smtp = await startSmtp()
    k = await startTestKizuna({
      QUIET_HOURS: '',
      MARKETING_WEEKLY_CAP: '1',
      SMTP_URL: smtp.url,
      MAIL_FROM: 'Kizuna Shop <shop@kizuna.test>',
      PUBLIC_BASE_URL: 'https://crm.kizuna.test',
    })
  })
  afterAll(async () => {
    await k?.stopAll()
    await smtp?.close()
  })

  const rateLimitNext = (path: string) =>
    k.line.failNext({ method: 'POST', path, status: 429, body: { message: RATE_LIMITED } })
  /** The rate-limited deliveries' wait (a delayed job of their own) is over. */
  const waitOver = (ids: string[]) =>
    k.deps.db
      .updateTable('delivery')
      .set({ send_after: new Date() })
      .where('id', 'in', ids)
      .execute()

  /** The cap let one of the two out; the other waits for room a week on; one message arrived. */
  async function expectOneSentOneHeld(sentId: string, heldId: string, userId: string) {
    const [sent, held] = await deliveryRows(k, [sentId, heldId])
    expect(sent!.status).toBe('sent')
    expect(held!.status).toBe('pending')
    expect(held!.send_after.getTime()).toBeGreaterThan(Date.now() + WEEK_MS / 2)
    expect(campaignInbox(k, userId)).toHaveLength(1)
  }

  /** The push gets LINE's 500, and the job gives up: failed, its request may have arrived. */
  async function failedAfter500(send: (ids: string[]) => Promise<unknown>, id: string) {
    k.line.failNext({ method: 'POST', path: PUSH, status: 500, count: 1 })
    const error = await send([id]).catch((e: Error) => e)
    expect(error).toMatchObject({ message: '1 of 1 deliveries failed for now' })
    // That was the job's last try.
    await createSendDeliveries(sendTools(k)).onFinalFailure?.(
      k.deps,
      { deliveryIds: [id] },
      error as Error,
    )
    expect((await deliveryRow(k, id)).status).toBe('failed')
  }

  it('a push that got a 500 counts in the weekly cap while it waits for its retry', async () => {
    const f = await newFriend(k)
    await playingWorkers(k, async (send) => {
      const [first] = (await scheduleDeliveries(k.deps, [campaign(f)])) as [string]
      k.line.failNext({ method: 'POST', path: PUSH, status: 500, count: 1 })
      await expect(send([first])).rejects.toThrow(/failed for now/)
      const [second] = (await scheduleDeliveries(k.deps, [campaign(f)])) as [string]
      await send([second])
      await send([first])

      await expectOneSentOneHeld(first, second, f.userId)
    })
  })

  it('a push refused by a rate-limit 429 took nothing: it waits for room like a new send', async () => {
    const f = await newFriend(k)
    await playingWorkers(k, async (send) => {
      const [first] = (await scheduleDeliveries(k.deps, [campaign(f)])) as [string]
      rateLimitNext(PUSH)
      await send([first])
      const refused = await deliveryRow(k, first)
      expect(refused).toMatchObject({
        status: 'pending',
        line_first_call_at: null,
        push_body: null,
      })
      await waitOver([first])
      const [second] = (await scheduleDeliveries(k.deps, [campaign(f)])) as [string]
      await send([second])
      await send([first])

      await expectOneSentOneHeld(second, first, f.userId)
    })
  })

  it('a chunk refused by a rate-limit 429 goes again as a new chunk, without one who opted out', async () => {
    const [stays, optsOut] = [await newFriend(k), await newFriend(k)] as [Friend, Friend]
    await playingWorkers(k, async (send) => {
      const ids = await scheduleDeliveries(
        k.deps,
        [stays, optsOut].map((f) => campaign(f, { displayName: 'お客様' })),
      )
      rateLimitNext(MULTICAST)
      await send(ids)
      await waitOver(ids)
      const refused = k.line.requestsTo('POST', MULTICAST).at(-1)!
      await optOutOfLineMarketing(k, optsOut.customerId)
      await send(ids)

      const [sent, skipped] = await deliveryRows(k, ids)
      expect(sent!.status).toBe('sent')
      expect(skipped!.status).toBe('skipped')
      const pushes = pushesTo(k, stays.userId)
      expect(pushes).toHaveLength(1)
      expect(pushes[0]!.headers['x-line-retry-key']).not.toBe(refused.headers['x-line-retry-key'])
      expect(campaignInbox(k, optsOut.userId)).toHaveLength(0)
    })
  })

  it('a push failed for good and requeued repeats its first request byte for byte', async () => {
    const f = await newFriend(k)
    const kind = `notice-${randomUUID().slice(0, 8)}`
    await playingWorkers(k, async (send) => {
      const [id] = (await scheduleDeliveries(k.deps, [
        { ...campaign(f, { category: 'transactional' }), kind },
      ])) as [string]
      await failedAfter500(send, id)
      // What it says would render otherwise now (a fixed template, points read again).
      await sql`update delivery set vars = vars || '{"displayName": "別の名前"}'::jsonb
        where id = ${id}`.execute(k.deps.db)
      const run = await cli(['deliveries', 'retry', '--status', 'failed', '--kind', kind])
      expect(run.code).toBe(0)
      await send([id])

      expect((await deliveryRow(k, id)).status).toBe('sent')
      const pushes = pushesTo(k, f.userId)
      expect(pushes.map((p) => p.status)).toEqual([500, 200])
      expect(pushes[1]!.headers['x-line-retry-key']).toBe(pushes[0]!.headers['x-line-retry-key'])
      expect(pushes[1]!.body).toEqual(pushes[0]!.body)
    })
  })

  it('a push failed for good after a 500 counts in the weekly cap: `deliveries retry` may send it', async () => {
    const f = await newFriend(k)
    const kind = `campaign-${randomUUID().slice(0, 8)}`
    await playingWorkers(k, async (send) => {
      const [first] = (await scheduleDeliveries(k.deps, [{ ...campaign(f), kind }])) as [string]
      await failedAfter500(send, first)
      const [second] = (await scheduleDeliveries(k.deps, [campaign(f)])) as [string]
      await send([second])
      const run = await cli(['deliveries', 'retry', '--status', 'failed', '--kind', kind])
      expect(run.code).toBe(0)
      await send([first])

      await expectOneSentOneHeld(first, second, f.userId)
    })
  })

  const cases = [
    {
      name: 'blocks the account',
      category: 'transactional' as const,
      after: (f: Friend) => blockAccount(k, f.userId),
      // LINE cannot reach them now, email could: but the push may have arrived.
      expected: { status: 'failed', last_error: expect.stringMatching(/not sent by email/) },
    },
    {
      name: 'takes marketing off LINE and allows it by email',
      category: 'marketing' as const,
      after: async (f: Friend) => {
        for (const [channel, granted] of [
          ['line', false],
          ['email', true],
        ] as const) {
          await setConsent(k.deps.db, f.customerId, {
            category: 'marketing',
            channel,
            granted,
            source: 'admin',
          })
        }
      },
      // Still a friend: email is not theirs to get instead (DESIGN.md flows 2 and 3).
      expected: { status: 'skipped', skip_reason: 'no_marketing_consent_line' },
    },
  ]
  for (const c of cases) {
    it(`a push that got a 500 is not emailed after the person ${c.name}`, async () => {
      const f = await newFriend(k)
      const email = `c-${randomUUID()}@example.com`
      await k.deps.db
        .updateTable('customer')
        .set({ email })
        .where('id', '=', f.customerId)
        .execute()
      await playingWorkers(k, async (send) => {
        const [id] = (await scheduleDeliveries(k.deps, [
          campaign(f, { category: c.category }),
        ])) as [string]
        k.line.failNext({ method: 'POST', path: PUSH, status: 500, count: 1 })
        await expect(send([id])).rejects.toThrow(/failed for now/)
        await c.after(f)
        await send([id])

        expect(await deliveryRow(k, id)).toMatchObject(c.expected)
        expect(smtp.mailsTo(email)).toHaveLength(0)
        expect(pushesTo(k, f.userId)).toHaveLength(1)
      })
    })
  }
})
