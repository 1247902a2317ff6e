import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mergeCustomers } from '../../src/customers/merge.service.ts'
import { insertDeliveries } from '../../src/messaging/delivery.repo.ts'
import type { SendTools } from '../../src/messaging/delivery-send.service.ts'
import { startTestKizuna, type TestKizuna } from '../support/harness.ts'
import { type Smtp, startSmtp } from '../support/smtp.ts'
import { eventually } from '../support/wait.ts'
import {
  blockAccount,
  campaign,
  campaignInbox,
  deliveryRow,
  emailCustomer,
  emailSettings,
  grantMarketingEmail,
  newFriend,
  notices,
  revokeTransactionalEmail,
  SAMPLE,
  sendJob,
  toolsRendering,
  unblockAccount,
} from './support.ts'

/**
 * A send job decides each delivery's channel and consent when it claims it; its email goes up to
 * half the lease later. What changed for the person meanwhile is read again, for the customer
 * the delivery belongs to now, just before the email goes: a merge moved it to the survivor (and
 * removed the merged customer's consent rows), or the person added the account back on LINE.
 * The change comes while the job renders the delivery (its template's loader, the test's own).
 */
describe('an email whose person changed between its claim and its send', () => {
  let smtp: Smtp
  let k: TestKizuna
  beforeAll(async () => {
    smtp = await startSmtp()
    k = await startTestKizuna({ ...emailSettings(smtp.url), MARKETING_WEEKLY_CAP: '0' })
  })
  /** The jobs' mailers: an SMTP connection left open would hold the server's close up. */
  const mailers: SendTools['mailer'][] = []
  afterAll(async () => {
    for (const mailer of mailers) mailer.close()
    await k?.stopAll()
    await smtp?.close()
  })

  /** What the job sends with, `duringRender` run as it renders the delivery's template. */
  function toolsWith(duringRender: (customerId: string) => Promise<void>): SendTools {
    const tools = toolsRendering(k, duringRender)
    mailers.push(tools.mailer)
    return tools
  }

  const merge = async (survivorId: string, mergedId: string) => {
    await k.deps.db
      .transaction()
      .execute((trx) => mergeCustomers(trx, { survivorId, mergedId, reason: 'test' }))
  }

  it('sends no notice once it belongs to a survivor who turned transactional email off', async () => {
    const merged = await emailCustomer(k.deps)
    const survivor = await emailCustomer(k.deps)
    await revokeTransactionalEmail(k.deps, survivor.id)
    const [id] = (await notices(k.deps, [merged.id])) as [string]
    await sendJob(
      k,
      toolsWith(() => merge(survivor.id, merged.id)),
    )([id])

    expect(smtp.mailsTo(merged.email)).toEqual([])
    expect(await deliveryRow(k, id)).toMatchObject({
      customer_id: survivor.id,
      status: 'skipped',
      skip_reason: 'no_transactional_consent_email',
      email_trying_at: null,
    })
  })

  it('sends no notice when the person unsubscribes after the merge', async () => {
    const merged = await emailCustomer(k.deps)
    const survivor = await emailCustomer(k.deps)
    const [id] = (await notices(k.deps, [merged.id])) as [string]
    await sendJob(
      k,
      toolsWith(async () => {
        await merge(survivor.id, merged.id)
        // An earlier email's link names the merged customer: it reaches the survivor.
        await revokeTransactionalEmail(k.deps, merged.id)
      }),
    )([id])

    expect(smtp.mailsTo(merged.email)).toEqual([])
    expect(await deliveryRow(k, id)).toMatchObject({
      status: 'skipped',
      skip_reason: 'no_transactional_consent_email',
    })
  })

  it('sends a marketing email both customers agreed to', async () => {
    const merged = await emailCustomer(k.deps, { marketingEmail: true })
    const survivor = await emailCustomer(k.deps, { marketingEmail: true })
    const [row] = await insertDeliveries(k.deps.db, [
      {
        dedupeKey: `campaign-test:${randomUUID()}`,
        kind: 'campaign',
        category: 'marketing',
        customerId: merged.id,
        content: { templateId: 'campaign-sample', vars: SAMPLE },
      },
    ])
    await sendJob(
      k,
      toolsWith(() => merge(survivor.id, merged.id)),
    )([row!.id])

    expect(smtp.mailsTo(merged.email)).toHaveLength(1)
    expect(await deliveryRow(k, row!.id)).toMatchObject({
      customer_id: survivor.id,
      status: 'sent',
      channel: 'email',
    })
  })

  it('sends no email to someone who added the account back: the delivery goes on LINE', async () => {
    const f = await newFriend(k)
    const address = `u-${randomUUID()}@example.com`
    await k.deps.db
      .updateTable('customer')
      .set({ email: address })
      .where('id', '=', f.customerId)
      .execute()
    await grantMarketingEmail(k.deps, f.customerId)
    await blockAccount(k, f.userId)
    const [row] = await insertDeliveries(k.deps.db, [campaign(f)])
    await sendJob(
      k,
      toolsWith(() => unblockAccount(k, f.userId)),
    )([row!.id])

    expect(smtp.mailsTo(address)).toEqual([])
    // Left for a claim of its own, which finds them on LINE.
    await eventually(async () => {
      expect(await deliveryRow(k, row!.id)).toMatchObject({ status: 'sent', channel: 'line' })
    })
    expect(campaignInbox(k, f.userId)).toHaveLength(1)
    expect(smtp.mailsTo(address)).toEqual([])
  })
})
