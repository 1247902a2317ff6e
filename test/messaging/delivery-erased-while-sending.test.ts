import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { insertDeliveries } from '../../src/messaging/delivery.repo.ts'
import { scheduleDeliveries } from '../../src/messaging/delivery.service.ts'
import { unlinkErasedMenus } from '../../src/richmenu/erased-unlink.service.ts'
import { findAnywhere } from '../support/find-anywhere.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { eventually } from '../support/wait.ts'
import {
  campaign,
  deliveryRows,
  type Friend,
  newFriend,
  PUSH,
  playingWorkers,
  pushesTo,
} from './support.ts'

const REPLY = '/v2/bot/message/reply'

/**
 * A customer erased while their delivery is being sent (a row in `sending` is not skipped by the
 * erasure): the job must not store, nor send, the push it rendered before (their LINE user id,
 * name), and whatever LINE answers, nothing of them stays in the row.
 */
describe('a delivery whose customer is erased while it is sent', () => {
  let k: TestKizuna
  beforeAll(async () => {
    k = await startTestKizuna({ QUIET_HOURS: '', MARKETING_WEEKLY_CAP: '0' })
  })
  afterAll(async () => {
    await k?.stopAll()
  })

  /** An answer to `to`, whose reply LINE keeps waiting, then refuses (the job pushes it). */
  async function heldAnswer(to: Friend): Promise<string> {
    const lineUser = await k.deps.db
      .selectFrom('line_user')
      .select('id')
      .where('line_uid', '=', to.userId)
      .executeTakeFirstOrThrow()
    k.line.failNext({
      method: 'POST',
      path: REPLY,
      timeoutMs: 1_500,
      status: 400,
      body: { message: 'Invalid reply token' },
    })
    const [row] = await insertDeliveries(k.deps.db, [
      {
        dedupeKey: `erase-test:${randomUUID()}`,
        kind: 'answer',
        category: 'transactional',
        customerId: to.customerId,
        content: { messages: [{ type: 'text', text: 'ご連絡ありがとうございます' }] },
        reply: {
          token: randomUUID().replaceAll('-', ''),
          expiresAt: new Date(Date.now() + 60_000),
          lineUserId: lineUser.id,
        },
      },
    ])
    return row!.id
  }

  it('stores and sends no push for them, and keeps none after a LINE 403', async () => {
    const name = `Erased${randomUUID().slice(0, 8)}`
    const [asked, erased] = [await newFriend(k), await newFriend(k, name)] as [Friend, Friend]
    await playingWorkers(k, async (send) => {
      const [id] = (await scheduleDeliveries(k.deps, [
        campaign(erased, { category: 'transactional' }),
      ])) as [string]
      const answerId = await heldAnswer(asked)
      k.line.failNext({
        method: 'POST',
        path: PUSH,
        match: (r) => (r.body as { to?: string }).to === erased.userId,
        status: 403,
        body: { message: 'Forbidden' },
      })
      const before = k.line.requestsTo('POST', REPLY).length
      const job = send([answerId, id]).catch((e: unknown) => e)
      await eventually(() => expect(k.line.requestsTo('POST', REPLY)[before]).toBeDefined())
      // The job holds both rows and waits for the reply: the customer is erased meanwhile.
      const erasure = await eraseCustomer(k.deps.db, erased.customerId)
      // The menu's unlink at LINE after the commit, as the command does: the last of the id.
      await unlinkErasedMenus(k.deps, erasure.menuUnlinks)
      await job

      const [row] = await deliveryRows(k, [id])
      expect(row!.push_body).toBeNull()
      expect(pushesTo(k, erased.userId)).toHaveLength(0)
      expect(await findAnywhere(k.deps.db, [erased.userId, name])).toEqual([])
      expect(pushesTo(k, asked.userId).map((p) => p.status)).toEqual([200])
    })
  })
})
