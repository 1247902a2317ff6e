import { type Kysely, sql } from 'kysely'

/**
 * A purchase's lines move into the purchase row as four parallel arrays (sku, name, quantity,
 * unit price; element i of each is line i + 1). Lines are written once with their purchase,
 * never changed on their own and always read through it, so a table of their own only cost:
 * a million lines meant a million heap rows, two index entries each and a foreign-key check
 * that locked the purchase row (Postgres took ~11 s for the lines of a 1M-line order import,
 * against ~4 s for the purchases with their lines in the row). The checks keep what the table's
 * columns kept: one entry per line in each array, no missing sku, quantity or price, quantity
 * above 0, price at least 0. The `sku` index goes too: "has this customer bought it" is asked
 * through the customer's purchases.
 *
 * The customer index leaves out purchases without a customer (unmatched online orders, found
 * through the pending-identity index instead); `customer_id = $1` implies it is not null.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table purchase
    add column line_skus text[] not null default '{}',
    add column line_names text[] not null default '{}',
    add column line_quantities integer[] not null default '{}',
    add column line_unit_prices integer[] not null default '{}'`.execute(db)
  await sql`update purchase p set line_skus = l.skus, line_names = l.names,
      line_quantities = l.quantities, line_unit_prices = l.prices
    from (select purchase_id, array_agg(sku order by line_no) as skus,
        array_agg(name order by line_no) as names,
        array_agg(quantity order by line_no) as quantities,
        array_agg(unit_price order by line_no) as prices
      from purchase_line group by purchase_id) l
    where l.purchase_id = p.id`.execute(db)
  await sql`alter table purchase
    alter column line_skus drop default, alter column line_names drop default,
    alter column line_quantities drop default, alter column line_unit_prices drop default,
    add constraint purchase_lines_check check (
      cardinality(line_names) = cardinality(line_skus)
      and cardinality(line_quantities) = cardinality(line_skus)
      and cardinality(line_unit_prices) = cardinality(line_skus)
      and array_position(line_skus, null) is null
      and 0 < all (line_quantities) and 0 <= all (line_unit_prices))`.execute(db)
  await sql`drop table purchase_line`.execute(db)
  await sql`drop index purchase_customer_id_purchased_at_idx`.execute(db)
  await sql`create index purchase_customer_id_purchased_at_idx on purchase
    (customer_id, purchased_at) where customer_id is not null`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index purchase_customer_id_purchased_at_idx`.execute(db)
  await sql`create index purchase_customer_id_purchased_at_idx on purchase
    (customer_id, purchased_at)`.execute(db)
  await sql`create table purchase_line (
    purchase_id uuid not null references purchase (id) on delete cascade,
    line_no integer not null,
    sku text not null,
    name text,
    quantity integer not null check (quantity > 0),
    unit_price integer not null check (unit_price >= 0),
    constraint purchase_line_pkey primary key (purchase_id, line_no))`.execute(db)
  await sql`create index purchase_line_sku_idx on purchase_line (sku)`.execute(db)
  await sql`insert into purchase_line (purchase_id, line_no, sku, name, quantity, unit_price)
    select p.id, l.n, l.sku, l.name, l.quantity, l.unit_price
    from purchase p, unnest(p.line_skus, p.line_names, p.line_quantities, p.line_unit_prices)
      with ordinality as l(sku, name, quantity, unit_price, n)`.execute(db)
  await sql`alter table purchase drop constraint purchase_lines_check,
    drop column line_skus, drop column line_names, drop column line_quantities,
    drop column line_unit_prices`.execute(db)
}
