import type { Deps } from '../platform/deps.ts'
import type { Claim } from './delivery-claim.repo.ts'
import type { DeliveryOutcome } from './delivery-outcomes.repo.ts'
import { countRateLimitTries } from './rate-limit.repo.ts'

/** The wait after a delivery's first rate-limit 429 (LINE-API.md §2.5), doubled after each one. */
export const RATE_LIMIT_FIRST_WAIT_MS = 2_000
/** The longest wait between two tries of a delivery LINE rate-limited (before jitter). */
export const RATE_LIMIT_MAX_WAIT_MS = 5 * 60_000
/**
 * The longest Retry-After honoured: LINE documents none (LINE-API.md §2.5), and a stray huge
 * value must not hold a delivery for days (its retry key lasts 24 hours).
 */
export const RETRY_AFTER_MAX_MS = 60 * 60_000

/**
 * How long the deliveries of a LINE call wait after its `tries`-th rate-limit 429: exponential
 * backoff from RATE_LIMIT_FIRST_WAIT_MS, capped, jittered down by up to half so that calls
 * refused together do not come back together; and never less than LINE's Retry-After when it
 * sent one (capped), which the jitter then only lengthens. A Retry-After of 0 or a past date
 * does not make the next try immediate.
 */
export function rateLimitWaitMs(
  tries: number,
  retryAfterMs: number | null,
  random: () => number = Math.random,
): number {
  const full = Math.min(
    RATE_LIMIT_FIRST_WAIT_MS * 2 ** Math.max(tries - 1, 0),
    RATE_LIMIT_MAX_WAIT_MS,
  )
  const after = Math.min(Math.max(retryAfterMs ?? 0, 0), RETRY_AFTER_MAX_MS)
  return Math.round(Math.max(after, full / 2) + (random() * full) / 2)
}

/** How a delivery parked after LINE_RATE_LIMIT_TRIES rate-limit 429s is failed. */
export const RATE_LIMIT_PARKED = 'rate limited:'

/**
 * The outcomes with each rate-limit 429 (LINE-API.md §2.5) counted on its row and decided per
 * LINE call (a multicast chunk's deliveries were refused by one call and go again in one): its
 * deliveries wait (rateLimitWaitMs, one wait for the call, from the most tries among them) in a
 * delayed job, while the rest of the queue goes on, or, each at its own LINE_RATE_LIMIT_TRIES,
 * are parked as failed (RATE_LIMIT_PARKED) for `kizuna deliveries retry` (a requeued row in a
 * chunk with rows near the limit is not parked with them). If the count cannot be written, the
 * rate-limited deliveries wait for the job's retry and the other outcomes stand. So a person LINE keeps refusing (a
 * push 429 for "a large number of messages to the same user" does not clear in a second) costs a
 * few calls, not the queue. Rows the claim no longer holds are left as they are (recordOutcomes
 * does not write them).
 */
export async function backOffRateLimited(
  deps: Pick<Deps, 'db' | 'env' | 'clock' | 'log'>,
  claim: Claim,
  outcomes: DeliveryOutcome[],
): Promise<DeliveryOutcome[]> {
  const callOf = (o: DeliveryOutcome) =>
    o.status === 'pending' && o.rateLimited ? (o.rateLimited.call ?? o.id) : null
  const limited = outcomes.flatMap((o) => (callOf(o) === null ? [] : [o.id]))
  if (limited.length === 0) return outcomes
  const park = deps.env.LINE_RATE_LIMIT_TRIES
  let tries: Map<string, number>
  try {
    tries = await countRateLimitTries(deps.db, limited, claim)
  } catch (err) {
    // The others' outcomes must still be recorded (sent ones would stay `sending` for the
    // lease): these wait for the job's retry, as after a 5xx.
    deps.log.warn({ err, deliveries: limited.length }, 'could not count the rate-limit 429s')
    return outcomes.map((o) => {
      if (callOf(o) === null || o.status !== 'pending') return o
      const { rateLimited: _, ...plain } = o
      return plain
    })
  }
  // The wait of a call's deliveries going again, from the most tries among them: a row that
  // reached the limit is parked, the others are not, whatever its count.
  const triesOfCall = new Map<string, number>()
  for (const o of outcomes) {
    const call = callOf(o)
    const n = tries.get(o.id)
    if (call !== null && n !== undefined && n < park) {
      triesOfCall.set(call, Math.max(n, triesOfCall.get(call) ?? 0))
    }
  }
  const now = deps.clock.now().getTime()
  const waits = new Map<string, Date>()
  let parked = 0
  const decided = outcomes.map((o): DeliveryOutcome => {
    const call = callOf(o)
    if (o.status !== 'pending' || !o.rateLimited || call === null || !tries.has(o.id)) return o
    const n = tries.get(o.id)!
    if (n >= park) {
      parked += 1
      const error =
        `${RATE_LIMIT_PARKED} LINE answered 429 to ${n} tries (${o.error ?? 'no message'}); ` +
        'send it again with `kizuna deliveries retry --status failed`'
      // LINE took nothing under a new request's key (see keyUnused): requeued, a new send.
      return {
        id: o.id,
        status: 'failed',
        error,
        ...(o.keyUnused ? { keyUnused: o.keyUnused } : {}),
      }
    }
    let sendAfter = waits.get(call)
    if (!sendAfter) {
      const most = triesOfCall.get(call) ?? n
      sendAfter = new Date(now + rateLimitWaitMs(most, o.rateLimited.retryAfterMs))
      waits.set(call, sendAfter)
    }
    return { ...o, sendAfter }
  })
  if (parked > 0) {
    deps.log.warn({ deliveries: parked, tries: park }, 'deliveries parked: LINE kept answering 429')
  }
  return decided
}
