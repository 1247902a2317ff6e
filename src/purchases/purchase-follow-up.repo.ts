import { sql } from 'kysely'
import type { Db } from '../platform/db.ts'

export type FollowUpLine = {
  sku: string
  name: string | null
  quantity: number
  unit_price: number
  product_name: string | null
}

/** A purchase with its store, its customer's name and its lines (with product names): one query. */
export async function findFollowUpPurchase(db: Db, purchaseId: string) {
  return db
    .selectFrom('purchase')
    .leftJoin('store', 'store.id', 'purchase.store_id')
    .leftJoin('customer', 'customer.id', 'purchase.customer_id')
    .select([
      'purchase.id',
      'purchase.customer_id',
      'purchase.source',
      'purchase.purchased_at',
      'purchase.total',
      'purchase.voided_at',
      'store.name as store_name',
      'customer.display_name',
      // The lines in order, with their products' names.
      sql<FollowUpLine[]>`(select coalesce(jsonb_agg(jsonb_build_object('sku', l.sku,
          'name', l.name, 'quantity', l.quantity, 'unit_price', l.unit_price,
          'product_name', product.name) order by l.n), '[]'::jsonb)
        from unnest(purchase.line_skus, purchase.line_names, purchase.line_quantities,
          purchase.line_unit_prices) with ordinality as l(sku, name, quantity, unit_price, n)
        left join product on product.sku = l.sku)`.as('lines'),
    ])
    .where('purchase.id', '=', purchaseId)
    .executeTakeFirst()
}

export type RecommendedProduct = {
  sku: string
  name: string
  price: number | null
  image_url: string | null
}

/**
 * The related products of a purchase's items, in order of appearance (line by line, each
 * product's related_skus in order), once each, existing products only, leaving out every sku the
 * customer already owns (a line of any of their purchases not voided, this one included).
 */
export async function findRecommendedProducts(
  db: Db,
  opts: { purchaseId: string; customerId: string; limit: number },
): Promise<RecommendedProduct[]> {
  const { rows } = await sql<RecommendedProduct>`
    with related as (
      select r.sku, row_number() over (order by pl.line_no, r.ord) as pos
      from purchase bp
      cross join unnest(bp.line_skus) with ordinality as pl(sku, line_no)
      join product bought on bought.sku = pl.sku
      cross join lateral unnest(bought.related_skus) with ordinality as r(sku, ord)
      where bp.id = ${opts.purchaseId}
    ),
    firsts as (select sku, min(pos) as pos from related group by sku)
    select p.sku, p.name, p.price, p.image_url
    from firsts f join product p on p.sku = f.sku
    where not exists (
      select 1 from purchase op
      where op.customer_id = ${opts.customerId} and op.voided_at is null
        and f.sku = any (op.line_skus)
    )
    order by f.pos
    limit ${opts.limit}`.execute(db)
  return rows
}
