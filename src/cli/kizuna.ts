#!/usr/bin/env node
import { Command } from 'commander'
import { registerMigrateCommand } from './migrate.command.ts'
import { registerStoreCommands } from './stores.command.ts'

const program = new Command()
  .name('kizuna')
  .description('Kizuna — self-hosted LINE-first CRM for retailers')
  .showHelpAfterError()

registerMigrateCommand(program)
registerStoreCommands(program)

await program.parseAsync(process.argv)
