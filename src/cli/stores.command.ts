import type { Command } from 'commander'
import { createApiKey, SCOPES, type Scope } from '../auth/api-key.service.ts'
import { checkInput, describeFields } from '../platform/input.ts'
import { findStoreByCode, insertStore, listStores } from '../stores/store.repo.ts'
import { newStoreSchema } from '../stores/store.schemas.ts'
import { UsageError, withDb } from './with-db.ts'

export function registerStoreCommands(program: Command): void {
  const stores = program.command('stores').description('stores (registers send scans as a store)')
  stores
    .command('add')
    .description('add a store')
    .requiredOption('--code <code>', 'store code, e.g. S001')
    .requiredOption('--name <name>', 'store name, e.g. Shibuya')
    .action((opts: { code: string; name: string }) =>
      withDb(async (db) => {
        const checked = checkInput(newStoreSchema, opts)
        if (!checked.ok) throw new UsageError(describeFields(checked.fields))
        const store = await insertStore(db, checked.data)
        if (!store) throw new UsageError(`store ${checked.data.code} already exists`)
        console.log(`added store ${store.code} (${store.name})`)
      }),
    )
  stores
    .command('list')
    .description('list stores')
    .action(() =>
      withDb(async (db) => {
        for (const s of await listStores(db)) console.log(`${s.code}\t${s.name}`)
      }),
    )

  const keys = program.command('keys').description('API keys for registers, imports and admins')
  keys
    .command('create')
    .description('create an API key; prints it once, as the last line')
    .option('--store <code>', 'the store the key acts for (needed for scope pos)')
    .requiredOption('--scope <scopes>', `comma-separated: ${SCOPES.join(', ')}`)
    .option('--label <label>', 'a note to recognise the key by')
    .action((opts: { store?: string; scope: string; label?: string }) =>
      withDb(async (db) => {
        const scopes = opts.scope.split(',').map((s) => s.trim())
        const bad = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s))
        if (bad.length > 0 || scopes.length === 0) {
          throw new UsageError(`--scope: unknown scope ${bad.join(', ')}; use ${SCOPES.join(', ')}`)
        }
        let storeId: string | null = null
        if (opts.store) {
          const store = await findStoreByCode(db, opts.store)
          if (!store) throw new UsageError(`--store: no store with code ${opts.store}`)
          storeId = store.id
        } else if (scopes.includes('pos')) {
          throw new UsageError('--store: a key with scope pos must belong to a store')
        }
        const { key } = await createApiKey(db, {
          storeId,
          scopes: scopes as Scope[],
          label: opts.label,
        })
        console.error('The key is shown once. Store it now; Kizuna keeps only its hash.')
        console.log(key)
      }),
    )
}
