import type { Deps } from '../platform/deps.ts'
import type { Claim, DeliveryOutcome } from './delivery.repo.ts'
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
 * How long a delivery waits after its `tries`-th rate-limit 429 (since it was last parked): LINE's Retry-After
 * when it sent one, else exponential backoff from RATE_LIMIT_FIRST_WAIT_MS, capped, and jittered
 * down by up to half so that deliveries refused together do not come back together.
 */
export function rateLimitWaitMs(
  tries: number,
  retryAfterMs: number | null,
  random: () => number = Math.random,
): number {
  if (retryAfterMs !== null) return Math.min(Math.max(retryAfterMs, 0), RETRY_AFTER_MAX_MS)
  const full = Math.min(
    RATE_LIMIT_FIRST_WAIT_MS * 2 ** Math.max(tries - 1, 0),
    RATE_LIMIT_MAX_WAIT_MS,
  )
  return Math.round(full * (0.5 + random() * 0.5))
}

/** How a delivery parked after LINE_RATE_LIMIT_TRIES rate-limit 429s is failed. */
export const RATE_LIMIT_PARKED = 'rate limited:'

/**
 * The outcomes with each rate-limit 429 (LINE-API.md §2.5) counted on its row and decided: the
 * delivery waits (rateLimitWaitMs) in a delayed job of its own, while the rest of the queue goes
 * on, or, at its LINE_RATE_LIMIT_TRIES-th, it is parked as failed (RATE_LIMIT_PARKED) for
 * `kizuna deliveries retry`. So a person LINE keeps refusing (a push 429 for "a large number of
 * messages to the same user" does not clear in a second) costs a few calls, not the queue.
 * Rows the claim no longer holds are left as they are (recordOutcomes does not write them).
 */
export async function backOffRateLimited(
  deps: Pick<Deps, 'db' | 'env' | 'clock' | 'log'>,
  claim: Claim,
  outcomes: DeliveryOutcome[],
): Promise<DeliveryOutcome[]> {
  const limited = outcomes.flatMap((o) => (o.status === 'pending' && o.rateLimited ? [o.id] : []))
  if (limited.length === 0) return outcomes
  const park = deps.env.LINE_RATE_LIMIT_TRIES
  const tries = await countRateLimitTries(deps.db, limited, claim, park)
  const now = deps.clock.now().getTime()
  let parked = 0
  const decided = outcomes.map((o): DeliveryOutcome => {
    const n = tries.get(o.id)
    if (o.status !== 'pending' || !o.rateLimited || n === undefined) return o
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
    const sendAfter = new Date(now + rateLimitWaitMs(n, o.rateLimited.retryAfterMs))
    return { ...o, sendAfter }
  })
  if (parked > 0) {
    deps.log.warn({ deliveries: parked, tries: park }, 'deliveries parked: LINE kept answering 429')
  }
  return decided
}
