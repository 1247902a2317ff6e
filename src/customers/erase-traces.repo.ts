import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'

/** What an erased person leaves outside their own rows, found by these values. */
export type Traces = {
  customerId: string
  /** The person's email addresses (profile and identities), as stored. */
  emails: string[]
  /** Their shop account ids (online_customer identities). */
  shopAccounts: string[]
  /** Their LINE user ids as LINE knows them (before the tombstone). */
  lineUids: string[]
  /** Their line_user rows. */
  lineUserIds: string[]
}

/** Replaces an error text that may quote the person (an SMTP reply names the address). */
export const ERROR_REMOVED = 'error text removed on erasure'

/**
 * Scrubs the person's email and LINE user id from the rows around them: account-link codes
 * (deleted: they live minutes and hold the address), nonces (their address or shop account id
 * dropped, as when one is used, whichever LINE account they were issued for), stored multicast
 * requests (their user id taken out of `to`), the error texts of their deliveries and the links
 * clicked in them, mail a sandbox run kept for their address (or one a code they asked for went
 * to), and online orders still waiting for their email or shop account to appear (kept unmatched
 * for good, without it; one waiting for another shop account besides their email still waits
 * for that one).
 */
export async function eraseTraces(trx: Db, t: Traces): Promise<void> {
  const tokens = t.lineUserIds.length
    ? trx.selectFrom('link_token').select('token_hash').where('line_user_id', 'in', t.lineUserIds)
    : null
  // Codes the person asked for (any address they typed), and any code sent to their address.
  let codedTo: string[] = []
  if (t.emails.length > 0 || tokens) {
    const codes = await trx
      .deleteFrom('link_code')
      .where((eb) =>
        eb.or([
          ...(t.emails.length > 0 ? [eb('email', 'in', t.emails)] : []),
          ...(tokens ? [eb('link_token_hash', 'in', tokens)] : []),
        ]),
      )
      .returning('email')
      .execute()
    codedTo = codes.map((c) => c.email)
  }
  await trx
    .updateTable('link_nonce')
    .set({ identity_value: null })
    .where('identity_value', 'is not', null)
    .where((eb) =>
      eb.or([
        eb('customer_id', '=', t.customerId),
        ...(t.lineUserIds.length > 0 ? [eb('line_user_id', 'in', t.lineUserIds)] : []),
        ...(t.emails.length > 0 ? [eb('identity_value', 'in', t.emails)] : []),
        // Proven by the shop's login, possibly from someone else's LINE account.
        ...(t.shopAccounts.length > 0
          ? [
              eb.and([
                eb('identity_kind', '=', 'online_customer'),
                eb('identity_value', 'in', t.shopAccounts),
              ]),
            ]
          : []),
      ]),
    )
    .execute()
  await trx
    .updateTable('delivery')
    .set({ last_error: ERROR_REMOVED })
    .where('customer_id', '=', t.customerId)
    .where('last_error', 'is not', null)
    .execute()
  // A push kept for its retry holds the rendered message (name, coupon, card link).
  await trx
    .updateTable('delivery')
    .set({ push_body: null })
    .where('customer_id', '=', t.customerId)
    .where('push_body', 'is not', null)
    .execute()
  // A link clicked in their email may have been made for them (their name, their member page):
  // the click is kept, not where it led.
  await trx
    .updateTable('delivery_event')
    .set({ url: null })
    .where('delivery_id', 'in', (eb) =>
      eb.selectFrom('delivery').select('id').where('customer_id', '=', t.customerId),
    )
    .where('url', 'is not', null)
    .execute()
  const waitingOn = [
    ...t.emails.map((value) => ['email', value] as const),
    ...t.shopAccounts.map((value) => ['online_customer', value] as const),
  ]
  if (waitingOn.length > 0) {
    await trx
      .updateTable('purchase')
      .set({ pending_identity_kind: null, pending_identity_value: null, pending_email: null })
      .where('customer_id', 'is', null)
      .where((eb) =>
        eb.or(
          waitingOn.map(([kind, value]) =>
            eb.and([
              eb('pending_identity_kind', '=', kind),
              eb('pending_identity_value', '=', value),
            ]),
          ),
        ),
      )
      .execute()
  }
  // One that waits for their address beside another shop account keeps waiting for that one: it
  // may be someone else's (Hanako's shop account, with the address Taro held).
  if (t.emails.length > 0) {
    await trx
      .updateTable('purchase')
      .set({ pending_email: null })
      .where('customer_id', 'is', null)
      .where('pending_email', 'in', t.emails)
      .execute()
  }
  if (t.lineUids.length > 0) await scrubMulticasts(trx, t.customerId, t.lineUids)
  // A sandbox run keeps the mail it would have sent (codes, campaigns with their name), also the
  // codes sent to an address they typed and never proved (while its code is kept).
  const mailedTo = new Set([...t.emails, ...codedTo].map((e) => e.toLowerCase()))
  if (mailedTo.size > 0) {
    await trx
      .deleteFrom('sandbox_mail')
      .where(sql<string>`lower(to_address)`, 'in', [...mailedTo])
      .execute()
  }
}

