import type { Consents } from '../consent/consent.schemas.ts'
import { DEFAULT_CONSENTS, loadConsents } from '../consent/consent.service.ts'
import type { Deps } from '../platform/deps.ts'
import { acceptedChunks, type ChunkDelivery, chunkDeliveries } from './chunk-deliveries.repo.ts'
import type { ClaimedDelivery } from './delivery-claim.repo.ts'
import type { DeliveryOutcome } from './delivery-outcomes.repo.ts'
import type { StoredChunk, StoredPush } from './line-send.ts'
import { KEY_EXPIRED } from './retry-key.ts'
import { chooseChannel } from './send-rules.ts'

/*
 * A delivery whose request got a 5xx or no answer may have reached LINE under its retry key
 * (LINE-API.md §2.4: even a 500 may have been delivered). LINE runs a key once, and what it does
 * with the same key and another body is undefined (§9), so such a delivery goes again only as
 * the request first sent, byte for byte, or not at all: never rendered anew, never under another
 * key, never by email. Only a request LINE clearly refused (a 400; a 429, rate limit or monthly
 * quota, to the first request under the key) took nothing under its key, and is sent like a
 * new one.
 */

const NOT_AGAIN = 'not sent again: its request may have reached LINE (a 5xx or timeout)'

/**
 * The person blocked the account since (LINE cannot reach them) and would get it by email: they
 * may have it already. (A friend who turned the category off on LINE is skipped instead: email
 * goes only where LINE cannot reach, see chooseChannel.)
 */
export const NOT_BY_EMAIL = `${NOT_AGAIN}, and is not sent by email instead`

/** Nothing stored to repeat: a chunk whose request was dropped when someone in it was erased. */
export const NOTHING_STORED = `${NOT_AGAIN}, and its request is no longer stored to repeat`

/**
 * A multicast chunk names someone who may no longer get it: unchanged it would reach them, and
 * changed (or under a new key) it could reach the others twice.
 */
export const CHUNK_HELD =
  `${NOT_AGAIN} in a multicast chunk that names someone who may no longer get it; ` +
  'its request cannot change under its key'

export type ChunkItem = StoredChunk

/**
 * What becomes of a delivery whose request may have reached LINE (`line_key_used`): its stored
 * push or chunk goes again while the person still gets the category on LINE and the key is
 * young enough; otherwise no channel is left (skipped, with the reasons), email would be a
 * second copy (failed), the key may be forgotten (KEY_EXPIRED), or nothing is stored to repeat.
 * Its loader and templates are not used: the message was decided when it first went.
 */
export function storedRequestOf(
  row: ClaimedDelivery,
  consent: Consents,
  configured: boolean,
): { push: StoredPush } | { chunk: ChunkItem } | { outcome: DeliveryOutcome } {
  const choice = chooseChannel(row, consent, { hasVersion: row.template_id !== null, configured })
  const fail = (error: string) => ({ outcome: { id: row.id, status: 'failed' as const, error } })
  if (choice.channel === null) {
    return { outcome: { id: row.id, status: 'skipped', reason: choice.reason } }
  }
  if (choice.channel === 'email') return fail(NOT_BY_EMAIL)
  if (row.line_key_expired) return fail(KEY_EXPIRED)
  if (row.push_body !== null) {
    return { push: { id: row.id, retryKey: row.line_retry_key, body: row.push_body } }
  }
  if (row.multicast_request_id && row.multicast_retry_key && row.multicast_body) {
    const chunk = {
      id: row.id,
      chunkId: row.multicast_request_id,
      retryKey: row.multicast_retry_key,
      body: row.multicast_body,
      lineUid: choice.lineUid,
    }
    return { chunk }
  }
  return fail(NOTHING_STORED)
}

