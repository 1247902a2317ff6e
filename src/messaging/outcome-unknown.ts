import { sql } from 'kysely'
import type { ClaimedDelivery } from './delivery-claim.repo.ts'
import type { DeliveryOutcome } from './delivery-outcomes.repo.ts'

/**
 * How a reply that may have arrived is failed (a timeout or 5xx, or a worker that stopped before
 * recording the outcome; replies have no retry key): never sent again, not even by
 * `kizuna deliveries retry`.
 */
export const REPLY_OUTCOME_UNKNOWN = 'reply outcome unknown'

/**
 * How an email that may have arrived is failed: its whole message went to the SMTP server and no
 * answer came (a timeout, a dropped connection, the email's deadline). A mail system does not
 * drop a second copy for its Message-ID, so, as a reply, it is never sent again, not even by
 * `kizuna deliveries retry`.
 */
export const EMAIL_OUTCOME_UNKNOWN = 'email outcome unknown'

/**
 * The delivery `d` failed as a reply or email whose outcome is unknown: it may have arrived (and
 * is never sent again).
 */
export const outcomeUnknown = sql<boolean>`(d.status = 'failed'
  and (coalesce(d.last_error, '') like ${`${REPLY_OUTCOME_UNKNOWN}%`}
    or coalesce(d.last_error, '') like ${`${EMAIL_OUTCOME_UNKNOWN}%`}))`

/**
 * Rows an earlier claim left in `sending` during a send with no retry key: a reply marked
 * `trying` (line-reply.ts) or an email marked before it went (markEmailTrying), whose outcome
 * was never recorded (a worker stopped, Postgres was away). Either may have arrived: each is
 * failed as of unknown outcome, never sent again, as after a reply or email that got no answer.
 * Returns the other rows.
 */
export function settleStoppedSends(
  rows: ClaimedDelivery[],
  outcomes: DeliveryOutcome[],
): ClaimedDelivery[] {
  return rows.filter((row) => {
    const error =
      row.reply_state === 'trying'
        ? `${REPLY_OUTCOME_UNKNOWN}: the worker stopped during the reply`
        : row.email_in_doubt
          ? `${EMAIL_OUTCOME_UNKNOWN}: the worker stopped, or lost Postgres, before recording the send`
          : null
    if (error === null) return true
    outcomes.push({ id: row.id, status: 'failed', error })
    return false
  })
}