/**
 * A multicast chunk keeps its request body for retries under the same retry key. Once LINE took
 * the chunk (answered 200 or 409), the person's user id is taken out of its `to`: a retry of the
 * others gets 409 whatever the body. Before that, the request is dropped: a changed body under a
 * key LINE may hold is undefined (LINE-API.md §9), so the chunk cannot go again (its deliveries
 * are failed when they come up). A chunk left with no one keeps no body (its messages may be the
 * person's alone). The chunks are those of the person's deliveries, and those whose `to` names
 * their user id though the delivery was another customer's: one their LINE account was on
 * before an unlink moved it to them (erased alone, `linked: 'only'`). Those are looked for among
 * every body still kept: the nightly job drops those over 24 hours old, but a night it did not
 * run (a worker down at 04:55) or a 25-hour day must not keep a person's id. Locked in id order,
 * as two erasures may share chunks.
 */
async function scrubMulticasts(trx: Db, customerId: string, lineUids: string[]): Promise<void> {
  const { rows } = await sql<{ id: string; body: string; accepted: boolean; ours: boolean }>`
    with ours as (
      select multicast_request_id as id from delivery
      where customer_id = ${customerId} and multicast_request_id is not null
    ),
    naming as (
      select id from multicast_request
      where body is not null
        and exists (select 1 from unnest(${lineUids}::text[]) as u(uid) where strpos(body, u.uid) > 0)
    )
    select mr.id, mr.body, mr.line_request_id is not null as accepted,
      mr.id in (select id from ours) as ours
    from multicast_request mr
    where mr.body is not null and mr.id in (select id from ours union select id from naming)
    order by mr.id for update of mr`.execute(trx)
  for (const row of rows) {
    // Found by the text alone: the chunk is theirs only if its `to` names them.
    if (!row.ours && !namesAny(row.body, lineUids)) continue
    const body = row.accepted ? withoutUids(row.body, lineUids) : null
    if (body === row.body) continue
    await trx.updateTable('multicast_request').set({ body }).where('id', '=', row.id).execute()
  }
}

/** Whether the request's `to` holds one of these user ids (or, not JSON, it cannot be told). */
function namesAny(text: string, lineUids: string[]): boolean {
  try {
    const { to } = JSON.parse(text) as { to?: unknown }
    return Array.isArray(to) && to.some((u) => lineUids.includes(u))
  } catch {
    return true
  }
}

/** The request without these user ids in `to`; null when no one is left or it is not JSON. */
function withoutUids(text: string, lineUids: string[]): string | null {
  try {
    const request = JSON.parse(text) as { to?: unknown }
    const to = Array.isArray(request.to) ? request.to.filter((u) => !lineUids.includes(u)) : []
    return to.length > 0 ? JSON.stringify({ ...request, to }) : null
  } catch {
    // Not JSON: nothing of it can be kept safely.
    return null
  }
}
