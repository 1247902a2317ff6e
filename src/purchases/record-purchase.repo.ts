import { type RawBuilder, sql } from 'kysely'
import { survivorCtes, survivorCut } from '../customers/surviving-customer.repo.ts'
import type { Db } from '../platform/db.ts'
import { executePreparedText, PREPARE } from '../platform/prepared.ts'
import {
  lineArrays,
  type PurchaseLine,
  type PurchaseRow,
  pointsPlus,
  type TierThreshold,
  tierFor,
} from './purchase.repo.ts'

/**
 * A coupon is usable on a sale made while it existed and had not expired: issued by the purchase
 * time (a backdated receipt cannot use one issued after the sale) and expiring after it (an
 * offline register replaying yesterday's sale uses a coupon valid then, expired since). The
 * register's clock may run a little slow: a coupon issued up to this long after the purchase
 * time is taken too (a welcome coupon shown at the till as soon as it came), which gives a
 * backdated receipt nothing a receipt dated now would not have.
 */
const COUPON_ISSUE_SKEW = '1 hour'

/** What recordPurchaseOnce found and did; `purchase_id` null means nothing was written. */
export type RecordOutcome = {
  purchase_id: string | null
  /** The register's answer (ScanResponse), when asked for and the purchase was written. */
  result: unknown
  /** The customer found and locked (null: none, or no customer asked for). */
  customer_id: string | null
  via: string | null
  hop: number | null
  /** The coupon `start` found the customer by (used with the others). */
  coupon: string | null
  /** Every coupon code to use: the listed ones and `coupon`. */
  codes: string[]
  erased: boolean | null
  merged_into_id: string | null
  /** The walk was cut short (survivorCut): a chain longer than MAX_MERGE_HOPS. */
  cut: boolean | null
  /** The customer row changed after this statement's snapshot was taken: run it again. */
  stale: boolean | null
  /** The balance before this purchase. */
  points: number | null
  /**
   * Written, and the customer's first purchase or a new tier: what a rich menu's segment
   * (member, vip) follows. Null when nothing was written or no customer.
   */
  segment_inputs_changed: boolean | null
  /** The listed coupons that are usable (locked for this purchase). */
  usable_codes: string[] | null
  ok: boolean
  /** The post-purchase follow-up delivery written with the purchase (asked for, and created). */
  follow_up_id: string | null
  follow_up_send_after: Date | null
}

/**
 * Records a purchase in ONE statement (atomic without a transaction): finds the customer
 * (`start`: at most one row of customer_id, via, coupon, followed through merges), locks it and the
 * coupons listed, and only when every guard holds (customer live and unchanged since the
 * snapshot, `points >= pointsUsed`, every coupon this customer's, unused, and issued and not
 * expired at the purchase time: COUPON_ISSUE_SKEW; found `via` a coupon, no points and no coupon
 * but that one) inserts the purchase with its lines once per
 * (channel, source, external_id) and, only if inserted, the coupons' use, the ledger rows and the
 * customer's points, stats, spend_12m and tier.
 * The new points, spend and tier are computed once (CTE calc) and used both for the customer
 * row and for the stored answer. The 12-month spend is the row's, plus this purchase: the
 * register never sums purchase rows (reading them was most of the scan's disk reads), and
 * refreshStaleSpend takes out what ages past 365 days. With `followUp`, the same statement writes the purchase's
 * follow-up delivery (`post-purchase:<purchase id>`, due `delaySeconds` after now(), not after
 * the purchase time: a receipt replayed from an offline register still waits the full delay). It
 * is `marketing`: it recommends products, which is advertising, so marketing consent (by email,
 * only once the person agreed), quiet hours and the weekly cap apply to it.
 * The caller reads the outcome, throws or replays, and queues the follow-up after commit.
 */
