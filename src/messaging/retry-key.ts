import { sql } from 'kysely'

/**
 * LINE honours a retry key for 24 hours from its first request (LINE-API.md §2.4). A delivery
 * whose request may have reached LINE goes again under its key only while the key is younger than
 * this (checked by `kizuna deliveries retry` and again when it is about to go): the margin covers
 * the wait for the sweeper, a queue backlog and the call itself.
 */
export const RETRY_KEY_SAFE_HOURS = 23

/**
 * How a delivery is failed instead of going to LINE again under a retry key LINE may have
 * accepted more than RETRY_KEY_SAFE_HOURS ago: LINE takes a key older than 24 hours as a new
 * request (LINE-API.md §2.4), so whatever held it up (retries, quiet hours, the weekly cap,
 * `kizuna deliveries retry`), the person could get the message twice.
 */
export const KEY_EXPIRED =
  `retry key expired: the first request may have reached LINE over ${RETRY_KEY_SAFE_HOURS} ` +
  'hours ago; not sent again, to never send twice'

/**
 * How a delivery LINE refused is failed (`LINE 400: message details`, from line-send.ts): LINE
 * validated the request and took nothing under its key (a key it had accepted gets a 409), and
 * the key's first call is forgotten with the outcome (`keyUnused`). Other LINE answers (401,
 * 403, 404) say nothing about an earlier request under the key.
 */
export const LINE_REFUSED = 'LINE 400:'

/**
 * A request under the delivery's retry key (`d`: its own, or its chunk's) may have reached LINE:
 * one went out (`line_first_call_at`), and LINE has not refused it since (a 400, or a 429 to the
 * first request under the key, forgets it as its outcome is recorded). Not read from
 * `last_error`: a refusal's text outlives a requeue, and the next round's request, taken by
 * LINE, would look refused.
 */
export const keyMayBeTaken = sql<boolean>`(d.line_first_call_at is not null)`
/** The key's first request went out more than RETRY_KEY_SAFE_HOURS ago (the database's clock). */
export const keyPastSafeAge = sql<boolean>`(d.line_first_call_at
  < now() - make_interval(hours => ${RETRY_KEY_SAFE_HOURS}))`
