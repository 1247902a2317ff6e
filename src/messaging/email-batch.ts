import pLimit from 'p-limit'
import type { Mailer } from '../email/mailer.ts'
import type { Deps } from '../platform/deps.ts'
import type { ClaimOutcomes } from './claim-outcomes.ts'
import type { DeliveryOutcome } from './delivery-outcomes.repo.ts'
import { markEmailTrying } from './email-claim.repo.ts'
import { type EmailItem, sendEmail } from './email-send.ts'
import type { SendWindow } from './send-window.ts'

/**
 * Emails on their way at once per process: a few more than the SMTP pool's 5 connections, so the
 * next message is ready when one is free. Its send window is checked when it takes a slot; its
 * own time limit counts the wait for a connection too.
 */
const emailSlots = pLimit(8)

/**
 * Sends a claim's emails while its send window is open (the rest are `notStarted`), each
 * outcome recorded as soon as it is decided (ClaimOutcomes.settle). Each row is marked as it
 * takes its slot, in a statement of its own just before its email goes (markEmailTrying): one
 * whose outcome is then never recorded is failed as of unknown outcome by the claim that takes it
 * over, not sent again, while those a stopped worker had not started are not marked and are sent
 * by that claim. Rows found claimed again before are `takenOver` (together, once the others
 * went): not sent, no outcome. One that cannot be marked (Postgres away) is not sent: it waits for
 * the job's retry.
 */
export async function sendEmails(
  deps: Pick<Deps, 'db' | 'env' | 'log'>,
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
        let marked: boolean
        try {
          marked = await markEmailTrying(deps.db, item.id, recorder.claim)
        } catch (err) {
          deps.log.warn({ err, deliveryId: item.id }, 'could not mark the email')
          return { id: item.id, status: 'pending', error: 'could not mark the email' }
        }
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

/** The outcome, once written (ClaimOutcomes.settle). */
async function settled(
  recorder: Pick<ClaimOutcomes, 'settle'>,
  outcome: DeliveryOutcome,
): Promise<DeliveryOutcome> {
  await recorder.settle(outcome)
  return outcome
}
