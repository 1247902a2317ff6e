import type { messagingApi } from '@line/bot-sdk'
import pLimit from 'p-limit'
import { lineLoadsImageUrl } from '../cards/card-url.ts'
import { DEFAULT_CONSENTS, loadConsents } from '../consent/consent.service.ts'
import type { Mailer } from '../email/mailer.ts'
import { renderEmailMessage, renderLineMessage, TemplateError } from '../flex/message-template.ts'
import type { Deps } from '../platform/deps.ts'
import type { ClaimOutcomes } from './claim-outcomes.ts'
import {
  type ClaimedDelivery,
  type DeliveryOutcome,
  REPLY_OUTCOME_UNKNOWN,
  type RecentMarketing,
  TEMPLATE_FAILED,
} from './delivery.repo.ts'
import { type EmailItem, sendEmail } from './email-send.ts'
import {
  type LineItem,
  type LineLimiters,
  type StoredRequests,
  sendLineBatch,
} from './line-send.ts'
import type { MessageVarsLoaders } from './message-vars.ts'
import { chooseChannel, quietHoursEnd } from './send-rules.ts'
import type { SendWindow } from './send-window.ts'
import { CHUNK_HELD, type ChunkItem, heldChunks, storedRequestOf } from './stored-requests.ts'

const WEEK_MS = 7 * 24 * 60 * 60 * 1000

/**
 * Emails on their way at once per process: a few more than the SMTP pool's 5 connections, so the
 * next message is ready when one is free. Its send window is checked when it takes a slot; its
 * own time limit counts the wait for a connection too.
 */
const emailSlots = pLimit(8)

export type SendTools = {
  mailer: Mailer
  limiters: LineLimiters
  loaders: MessageVarsLoaders
  /** How long a claim holds its rows (SENDING_LEASE_SECONDS unless a test makes it short). */
  leaseSeconds?: number
}

export type BatchResult = { outcomes: DeliveryOutcome[] }

/**
 * Sends claimed deliveries. Marketing waits out quiet hours and the weekly cap; each delivery
 * gets its channel and content (template + loader, or ready LINE messages), decided now, unless
 * a request under its retry key may have reached LINE: then it goes again as the push or chunk
 * an earlier attempt stored, or not at all (storedRequestOf, heldChunks). LINE and email go
 * out together, emails while the job's send window is open (the rest are `notStarted`). Each
 * email's outcome is recorded as soon as it is decided (ClaimOutcomes.settle); returns one
 * outcome per delivery.
 */
export async function sendClaimedDeliveries(
  deps: Deps,
  tools: SendTools,
  { rows, recent }: { rows: ClaimedDelivery[]; recent: RecentMarketing },
  window: SendWindow,
  recorder: Pick<ClaimOutcomes, 'settle' | 'claim' | 'takenOver'>,
): Promise<BatchResult> {
  const now = deps.clock.now()
  const outcomes: DeliveryOutcome[] = []
  const live = settleStoppedReplies(rows, outcomes)
  const ready = applyMarketingRules(deps, live, recent, now, outcomes)
  const consents = await loadConsents(
    deps.db,
    ready.map((r) => r.customer_id),
  )
  const lineItems: LineItem[] = []
  const again: StoredRequests = { pushes: [], chunks: [] }
  const chunkItems: ChunkItem[] = []
  const emailItems: EmailItem[] = []
  // The local LINE stand-in loads http images; LINE itself only https.
  const lineOpts = { allowHttpImages: lineLoadsImageUrl(deps.env, 'http:') }
  const configured = tools.mailer.kind !== 'none'
  await inSlices(ready, async (row) => {
    const consent = consents.get(row.customer_id) ?? DEFAULT_CONSENTS
    if (row.line_key_used) {
      // The same request goes again under the same key (LINE-API.md §2.4), not one rendered
      // anew, even if its loader would now read other points or sign a new link.
      const stored = storedRequestOf(row, consent, configured)
      if ('push' in stored) again.pushes.push(stored.push)
      else if ('chunk' in stored) chunkItems.push(stored.chunk)
      else outcomes.push(stored.outcome)
      if ('outcome' in stored && stored.outcome.status === 'failed') {
        const { error } = stored.outcome
        deps.log.warn({ deliveryId: row.id, error }, 'delivery failed, not sent again')
      }
      return
    }
    const content = await contentOf(deps, tools.loaders, row)
    if ('outcome' in content) {
      outcomes.push(content.outcome)
      return
    }
    const choice = chooseChannel(row, consent, {
      hasVersion: content.templateId !== null,
      configured,
    })
    if (choice.channel === null) {
      outcomes.push({ id: row.id, status: 'skipped', reason: choice.reason })
      return
    }
    // Only the version that goes out is rendered.
    const rendered = render(row, content, choice.channel, lineOpts)
    if ('outcome' in rendered) outcomes.push(rendered.outcome)
    else if (choice.channel === 'line' && rendered.line) {
      // Nothing went under its key, or LINE refused what did (a 400, a 429): a new send. A
      // chunk LINE refused is not sent again as stored: it names people whose rows other jobs
      // hold (the sweeper spreads rows over jobs of 100), who may have opted out or be waiting
      // for room in the cap; each of its rows goes like a new one, its consent and the cap
      // checked by the job that claimed it, and the old key is not used.
      const refusedChunk = row.multicast_request_id !== null
      lineItems.push({
        id: row.id,
        lineUid: choice.lineUid,
        messagesJson: JSON.stringify(rendered.line),
        contentKey: content.key,
        retryKey: row.line_retry_key,
        replyToken: replyTokenIfFresh(row, now),
        // Tried before alone (a push with its own key): a new chunk's key could send it twice.
        // One whose chunk LINE refused is a new send: it may join a new chunk.
        mayMulticast: row.attempts === 1 || refusedChunk,
      })
    } else if (choice.channel === 'email' && rendered.email) {
      emailItems.push({
        id: row.id,
        customerId: row.customer_id,
        category: row.category,
        to: choice.to,
        email: rendered.email,
      })
    }
  })
  again.chunks = await unheldChunks(deps, chunkItems, rows, outcomes)
  const [line, emails] = await Promise.all([
    sendLineBatch(deps, tools.limiters, recorder, lineItems, again),
    Promise.all(
      emailItems.map((item) =>
        emailSlots(async (): Promise<DeliveryOutcome> => {
          const outcome: DeliveryOutcome = window.isOpen()
            ? await sendEmail(deps, tools.mailer, item, window.emailMs)
            : { id: item.id, status: 'pending', notStarted: true }
          await recorder.settle(outcome)
          return outcome
        }),
      ),
    ),
  ])
  outcomes.push(...line.outcomes, ...emails)
  return { outcomes }
}

