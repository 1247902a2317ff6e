import { sql, type Transaction } from 'kysely'
import { setMarketingConsent } from '../consent/consent.service.ts'
import { TOMBSTONE } from '../identity/tombstone.ts'
import type { Database, DB, Db } from '../platform/db.ts'
import { AppError } from '../platform/errors.ts'
import { runAgainIfAborted } from '../platform/run-again.ts'
import { insertErasedUnlinks } from '../richmenu/erased-unlink.repo.ts'
import { forgottenMenu } from '../richmenu/richmenu-segment.repo.ts'
import { findIdentityOwner } from './customer.repo.ts'
import { deleteCustomerTags } from './customer-tag.repo.ts'
import { lockLineEvents, scrubLineEvents } from './erase-events.repo.ts'
import { eraseTraces } from './erase-traces.repo.ts'
import { findCustomersToErase, type LinkedChoice } from './linked-customers.repo.ts'
import { erasedValue, loadTombstoneKey, TOMBSTONE_KINDS, type TombstoneKey } from './tombstones.ts'

export type ErasedCustomer = { customerId: string; alreadyErased: boolean }

export type EraseResult = ErasedCustomer & {
  /**
   * The customers erased with it: an account link joined them to it, and an unlink
   * split them again (findLinkedCustomers), erased as `linked: 'erase'` asked.
   */
  linked: ErasedCustomer[]
  /**
   * The menus to unlink at LINE for the LINE user ids the erasure replaced with tombstones: the
   * erased_menu_unlink rows it wrote (their ids), for the caller to unlink once it committed
   * (unlinkErasedMenus; the erase command: customers.command.ts); what it leaves, the sweeper retries.
   */
  menuUnlinks: string[]
}

/**
 * Erases a customer on request (APPI / GDPR), idempotently, in one transaction:
 * - profile (name, email, phone, birthday) and the LINE profile are cleared; marketing consent
 *   is revoked on every channel, and the consent history (ids, flags, times: no personal data)
 *   stays, as merge_audit and link_audit do; the LINE user row stays (status history) with its
 *   user id replaced by a tombstone;
 * - card, shop account, email and phone identities keep only a tombstone (TOMBSTONE_KINDS),
 *   pointing at the erased customer, so a scan answers 410 and an old import cannot bring the
 *   person back; every other identity is deleted;
 * - purchases stay for statistics, anonymised (stored register answers removed);
 * - unsent deliveries are skipped and message contents cleared; points are zeroed (ledger row);
 * - the marketers' tags are deleted (one may say something personal: "妊娠中", a complaint);
 * - the webhook events of the person's LINE user ids (a group's join or leave naming them, and
 *   a group message mentioning them, too) keep only their type and id, and lose their error text;
 * - account-link codes and nonces, stored multicast requests, delivery errors and the links
 *   clicked in their emails lose the person's email and LINE user id (eraseTraces);
 * - the recorded rich menu is cleared, and its unlink at LINE recorded (erased_menu_unlink, the
 *   one row that holds their LINE user id on, until LINE confirms): the caller unlinks it once
 *   this committed, with the rows returned (`menuUnlinks`), the sweeper if it cannot; this
 *   transaction makes no network call.
 * A merged id leads to the surviving customer, which is the same person. Account links may: a
 * LINE account linked to an online account and then unlinked left two customers (the online
 * side, and the LINE account's new one), one person or two (a wrong link corrected). By default
 * (`linked: 'refuse'`) such a customer is not erased (a CONFLICT names the others); `erase`
 * erases them all in the same transaction (`linked`), `only` the one asked for. A transaction Postgres aborted (a deadlock) runs again, 3 times in
 * all, then fails as busy, to be run again.
 */
export async function eraseCustomer(
  db: Database,
  customerId: string,
  opts: { linked?: LinkedChoice } = {},
): Promise<EraseResult> {
  const linked = opts.linked ?? 'refuse'
  // Read before the transaction, once a process: a phone's tombstone is keyed with it.
  const key = await loadTombstoneKey(db)
  for (let attempt = 0; attempt < 10; attempt++) {
    const erased = await runAgainIfAborted(() => eraseOnce(db, customerId, linked, key), {
      busy,
    })
    if (erased) return erased
  }
  throw new Error('customer merge chain is too long')
}

const busy = (cause: unknown) =>
  new Error(
    'busy: the customer is being changed by another task (an import, a scan) right now; ' +
      'run the erasure again',
    { cause },
  )

/** eraseCustomer's transaction; undefined when a customer was merged or linked meanwhile. */
function eraseOnce(
  db: Database,
  customerId: string,
  linkedChoice: LinkedChoice,
  key: TombstoneKey,
): Promise<EraseResult | undefined> {
  return db.transaction().execute(async (trx) => {
    // Merge chains and links are followed without locks and only the customers they end in
    // are locked: a merged row locked on the way would deadlock with a merge of its survivor,
    // which re-points it. Merged (or linked, or unlinked) while we waited for them, they lead
    // elsewhere now: start again (the locks go with the transaction).
    const ids = await findCustomersToErase(trx, customerId, linkedChoice)
    if (!ids) throw new AppError('NOT_FOUND', `no customer ${customerId}`)
    const lineUids = await liveLineUidsOf(trx, ids)
    const eventIds = await lockLineEvents(trx, lineUids)
    const customers = await trx
      .selectFrom('customer')
      .select(['id', 'erased_at', 'points', 'email', 'merged_into_id'])
      .where('id', 'in', ids)
      .orderBy('id')
      .forUpdate()
      .execute()
    if (customers.some((c) => c.merged_into_id)) return undefined
    const again = await findCustomersToErase(trx, customerId, linkedChoice)
    if (String(again) !== String(ids)) return undefined
    // A LINE account that came to them while we waited has events not locked: start again.
    if (String(await liveLineUidsOf(trx, ids)) !== String(lineUids)) return undefined
    await scrubLineEvents(trx, eventIds)
    const erased: ErasedCustomer[] = []
    for (const id of ids) {
      const customer = customers.find((c) => c.id === id)
      if (!customer) throw new AppError('NOT_FOUND', `no customer ${id}`)
      erased.push(await eraseLocked(trx, customer, key))
    }
    const [first, ...linked] = erased
    if (!first) throw new Error('no customer to erase')
    const menuUnlinks = await insertErasedUnlinks(trx, lineUids)
    return { ...first, linked, menuUnlinks }
  })
}

