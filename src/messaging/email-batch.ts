import pLimit from 'p-limit'
import { loadConsent } from '../consent/consent.service.ts'
import type { Mailer } from '../email/mailer.ts'
import type { Deps } from '../platform/deps.ts'
import type { ClaimOutcomes } from './claim-outcomes.ts'
import { type DeliveryOutcome, erasedOutcome } from './delivery-outcomes.repo.ts'
import { markEmailTrying } from './email-claim.repo.ts'
import { type EmailItem, sendEmail } from './email-send.ts'
import { quietHoursEnd } from './send-rules.ts'
import type { SendWindow } from './send-window.ts'

/**
 * Emails on their way at once per process: a few more than the SMTP pool's 5 connections, so the
 * next message is ready when one is free. Its send window is checked when it takes a slot; its
 * own time limit counts the wait for a connection too.
 */
const emailSlots = pLimit(8)

/**
 * Sends a claim's emails while its send window is open (the rest are `notStarted`), each
 * outcome recorded as soon as it is decided (ClaimOutcomes.settle). As each takes its slot,
 * quiet hours and the person's consent are checked again (stoppedSince): the claim decided them
 * up to half the lease before. Each row is marked as it
 * takes its slot, in a statement of its own just before its email goes (markEmailTrying): one
 * whose outcome is then never recorded is failed as of unknown outcome by the claim that takes it
 * over, not sent again, while those a stopped worker had not started are not marked and are sent
 * by that claim. Rows found claimed again before are `takenOver` (together, once the others
 * went): not sent, no outcome. One that cannot be marked (Postgres away) is not sent: it waits for
 * the job's retry; nor is one whose customer was erased since the claim (skipped).
 */
export async function sendEmails(
  deps: Pick<Deps, 'db' | 'env' | 'log' | 'clock'>,
  mailer: Mailer,
  recorder: Pick<ClaimOutcomes, 'settle' | 'claim' | 'takenOver'>,
  window: SendWindow,
  items: EmailItem[],
): Promise<DeliveryOutcome[]> {
  const takenOver: string[] = []
  const outcomes = await Promise.all(
    items.map((item) =>
      emailSlots(async (): Promise<DeliveryOutcome | null> => {
        if (!window.isOpen()) {
          return settled(recorder, { id: item.id, status: 'pending', notStarted: true })
        }
        let stopped: DeliveryOutcome | null
        try {
          stopped = await stoppedSince(deps, item)
        } catch (err) {
          deps.log.warn({ err, deliveryId: item.id }, 'could not check the consent for the email')
          return { id: item.id, status: 'pending', error: 'could not check the consent' }
        }
        if (stopped) return settled(recorder, stopped)
        let marked: Awaited<ReturnType<typeof markEmailTrying>>
        try {
          marked = await markEmailTrying(deps.db, item.id, recorder.claim)
        } catch (err) {
          deps.log.warn({ err, deliveryId: item.id }, 'could not mark the email')
          return { id: item.id, status: 'pending', error: 'could not mark the email' }
        }
        if (marked === 'erased') return settled(recorder, erasedOutcome(item.id))
        if (!marked) {
          takenOver.push(item.id)
          return null
        }
        return settled(recorder, await sendEmail(deps, mailer, item, window.emailMs))
      }),
    ),
  ).finally(() => recorder.takenOver(takenOver))
  return outcomes.filter((o) => o !== null)
}

/**
 * What became of the email since its claim decided it may go (up to half the lease before it
 * takes its slot): a marketing email whose slot comes inside quiet hours waits for their end,
 * and one whose person withdrew consent for its category by email (an unsubscribe) is skipped.
 * Null: it goes.
 */
async function stoppedSince(
  deps: Pick<Deps, 'db' | 'env' | 'clock'>,
  item: EmailItem,
): Promise<DeliveryOutcome | null> {
  if (item.category === 'marketing') {
    const { QUIET_HOURS, TZ_STORE } = deps.env
    const sendAfter = quietHoursEnd(deps.clock.now(), QUIET_HOURS, TZ_STORE)
    if (sendAfter) return { id: item.id, status: 'pending', sendAfter }
  }
  const consent = await loadConsent(deps.db, item.customerId)
  if (consent[item.category].email) return null
  return { id: item.id, status: 'skipped', reason: `no_${item.category}_consent_email` }
}

/** The outcome, once written (ClaimOutcomes.settle). */
async function settled(
  recorder: Pick<ClaimOutcomes, 'settle'>,
  outcome: DeliveryOutcome,
): Promise<DeliveryOutcome> {
  await recorder.settle(outcome)
  return outcome
}
