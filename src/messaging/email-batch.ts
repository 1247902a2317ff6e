import pLimit from 'p-limit'
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
 * outcome recorded as soon as it is decided (ClaimOutcomes.settle). The claim decided each one's
 * channel, quiet hours and consent up to half the lease before its slot comes: as it takes its
 * slot, quiet hours are checked again (quietSince), and it is marked (markEmailTrying), in a
 * statement of its own just before its email goes, only if its customer (the one the row has as
 * of the mark: a merge may have moved it) was not erased, still cannot be reached on LINE and allows its
 * category by email, read in that statement. One whose outcome is then never recorded is failed
 * as of unknown outcome by the claim that takes it over, not sent again, while those a stopped
 * worker had not started are not marked and are sent by that claim. Rows found claimed again
 * before are `takenOver` (together, once the others went): not sent, no outcome. One that cannot
 * be marked (Postgres away) is not sent: it waits for the job's retry; nor is one the mark stopped
 * (stoppedOutcome).
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
        const quiet = quietSince(deps, item)
        if (quiet) return settled(recorder, quiet)
        let marked: Awaited<ReturnType<typeof markEmailTrying>>
        try {
          marked = await markEmailTrying(deps.db, item.id, recorder.claim)
        } catch (err) {
          deps.log.warn({ err, deliveryId: item.id }, 'could not mark the email')
          return { id: item.id, status: 'pending', error: 'could not mark the email' }
        }
        if (marked === null) {
          takenOver.push(item.id)
          return null
        }
        if (marked !== 'marked') return settled(recorder, stoppedOutcome(item, marked, deps))
        return settled(recorder, await sendEmail(deps, mailer, item, window.emailMs))
      }),
    ),
  ).finally(() => recorder.takenOver(takenOver))
  return outcomes.filter((o) => o !== null)
}

/**
 * A marketing email whose slot comes inside quiet hours (its claim decided them up to half the
 * lease before) waits for their end. Null: it may go.
 */
function quietSince(deps: Pick<Deps, 'env' | 'clock'>, item: EmailItem): DeliveryOutcome | null {
  if (item.category !== 'marketing') return null
  const { QUIET_HOURS, TZ_STORE } = deps.env
  const sendAfter = quietHoursEnd(deps.clock.now(), QUIET_HOURS, TZ_STORE)
  return sendAfter ? { id: item.id, status: 'pending', sendAfter } : null
}

/**
 * The outcome of an email its mark stopped (markEmailTrying): its customer was erased (skipped),
 * withdrew consent for its category by email (skipped), or follows the account now: it waits for
 * a claim of its own, due now, which sends it on LINE if they allow the category there (the
 * channel is decided by the claim, chooseChannel).
 */
function stoppedOutcome(
  item: EmailItem,
  why: 'erased' | 'line_friend' | 'no_consent',
  deps: Pick<Deps, 'clock'>,
): DeliveryOutcome {
  if (why === 'erased') return erasedOutcome(item.id)
  if (why === 'no_consent') {
    return { id: item.id, status: 'skipped', reason: `no_${item.category}_consent_email` }
  }
  return { id: item.id, status: 'pending', sendAfter: deps.clock.now() }
}

/** The outcome, once written (ClaimOutcomes.settle). */
async function settled(
  recorder: Pick<ClaimOutcomes, 'settle'>,
  outcome: DeliveryOutcome,
): Promise<DeliveryOutcome> {
  await recorder.settle(outcome)
  return outcome
}
