import { type ProductImport, productImportSchema } from '../../catalogue/product.schemas.ts'
import { saveProducts } from '../../catalogue/product.service.ts'
import type { Database } from '../../platform/db.ts'
import { isRunAgainError } from '../../platform/errors.ts'
import { runAgainIfAborted } from '../../platform/run-again.ts'
import { checkColumns } from './columns.ts'
import { holdReports } from './held-reports.ts'
import { startProgress, summary } from './progress.ts'
import { formatOf, openRecords } from './read-records.ts'
import { checkRow } from './rows.ts'
import { stoppedAt } from './stopped.ts'

const BATCH = 500

const PRODUCT_COLUMNS = new Set<string>(productImportSchema.keyof().options)

/**
 * `kizuna import products FILE.csv|FILE.ndjson`: upsert by sku in batches; bad rows skipped. A
 * CSV header with an unknown column refuses the file before anything is written. A
 * batch Postgres aborted or gave up on (a deadlock, a lock or statement timeout) is run again;
 * when Postgres goes away or cannot write, or keeps giving up, the import stops, saying what it
 * saved before which line (stoppedAt). Bad rows are reported once the batches before them are
 * saved: a stop reports none after its line, which the next run reads again. Answers how many
 * rows it skipped.
 */
export async function importProductsFile(db: Database, file: string): Promise<number> {
  const source = await openRecords(file, formatOf(file, ['csv', 'ndjson']))
  const tally = { created: 0, updated: 0, unchanged: 0, skipped: 0 }
  const bad = holdReports(tally)
  const progress = startProgress(source.size, source.bytesRead)
  let batch: ProductImport[] = []
  /** The line of the batch's first product. */
  let first = Number.POSITIVE_INFINITY
  const flush = async () => {
    if (batch.length > 0) {
      const distinct = new Set(batch.map((p) => p.sku)).size
      try {
        const { inserted, updated } = await runAgainIfAborted(
          () => saveProducts(db, batch, source.columns()),
          {
            again: isRunAgainError,
          },
        )
        tally.created += inserted
        tally.updated += updated
        tally.unchanged += distinct - inserted - updated
      } catch (error) {
        bad.stop(first)
        const { skipped, ...saved } = tally
        throw stoppedAt(first, error, { what: 'products', saved, reported: { skipped } })
      }
    }
    batch = []
    first = Number.POSITIVE_INFINITY
  }
  let columnsChecked = false
  try {
    for await (const items of source.records) {
      if (!columnsChecked) columnsChecked = checkColumns(source.header(), PRODUCT_COLUMNS)
      for (const item of items) {
        progress.tick()
        const checked = checkRow(productImportSchema, item)
        if (checked.error !== undefined) {
          bad.add(item.line, checked.error, 'skipped')
          // Nothing waits to be written before it: given now.
          if (batch.length === 0) bad.release(Number.POSITIVE_INFINITY)
          continue
        }
        if (batch.length === 0) first = item.line
        batch.push(checked.value)
        if (batch.length >= BATCH) {
          await flush()
          bad.release(Number.POSITIVE_INFINITY)
        }
      }
    }
    await flush()
  } finally {
    progress.stop()
    // After a stop, only what came before its line is still held.
    bad.release(Number.POSITIVE_INFINITY)
  }
  console.log(`products: ${summary(tally)}`)
  return tally.skipped
}
