import type { Transaction } from 'kysely'
import type { Env } from '../config/env.ts'
import { setMarketingConsent } from '../consent/consent.service.ts'
import type { Database, DB } from '../platform/db.ts'
import { AppError, isRunAgainError, isTimedOutStatement } from '../platform/errors.ts'
import { runAgainIfAborted } from '../platform/run-again.ts'
import { readAsMemberCardOnly, readBarcode } from '../pos/barcode.ts'
import type { PurchaseEnv } from '../purchases/purchase.service.ts'
import { insertCustomerRow } from './customer.repo.ts'
import type { CustomerImportRow } from './customer.schemas.ts'
import { HolderChanged, lockIdentityHolders } from './customer-lock.repo.ts'
import { findRowCustomer, ID_COLUMNS, RowError, type RowId } from './customer-row-match.ts'
import { insertCustomerTags } from './customer-tag.repo.ts'
import { attachIdentity } from './merge.service.ts'
import { loadTombstoneKey, type TombstoneKey } from './tombstones.ts'

export type ImportOutcome = 'created' | 'updated' | 'unchanged'
/** What a row did, and the customer it describes (the survivor, when it merged two). */
export type ImportResult = { outcome: ImportOutcome; customerId: string }

/** What the import tells of an id it left off a row it otherwise applied. */
export type RowWarning = (field: string, message: string) => void

/**
 * Creates or updates the customer a row describes, in one transaction (findRowCustomer finds
 * it). The row's other ids are attached; one held by another customer merges the two
 * (attachIdentity rules: never two LINE accounts). Given profile fields overwrite; absent ones
 * are left alone; tags are added to the customer's (none removed). An email or phone of another
 * shop account's or LINE friend's customer is not attached (the profile field is still set) and
 * `warn` is told. An erased person's external id or card refuses the row, as does their email on
 * a row without an external id, and their phone on a row naming no other id (households share a
 * phone: a row naming someone by another id takes it). A customer without a member card gets
 * one afterwards, for many rows at once (issueMissingMemberCards).
 */
export async function importCustomerRow(
  db: Database,
  env: PurchaseEnv & Pick<Env, 'MEMBER_CARD_PREFIX'>,
  row: CustomerImportRow,
  warn: RowWarning = () => {},
): Promise<ImportResult> {
  // Cards are given in the store's prefix, as new cards are issued: a number outside it may be a
  // product's barcode (a register asks any valid EAN-13 as a member card, for cards issued
  // under an earlier prefix).
  if (row.member_card !== undefined && !row.member_card.value.startsWith(env.MEMBER_CARD_PREFIX)) {
    throw new RowError(
      'member_card',
      `not one of this store's member cards (they start with prefix ${env.MEMBER_CARD_PREFIX})`,
    )
  }
  // A register reads 13 digits in the prefix as a member card, never as a legacy card (nor links
  // one as such: readAsMemberCardOnly).
  // The number itself only: a legacy card keeps the spaces or hyphens inside its number ("29 0012
  // 3456 789"), and a register that finds no member card in them finds the legacy card by them.
  const legacy = row.legacy_card && readBarcode(row.legacy_card.value, env.MEMBER_CARD_PREFIX)
  if (legacy && readAsMemberCardOnly(legacy)) {
    throw new RowError(
      'legacy_card',
      `13 digits with this store's member-card prefix ${env.MEMBER_CARD_PREFIX}: a register ` +
        'reads it as a member card, never as a legacy card (a member card goes in member_card)',
    )
  }
  const ids: RowId[] = ID_COLUMNS.flatMap(([column, kind]) => {
    const given = row[column]
    if (given === undefined) return []
    return [
      typeof given === 'string'
        ? { column, kind, value: given, typed: given }
        : { column, kind, ...given },
    ]
  })
  // Read once a process (getAppSecret keeps it), not in each row's transaction.
  const key = await loadTombstoneKey(db)
  // A row's transaction, rolled back whole, goes round again when an id was given to a customer
  // the row's check never saw (an account link or a register linking it after the holders were
  // locked: nothing locks an id no one holds yet; the next round locks and checks them too), or
  // it deadlocked with such a change (the holders it locks meanwhile, or an id it waits for, may
  // come before ones it holds), which Postgres broke by aborting the row, or Postgres gave up on
  // it (a lock or statement timeout: a customer it needs held that long by another task).
  return runAgainIfAborted(
    () => db.transaction().execute((trx) => applyRow(trx, env, row, ids, warn, key)),
    {
      again: (error) => error instanceof HolderChanged || isRunAgainError(error),
      busy: (error) => givenUp(error, ids),
    },
  )
}

/** The row's refusal after its last round (runAgainIfAborted) ended as the others did. */
function givenUp(error: unknown, ids: RowId[]): RowError {
  const again = 'each time; run the import again'
  if (error instanceof HolderChanged) {
    const column = ids.find((id) => id.kind === error.kind)?.column ?? 'external_id'
    return new RowError(column, `${error.message} ${again}`)
  }
  if (isTimedOutStatement(error)) {
    return new RowError('(row)', `Postgres gave up on it (a lock or statement timeout) ${again}`)
  }
  return new RowError(
    '(row)',
    `deadlocked with another change to its customers (a register or an account link) ${again}`,
  )
}

/** importCustomerRow's transaction. */
async function applyRow(
  trx: Transaction<DB>,
  env: PurchaseEnv,
  row: CustomerImportRow,
  ids: RowId[],
  warn: RowWarning,
  key: TombstoneKey,
): Promise<ImportResult> {
  // The holders are locked before they are checked: an account link, a follow or a register
  // changing what they hold then waits for this row, and what the row decides stays true.
  const checkedHolders = await lockIdentityHolders(trx, ids)
  const found = await findRowCustomer(trx, row, ids, key)
  let customerId = found.customerId
  const created = customerId === undefined
  customerId ??= await insertCustomerRow(trx)

  let changed = created
  for (const id of ids) {
    if (found.conflicts.has(id)) continue
    try {
      // As the file gave it: attachIdentity reads it, and asks the tombstone of this form too.
      const result = await attachIdentity(trx, customerId, id.kind, id.typed, {
        env,
        reason: 'import:customers',
        checkedHolders,
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
    // The shop's name, no longer the LINE nickname the customer was given (one merge keeps).
    const named = row.name !== undefined
    const updated = await trx
      .updateTable('customer')
      .set({
        ...Object.fromEntries(given),
        ...(named && { display_name_from_line: false }),
        updated_at: new Date(),
      })
      .where('id', '=', customerId)
      .where((eb) =>
        eb.or([
          ...given.map(([column, value]) => eb(column, 'is distinct from', value)),
          ...(named ? [eb('display_name_from_line', '=', true)] : []),
        ]),
      )
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
  // Tags are only ever added: a file is a list of what a shop knows, not all it knows.
  if (row.tags !== undefined) {
    const added = await insertCustomerTags(trx, customerId, row.tags)
    changed ||= added > 0
  }
  // Told only once nothing below can refuse the row (a RowError rolls it all back).
  for (const [id, why] of found.conflicts) warn(id.column, why)
  const outcome = created ? 'created' : changed ? 'updated' : 'unchanged'
  return { outcome, customerId }
}
