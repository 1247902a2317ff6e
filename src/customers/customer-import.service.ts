import type { Transaction } from 'kysely'
import { setMarketingConsent } from '../consent/consent.service.ts'
import type { Database, DB } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import type { PurchaseEnv } from '../purchases/purchase.service.ts'
import { findIdentityOwner, findSurvivingCustomer, insertCustomerRow } from './customer.repo.ts'
import type { CustomerImportRow } from './customer.schemas.ts'
import { isErasedIdentity } from './erase.service.ts'
import type { IdentityKind } from './identity-values.ts'
import { attachIdentity } from './merge.service.ts'

export type ImportOutcome = 'created' | 'updated' | 'unchanged'

/** A row refused because of one field; the import reports it and goes on. */
export class RowError extends Error {
  override name = 'RowError'
  readonly field: string
  constructor(field: string, message: string) {
    super(message)
    this.field = field
  }
}

const ID_COLUMNS = [
  ['external_id', 'online_customer'],
  ['member_card', 'member_card'],
  ['email', 'email'],
  ['phone', 'phone'],
] as const satisfies readonly (readonly [keyof CustomerImportRow, IdentityKind])[]

type RowId = { column: (typeof ID_COLUMNS)[number][0]; kind: IdentityKind; value: string }

const ERASED = 'this customer was erased on request'

/** The live customer holding the id (after merges); RowError if it is an erased person's. */
async function ownerOf(trx: Transaction<DB>, id: RowId): Promise<string | undefined> {
  const owner = await findIdentityOwner(trx, id.kind, id.value)
  if (!owner) {
    // Erasure leaves a tombstone, not the value: an old export must not re-create the person.
    if (await isErasedIdentity(trx, id.kind, id.value)) throw new RowError(id.column, ERASED)
    return undefined
  }
  const customer = await findSurvivingCustomer(trx, owner.customer_id)
  if (!customer || customer.erased_at) throw new RowError(id.column, ERASED)
  return customer.id
}

/** The customer the row's first known id finds, or undefined for a new one. */
async function findRowCustomer(trx: Transaction<DB>, ids: RowId[]) {
  let customerId: string | undefined
  for (const id of ids) {
    // Every id is looked at: any of them may be an erased person's.
    const owner = await ownerOf(trx, id)
    customerId ??= owner
  }
  return customerId
}

/**
 * Creates or updates the customer a row describes, in one transaction. The row's ids find the
 * customer; ids held by different customers merge them (attachIdentity rules: never two LINE
 * accounts). Given profile fields overwrite; absent ones are left alone. An id of an erased
 * person refuses the row.
 */
export async function importCustomerRow(
  db: Database,
  env: PurchaseEnv,
  row: CustomerImportRow,
): Promise<ImportOutcome> {
  const ids: RowId[] = ID_COLUMNS.flatMap(([column, kind]) => {
    const value = row[column]
    return typeof value === 'string' ? [{ column, kind, value }] : []
  })
  return db.transaction().execute(async (trx) => {
    let customerId = await findRowCustomer(trx, ids)
    const created = customerId === undefined
    customerId ??= await insertCustomerRow(trx)

    let changed = created
    for (const id of ids) {
      try {
        const result = await attachIdentity(trx, customerId, id.kind, id.value, {
          env,
          reason: 'import:customers',
        })
        changed ||= result.created || result.mergedCustomerId !== null
        customerId = result.customerId
      } catch (error) {
        if (error instanceof AppError) throw new RowError(id.column, error.message)
        throw error
      }
    }

    const fields = {
      display_name: row.name,
      email: row.email,
      phone: row.phone,
      birthday: row.birthday,
    }
    const given = Object.entries(fields).filter(([, v]) => v !== undefined) as [
      keyof typeof fields,
      string,
    ][]
    if (given.length > 0) {
      const updated = await trx
        .updateTable('customer')
        .set({ ...Object.fromEntries(given), updated_at: new Date() })
        .where('id', '=', customerId)
        .where((eb) => eb.or(given.map(([column, value]) => eb(column, 'is distinct from', value))))
        .executeTakeFirst()
      changed ||= Number(updated.numUpdatedRows) > 0
    }
    // true grants marketing on LINE and email, false revokes both.
    if (row.marketing_consent !== undefined) {
      const consentChanged = await setMarketingConsent(
        trx,
        customerId,
        row.marketing_consent,
        'import',
      )
      changed ||= consentChanged
    }
    if (created) return 'created'
    return changed ? 'updated' : 'unchanged'
  })
}