/**
 * The stored chunks that may go again (heldChunks); the deliveries of the others are failed
 * (CHUNK_HELD), and all wait for a retry if the check cannot be made.
 */
async function unheldChunks(
  deps: Deps,
  items: ChunkItem[],
  rows: ClaimedDelivery[],
  outcomes: DeliveryOutcome[],
): Promise<ChunkItem[]> {
  if (items.length === 0) return []
  let held: Set<string>
  try {
    held = await heldChunks(deps, items, rows, outcomes)
  } catch (err) {
    deps.log.warn({ err }, 'could not check the multicast chunks to send again')
    for (const { id } of items) outcomes.push({ id, status: 'pending', error: 'chunk not checked' })
    return []
  }
  for (const multicastRequestId of held) {
    const deliveries = items.filter((i) => i.chunkId === multicastRequestId)
    deps.log.warn(
      { multicastRequestId, deliveries: deliveries.length },
      'multicast chunk not sent again: someone in it may no longer get it',
    )
    for (const { id } of deliveries) outcomes.push({ id, status: 'failed', error: CHUNK_HELD })
  }
  return items.filter((i) => !held.has(i.chunkId))
}

/**
 * A row still marked `trying` was claimed again after a worker stopped during its reply, before
 * the outcome was recorded: the reply may have arrived and has no retry key, so, as after a
 * reply that timed out, it is failed and never pushed. Returns the other rows.
 */
function settleStoppedReplies(
  rows: ClaimedDelivery[],
  outcomes: DeliveryOutcome[],
): ClaimedDelivery[] {
  return rows.filter((row) => {
    if (row.reply_state !== 'trying') return true
    const error = `${REPLY_OUTCOME_UNKNOWN}: the worker stopped during the reply`
    outcomes.push({ id: row.id, status: 'failed', error })
    return false
  })
}

/**
 * Quiet hours defer every marketing delivery to the window's end. Over the weekly cap a delivery
 * waits until the oldest counted send turns a week old, or is skipped if its sender said so,
 * unless its request may already have reached LINE (mayHaveReachedLine). Transactional
 * deliveries pass untouched. Returns the deliveries that may go now.
 */
function applyMarketingRules(
  deps: Deps,
  rows: ClaimedDelivery[],
  recent: RecentMarketing,
  now: Date,
  outcomes: DeliveryOutcome[],
): ClaimedDelivery[] {
  const marketing = rows.filter((r) => r.category === 'marketing')
  if (marketing.length === 0) return rows
  const quietUntil = quietHoursEnd(now, deps.env.QUIET_HOURS, deps.env.TZ_STORE)
  const cap = deps.env.MARKETING_WEEKLY_CAP
  const addedNow = new Map<string, number>()
  return rows.filter((row) => {
    if (row.category !== 'marketing') return true
    if (quietUntil) {
      outcomes.push({ id: row.id, status: 'pending', sendAfter: quietUntil })
      return false
    }
    if (cap === 0) return true
    const before = recent.get(row.customer_id) ?? { count: 0, roomAt: null }
    const added = addedNow.get(row.customer_id) ?? 0
    if (before.count + added < cap || mayHaveReachedLine(row)) {
      addedNow.set(row.customer_id, added + 1)
      return true
    }
    if (row.over_cap === 'skip') {
      outcomes.push({ id: row.id, status: 'skipped', reason: 'weekly_cap' })
    } else {
      // Room opens when the cap-th most recent send turns a week old (sends of this batch: a week).
      const roomAt =
        added === 0 && before.roomAt ? before.roomAt : new Date(now.getTime() + WEEK_MS)
      outcomes.push({ id: row.id, status: 'pending', sendAfter: roomAt })
    }
    return false
  })
}

