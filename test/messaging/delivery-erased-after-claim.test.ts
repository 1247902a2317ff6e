import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eraseCustomer } from '../../src/customers/erase.service.ts'
import { createMailer } from '../../src/email/mailer.ts'
import { insertDeliveries } from '../../src/messaging/delivery.repo.ts'
import { unlinkErasedMenus } from '../../src/richmenu/erased-unlink.service.ts'
import { findAnywhere } from '../support/find-anywhere.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { backendPid, heldTransaction, lockWaitFor } from '../support/locks.ts'
import { type Smtp, startSmtp } from '../support/smtp.ts'
import { eventually } from '../support/wait.ts'
import {
  deliveryRow,
  emailCustomer,
  emailSettings,
  type Friend,
  newFriend,
  notices,
  SAMPLE,
  sendJob,
  toolsRendering,
} from './support.ts'

const REPLY = '/v2/bot/message/reply'

/**
 * A customer erased after a send job claimed their delivery and before its email or reply went
 * (a row in `sending` is not skipped by the erasure): the job must not send it (it goes to their
 * address, or answers their message, with their name), nor keep it in a sandbox run's mailbox.
 * The erasure comes while the job renders the delivery (its template's loader, the test's own,
 * runs it), or is under way then and commits once the job is about to send.
 */
describe('a claimed email or reply whose customer is erased before it goes', () => {
  let smtp: Smtp
  let k: TestKizuna
  beforeAll(async () => {
    smtp = await startSmtp()
    k = await startTestKizuna({ ...emailSettings(smtp.url), MARKETING_WEEKLY_CAP: '0' })
  })
  afterAll(async () => {
    await k?.stopAll()
    await smtp?.close()
  })

  /** Erases the customer as the command does (the menu's unlink at LINE after the commit). */
  const erase = async (customerId: string) => {
    const erasure = await eraseCustomer(k.deps.db, customerId)
    await unlinkErasedMenus(k.deps, erasure.menuUnlinks)
  }

  /** An email notice to a customer without LINE, in their name. */
  async function emailNotice() {
    const customer = await emailCustomer(k.deps)
    const [id] = (await notices(k.deps, [customer.id])) as [string]
    return { id, address: customer.email }
  }

  const sandboxMailTo = (address: string) =>
    k.deps.db
      .selectFrom('sandbox_mail')
      .select('id')
      .where(sql<string>`lower(to_address)`, '=', address.toLowerCase())
      .execute()

  it('sends no email, and the row is skipped as erased', async () => {
    const { id, address } = await emailNotice()
    await sendJob(k, toolsRendering(k, erase))([id])

    expect(smtp.mailsTo(address)).toEqual([])
    const row = await deliveryRow(k, id)
    expect([row.status, row.skip_reason, row.email_trying_at]).toEqual(['skipped', 'erased', null])
  })

  it('keeps no mail in a sandbox run', async () => {
    const { id, address } = await emailNotice()
    const sandbox = createMailer({ ...k.deps.env, SMTP_URL: undefined }, k.deps.db, {
      sandbox: true,
    })
    await sendJob(k, toolsRendering(k, erase, sandbox))([id])

    expect(await sandboxMailTo(address)).toEqual([])
    expect((await deliveryRow(k, id)).status).toBe('skipped')
  })

  it('sends no email when the erasure is under way and commits as the email is about to go', async () => {
    const { id, address } = await emailNotice()
    // The erasure stops on the last table it writes before the deliveries (the sandbox mail of
    // the person's address), holding the customer, until the email is about to go.
    let blockerPid = 0
    const blocker = await heldTransaction(k.deps.db, async (trx) => {
      blockerPid = await backendPid(trx)
      await sql`lock table sandbox_mail in share mode`.execute(trx)
    })
    let erasure: Promise<unknown> = Promise.resolve()
    const job = sendJob(
      k,
      toolsRendering(k, async (customerId) => {
        erasure = eraseCustomer(k.deps.db, customerId)
        await lockWaitFor(k.deps.db, blockerPid)
      }),
    )([id])
    // The job marks the email as about to go, or waits for the customer the erasure holds (the
    // mark's key-share lock on it: pg_stat_activity keeps only the statement's first 1 KiB).
    await eventually(async () => {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock'
          and query like '%for key share of c%'`.execute(k.deps.db)
      const row = await deliveryRow(k, id)
      expect(rows[0]!.n > 0 || row.email_trying_at !== null).toBe(true)
    })
    blocker.commit()
    await blocker.committed
    await Promise.all([job, erasure])

    expect(smtp.mailsTo(address)).toEqual([])
    expect((await deliveryRow(k, id)).skip_reason).toBe('erased')
  })

  it('sends no reply to their message', async () => {
    const name = `Erased${randomUUID().slice(0, 8)}`
    const friend: Friend = await newFriend(k, name)
    const lineUser = await k.deps.db
      .selectFrom('line_user')
      .select('id')
      .where('line_uid', '=', friend.userId)
      .executeTakeFirstOrThrow()
    const token = randomUUID().replaceAll('-', '')
    const [row] = await insertDeliveries(k.deps.db, [
      {
        dedupeKey: `erase-test:${randomUUID()}`,
        kind: 'answer',
        category: 'transactional',
        customerId: friend.customerId,
        content: { templateId: 'campaign-sample', vars: { ...SAMPLE, displayName: name } },
        reply: { token, expiresAt: new Date(Date.now() + 60_000), lineUserId: lineUser.id },
      },
    ])
    await sendJob(k, toolsRendering(k, erase))([row!.id])

    const replies = k.line
      .requestsTo('POST', REPLY)
      .filter((r) => (r.body as { replyToken?: string }).replyToken === token)
    expect(replies).toEqual([])
    const sent = await deliveryRow(k, row!.id)
    expect([sent.status, sent.skip_reason, sent.reply_state]).toEqual(['skipped', 'erased', null])
    expect(await findAnywhere(k.deps.db, [friend.userId, name])).toEqual([])
  })
})
