#!/usr/bin/env node
import { Command } from 'commander'
import { registerCustomerCommands } from './customers.command.ts'
import { registerDeliveryCommands } from './deliveries.command.ts'
import { registerFlexCommands } from './flex.command.ts'
import { registerImportCommands } from './import.command.ts'
import { registerMigrateCommand } from './migrate.command.ts'
import { registerRichMenuCommands } from './richmenu.command.ts'
import { registerRichMenuDeployCommand } from './richmenu-deploy.command.ts'
import { registerStoreCommands } from './stores.command.ts'

const program = new Command()
  .name('kizuna')
  .description('Kizuna — self-hosted LINE-first CRM for retailers')
  .showHelpAfterError()

registerMigrateCommand(program)
registerStoreCommands(program)
registerCustomerCommands(program)
registerImportCommands(program)
registerFlexCommands(program)
registerDeliveryCommands(program)
registerRichMenuCommands(program)
registerRichMenuDeployCommand(program)

await program.parseAsync(process.argv)
