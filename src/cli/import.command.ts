import type { Command } from 'commander'
import { importCustomersFile } from './import/customers.ts'
import { importOrdersFile } from './import/orders.ts'
import { importProductsFile } from './import/products.ts'
import { checkImportFile } from './import/read-records.ts'
import { withDb } from './with-db.ts'

export function registerImportCommands(program: Command): void {
  const imports = program
    .command('import')
    .description('bulk imports (bad rows are reported by line and field, and skipped)')
  imports
    .command('customers')
    .description(
      'create or update customers from a CSV with columns external_id, email, name, phone, ' +
        'birthday, member_card, legacy_card (an old plastic card), marketing_consent, tags ' +
        '(";"-separated, added to the customer\'s) (at least one of external_id, email, ' +
        'member_card, legacy_card, phone per row); customers without a member card get one ' +
        '(no welcome coupon); safe to re-run',
    )
    .argument('<file>', 'a .csv file')
    .action((file: string) =>
      withDb(
        (db, env) => importCustomersFile(db, env, file),
        () => checkImportFile(file, ['csv']),
      ),
    )
  imports
    .command('products')
    .description(
      'upsert the product catalogue by sku: sku, name, category, price, image_url (https), ' +
        'related_skus (";"-separated in CSV, an array in NDJSON), warranty_months',
    )
    .argument('<file>', 'a .csv, .ndjson or .jsonl file')
    .action((file: string) =>
      withDb(
        (db) => importProductsFile(db, file),
        () => checkImportFile(file, ['csv', 'ndjson']),
      ),
    )
  imports
    .command('orders')
    .description(
      'record online orders once per (source, order id). CSV: one row per line item with ' +
        'source, order_id, customer_external_id, customer_email, ordered_at, sku, name, ' +
        'quantity, unit_price, total (rows of one order next to each other; an order whose ' +
        'rows are split is skipped whole). NDJSON: one order per line, ' +
        'as POST /api/orders takes it',
    )
    .argument('<file>', 'a .csv, .ndjson or .jsonl file')
    .option('--source <name>', 'the shop system, for rows that do not name one')
    .action((file: string, opts: { source?: string }) =>
      withDb(
        (db, env) => importOrdersFile(db, env, file, opts),
        () => checkImportFile(file, ['csv', 'ndjson']),
      ),
    )
}
