import type { Deps } from '../platform/deps.ts'
import { prepareBody } from '../platform/line-send-transport.ts'
import { updateMulticastBody } from './delivery.repo.ts'
import { createMulticastRequest, heldRows } from './line-claim.repo.ts'
import type { LeftOut, LineClaim, LineItem } from './line-send.ts'

/** LINE: a multicast reaches at most 500 user ids. */
export const MULTICAST_MAX_RECIPIENTS = 500

/**
 * One multicast request to make: its chunk's id, key and body, the items it sends, and whether
 * it is the chunk's first request (`isNew`) or repeats one an earlier attempt sent.
 */
export type Chunk = {
  id: string
  retryKey: string
  body: string
  items: LineItem[]
  isNew: boolean
}

/**
 * Items an earlier attempt put in a multicast go again in that chunk with its key, without the
 * people whose deliveries were settled otherwise meanwhile. Otherwise identical messages for two
 * or more people become new chunks of at most 500; the rest push. Only items the job's claim
 * still holds are planned; those that could not be planned (a database error) wait for a retry.
 */
export async function planMulticasts(
  deps: Pick<Deps, 'db' | 'log'>,
  held: LineClaim,
  items: LineItem[],
  leftOut: LeftOut,
) {
  const multicasts: Chunk[] = []
  const earlier = new Map<string, Chunk>()
  const byContent = new Map<string, LineItem[]>()
  const pushes: LineItem[] = []
  const unplanned: LineItem[] = []
  for (const item of items) {
    if (item.multicast) {
      // The stored request goes again whole (the same body under the same key), even if only
      // some of its deliveries are retried here; outcomes are written for these only.
      const chunk = earlier.get(item.multicast.id)
      if (chunk) chunk.items.push(item)
      else earlier.set(item.multicast.id, { ...item.multicast, items: [item], isNew: false })
      continue
    }
    if (!item.mayMulticast) {
      pushes.push(item)
      continue
    }
    const same = byContent.get(item.contentKey)
    if (same) same.push(item)
    else byContent.set(item.contentKey, [item])
  }
  for (const chunk of await chunksStillHeld(deps, held, [...earlier.values()], unplanned)) {
    try {
      chunk.body = await withoutSettled(deps, chunk, leftOut.get(chunk.id))
      multicasts.push(chunk)
    } catch (err) {
      // Nothing sent: these go again with the job's retry.
      deps.log.warn({ err, multicastRequestId: chunk.id }, 'could not update a multicast chunk')
      unplanned.push(...chunk.items)
    }
  }
  for (const group of byContent.values()) {
    if (group.length < 2) {
      pushes.push(...group)
      continue
    }
    for (let i = 0; i < group.length; i += MULTICAST_MAX_RECIPIENTS) {
      const chunk = group.slice(i, i + MULTICAST_MAX_RECIPIENTS)
      const made = await newChunk(deps, held, chunk)
      if (made === 'unplanned') unplanned.push(...chunk)
      else if (made) multicasts.push(made)
    }
  }
  return { multicasts, pushes, unplanned }
}

/**
 * A new chunk of these items, its rows tagged and its request stored before it goes: the rows
 * the claim still holds only (null when it holds none of them).
 */
async function newChunk(
  deps: Pick<Deps, 'db' | 'log'>,
  held: LineClaim,
  items: LineItem[],
): Promise<Chunk | null | 'unplanned'> {
  const among = (ids: string[]) => {
    const tagged = new Set(ids)
    return items.filter((c) => tagged.has(c.id))
  }
  const bodyOf = (ids: string[]) =>
    prepareBody('multicast', { to: among(ids).map((c) => c.lineUid) }, items[0]!.messagesJson).json
  try {
    const ids = items.map((c) => c.id)
    const made = await createMulticastRequest(deps.db, ids, held.claim, bodyOf)
    const tagged = new Set(made?.tagged)
    held.takenOver(ids.filter((id) => !tagged.has(id)))
    const chunk = made && { id: made.id, retryKey: made.retryKey, body: made.body }
    return chunk && { ...chunk, items: among(made.tagged), isNew: true }
  } catch (err) {
    // Nothing sent: these go again with the job's retry.
    deps.log.warn({ err }, 'could not store a multicast chunk')
    return 'unplanned'
  }
}

/**
 * The chunks sent before, with the items the claim still holds: a chunk none of whose rows it
 * holds is not sent again by this job.
 */
async function chunksStillHeld(
  deps: Pick<Deps, 'db' | 'log'>,
  held: LineClaim,
  chunks: Chunk[],
  unplanned: LineItem[],
): Promise<Chunk[]> {
  const ids = chunks.flatMap((c) => c.items.map((i) => i.id))
  try {
    const holds = await heldRows(deps.db, ids, held.claim)
    held.takenOver(ids.filter((id) => !holds.has(id)))
    return chunks.flatMap((c) => {
      const items = c.items.filter((i) => holds.has(i.id))
      return items.length > 0 ? [{ ...c, items }] : []
    })
  } catch (err) {
    // Nothing sent: these go again with the job's retry.
    deps.log.warn({ err }, 'could not check the multicast chunks')
    unplanned.push(...chunks.flatMap((c) => c.items))
    return []
  }
}

/**
 * The chunk's request without the user ids whose deliveries were settled otherwise (someone who
 * opted out or blocked since the chunk's 500 must not get it now, nor get it by email and LINE),
 * stored before it goes, so that a later retry of the rest leaves them out too. Ids of this
 * attempt's own recipients stay (the same person may have two deliveries in one chunk).
 */
async function withoutSettled(
  deps: Pick<Deps, 'db'>,
  chunk: { id: string; body: string; items: LineItem[] },
  settled: Set<string> | undefined,
): Promise<string> {
  if (!settled) return chunk.body
  const sending = new Set(chunk.items.map((i) => i.lineUid))
  const request = JSON.parse(chunk.body) as { to: string[] }
  const to = request.to.filter((uid) => sending.has(uid) || !settled.has(uid))
  if (to.length === request.to.length) return chunk.body
  const body = JSON.stringify({ ...request, to })
  await updateMulticastBody(deps.db, chunk.id, body)
  return body
}
