import { classifyLineError, type LineFailure } from '../platform/line.ts'
import type { DeliveryOutcome } from './delivery-outcomes.repo.ts'
import type { Chunk } from './line-multicast.ts'
import type { LineItem } from './line-send.ts'

/**
 * A multicast LINE refused for its recipients: a 400 naming `to[N]` (an id it will not take: one
 * not in the channel, or malformed) or `to` alone (the list, for no one named). `indexes`: the
 * positions in `to` it named, none for `to` alone.
 */
export type RecipientRefusal = { indexes: number[] }

/** `to`, `'to'`, `to[3]` or `'to[3]'`, as LINE names a property in its 400. */
const TO = /^'?to(?:\[(\d+)\])?'?$/
const PROPERTY_IN_MESSAGE = /^The property, (\S+), in the request body is invalid/

/** LINE refused the request (a 400): it took nothing under its key. */
export const refusedByLine = (error: unknown): boolean => isRefusal(classifyLineError(error))

const isRefusal = (f: LineFailure): f is Extract<LineFailure, { kind: 'rejected' }> =>
  f.kind === 'rejected' && f.status === 400

/**
 * What a failed multicast call says about its recipients: a RecipientRefusal when it is a 400
 * whose message or details name only `to` or `to[N]`; null for anything else, such as a 400
 * naming the messages (each person's push would be refused the same way).
 */
export function recipientRefusalOf(error: unknown): RecipientRefusal | null {
  const f = classifyLineError(error)
  if (!isRefusal(f)) return null
  const properties = Array.isArray(f.details)
    ? f.details.flatMap((d: { property?: unknown }) =>
        typeof d?.property === 'string' ? [d.property] : [],
      )
    : []
  const named = PROPERTY_IN_MESSAGE.exec(f.message)?.[1]
  if (named) properties.push(named)
  if (properties.length === 0) return null
  const indexes: number[] = []
  for (const property of properties) {
    const to = TO.exec(property)
    if (!to) return null
    if (to[1] !== undefined) indexes.push(Number(to[1]))
  }
  return { indexes }
}

/**
 * A chunk LINE refused for its recipients (`refused`: the outcomes of its call, LINE's 400 for
 * each), split: each delivery LINE named is failed with LINE's reason (LINE would refuse its push
 * too); each other one of a new chunk (`items` has it) goes alone as a new push, under its own
 * retry key (LINE took nothing under the chunk's); each other one of a chunk repeated from an
 * earlier attempt (`repeated`: their user ids) waits for a retry, sent then like a new one (its
 * rendering is not at hand here). LINE naming no one (`to` alone) pushes them all: each refusal
 * is then its own.
 */
export function splitRefusedChunk(
  chunk: Chunk,
  refusal: RecipientRefusal,
  refused: DeliveryOutcome[],
  items: ReadonlyMap<string, LineItem>,
  repeated: ReadonlyMap<string, string>,
): { outcomes: DeliveryOutcome[]; pushes: LineItem[] } {
  const to = recipientsOf(chunk.body)
  const named = new Set(refusal.indexes.flatMap((i) => (to[i] === undefined ? [] : [to[i]])))
  const outcomes: DeliveryOutcome[] = []
  const pushes: LineItem[] = []
  for (const outcome of refused) {
    const item = items.get(outcome.id)
    const uid = item?.lineUid ?? repeated.get(outcome.id)
    if (uid !== undefined && named.has(uid)) outcomes.push(outcome)
    else if (item) pushes.push(item)
    else {
      const error = 'error' in outcome ? outcome.error : undefined
      outcomes.push({ id: outcome.id, status: 'pending', keyUnused: true, ...(error && { error }) })
    }
  }
  return { outcomes, pushes }
}

/** The chunk's `to`, in order (its body is JSON Kizuna wrote). */
export function recipientsOf(body: string): string[] {
  const { to } = JSON.parse(body) as { to?: unknown }
  return Array.isArray(to) ? to.map(String) : []
}
