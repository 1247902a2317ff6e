import type { Command } from 'commander'
import {
  apiKeyLabelSchema,
  createApiKey,
  type KeyRef,
  listApiKeys,
  prefixOfKey,
  revokeApiKey,
  SCOPES,
  type Scope,
} from '../auth/api-key.service.ts'
import { AppError, describeFields } from '../platform/errors.ts'
import { checkInput } from '../platform/input.ts'
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
      withDb(
        async (db) => {
          const store = await insertStore(db, parseStore(opts))
          if (!store) throw new UsageError(`store ${opts.code.trim()} already exists`)
          console.log(`added store ${store.code} (${store.name})`)
        },
        () => parseStore(opts),
      ),
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
    .option(
      '--store <code>',
      'the store a pos key scans as (needed for scope pos); on an import or admin key only a note keys list shows',
    )
    .requiredOption('--scope <scopes>', `comma-separated: ${SCOPES.join(', ')}`)
    .option('--label <label>', 'a note to recognise the key by')
    .action((opts: { store?: string; scope: string; label?: string }) =>
      withDb(
        async (db) => {
          const { scopes, label } = parseKeyOptions(opts)
          let storeId: string | null = null
          if (opts.store) {
            const store = await findStoreByCode(db, opts.store)
            if (!store) throw new UsageError(`--store: no store with code ${opts.store}`)
            storeId = store.id
          }
          const { key } = await createApiKey(db, { storeId, scopes, label })
          console.error('The key is shown once. Store it now; Kizuna keeps only its hash.')
          console.log(key)
        },
        () => parseKeyOptions(opts),
      ),
    )
  keys
    .command('list')
    .description(
      'list API keys: prefix, store, scopes, label, created, last used, live or revoked (UTC)',
    )
    .action(() =>
      withDb(async (db) => {
        const day = (d: Date | null) => (d ? d.toISOString().slice(0, 16).replace('T', ' ') : '-')
        for (const k of await listApiKeys(db)) {
          const cells = [
            `kz_${k.prefix}_…`,
            k.storeCode ?? '-',
            k.scopes.join(','),
            k.label ?? '-',
            day(k.createdAt),
            day(k.lastUsedAt),
            k.revokedAt ? `revoked ${day(k.revokedAt)}` : 'live',
          ]
          console.log(cells.join('\t'))
        }
      }),
    )
  keys
    .command('revoke')
    .description('revoke a key: requests with it are refused from now on')
    .argument(
      '<key>',
      'the whole key, or the 8 characters after kz_ (as keys list shows them) when no other live key has them',
    )
    .action((key: string) =>
      withDb(
        async (db) => {
          let prefix: string
          try {
            prefix = await revokeApiKey(db, parseKeyRef(key))
          } catch (error) {
            if (error instanceof AppError) throw new UsageError(error.message)
            throw error
          }
          console.log(`revoked kz_${prefix}_…`)
        },
        () => parseKeyRef(key),
      ),
    )
}

function parseStore(opts: { code: string; name: string }) {
  const checked = checkInput(newStoreSchema, opts)
  if (!checked.ok) throw new UsageError(describeFields(checked.fields))
  return checked.data
}

/** keys create's scopes with --store, and its label, checked before any database opens. */
function parseKeyOptions(opts: { store?: string; scope: string; label?: string }): {
  scopes: Scope[]
  label?: string
} {
  const scopes = parseScopes(opts.scope)
  if (!opts.store && scopes.includes('pos')) {
    throw new UsageError('--store: a key with scope pos must belong to a store')
  }
  if (opts.label === undefined) return { scopes }
  const label = checkInput(apiKeyLabelSchema, opts.label)
  if (!label.ok) {
    throw new UsageError(`--label: ${label.fields.map((f) => f.message).join('; ')}`)
  }
  return { scopes, label: label.data }
}

function parseScopes(scope: string): Scope[] {
  const scopes = scope.split(',').map((s) => s.trim())
  const bad = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s))
  if (bad.length > 0 || scopes.length === 0) {
    throw new UsageError(`--scope: unknown scope ${bad.join(', ')}; use ${SCOPES.join(', ')}`)
  }
  // A register's key sits at the register; admin and import reach every customer (their routes
  // take no store), so one key with both would put every customer behind the till.
  const wide = scopes.filter((s) => s !== 'pos')
  if (scopes.includes('pos') && wide.length > 0) {
    throw new UsageError(
      `--scope: pos cannot go with ${wide.join(', ')} in one key: a register's key is kept at ` +
        `the register, and ${wide.join(' and ')} ${wide.length > 1 ? 'reach' : 'reaches'} every ` +
        'customer whatever --store says. Create a separate key for each',
    )
  }
  return scopes as Scope[]
}

/**
 * A whole key, or its prefix alone, with kz_, or as keys list shows it (`kz_1a2b3c4d_…`). A key
 * cut short is refused: revoking by its prefix could revoke another key that shares it.
 */
function parseKeyRef(arg: string): KeyRef {
  if (prefixOfKey(arg)) return { key: arg }
  const prefix = arg.match(/^(?:kz_)?([0-9a-f]{8})(?:_(?:…|\.\.\.)?)?$/)?.[1]
  if (!prefix) {
    throw new UsageError(
      'KEY: paste the whole key, or only the 8 hex characters after kz_, e.g. 1a2b3c4d',
    )
  }
  return { prefix }
}
