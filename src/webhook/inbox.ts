import pLimit from 'p-limit'
import { createBatcher } from '../platform/batcher.ts'
import type { Deps } from '../platform/deps.ts'
import { isUnavailableError } from '../platform/errors.ts'
import { isRedisOutage } from '../platform/redis.ts'
import { runAgainIfAborted } from '../platform/run-again.ts'
import { TimeoutError, withTimeout } from '../platform/timeout.ts'
import { enqueueWebhookEvents } from './webhook.enqueue.ts'
import { insertWebhookBodies } from './webhook.repo.ts'

/** One webhook request: its raw JSON body (already verified) and the ids of its events. */
export type InboxRequest = { body: string; webhookEventIds: string[] }
/**
 * The ids among the request's events that were new (each the first request's of its batch to
 * carry it), or why they could not be stored.
 */
export type InboxResult = { fresh: Set<string> } | { error: unknown }

const ENQUEUE_TIMEOUT_MS = 1_000
/**
 * How long a request waits for its insert before it is answered 503: inside LINE's 2-second
 * limit, so LINE sees a 503 (and redelivers, where redelivery is on) rather than a timeout of its
 * own; waiting longer gains nothing, as LINE has given up on the request by then. Only a Postgres
 * that stalls (a partition, a lock held) gets there. The late insert, if it commits after all,
 * queues its new events itself (the redelivered copies are duplicates by then).
 */
export const STORE_TIMEOUT_MS = 1_500
/** Requests of a failed batch retried one by one, this many at a time (the pool has 20). */
const FALLBACK_CONCURRENCY = 4
/**
 * One insert at a time: a second concurrent flush only splits the batch, and Postgres spends
 * a fixed ~0.4 ms per statement (57 vs 70 µs of Postgres CPU per event in the benchmark).
 */
const INSERT_CONCURRENCY = 1
/**
 * Enqueueing happens after the reply, so it can wait for company: one BullMQ job per 20 ms
 * rather than one per insert (a fifth of the Redis round trips and of addBulk's CPU).
 */
const ENQUEUE_CONCURRENCY = 1
const ENQUEUE_LINGER_MS = 20

/**
 * The durable webhook inbox. The events of concurrent requests go into Postgres as one insert
 * per tick; a batch that fails because of one bad request is retried request by request so only
 * that request fails. Enqueueing happens after the commit and never fails a request: the sweeper
 * re-enqueues anything Redis did not take.
 */
export function createInbox(
  deps: Pick<Deps, 'db' | 'queues' | 'log' | 'redis'>,
  opts: { storeTimeoutMs?: number } = {},
) {
  const storeTimeoutMs = opts.storeTimeoutMs ?? STORE_TIMEOUT_MS
  async function insert(bodies: string[]): Promise<Set<string>> {
    // Another insert sharing events (another web process's, a late one that timed out) may take
    // them in another order: a deadlock, one of the two aborted after deadlock_timeout (1 s).
    // Run again, it finds the other's rows stored. Not prevented by inserting in id order: that
    // sort costs every batch more than the rare deadlock costs the one request.
    const insertion = runAgainIfAborted(() => insertWebhookBodies(deps.db, bodies))
    try {
      return await withTimeout(insertion, storeTimeoutMs, 'store webhook events')
    } catch (error) {
      if (error instanceof TimeoutError) {
        insertion.then(
          (fresh) => enqueue([...fresh]),
          () => {},
        )
      }
      throw error
    }
  }
  const writer = createBatcher<InboxRequest, InboxResult>(
    async (requests) => {
      try {
        const fresh = await insert(requests.map((r) => r.body))
        if (requests.length === 1) return [{ fresh }]
        return requests.map((r) => ({ fresh: claim(fresh, r.webhookEventIds) }))
      } catch (error) {
        // Postgres unreachable, read-only or timing out: every request fails (503). Otherwise
        // one request may be bad: retried one by one, only that one fails (500).
        if (isUnavailableError(error)) throw error
        if (requests.length === 1) return [{ error }]
        const retry = pLimit(FALLBACK_CONCURRENCY)
        return Promise.all(requests.map((r) => retry(() => insertOne(r))))
      }
    },
    { concurrency: INSERT_CONCURRENCY },
  )

  async function insertOne(request: InboxRequest): Promise<InboxResult> {
    try {
      return { fresh: await insert([request.body]) }
    } catch (error) {
      if (isUnavailableError(error)) throw error
      return { error }
    }
  }

  const enqueuer = createBatcher<string, true>(
    async (ids) => {
      await withTimeout(
        enqueueWebhookEvents(deps.queues, ids),
        ENQUEUE_TIMEOUT_MS,
        'enqueue webhook events',
      )
      return ids.map(() => true as const)
    },
    { concurrency: ENQUEUE_CONCURRENCY, lingerMs: ENQUEUE_LINGER_MS },
  )

  /** Best effort, after commit; failures are logged and left to the sweeper. */
  function enqueue(webhookEventIds: string[]): Promise<void> {
    return enqueuer.run(webhookEventIds).then(
      () => undefined,
      (err: unknown) => {
        if (isRedisOutage(deps.redis, err)) return
        deps.log.warn(
          { err, count: webhookEventIds.length },
          'enqueue failed; the sweeper will pick these events up',
        )
      },
    )
  }

  return {
    /**
     * Resolves once the events are committed; rejects when they are not known to be (nothing
     * stored, or an insert that did not answer in time and queues its events itself if it commits).
     */
    async store(request: InboxRequest): Promise<InboxResult> {
      const body = storableBody(request.body)
      // The deadline runs from this request's arrival: one waiting behind a stalled insert
      // would otherwise wait for that insert's timeout and then its own (up to twice as long).
      // Its events, if they commit after all, are queued by the sweeper.
      const [result] = await withTimeout(
        writer.run([body === request.body ? request : { ...request, body }]),
        storeTimeoutMs,
        'store webhook events',
      )
      return result!
    },
    enqueue,
    async drain(): Promise<void> {
      await writer.drain()
      await enqueuer.drain()
    },
  }
}

export type Inbox = ReturnType<typeof createInbox>

/**
 * The batch's new ids that this request carries, taken out of `fresh`: two requests of one
 * insert carrying the same event must not both count it received and queue it, so it is the
 * first one's.
 */
function claim(fresh: Set<string>, webhookEventIds: string[]): Set<string> {
  const own = new Set<string>()
  for (const id of webhookEventIds) if (fresh.delete(id)) own.add(id)
  return own
}

/** Quick test: the body has a `\u0000` or a `\uD800`-`\uDFFF` escape (rare: LINE sends UTF-8). */
const SUSPECT_ESCAPE = /\\u(?:0000|[dD][89a-fA-F])/
/**
 * Every backslash escape, left to right, so an escaped backslash (`\\`) is consumed whole and
 * the `u0000` after it stays text. Alternatives in order: a surrogate pair, a lone surrogate, a
 * NUL, any other escape.
 */
const ESCAPE =
  /\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|(\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\\u0000)|\\[\s\S]/g

/**
 * The body as Postgres can store it. jsonb has no NUL character and no lone UTF-16 surrogate,
 * though JSON allows both as escapes (`\u0000`, a `\ud83d` without its pair): either would fail
 * the request at every redelivery, and the other events in it with it. They become U+FFFD.
 * Escaped backslashes and correctly paired surrogates (`\ud83e\udd28`) stay as they are.
 */
export function storableBody(body: string): string {
  if (!SUSPECT_ESCAPE.test(body)) return body
  return body.replace(ESCAPE, (match, bad: string | undefined) => (bad ? '\\ufffd' : match))
}
