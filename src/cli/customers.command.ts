import type { Command } from 'commander'
import { z } from 'zod'
import { eraseCustomer } from '../customers/erase.service.ts'
import { refreshSpendSinceLastRun } from '../maintenance/refresh-spend.service.ts'
import { UsageError, withDb } from './with-db.ts'

export function registerCustomerCommands(program: Command): void {
  const customers = program.command('customers').description('customers (members)')
  customers
    .command('erase')
    .description(
      'erase a customer on request (APPI / GDPR): personal data and identities removed, ' +
        'card numbers kept only as tombstones (scans answer 410), purchases kept anonymised',
    )
    .argument('<id>', 'customer id (uuid)')
    .action((id: string) =>
      withDb(
        async (db) => {
          const result = await eraseCustomer(db, id)
          const note = result.customerId === id ? '' : ` (merged into ${result.customerId})`
          console.log(
            result.alreadyErased
              ? `customer ${result.customerId}${note} was already erased; checked again`
              : `erased customer ${result.customerId}${note}`,
          )
        },
        () => {
          if (!z.uuid().safeParse(id).success) throw new UsageError(`<id>: not a uuid: ${id}`)
        },
      ),
    )
  customers
    .command('refresh-spend')
    .description(
      'recompute 12-month spend and tier for customers whose purchases aged out (and every tier, when the thresholds changed)',
    )
    .option('--since <date>', 'the previous run (ISO 8601); default: the last successful run')
    .action((opts: { since?: string }) =>
      withDb(
        async (db, env) => {
          const since = opts.since ? new Date(opts.since) : undefined
          const result = await refreshSpendSinceLastRun(db, env, { now: new Date(), since })
          const retiered =
            result.retiered === null ? '' : `; thresholds changed: ${result.retiered} tiers re-set`
          console.log(
            `${result.changed} customers updated since ${result.since.toISOString()}${retiered}`,
          )
        },
        () => {
          if (opts.since && Number.isNaN(new Date(opts.since).getTime())) {
            throw new UsageError('--since: not a date')
          }
        },
      ),
    )
}
