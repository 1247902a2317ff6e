import type { Job } from 'bullmq'
import type { Deps } from '../platform/deps.ts'
import type { Processor } from '../platform/worker-types.ts'
import { holdChannelRefused } from './channel-refusal.ts'
import { ClaimOutcomes } from './claim-outcomes.ts'
import { enqueueDeliveries } from './delivery.service.ts'
import { type Claim, claimOf } from './delivery-claim.repo.ts'
import { type DeliveryOutcome, failUnfinishedDeliveries } from './delivery-outcomes.repo.ts'
import { type SendTools, sendClaimedDeliveries } from './delivery-send.service.ts'
import { claimDeliveriesWithMarketingCounts } from './marketing-cap.repo.ts'
import { backOffRateLimited } from './rate-limit-backoff.ts'
import { openSendWindow } from './send-window.ts'

/**
 * Sends a group of deliveries: claim the due ones, send, record every outcome in one statement
 * (an email's as soon as it is decided instead, so a worker stopping later in the job does not
 * leave it to be sent again). Every outcome is written only on a row this job's claim still
 * holds: a job that outlived the lease (LINE calls have no time limit) leaves rows another job
 * claimed since to that job, unwritten and not queued again (ClaimOutcomes), and unsent: so are
 * the writes before each LINE call (line-claim.repo.ts). Deferred ones (quiet hours, weekly cap)
 * get a delayed job. Deliveries that failed for now (5xx, timeout, SMTP) are back to `pending`
 * and the job is retried with backoff. Deliveries LINE answered a rate-limit 429 wait in a
 * delayed job (a refused multicast's together), longer after each, and are parked after
 * LINE_RATE_LIMIT_TRIES (backOffRateLimited): the rest of the queue does not wait. Deliveries LINE
 * refused for the channel (401: its token; 403: its plan or account) wait in a delayed job too,
 * backed off, and are never failed for it (holdChannelRefused). Emails the send window left unsent
 * are back to `pending` and queued again at once, in a job of their
 * own: not a failed try. A delivery is never sent twice: pushes carry
 * the row's retry key (LINE answers 409 to a repeat, which counts as sent), only pending rows are
 * claimed (or rows past the lease, which no live job still sends: SendWindow), and an email that
 * may have arrived is not sent again.
 */
export function createSendDeliveries(tools: SendTools): Processor<'messaging.send-deliveries'> {
  return {
    async run(deps, { deliveryIds }, { job }) {
      // Timed from before the claim: the lease starts with it.
      const window = openSendWindow(tools.leaseSeconds)
      const claimed = await claimDeliveriesWithMarketingCounts(
        deps.db,
        deliveryIds,
        deps.env.MARKETING_WEEKLY_CAP,
        tools.leaseSeconds,
      )
      const rows = claimed.rows
      if (rows.length === 0) return
      const recorder = new ClaimOutcomes(deps, claimOf(rows), nextTryWithinMs(job))
      // The rows this try leaves for its retry, once its outcomes are recorded.
      let left: Claim | null = null
      try {
        const sent = await sendClaimedDeliveries(deps, tools, claimed, window, recorder)
        const limited = await backOffRateLimited(deps, recorder.claim, sent.outcomes)
        const decided = holdChannelRefused(deps, recorder.claim, limited)
        const outcomes = await recorder.recordRest(decided)
        countOutcomes(deps, outcomes)
        const retry = outcomes.flatMap((o) =>
          o.status === 'pending' && !o.sendAfter && !o.notStarted ? [o.id] : [],
        )
        left = new Map(retry.map((id) => [id, recorder.claim.get(id)!]))
        const deferred = outcomes.flatMap((o) =>
          o.status === 'pending' && o.sendAfter
            ? [{ id: o.id, sendAfter: o.sendAfter, attempts: recorder.claim.get(o.id) }]
            : [],
        )
        await enqueueDeliveries(deps.queues, deferred, {
          now: deps.clock.now().getTime(),
          deferred: true,
        })
        await queueNotStarted(deps, outcomes)
        if (retry.length > 0) throw new LeftForRetry(retry.length, rows.length)
      } catch (error) {
        // Before its outcomes were recorded: its rows but those handed to a job of their own.
        if (error instanceof Error) leftBy.set(error, left ?? recorder.notHandedBack())
        throw error
      }
    },
    async onFinalFailure(deps, _data, error) {
      // The last try's own rows, still as it claimed them: rows it handed to a job of their own
      // (not started in its send window) are that job's, and rows another job claimed since are
      // that one's. A Redis error after the outcomes were recorded leaves those to the sweeper.
      const left = leftBy.get(error)
      if (!left) {
        // It claimed nothing (the claim failed: a deadlock, a timeout, no connection), so it
        // fails nothing: the job's ids may name rows an earlier try handed to a job of their own
        // (a rate-limited row whose wait has ended), and those its earlier tries left for it are
        // pending, past their retry time, where the sweeper finds them (listStaleDeliveries).
        deps.log.warn({ err: error }, 'send job failed before claiming: deliveries left pending')
        return
      }
      const failed = await failUnfinishedDeliveries(deps.db, left, error.message)
      // Each earlier try counted as `pending`; the end of its tries counts as `failed`.
      if (failed > 0) deps.metrics.deliveries.inc({ channel: 'none', status: 'failed' }, failed)
    },
  }
}

/** The rows a failed try of a send job left for its retry, by the error it ended with. */
const leftBy = new WeakMap<Error, Claim>()

/** A try that left deliveries for the job's next one: which. */
class LeftForRetry extends Error {
  constructor(count: number, of: number) {
    super(`${count} of ${of} deliveries failed for now`)
  }
}

/**
 * Emails the send window closed on (a slow SMTP server, a backlog of emails) go to a job of
 * their own at once, under an id of their own (this job's is still taken while it runs).
 */
async function queueNotStarted(
  deps: Pick<Deps, 'queues' | 'clock' | 'log'>,
  outcomes: DeliveryOutcome[],
): Promise<void> {
  const ids = outcomes.flatMap((o) =>
    o.status === 'pending' && o.notStarted ? [{ id: o.id }] : [],
  )
  if (ids.length === 0) return
  deps.log.warn(
    { deliveries: ids.length },
    'emails not started within half the sending lease (a slow SMTP server?): queued again, unsent',
  )
  await enqueueDeliveries(deps.queues, ids, { cause: `unsent-${deps.clock.now().getTime()}` })
}

/**
 * The longest BullMQ waits before this job's next try (its backoff before jitter, which only
 * shortens it); 0 when no try follows.
 */
function nextTryWithinMs(job: Pick<Job, 'attemptsMade' | 'opts'>): number {
  const { attempts = 1, backoff } = job.opts ?? {}
  const made = job.attemptsMade ?? 0
  if (made + 1 >= attempts || backoff === undefined) return 0
  if (typeof backoff === 'number') return backoff
  const delay = backoff.delay ?? 0
  return backoff.type === 'exponential' ? 2 ** made * delay : delay
}

function countOutcomes(deps: Pick<Deps, 'metrics'>, outcomes: DeliveryOutcome[]): void {
  for (const o of outcomes) {
    const channel = 'channel' in o ? o.channel : 'none'
    const waits = o.status === 'pending' && o.sendAfter
    const status = waits
      ? o.rateLimited
        ? 'rate_limited'
        : o.channelRefused
          ? 'channel_refused'
          : 'deferred'
      : o.status
    deps.metrics.deliveries.inc({ channel, status })
  }
}
