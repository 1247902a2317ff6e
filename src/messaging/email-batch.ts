import pLimit from 'p-limit'
import type { Mailer } from '../email/mailer.ts'
import type { Deps } from '../platform/deps.ts'
import type { ClaimOutcomes } from './claim-outcomes.ts'
import type { DeliveryOutcome } from './delivery-outcomes.repo.ts'
import { markEmailsTrying } from './email-claim.repo.ts'
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
 * outcome recorded as soon as it is decided (ClaimOutcomes.settle). The rows are marked first,
 * in one statement (markEmailsTrying): one whose outcome is then never recorded is failed as of
 * unknown outcome by the claim that takes it over, not sent again. Rows found claimed again
 * before are `takenOver`: not sent, no outcome. If they cannot be marked, none is sent: all wait
 * for the job's retry.
 */
export async function sendEmails(
  deps: Pick<Deps, 'db' | 'env' | 'log'>,
  mailer: Mailer,
  recorder: Pick<ClaimOutcomes, 'settle' | 'claim' | 'takenOver'>,
  window: SendWindow,
  items: EmailItem[],
): Promise<DeliveryOutcome[]> {
  if (items.length === 0) return []
  let marked: Set<string>
  try {
    marked = await markEmailsTrying(
      deps.db,
      items.map((i) => i.id),
      recorder.claim,
    )
  } catch (err) {
    deps.log.warn({ err }, 'could not mark the emails')
    return items.map((i) => ({ id: i.id, status: 'pending', error: 'could not mark the email' }))
  }
  recorder.takenOver(items.flatMap((i) => (marked.has(i.id) ? [] : [i.id])))
  return Promise.all(
    items
      .filter((i) => marked.has(i.id))
      .map((item) =>
        emailSlots(async (): Promise<DeliveryOutcome> => {
          const outcome: DeliveryOutcome = window.isOpen()
            ? await sendEmail(deps, mailer, item, window.emailMs)
            : { id: item.id, status: 'pending', notStarted: true }
          await recorder.settle(outcome)
          return outcome
        }),
      ),
  )
}
