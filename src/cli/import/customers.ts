import { issueMissingMemberCards } from '../../cards/cards.service.ts'
import type { Env } from '../../config/env.ts'
import { customerImportRowSchema } from '../../customers/customer.schemas.ts'
import { importCustomerRow } from '../../customers/customer-import.service.ts'
import { RowError } from '../../customers/customer-row-match.ts'
import type { Database } from '../../platform/db.ts'
import { isRunAgainError } from '../../platform/errors.ts'
import { runAgainIfAborted } from '../../platform/run-again.ts'
import { relinkChangedCustomers } from '../relink.ts'
import { checkColumns } from './columns.ts'
import { reportBadRow, startProgress, summary } from './progress.ts'
import { formatOf, openRecords } from './read-records.ts'
import { parseRow } from './rows.ts'
import { stoppedAt } from './stopped.ts'

const CUSTOMER_COLUMNS = new Set<string>(customerImportRowSchema.keyof().options)

/**
 * `kizuna import customers FILE.csv`: one transaction per row; bad rows are skipped. Then the
 * customers of each batch of rows that have no member card get one (one transaction a batch).
 * When Postgres goes away or cannot write, or a batch's cards keep failing, the import stops,
 * saying what it saved before which line (stoppedAt; the relink is still queued for it). Answers
 * how many rows it skipped.
 */
export async function importCustomersFile(db: Database, env: Env, file: string): Promise<number> {
  const source = await openRecords(file, formatOf(file, ['csv']))
  const tally = { created: 0, updated: 0, unchanged: 0, skipped: 0 }
  let cardsIssued = 0
  const progress = startProgress(source.size, source.bytesRead)
  let columnsChecked = false
  let failure: unknown
  const stop = (line: number, cause: unknown) => {
    const { created, updated, unchanged, skipped } = tally
    const saved = { created, updated, unchanged, 'member cards issued': cardsIssued }
    return stoppedAt(line, cause, { what: 'rows', saved, reported: { skipped } })
  }
  try {
    for await (const items of source.records) {
      if (!columnsChecked) columnsChecked = checkColumns(source.header(), CUSTOMER_COLUMNS)
      const customerIds: string[] = []
      for (const item of items) {
        progress.tick()
        const row = parseRow(customerImportRowSchema, item)
        if (!row) {
          tally.skipped++
          continue
        }
        try {
          const warn = (field: string, message: string) =>
            reportBadRow(item.line, `warning: ${field}: ${message}`)
          const result = await importCustomerRow(db, env, row, warn)
          tally[result.outcome]++
          customerIds.push(result.customerId)
        } catch (error) {
          if (!(error instanceof RowError)) throw stop(item.line, error)
          reportBadRow(item.line, `${error.field}: ${error.message}`)
          tally.skipped++
        }
      }
      try {
        cardsIssued += await runAgainIfAborted(
          () => issueMissingMemberCards(db, customerIds, env.MEMBER_CARD_PREFIX),
          { again: isRunAgainError },
        )
      } catch (error) {
        // The batch's rows are saved; their cards are issued when the file is imported again.
        throw stop((items.at(-1)?.line ?? 0) + 1, error)
      }
    }
  } catch (error) {
    failure = error
  } finally {
    progress.stop()
  }
  if (failure === undefined) {
    console.log(`customers: ${summary({ ...tally, 'member cards issued': cardsIssued })}`)
  }
  // Identities attached here (a member card, a shop account) can change a friend's segment.
  if (tally.created + tally.updated > 0) await relinkChangedCustomers(env, 'import')
  if (failure !== undefined) throw failure
  return tally.skipped
}