/** The LINE user ids of these customers (the ones not erased yet), sorted; read without a lock. */
async function liveLineUidsOf(db: Db, customerIds: string[]): Promise<string[]> {
  const rows = await db
    .selectFrom('line_user')
    .select('line_uid')
    .where('customer_id', 'in', customerIds)
    .execute()
  return rows
    .map((r) => r.line_uid)
    .filter((uid) => !uid.startsWith(TOMBSTONE))
    .sort()
}

/** Erases the customer locked in `trx` (not merged); their LINE events are scrubbed apart. */
async function eraseLocked(
  trx: Transaction<DB>,
  customer: { id: string; erased_at: Date | null; points: number; email: string | null },
  key: TombstoneKey,
): Promise<ErasedCustomer> {
  const id = customer.id
  if (customer.points > 0) {
    await trx
      .insertInto('points_ledger')
      .values({ customer_id: id, delta: -customer.points, reason: 'erased' })
      .execute()
  }
  await trx
    .updateTable('customer')
    .set({
      display_name: null,
      display_name_from_line: false,
      email: null,
      phone: null,
      birthday: null,
      points: 0,
      erased_at: sql`coalesce(erased_at, now())`,
      updated_at: sql`now()`,
    })
    .where('id', '=', id)
    .execute()
  await setMarketingConsent(trx, id, false, 'erasure')
  await deleteCustomerTags(trx, id)

  const identities = await trx
    .selectFrom('identity')
    .select(['id', 'kind', 'value'])
    .where('customer_id', '=', id)
    .execute()
  for (const identity of identities) {
    if (identity.value.startsWith(TOMBSTONE)) continue
    const tombstone = erasedValue(identity.kind, identity.value, key)
    // A person erased before keeps the tombstone they left then (one per kind and value).
    const kept =
      TOMBSTONE_KINDS.includes(identity.kind) &&
      !(await findIdentityOwner(trx, identity.kind, tombstone))
    if (kept) {
      await trx
        .updateTable('identity')
        .set({ value: tombstone })
        .where('id', '=', identity.id)
        .execute()
    } else {
      await trx.deleteFrom('identity').where('id', '=', identity.id).execute()
    }
  }

  const lineUsers = await trx
    .selectFrom('line_user')
    .select(['id', 'line_uid'])
    .where('customer_id', '=', id)
    .execute()
  for (const lineUser of lineUsers) {
    let scrubbed = lineUser.line_uid
    if (!scrubbed.startsWith(TOMBSTONE)) {
      scrubbed = erasedValue('line', lineUser.line_uid)
      // The same LINE account erased once before (it came back as a new friend): its first
      // row holds that tombstone, and line_uid is unique.
      const taken = await trx
        .selectFrom('line_user')
        .select('id')
        .where('line_uid', '=', scrubbed)
        .executeTakeFirst()
      if (taken) scrubbed = `${TOMBSTONE}${lineUser.id}`
    }
    await trx
      .updateTable('line_user')
      .set({
        line_uid: scrubbed,
        display_name: null,
        picture_url: null,
        language: null,
        // Nothing is fetched for or sent to an erased person again.
        profile_fetched_at: sql`now()`,
        status: 'blocked',
        // Its menu is unlinked at LINE once this commits (unlinkErasedMenus, with the rows
        // recorded): a link recorded before is undone by it, and a link call under way (read
        // before) records nothing here (the generation) and takes its link back at LINE
        // (unlinkErased in richmenu-link.service.ts).
        ...forgottenMenu,
        updated_at: sql`now()`,
      })
      .where('id', '=', lineUser.id)
      .execute()
  }

  const lineUids = lineUsers.map((l) => l.line_uid).filter((uid) => !uid.startsWith(TOMBSTONE))

  const valuesOf = (kind: string) =>
    identities.filter((i) => i.kind === kind && !i.value.startsWith(TOMBSTONE)).map((i) => i.value)
  const emails = valuesOf('email')
  if (customer.email) emails.push(customer.email)
  await eraseTraces(trx, {
    customerId: id,
    emails,
    shopAccounts: valuesOf('online_customer'),
    lineUids,
    lineUserIds: lineUsers.map((l) => l.id),
  })
  await trx
    .updateTable('purchase')
    .set({
      result: null,
      pending_identity_kind: null,
      pending_identity_value: null,
      pending_email: null,
    })
    .where('customer_id', '=', id)
    .execute()
  await trx
    .updateTable('delivery')
    .set({ status: 'skipped', skip_reason: 'customer erased', updated_at: sql`now()` })
    .where('customer_id', '=', id)
    .where('status', 'in', ['pending', 'quota_exceeded'])
    .execute()
  await trx
    .updateTable('delivery')
    .set({ messages: JSON.stringify([]), vars: JSON.stringify({}), reply_token: null })
    .where('customer_id', '=', id)
    .execute()
  return { customerId: id, alreadyErased: customer.erased_at !== null }
}
