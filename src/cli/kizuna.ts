#!/usr/bin/env node
import { Command } from 'commander'
import { registerMigrateCommand } from './migrate.command.ts'

const program = new Command()
  .name('kizuna')
  .description('Kizuna — self-hosted LINE-first CRM for retailers')
  .showHelpAfterError()

registerMigrateCommand(program)

await program.parseAsync(process.argv)
