import type { webhook } from '@line/bot-sdk'
import pLimit from 'p-limit'
import type { Deps } from '../platform/deps.ts'
import { describeFields, isPoolBusy, isUnavailableError } from '../platform/errors.ts'
import { zodFields } from '../platform/input.ts'
import { jobsBehind } from '../platform/jobs-behind.ts'
import { isRedisOutage } from '../platform/redis.ts'
import { runAgainIfAborted } from '../platform/run-again.ts'
import type { Processor } from '../platform/worker-types.ts'
import { dispatchEvent } from './dispatch.ts'
import type { EventOutcome } from './event-context.ts'
import { enqueueWebhookEvents } from './webhook.enqueue.ts'
import {
  countUnreachableRound,
  listEventSenders,
  listPendingEventIds,
  lockWebhookEvent,
  markWebhookEventDone,
  markWebhookEventFailed,
} from './webhook.repo.ts'
import { appliedEventSchema } from './webhook.schemas.ts'

/** Users whose events one job processes side by side (each event in its own transaction). */
const PARALLEL_USERS = 4
/**
 * Jobs given up on as if Postgres were unreachable, after which the events are failed all the
 * same: Postgres answered each time (it counted them), so it is the events that fail (a
 * statement that times out each time); the sweeper would queue them forever.
 */
export const MAX_UNREACHABLE_ROUNDS = 10

/**
 * Processes a group of stored events, each at most once: its row is locked, its effects and the
 * `done` mark commit together, and work for other queues is enqueued only after that commit.
 * One user's events go one after another in the order they happened (an opt-out then an opt-in
 * must not end opted out); different users' go side by side. If any event fails the job is
 * retried; events already done are skipped on the retry.
 */
export const processWebhookEvents: Processor<'webhook.process-events'> = {
  async run(deps, { webhookEventIds }) {
    const failed = new Map<string, unknown>()
    const limit = pLimit(PARALLEL_USERS)
    const lanes = await eventsByUser(deps, webhookEventIds)
    await Promise.all(
      lanes.map((lane) =>
        limit(async () => {
          for (const id of lane) {
            try {
              await processWebhookEvent(deps, id)
            } catch (error) {
              // The user's later events wait for the retry: run now, they would overtake it.
              failed.set(id, error)
              return
            }
          }
        }),
      ),
    )
    if (failed.size > 0) throw new EventsFailed(failed)
  },
  /**
   * Only the events this job saw fail, and still pending, are failed: one that another job
   * holding it (the sweeper's copy) settled meanwhile is to blame for nothing. The user's later
   * events never ran (they waited for it) and go to a job of their own, to be applied now that
   * nothing is ahead of them (an unfollow behind a failing message must still block), as do the
   * job's events left pending in lanes that did not fail. An event whose own error says Postgres
   * was unreachable (down, refusing connections) is to blame for nothing, whatever the other
   * lanes' errors: its lane stays pending, and the sweeper queues it again. Each time is counted
   * on the event: one failing this way while Postgres answers (it counted) is failed in the end
   * rather than queued by every sweep forever; one that only waited too long for a free
   * connection of the pool (busy, not unreachable) is not counted. A job that failed before any event ran (their
   * lanes could not be read) blames none: its events stay pending for the sweeper.
   */
  async onFinalFailure(deps, { webhookEventIds }, error) {
    if (!(error instanceof EventsFailed)) {
      deps.log.warn({ err: error }, 'webhook events left pending for the sweeper')
      return
    }
    let lanes: string[][]
    try {
      const pending = new Set(await listPendingEventIds(deps.db, webhookEventIds))
      lanes = (await eventsByUser(deps, webhookEventIds))
        .map((lane) => lane.filter((id) => pending.has(id)))
        .filter((lane) => lane.length > 0)
    } catch (dbError) {
      // Postgres unreachable now: nothing can be failed or read, whatever failed the job.
      if (!isUnreachableDatabase(dbError)) throw dbError
      deps.log.warn({ err: error }, 'webhook events left pending for the sweeper')
      return
    }
    // Each lane still pending: the event of it this job saw fail (if still pending), and the rest.
    const split = lanes.map((lane) => {
      const at = lane.findIndex((id) => error.failed(id))
      return at === -1
        ? { rest: lane }
        : { failed: lane[at] as string, rest: [...lane.slice(0, at), ...lane.slice(at + 1)] }
    })
    const waiting = split
      .flatMap(({ failed }) => (failed ? [failed] : []))
      .filter((id) => isUnreachableDatabase(error.errorOf(id)) && !isBusyPool(error.errorOf(id)))
    const rounds =
      waiting.length > 0
        ? await countUnreachableRound(deps.db, waiting).catch(() => new Map<string, number>())
        : new Map<string, number>()
    const later: string[] = []
    let left = false
    for (const { failed, rest } of split) {
      if (failed) {
        const own = error.errorOf(failed)
        let reason = own instanceof Error ? own.message : String(own)
        if (isUnreachableDatabase(own)) {
          // Postgres answered, but this process's connections were all at work: a wait, no round.
          if (isBusyPool(own)) {
            left = true
            continue
          }
          const times = rounds.get(failed) ?? 0
          if (times < MAX_UNREACHABLE_ROUNDS) {
            left = true
            continue
          }
          reason = `${reason} (given up: failed ${times} times as if the database were unreachable, though it answered)`
        }
        await markWebhookEventFailed(deps.db, failed, reason)
      }
      later.push(...rest)
    }
    if (left) deps.log.warn({ err: error }, 'webhook events left pending for the sweeper')
    if (later.length > 0) {
      const jobs = await enqueueWebhookEvents(deps.queues, later, {
        cause: `after-failed-${Date.now()}`,
      })
      // Its events are older than the jobs it waits behind: the sweeper must know it holds them.
      await jobsBehind(deps.redis, deps.queues.prefix, 'webhook').note(jobs)
    }
  },
}

