import { lineLoadsImageUrl } from '../cards/card-url.ts'
import type { Consents } from '../consent/consent.schemas.ts'
import { DEFAULT_CONSENTS, loadConsents } from '../consent/consent.service.ts'
import type { Mailer } from '../email/mailer.ts'
import type { Deps } from '../platform/deps.ts'
import type { ClaimOutcomes } from './claim-outcomes.ts'
import type { ClaimedDelivery } from './delivery-claim.repo.ts'
import { buildLine, contentOf, renderEmail, renderLine } from './delivery-content.ts'
import type { DeliveryOutcome } from './delivery-outcomes.repo.ts'
import { sendEmails } from './email-batch.ts'
import type { EmailItem } from './email-send.ts'
import { replyTokenIfFresh } from './line-reply.ts'
import {
  type LineItem,
  type LineLimiters,
  type StoredPush,
  type StoredRequests,
  sendLineBatch,
} from './line-send.ts'
import type { RecentMarketing } from './marketing-cap.repo.ts'
import type { MessageBuilders, MessageVarsLoaders } from './message-vars.ts'
import { settleStoppedSends } from './outcome-unknown.ts'
import { applyWeeklyCap, chooseChannel, deferQuietHours } from './send-rules.ts'
import type { SendWindow } from './send-window.ts'
import { type ChunkItem, storedRequestOf, unheldChunks } from './stored-requests.ts'

export type SendTools = {
  mailer: Mailer
  limiters: LineLimiters
  loaders: MessageVarsLoaders
  /**
   * Builders of the LINE messages of deliveries built when sent (an account-link invite): the
   * worker's are messageBuilders() (processors.ts); without one, such a delivery fails.
   */
  builders?: MessageBuilders
  /** How long a claim holds its rows (SENDING_LEASE_SECONDS unless a test makes it short). */
  leaseSeconds?: number
}

export type BatchResult = { outcomes: DeliveryOutcome[] }

/**
 * Sends claimed deliveries. Marketing waits out quiet hours; each delivery gets its channel and
 * content (template + loader, ready LINE messages, or LINE messages its builder makes), decided now, unless a request under its
 * retry key may have reached LINE: then it goes again as the push or chunk an earlier attempt
 * stored, or not at all (storedRequestOf, heldChunks). The weekly cap then holds back what is
 * over it among the deliveries that go (applyWeeklyCap): one that sends nothing takes no room,
 * a reply or email settled as stopped (it may have arrived: settleStoppedSends) does.
 * LINE and email go out together, emails while the job's send window is open (sendEmails: the
 * rest are `notStarted`), each email's outcome recorded as soon as it is decided; returns one
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
  const live = settleStoppedSends(rows, outcomes)
  const ready = deferQuietHours(deps, live, now, outcomes)
  const consents = await loadConsents(
    deps.db,
    ready.map((r) => r.customer_id),
  )
  // Kizuna's LINE stand-in loads http images; LINE itself only https.
  const lineOpts = { allowHttpImages: lineLoadsImageUrl(deps, 'http:') }
  const configured = tools.mailer.kind !== 'none'
  const sends = new Map<string, Send>()
  await inSlices(ready, async (row) => {
    const consent = consents.get(row.customer_id) ?? DEFAULT_CONSENTS
    sends.set(row.id, await sendOf(deps, tools, row, consent, { configured, lineOpts, now }))
  })
  const decided = ready.map((row) => ({ row, goes: !('outcome' in sends.get(row.id)!) }))
  // A reply or email settled as stopped may have arrived: it takes its room before the others.
  const stopped = rows.filter((row) => !live.includes(row))
  const held = applyWeeklyCap(deps, decided, recent, now, outcomes, stopped)
  const lineItems: LineItem[] = []
  const again: StoredRequests = { pushes: [], chunks: [] }
  const chunkItems: ChunkItem[] = []
  const emailItems: EmailItem[] = []
  for (const { row } of decided) {
    const send = sends.get(row.id)!
    if (held.has(row.id)) continue
    if ('outcome' in send) outcomes.push(send.outcome)
    else if ('push' in send) again.pushes.push(send.push)
    else if ('chunk' in send) chunkItems.push(send.chunk)
    else if ('line' in send) lineItems.push(send.line)
    else emailItems.push(send.email)
  }
  again.chunks = await unheldChunks(deps, chunkItems, rows, outcomes)
  const [line, emails] = await Promise.all([
    sendLineBatch(deps, tools.limiters, recorder, lineItems, again),
    sendEmails(deps, tools.mailer, recorder, window, emailItems),
  ])
  outcomes.push(...line.outcomes, ...emails)
  return { outcomes }
}

/**
 * What one delivery comes to before the weekly cap: the request or email that takes it out, or
 * an outcome without one (nothing to send, no channel, a template that does not render, a stored
 * request that must not go again).
 */
type Send =
  | { outcome: DeliveryOutcome }
  | { push: StoredPush }
  | { chunk: ChunkItem }
  | { line: LineItem }
  | { email: EmailItem }

async function sendOf(
  deps: Deps,
  tools: SendTools,
  row: ClaimedDelivery,
  consent: Consents,
  opts: { configured: boolean; lineOpts: { allowHttpImages: boolean }; now: Date },
): Promise<Send> {
  if (row.line_key_used) {
    // The same request goes again under the same key (LINE-API.md §2.4), not one rendered
    // anew, even if its loader would now read other points or sign a new link.
    const stored = storedRequestOf(row, consent, opts.configured)
    if ('outcome' in stored && stored.outcome.status === 'failed') {
      const { error } = stored.outcome
      deps.log.warn({ deliveryId: row.id, error }, 'delivery failed, not sent again')
    }
    return stored
  }
  const content = await contentOf(deps, tools.loaders, row)
  if ('outcome' in content) return content
  const choice = chooseChannel(row, consent, {
    hasVersion: content.templateId !== null,
    configured: opts.configured,
  })
  if (choice.channel === null) {
    return { outcome: { id: row.id, status: 'skipped', reason: choice.reason } }
  }
  // Only the version that goes out is rendered.
  if (choice.channel === 'email') {
    const rendered = renderEmail(row, content)
    if ('outcome' in rendered) return rendered
    const { category, customer_id: customerId } = row
    return { email: { id: row.id, customerId, category, to: choice.to, email: rendered.email } }
  }
  // Built now, once LINE is its channel: its builder may call LINE (a link token) first.
  const built = await buildLine(deps, tools.builders ?? {}, row, content)
  if ('outcome' in built) return built
  const rendered = renderLine(row, built, opts.lineOpts)
  if ('outcome' in rendered) return rendered
  // Nothing went under its key, or LINE took nothing under it (a 400; a 429 to its first request;
  // a call that never reached LINE): a new send, which may join a new chunk, whatever attempt
  // this is (a claim that only deferred it, for quiet hours or the cap, counts as one). A
  // request that may have reached LINE keeps its key and never gets here (line_key_used: the
  // first call is noted in the statement that stores the request). A chunk LINE refused is not
  // sent again as stored: it names people whose rows other jobs hold (the sweeper spreads rows
  // over jobs of 100), who may have opted out or be waiting for room in the cap; each of its rows
  // goes like a new one, its consent and the cap checked by the job that claimed it, and the old
  // key is not used.
  return {
    line: {
      id: row.id,
      lineUid: choice.lineUid,
      messagesJson: JSON.stringify(rendered.line),
      contentKey: built.key,
      retryKey: row.line_retry_key,
      replyToken: replyTokenIfFresh(row, opts.now),
    },
  }
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
