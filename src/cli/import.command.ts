import type { Command } from 'commander'
import { importCustomersFile } from './import/customers.ts'
import { importOrdersFile } from './import/orders.ts'
import { importProductsFile } from './import/products.ts'
import { checkImportFile } from './import/read-records.ts'
import { withDb } from './with-db.ts'

/** Exit status of an import that went through its file but left rows out (reported by line). */
const ROWS_SKIPPED = 2

const EXIT_STATUS = `
Exit status: 0 every row imported; ${ROWS_SKIPPED} the file was imported but rows were skipped
(reported on stderr by line; fix them and import the file again: rows imported are then
counted unchanged); 1 the import stopped (Postgres went away, say: what was saved is said) or
refused the file (no header line, an unknown or doubled column, not UTF-8 text, a CSV quote
never closed, a bad argument).`

/** Sets the exit status of an import that left `notImported` rows out. */
function exitForSkipped(notImported: number): void {
  if (notImported > 0) process.exitCode = ROWS_SKIPPED
}

export function registerImportCommands(program: Command): void {
  const imports = program
    .command('import')
    .description(
      'bulk imports (bad rows are reported by line and field, and skipped: exit status 2)',
    )
    .addHelpText('afterAll', EXIT_STATUS)
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
        async (db, env) => exitForSkipped(await importCustomersFile(db, env, file)),
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
        async (db) => exitForSkipped(await importProductsFile(db, file)),
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
    .option(
      '--source <name>',
      'the shop system, for orders that do not name one (as recorded: in the same letter case)',
    )
    .action((file: string, opts: { source?: string }) =>
      withDb(
        async (db, env) => exitForSkipped(await importOrdersFile(db, env, file, opts)),
        () => checkImportFile(file, ['csv', 'ndjson']),
      ),
    )
}