/** A job's events that failed, each with its own error (another lane's may be an outage). */
class EventsFailed extends AggregateError {
  // Private: not copied into the logged error.
  readonly #byEvent: Map<string, unknown>
  constructor(byEvent: Map<string, unknown>) {
    const [only] = byEvent.size === 1 ? [...byEvent.values()] : []
    const message = only instanceof Error ? only.message : `${byEvent.size} events failed`
    super([...byEvent.values()], message)
    this.#byEvent = byEvent
  }

  /** Whether the event failed in this job. */
  failed(webhookEventId: string): boolean {
    return this.#byEvent.has(webhookEventId)
  }

  /** The error the event failed with in this job. */
  errorOf(webhookEventId: string): unknown {
    return this.#byEvent.get(webhookEventId)
  }
}

function isUnreachableDatabase(error: unknown): boolean {
  return error instanceof AggregateError
    ? error.errors.length > 0 && error.errors.every(isUnavailableError)
    : isUnavailableError(error)
}

/** The event waited too long for a connection of this process's pool (isPoolBusy). */
function isBusyPool(error: unknown): boolean {
  return error instanceof AggregateError
    ? error.errors.length > 0 && error.errors.every(isPoolBusy)
    : isPoolBusy(error)
}

/**
 * The job's events as lanes: one per LINE user, in event time order (the job's order on a tie),
 * and one per event without a user (or without a row: processing logs it).
 */
async function eventsByUser(deps: Pick<Deps, 'db'>, ids: string[]): Promise<string[][]> {
  if (ids.length === 1) return [ids]
  const senders = new Map(
    (await listEventSenders(deps.db, ids)).map((row) => [row.webhook_event_id, row]),
  )
  const lanes = new Map<string, { id: string; at: number; index: number }[]>()
  ids.forEach((id, index) => {
    const sender = senders.get(id)
    const key = sender?.user_id ? `user ${sender.user_id}` : `event ${id}`
    const lane = lanes.get(key) ?? []
    lane.push({ id, at: sender?.occurred_at.getTime() ?? 0, index })
    lanes.set(key, lane)
  })
  return [...lanes.values()].map((lane) =>
    lane.sort((a, b) => a.at - b.at || a.index - b.index).map((e) => e.id),
  )
}

/**
 * Applies one event in one transaction, run again at once when Postgres aborted it (an account
 * link's merge deadlocked with the customer import): the work queued after the commit is that of
 * the run that committed.
 */
export async function processWebhookEvent(deps: Deps, webhookEventId: string): Promise<void> {
  const { result, afterCommit } = await runAgainIfAborted(() => applyEvent(deps, webhookEventId))
  if (!result) return
  deps.metrics.webhookEvents.inc({ type: result.type, outcome: result.outcome })
  // Each step on its own: a Redis blip failing one (the profile fetch) must not cost the others
  // (the welcome, the menu link). The event is done, so a retry would not run them again; what
  // failed is left to the sweeper and the nightly relink.
  for (const fn of afterCommit) {
    try {
      await fn()
    } catch (err) {
      if (isRedisOutage(deps.redis, err)) continue
      deps.log.warn({ err, webhookEventId }, 'work after a webhook event could not be queued')
    }
  }
}

/**
 * processWebhookEvent's transaction, and the work it leaves for after its commit (exported for
 * tests of a worker that stops between the two).
 */
export async function applyEvent(deps: Deps, webhookEventId: string) {
  const afterCommit: (() => Promise<void>)[] = []
  const result = await deps.db.transaction().execute(async (trx) => {
    const row = await lockWebhookEvent(trx, webhookEventId)
    if (!row) {
      deps.log.warn({ webhookEventId }, 'webhook event row not found')
      return null
    }
    if (row.status !== 'pending') return null
    const problem = problemOf(row.payload)
    if (problem) {
      await markWebhookEventFailed(trx, webhookEventId, problem)
      deps.log.warn({ webhookEventId, type: row.type, problem }, 'webhook event not applied')
      return { type: row.type, outcome: 'invalid' as const }
    }
    const event = row.payload as unknown as webhook.Event
    const outcome: EventOutcome = isErased(row.payload)
      ? 'erased'
      : await dispatchEvent(
          {
            deps,
            trx,
            webhookEventId,
            receivedAt: row.received_at,
            occurredAt: row.occurred_at,
            // Only `active` may answer: a mode LINE adds later is held back, as standby is.
            standby: row.mode !== 'active',
            afterCommit: (fn) => afterCommit.push(fn),
          },
          event,
        )
    await markWebhookEventDone(trx, row.id, outcome)
    return { type: row.type, outcome }
  })
  return { result, afterCommit }
}

/** Why the event cannot be applied (appliedEventSchema), naming the field, never its value. */
function problemOf(payload: unknown): string | undefined {
  const parsed = appliedEventSchema.safeParse(payload)
  return parsed.success ? undefined : describeFields(zodFields(parsed.error))
}

function isErased(payload: unknown): boolean {
  return (payload as { erased?: unknown } | null)?.erased === true
}