/**
 * The stored chunks that must not go again now. A chunk LINE took (answered 200 or 409 before)
 * goes: LINE answers 409 and delivers nothing. Otherwise it goes only if each user id it names
 * is someone who may get it now: every delivery of the chunk to them goes now in this job, or
 * still waits to be sent (another job repeats the chunk for it, or settles it) to a person who
 * is not erased and gets the category on LINE, or was settled only because they no longer follow
 * the account (LINE delivers nothing to them; if they follow again, they allow it). A delivery
 * cancelled, sent by email, or settled otherwise holds the chunk, and so does a user id no
 * delivery of the chunk answers to. The check reads the rows as they are; a change committed
 * after it is like one made while a send is under way.
 */
export async function heldChunks(
  deps: Pick<Deps, 'db'>,
  items: ChunkItem[],
  claimed: ClaimedDelivery[],
  outcomes: DeliveryOutcome[],
): Promise<Set<string>> {
  const chunks = new Map<string, { to: string[] | null; going: ChunkItem[] }>()
  for (const item of items) {
    const chunk = chunks.get(item.chunkId) ?? { to: recipientsOf(item.body), going: [] }
    chunk.going.push(item)
    chunks.set(item.chunkId, chunk)
  }
  const held = new Set<string>()
  const accepted = await acceptedChunks(deps.db, [...chunks.keys()])
  const checked = [...chunks].flatMap(([id, c]) =>
    accepted.has(id) || !c.to ? [] : [{ ...c, id }],
  )
  for (const [id, c] of chunks) if (!c.to) held.add(id)
  const rows = await chunkDeliveries(
    deps.db,
    checked.map((c) => ({ id: c.id, to: c.to! })),
  )
  const consents = await loadConsents(
    deps.db,
    rows.map((r) => r.customer_id),
  )
  const inClaim = new Set(claimed.map((r) => r.id))
  const decided = new Map(outcomes.map((o) => [o.id, o]))
  for (const chunk of checked) {
    const going = new Set(chunk.going.map((i) => i.id))
    const mayGet = new Set(chunk.going.map((i) => i.lineUid))
    const mayNot = new Set<string>()
    for (const row of rows) {
      if (row.chunk_id !== chunk.id || going.has(row.id)) continue
      const now = inClaim.has(row.id) ? asDecided(row, decided.get(row.id)) : row
      const consent = consents.get(row.customer_id) ?? DEFAULT_CONSENTS
      if (now.status === 'sent' && now.channel === 'line') accepted.add(chunk.id)
      if (mayStillGet(now, consent)) mayGet.add(row.named_uid)
      else mayNot.add(row.named_uid)
    }
    if (accepted.has(chunk.id)) continue
    if (chunk.to!.some((uid) => mayNot.has(uid) || !mayGet.has(uid))) held.add(chunk.id)
  }
  return held
}

/**
 * The stored chunks that may go again (heldChunks); the deliveries of the others are failed
 * (CHUNK_HELD), and all wait for a retry if the check cannot be made.
 */
export async function unheldChunks(
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

function recipientsOf(body: string): string[] | null {
  try {
    const { to } = JSON.parse(body) as { to?: unknown }
    return Array.isArray(to) && to.every((u) => typeof u === 'string') ? to : null
  } catch {
    return null
  }
}

/** A row of this claim as this attempt decided it (still `sending` in the database). */
function asDecided(row: ChunkDelivery, outcome: DeliveryOutcome | undefined): ChunkDelivery {
  if (!outcome) return row
  const channel = 'channel' in outcome ? outcome.channel : row.channel
  return { ...row, status: outcome.status, channel }
}

function mayStillGet(row: ChunkDelivery, consent: Consents): boolean {
  if (row.erased || !(consent[row.category].line || row.answers_person)) return false
  if (row.status === 'pending' || row.status === 'sending') return true
  // Settled: only where LINE delivers nothing (they blocked the account), and never one
  // cancelled or sent by email.
  const byEmail = row.status === 'sent' && row.channel === 'email'
  return !row.line_friend && row.status !== 'cancelled' && !byEmail
}