export async function recordPurchaseOnce(
  db: Db,
  opts: {
    start: RawBuilder<unknown> | null
    row: PurchaseRow
    lines: PurchaseLine[]
    couponCodes: string[]
    ledger: { delta: number; reason: string }[]
    thresholds: TierThreshold[]
    withResult: boolean
    followUp?: { delaySeconds: number } | null
  },
) {
  const r = opts.row
  const lines = lineArrays(opts.lines)
  const at = sql`${r.purchased_at}::timestamptz`
  const spend = sql`calc_spend.spend`
  const start =
    opts.start ??
    sql`select null::uuid as customer_id, null::text as via, null::text as coupon
      where false`
  const hasCustomer = opts.start !== null
  const coupons = sql`(select coalesce(jsonb_agg(jsonb_build_object('code', u.code,
      'title', u.title, 'discountYen', u.discount_yen,
      'expiresAt', to_char(u.expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
      order by u.expires_at asc nulls last), '[]'::jsonb) from (
    select c.code, c.title, c.discount_yen, c.expires_at from coupon c
    where c.customer_id = calc.id and c.used_at is null
      and (c.expires_at is null or c.expires_at > now())
      and not exists (select 1 from cup_lock where cup_lock.code = c.code)
    order by c.expires_at asc nulls last
    limit 20) u)`
  const result = opts.withResult
    ? sql`jsonb_build_object(
        'customer', jsonb_build_object('id', calc.id, 'displayName', calc.display_name,
          'tier', calc.tier, 'points', calc.points, 'coupons', ${coupons}),
        'purchase', jsonb_build_object('id', ${r.id}::uuid, 'total', ${r.total}::int,
          'pointsEarned', ${r.points_earned}::int, 'pointsUsed', ${r.points_used}::int,
          'couponsUsed', (select coalesce(jsonb_agg(code order by code collate "C"), '[]'::jsonb)
            from cup_lock),
          'points', calc.points, 'replayed', false))`
    : sql`null::jsonb`
  const followUp = opts.followUp
    ? sql`,
    fu as (
      insert into delivery (dedupe_key, kind, category, customer_id, template_id, vars, send_after)
      select 'post-purchase:' || ins.id, 'post-purchase', 'marketing', locked.id,
        'purchase-follow-up', jsonb_build_object('purchaseId', ins.id),
        now() + ${opts.followUp.delaySeconds}::int * interval '1 second'
      from ins cross join locked
      on conflict (dedupe_key) do nothing
      returning id, send_after
    )`
    : sql``
  const followUpOut = opts.followUp
    ? sql`(select id from fu) as follow_up_id, (select send_after from fu) as follow_up_send_after`
    : sql`null::uuid as follow_up_id, null::timestamptz as follow_up_send_after`
  const query = sql<RecordOutcome>`
    with recursive start as (${start}),
    ${survivorCtes(sql`select customer_id, via from start`, { carry: ['via'], stopAtErased: true })},
    codes as (
      select distinct code from unnest(${opts.couponCodes}::text[]
        || array(select coupon from start where coupon is not null)) as code
    ),
    snap as (select c.xmin::text as x from customer c where c.id = (select id from survivor)),
    locked as (
      select c.id, c.points, c.merged_into_id, c.erased_at, c.display_name, c.spend_12m,
        c.purchase_count, c.tier, c.xmin::text as x
      from customer c where c.id = (select id from survivor)
      for update
    ),
    cup_lock as (
      select cp.code from coupon cp
      where cp.code in (select code from codes)
        and cp.customer_id = (select id from locked) and cp.used_at is null
        and (cp.expires_at is null or cp.expires_at > ${at})
        and cp.created_at <= ${at} + ${COUPON_ISSUE_SKEW}::interval
      for update of cp
    ),
    status as (
      select l.id, l.points, l.erased_at is not null as erased, l.merged_into_id,
        l.x is distinct from (select x from snap) as stale,
        array(select code from cup_lock) as usable_codes,
        case when ${hasCustomer}::boolean then
          l.id is not null and l.erased_at is null and l.merged_into_id is null
          and l.x is not distinct from (select x from snap)
          and l.points >= ${r.points_used}::int
          and (select count(*) from cup_lock) = (select count(*) from codes)
          /* Found by a coupon: that coupon is all the receipt may use (couponScanRefusal). */
          and ((select via from survivor) is distinct from 'coupon' or (${r.points_used}::int = 0
            and not exists (select 1 from codes where code is distinct from (select coupon from start))))
        else true end as ok
      from (select 1) one left join locked l on true
    ),
    calc as (
      /* The 12-month spend as kept on the row (refreshStaleSpend takes out what ages past 365
         days), plus this purchase when it is inside the window. */
      select l.id, l.display_name,
        ${pointsPlus(sql`l.points`, sql`${r.points_earned - r.points_used}::int`)} as points,
        calc_spend.spend, ${tierFor(spend, opts.thresholds)} as tier
      from locked l cross join lateral (select (l.spend_12m
          + case when ${at} > now() - interval '365 days' then ${r.total}::int else 0 end
        )::bigint as spend) calc_spend
    ),
    ins as (
      insert into purchase (id, customer_id, channel, source, external_id, store_id, register_id,
        purchased_at, total, points_earned, points_used, pending_identity_kind,
        pending_identity_value, result, line_skus, line_names, line_quantities, line_unit_prices)
      select ${r.id}::uuid, (select id from locked), ${r.channel}, ${r.source}, ${r.external_id},
        ${r.store_id}::uuid, ${r.register_id}, ${at}, ${r.total}::int, ${r.points_earned}::int,
        ${r.points_used}::int, ${r.pending_identity_kind}, ${r.pending_identity_value},
        (select ${result} from (select 1) one left join calc on true),
        ${lines.skus}::text[], ${lines.names}::text[], ${lines.quantities}::int[],
        ${lines.unitPrices}::int[]
      from status where status.ok
      on conflict (channel, source, external_id) do nothing
      returning id, result
    ),
    cup as (
      update coupon set used_at = now(), used_purchase_id = ins.id
      from ins
      where coupon.code in (select code from cup_lock)
    ),
    led as (
      insert into points_ledger (customer_id, delta, reason, purchase_id)
      select locked.id, l.delta, l.reason, ins.id
      from ins cross join locked cross join jsonb_to_recordset(${JSON.stringify(opts.ledger)}::jsonb)
        as l(delta int, reason text)
    ),
    upd as (
      update customer set
        points = calc.points,
        first_purchase_at = least(first_purchase_at, ${at}),
        last_purchase_at = greatest(last_purchase_at, ${at}),
        purchase_count = purchase_count + 1,
        total_spent = total_spent + ${r.total}::int,
        spend_12m = calc.spend,
        tier = calc.tier,
        updated_at = now()
      from calc, ins
      where customer.id = calc.id
    )${followUp}
    select (select id from ins) as purchase_id, (select result from ins) as result,
      st.id as customer_id, (select via from survivor) as via, (select hop from survivor) as hop,
      ${survivorCut} as cut, (select coupon from start) as coupon, array(select code from codes) as codes,
      st.erased, st.merged_into_id, st.stale, st.points, st.usable_codes, st.ok,
      (select l.purchase_count = 0 or l.tier is distinct from calc.tier
        from locked l cross join calc where exists (select from ins)) as segment_inputs_changed,
      ${followUpOut}
    from status st`.compile(db)
  const text = compacted(query.sql)
  // Planned once per connection (generic plan) outside a transaction: re-planning it cost more
  // than running it (1.45 ms against 0.8 ms in the pos-scan benchmark).
  const { rows } = await executePreparedText(db, text, query.parameters)
  const row = rows[0] as RecordOutcome | undefined
  if (!row) throw new Error('recordPurchaseOnce returned no row')
  return row
}

/** The statement's texts (a handful of shapes), compacted once each. */
const texts = new Map<string, string>()

/** Comments and runs of white space out: every byte goes to Postgres when it is prepared. */
function compacted(sqlText: string): string {
  let text = texts.get(sqlText)
  if (!text) {
    text = PREPARE + sqlText.replace(/\/\*[^*]*\*\//g, ' ').replace(/\s+/g, ' ')
    if (texts.size >= 100) texts.clear()
    texts.set(sqlText, text)
  }
  return text
}
