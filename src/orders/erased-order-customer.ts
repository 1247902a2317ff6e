import type { Transaction } from 'kysely'
import { findIdentityOwner, findSurvivingCustomer } from '../customers/customer.repo.ts'
import { isErasedIdentity } from '../customers/tombstones.ts'
import type { DB } from '../platform/db.ts'
import { type AppError, invalidField } from '../platform/errors.ts'
import type { Order } from './order.schemas.ts'

const ERASED = 'this customer was erased on request; the order was not saved'

/** Whether (kind, value) leads to a customer erased on request: held by one, or a tombstone. */
async function leadsToErased(trx: Transaction<DB>, kind: string, value: string) {
  const owner = await findIdentityOwner(trx, kind, value)
  if (!owner) return isErasedIdentity(trx, kind, value)
  return Boolean((await findSurvivingCustomer(trx, owner.customer_id))?.erased_at)
}

/**
 * The refusal (GONE) of an order that led to a customer erased on request, naming the field
 * that leads there, as every other refusal names its field: its shop id, when that one's holder
 * was erased (attaching it to the customer its email found would merge the two), else its email
 * or shop id whose customer was erased while the order waited for them. `customer` when neither
 * tells any more.
 */
export async function erasedCustomerError(
  trx: Transaction<DB>,
  customer: Order['customer'],
): Promise<AppError> {
  const fields = [
    ['customer.externalId', 'online_customer', customer.externalId],
    ['customer.email', 'email', customer.email],
  ] as const
  for (const [field, kind, value] of fields) {
    if (value !== undefined && (await leadsToErased(trx, kind, value))) {
      return invalidField(field, ERASED, 'GONE')
    }
  }
  return invalidField('customer', ERASED, 'GONE')
}
