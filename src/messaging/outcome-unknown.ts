import { sql } from 'kysely'

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
