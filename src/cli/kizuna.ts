#!/usr/bin/env node
import { Command } from 'commander'
import { keepCompiledCode } from '../platform/compile-cache.ts'

// The commands' modules, loaded below, start from the code compiled by an earlier run.
keepCompiledCode()

type Register = (program: Command) => void

/**
 * Each top-level command's module, loaded only when that command runs (every module brings its
 * own dependencies: a run loaded all of them, ~1.8 s, where one takes 0.5-1.3 s). `--help`, or a
 * name that is not a command, loads them all.
 */
const COMMANDS: Record<string, () => Promise<Register[]>> = {
  migrate: async () => [(await import('./migrate.command.ts')).registerMigrateCommand],
  stores: async () => [(await import('./stores.command.ts')).registerStoreCommands],
  // Registered with the stores: a key is a store's.
  keys: async () => [(await import('./stores.command.ts')).registerStoreCommands],
  customers: async () => [(await import('./customers.command.ts')).registerCustomerCommands],
  import: async () => [(await import('./import.command.ts')).registerImportCommands],
  flex: async () => [(await import('./flex.command.ts')).registerFlexCommands],
  deliveries: async () => [(await import('./deliveries.command.ts')).registerDeliveryCommands],
  'line-channel': async () => [
    (await import('./line-channel.command.ts')).registerLineChannelCommands,
  ],
  richmenu: async () => [
    (await import('./richmenu.command.ts')).registerRichMenuCommands,
    (await import('./richmenu-deploy.command.ts')).registerRichMenuDeployCommand,
  ],
}

const program = new Command()
  .name('kizuna')
  .description('Kizuna — self-hosted LINE-first CRM for retailers')
  .showHelpAfterError()

const name = process.argv[2] ?? ''
// Own names only: `kizuna constructor` found Object's constructor and failed with a TypeError.
const named = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
// A set: `stores` and `keys` share one module, which registers both once.
const registers = new Set<Register>()
for (const load of named ? [named] : Object.values(COMMANDS)) {
  for (const register of await load()) registers.add(register)
}
for (const register of registers) register(program)

await program.parseAsync(process.argv)
