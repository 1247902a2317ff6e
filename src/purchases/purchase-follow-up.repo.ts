import { sql } from 'kysely'
import { jsonArrayFrom } from 'kysely/helpers/postgres'
import type { Db } from '../platform/db.ts'

/** A purchase with its store, its customer's name and its lines (with product names): one query. */
export async function findFollowUpPurchase(db: Db, purchaseId: string) {
  return db
    .selectFrom('purchase')
    .leftJoin('store', 'store.id', 'purchase.store_id')
    .leftJoin('customer', 'customer.id', 'purchase.customer_id')
    .select((eb) => [
      'purchase.id',
      'purchase.customer_id',
      'purchase.source',
      'purchase.purchased_at',
      'purchase.total',
      'purchase.voided_at',
      'store.name as store_name',
      'customer.display_name',
      jsonArrayFrom(
        eb
          .selectFrom('purchase_line')
          .leftJoin('product', 'product.sku', 'purchase_line.sku')
          .select([
            'purchase_line.sku',
            'purchase_line.name',
            'purchase_line.quantity',
            'purchase_line.unit_price',
            'product.name as product_name',
          ])
          .whereRef('purchase_line.purchase_id', '=', 'purchase.id')
          .orderBy('purchase_line.line_no'),
      ).as('lines'),
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
      from purchase_line pl
      join product bought on bought.sku = pl.sku
      cross join lateral unnest(bought.related_skus) with ordinality as r(sku, ord)
      where pl.purchase_id = ${opts.purchaseId}
    ),
    firsts as (select sku, min(pos) as pos from related group by sku)
    select p.sku, p.name, p.price, p.image_url
    from firsts f join product p on p.sku = f.sku
    where not exists (
      select 1 from purchase_line owned join purchase op on op.id = owned.purchase_id
      where owned.sku = f.sku and op.customer_id = ${opts.customerId} and op.voided_at is null
    )
    order by f.pos
    limit ${opts.limit}`.execute(db)
  return rows
}
