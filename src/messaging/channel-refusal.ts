import type { Deps } from '../platform/deps.ts'
import type { LineFailure } from '../platform/line.ts'
import type { Claim } from './delivery-claim.repo.ts'
import type { DeliveryOutcome } from './delivery-outcomes.repo.ts'
import { rateLimitWaitMs } from './rate-limit-backoff.ts'

type ChannelRefused = Extract<LineFailure, { kind: 'channel_refused' }>

/** What to check, by LINE's status: the token (401) or the channel's plan or account (403). */
const CHECK: Record<ChannelRefused['status'], string> = {
  401:
    "LINE refused the channel access token: set LINE_CHANNEL_ACCESS_TOKEN to the channel's " +
    'current one (reissued in the LINE Developers Console?) and restart',
  403:
    "LINE does not allow this for the channel's plan or account: check the LINE Official " +
    'Account and its plan',
}

/** A delivery's `last_error` after LINE refused the channel: LINE's answer and what to check. */
export const channelRefusalError = (f: ChannelRefused): string =>
  `LINE ${f.status}: ${f.message} (${CHECK[f.status]}; retried meanwhile)`

/** How often one LINE client's refusals are logged again while they last. */
const CHANNEL_REFUSAL_LOG_EVERY_MS = 5 * 60_000

/** When each LINE client (each process has one, with its token) last logged a refusal. */
const loggedAt = new WeakMap<object, number>()

/**
 * The outcomes with each delivery LINE refused for the channel (`channelRefused`: a 401 or 403)
 * backed off: the job's refused deliveries wait together in a delayed job (rateLimitWaitMs, from
 * the most `attempts` among them: 1–2 s at a first try, doubling up to 5 min), not a retry of the
 * job, whose tries would run out (and fail them) long before an operator fixes the token and
 * restarts. They are never failed for it: LINE took nothing, and every delivery would be refused
 * alike. A row whose job is lost is pending, due at its `send_after`: the sweeper queues it. Logged
 * as an error once, then at most every CHANNEL_REFUSAL_LOG_EVERY_MS while it lasts: not once per
 * delivery or per job (a campaign's hundreds of jobs would each say it).
 */
export function holdChannelRefused(
  deps: Pick<Deps, 'line' | 'log' | 'clock'>,
  claim: Claim,
  outcomes: DeliveryOutcome[],
): DeliveryOutcome[] {
  let refused = 0
  let tries = 0
  let status: ChannelRefused['status'] = 401
  for (const o of outcomes) {
    if (o.status !== 'pending' || !o.channelRefused) continue
    refused += 1
    tries = Math.max(tries, claim.get(o.id) ?? 0)
    status = o.channelRefused
  }
  if (refused === 0) return outcomes
  const now = deps.clock.now().getTime()
  const sendAfter = new Date(now + rateLimitWaitMs(tries, null))
  const last = loggedAt.get(deps.line)
  if (last === undefined || now - last >= CHANNEL_REFUSAL_LOG_EVERY_MS) {
    loggedAt.set(deps.line, now)
    deps.log.error(
      { status, deliveries: refused },
      `LINE deliveries not sent: ${CHECK[status]}; they wait and are retried`,
    )
  }
  return outcomes.map((o) => (o.status === 'pending' && o.channelRefused ? { ...o, sendAfter } : o))
}