/**
 * An earlier attempt's push or multicast got no answer (a 5xx or timeout): LINE may have taken
 * it. Its retry repeats that request under its key, which LINE honours for 24 hours only
 * (LINE-API.md §2.4), so it is not held back by the cap (up to a week): it was within the cap
 * when it first went, and it counts for the person's other sends while it waits (see
 * claimDeliveriesWithMarketingCounts); sent after the key expired it could arrive twice (a
 * multicast chunk, to everyone in it). Quiet hours still apply: a window is shorter than the
 * key's life, and a retry they hold past it is failed when it comes up again (KEY_EXPIRED).
 * One past its key's life is failed, not sent, so it takes no room. A request LINE refused (a
 * 400, a 429) took nothing: its first call is forgotten (line_key_used is false) and it waits
 * for room like a new send.
 */
function mayHaveReachedLine(row: ClaimedDelivery): boolean {
  return row.line_key_used && !row.line_key_expired
}

type Content =
  | { templateId: string; vars: Record<string, unknown>; key: string }
  | { templateId: null; messages: messagingApi.Message[]; key: string }
  | { outcome: DeliveryOutcome }

/**
 * What one delivery says: its stored LINE messages, or its template with the variables its
 * loader completes now. The key is equal for equal messages (rendering is deterministic).
 */
async function contentOf(
  deps: Deps,
  loaders: MessageVarsLoaders,
  row: ClaimedDelivery,
): Promise<Content> {
  if (!row.template_id) {
    const messages = (row.messages ?? []) as messagingApi.Message[]
    return { templateId: null, messages, key: JSON.stringify(messages) }
  }
  try {
    const loader = loaders[row.template_id]
    const vars = loader
      ? await loader(deps, { customerId: row.customer_id, vars: row.vars })
      : row.vars
    if (vars === null) {
      return { outcome: { id: row.id, status: 'skipped', reason: 'nothing_to_send' } }
    }
    const key = `${row.template_id}\0${JSON.stringify(vars)}`
    return { templateId: row.template_id, vars, key }
  } catch (error) {
    // A loader's database error is worth another try; bad variables are not.
    if (error instanceof TemplateError) return { outcome: failed(row, error) }
    const message = error instanceof Error ? error.message : String(error)
    return { outcome: { id: row.id, status: 'pending', error: `loader: ${message}` } }
  }
}

type Rendered =
  | { line: messagingApi.Message[]; email?: undefined }
  | { email: EmailItem['email']; line?: undefined }
  | { outcome: DeliveryOutcome }

function render(
  row: ClaimedDelivery,
  content: Exclude<Content, { outcome: DeliveryOutcome }>,
  channel: 'line' | 'email',
  lineOpts: { allowHttpImages: boolean },
): Rendered {
  if (content.templateId === null) return { line: content.messages }
  try {
    if (channel === 'email') return { email: renderEmailMessage(content.templateId, content.vars) }
    return { line: [renderLineMessage(content.templateId, content.vars, lineOpts)] }
  } catch (error) {
    return { outcome: failed(row, error) }
  }
}

function failed(row: ClaimedDelivery, error: unknown): DeliveryOutcome {
  const message = error instanceof Error ? error.message : String(error)
  return { id: row.id, status: 'failed', error: `${TEMPLATE_FAILED} ${message}` }
}

/**
 * A reply goes while its token is fresh and nothing went out for the row before: no reply under
 * way or refused (a refused one was followed by a push; after that, only the push's key is safe).
 * A reply a rate-limit 429 refused is tried again.
 */
function replyTokenIfFresh(row: ClaimedDelivery, now: Date): string | null {
  const fresh =
    row.reply_token !== null &&
    row.reply_state === null &&
    (row.reply_token_expires_at?.getTime() ?? 0) > now.getTime()
  return fresh ? row.reply_token : null
}

/** Rows rendered between two turns of the event loop. */
const RENDER_SLICE = 10

/**
 * Runs `each` over the rows a slice at a time, giving the event loop a turn between slices: a
 * job renders 100 personalised messages (~25 ms of CPU here), and sends already granted by the
 * limiter must not wait behind that and then leave together (LINE counts arrivals per second).
 */
async function inSlices<T>(rows: T[], each: (row: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < rows.length; i += RENDER_SLICE) {
    if (i > 0) await new Promise((resolve) => setImmediate(resolve))
    await Promise.all(rows.slice(i, i + RENDER_SLICE).map(each))
  }
}
