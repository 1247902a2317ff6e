import type { Database } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { deleteCustomerTags, insertCustomerTags, listCustomerTags } from './customer-tag.repo.ts'
import { withCurrentCustomer } from './surviving-customer.service.ts'
import { parseTag } from './tag-values.ts'

export type CustomerTags = { customerId: string; tags: string[] }

export type TagChange = { add?: readonly string[]; remove?: readonly string[] }

/**
 * The tags of the customer `customerId` leads to (merges followed), read as changeCustomerTags
 * reads them after a change, with that customer share-locked: a merge committing meanwhile is
 * waited for and followed, not answered with the merged-away id and no tags. NOT_FOUND for an
 * unknown customer, GONE for an erased one.
 */
export function getCustomerTags(db: Database, customerId: string): Promise<CustomerTags> {
  return changeCustomerTags(db, customerId, {})
}

/**
 * Adds and removes tags (normalised as tag-values.ts says, "." and ".." removed but never
 * added; a bad one is BAD_REQUEST naming `tag`, before anything changes), idempotently, on the
 * customer `customerId` leads to (a merged id: its survivor; withCurrentCustomer). The customer is share-locked meanwhile, so
 * a merge or erasure running at once waits and then takes the tags along (or deletes them).
 * NOT_FOUND for an unknown customer, GONE for an erased one; returns the tags afterwards.
 */
export async function changeCustomerTags(
  db: Database,
  customerId: string,
  change: TagChange,
): Promise<CustomerTags> {
  const add = (change.add ?? []).map((tag) => parseTag(tag))
  const remove = (change.remove ?? []).map((tag) => parseTag(tag, 'tag', 'remove'))
  return withCurrentCustomer(db, customerId, async (trx, customer) => {
    if (customer.erased_at) throw new AppError('GONE', 'this customer was erased on request')
    const { id } = customer
    await insertCustomerTags(trx, id, add)
    await deleteCustomerTags(trx, id, remove)
    return { customerId: id, tags: await listCustomerTags(trx, id) }
  })
}
