import { LINE_USER_ID } from '../identity/line-user-id.ts'
import type { Deps } from '../platform/deps.ts'
import { prepareBody } from '../platform/line-send-transport.ts'
import { createMulticastRequest, heldRows } from './line-claim.repo.ts'
import type { LineClaim, LineItem, StoredChunk } from './line-send.ts'

/** LINE: a multicast reaches at most 500 user ids. */
export const MULTICAST_MAX_RECIPIENTS = 500

/**
 * One multicast request to make: its chunk's id, key and body, the deliveries it sends, and
 * whether it is the chunk's first request (`isNew`) or repeats one an earlier attempt sent.
 */
export type Chunk = {
  id: string
  retryKey: string
  body: string
  ids: string[]
  isNew: boolean
}

/**
 * Chunks an earlier attempt sent (`stored`) go again whole (the same body under the same key),
 * even if only some of their deliveries are retried here; outcomes are written for these only.
 * Otherwise identical messages for two or more people become new chunks of at most 500; the
 * rest push, and so does a LINE user id LINE would not take (not LINE_USER_ID: LINE refuses a
 * whole multicast naming one, 400 `to[N]`, and sends to nobody; pushed alone, such an id, from
 * an import or a hand edit, fails its delivery only, with LINE's reason). Only deliveries the
 * job's claim still holds are planned; those that could not be planned (a database error) wait
 * for a retry (`unplanned`, by id), and those of a customer erased since the claim are not sent
 * (`erased`, by id).
 */
export async function planMulticasts(
  deps: Pick<Deps, 'db' | 'log'>,
  held: LineClaim,
  items: LineItem[],
  stored: StoredChunk[],
) {
  const earlier = new Map<string, Chunk>()
  for (const { id, chunkId, retryKey, body } of stored) {
    const chunk = earlier.get(chunkId)
    if (chunk) chunk.ids.push(id)
    else earlier.set(chunkId, { id: chunkId, retryKey, body, ids: [id], isNew: false })
  }
  const byContent = new Map<string, LineItem[]>()
  const pushes: LineItem[] = []
  const unplanned: string[] = []
  const erased: string[] = []
  for (const item of items) {
    if (!LINE_USER_ID.test(item.lineUid)) {
      pushes.push(item)
      continue
    }
    const same = byContent.get(item.contentKey)
    if (same) same.push(item)
    else byContent.set(item.contentKey, [item])
  }
  const multicasts = await chunksStillHeld(deps, held, [...earlier.values()], unplanned)
  for (const group of byContent.values()) {
    if (group.length < 2) {
      pushes.push(...group)
      continue
    }
    for (let i = 0; i < group.length; i += MULTICAST_MAX_RECIPIENTS) {
      const chunk = group.slice(i, i + MULTICAST_MAX_RECIPIENTS)
      const made = await newChunk(deps, held, chunk, erased)
      if (made === 'unplanned') unplanned.push(...chunk.map((c) => c.id))
      else if (made) multicasts.push(made)
    }
  }
  return { multicasts, pushes, unplanned, erased }
}

/**
 * A new chunk of these items, its rows tagged and its request stored before it goes: the rows
 * the claim still holds only (null when it holds none of them); those of a customer erased since
 * the claim are left out, added to `erased`.
 */
async function newChunk(
  deps: Pick<Deps, 'db' | 'log'>,
  held: LineClaim,
  items: LineItem[],
  erased: string[],
): Promise<Chunk | null | 'unplanned'> {
  const among = (ids: string[]) => {
    const tagged = new Set(ids)
    return items.filter((c) => tagged.has(c.id))
  }
  const bodyOf = (ids: string[]) =>
    prepareBody('multicast', { to: among(ids).map((c) => c.lineUid) }, items[0]!.messagesJson).json
  try {
    const ids = items.map((c) => c.id)
    const { chunk: made, erased: gone } = await createMulticastRequest(
      deps.db,
      ids,
      held.claim,
      bodyOf,
    )
    erased.push(...gone)
    const tagged = new Set([...(made?.tagged ?? []), ...gone])
    held.takenOver(ids.filter((id) => !tagged.has(id)))
    const chunk = made && { id: made.id, retryKey: made.retryKey, body: made.body }
    return chunk && { ...chunk, ids: made.tagged, isNew: true }
  } catch (err) {
    // Nothing sent: these go again with the job's retry.
    deps.log.warn({ err }, 'could not store a multicast chunk')
    return 'unplanned'
  }
}

/**
 * The chunks sent before, with the deliveries the claim still holds: a chunk none of whose rows
 * it holds is not sent again by this job.
 */
async function chunksStillHeld(
  deps: Pick<Deps, 'db' | 'log'>,
  held: LineClaim,
  chunks: Chunk[],
  unplanned: string[],
): Promise<Chunk[]> {
  const ids = chunks.flatMap((c) => c.ids)
  try {
    const holds = await heldRows(deps.db, ids, held.claim)
    held.takenOver(ids.filter((id) => !holds.has(id)))
    return chunks.flatMap((c) => {
      const still = c.ids.filter((id) => holds.has(id))
      return still.length > 0 ? [{ ...c, ids: still }] : []
    })
  } catch (err) {
    // Nothing sent: these go again with the job's retry.
    deps.log.warn({ err }, 'could not check the multicast chunks')
    unplanned.push(...ids)
    return []
  }
}
