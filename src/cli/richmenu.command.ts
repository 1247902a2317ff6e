import { existsSync, writeFileSync } from 'node:fs'
import { basename, join, relative, resolve, sep } from 'node:path'
import type { Command } from 'commander'
import { type DrawableMenu, drawRichMenu } from '../richmenu/richmenu-draw.ts'
import {
  listMenuFolders,
  loadRichMenus,
  type RichMenuProblem,
  readMenuJson,
  richMenusDir,
} from '../richmenu/richmenu-files.ts'
import { runCommand } from './with-db.ts'

export function registerRichMenuCommands(program: Command): void {
  const richmenu = program
    .command('richmenu')
    .description('rich menus in richmenus/ (one folder per menu: menu.json + image)')
  richmenu
    .command('validate')
    .description(
      "check every menu against LINE's rules (size, areas, actions, image) and Kizuna's " +
        '(segments, aliases, default); one line per menu, exit 1 on any problem or when the ' +
        'folder has no menus',
    )
    .option('--dir <dir>', 'the menus folder', richMenusDir)
    .action((opts: { dir: string }) =>
      runCommand(() => {
        const dir = resolve(opts.dir)
        // A mistyped --dir would otherwise pass as "0 menus, 0 with errors".
        if (!existsSync(dir)) throw new Error(`no folder ${dir}`)
        const { problems, warnings } = loadRichMenus(dir)
        const names = listMenuFolders(dir)
        // An empty bind mount would pass as "0 menus, 0 with errors", and a deploy refuses it.
        if (names.length === 0) {
          throw new Error(
            `no menus in ${dir}: a menu is a folder with menu.json and its image ` +
              '(richmenus/README.md)',
          )
        }
        for (const name of names) {
          const mine = problems.filter((p) => folderOf(dir, p) === name)
          const notes = warnings.filter((p) => folderOf(dir, p) === name)
          const warn = notes.length > 0 ? `  warning: ${describe(notes)}` : ''
          console.log(
            mine.length === 0 ? `ok    ${name}${warn}` : `FAIL  ${name}  ${describe(mine)}${warn}`,
          )
        }
        const failed = names.filter((n) => problems.some((p) => folderOf(dir, p) === n)).length
        console.error(`${names.length} menus, ${failed} with errors`)
        if (failed > 0) process.exitCode = 1
      }),
    )
  richmenu
    .command('draw')
    .description(
      "draw a placeholder image from a menu's areas (each a rectangle with its label) at the " +
        "menu's size, as <dir>/<name>/image.png; prints its path",
    )
    .argument('<name>', 'the menu folder')
    .option('--dir <dir>', 'the menus folder', richMenusDir)
    .option('--out <file>', 'where to write the PNG (default: <dir>/<name>/image.png)')
    .option('--force', 'replace an existing image')
    .action((name: string, opts: { dir: string; out?: string; force?: boolean }) =>
      runCommand(() => {
        const dir = resolve(opts.dir)
        const names = listMenuFolders(dir)
        if (!names.includes(name)) {
          throw new Error(`no menu "${name}" in ${dir}; the menus there: ${names.join(', ')}`)
        }
        const menu = readMenuJson(dir, name)
        if (!menu.data || menu.problems.length > 0) {
          throw new Error(`${menu.file}: fix these first: ${describe(menu.problems)}`)
        }
        const out = resolve(opts.out ?? join(dir, name, 'image.png'))
        if (existsSync(out) && !opts.force) {
          throw new Error(`${out} exists; pass --force to replace it`)
        }
        const others = ['image.jpg', 'image.jpeg'].filter((f) => existsSync(join(dir, name, f)))
        if (!opts.out && others.length > 0) {
          throw new Error(`${join(dir, name)} already has ${others.join(' and ')}; remove it first`)
        }
        writeFileSync(out, drawRichMenu(menu.data as unknown as DrawableMenu))
        console.log(out)
      }),
    )
}

/** The menu folder a problem belongs to. */
function folderOf(dir: string, p: RichMenuProblem): string {
  return relative(dir, p.file).split(sep)[0] ?? ''
}

/** `menu.json richMenu.areas[3].action.label: message; …`, as one line. */
function describe(problems: RichMenuProblem[]): string {
  return problems.map((p) => `${basename(p.file)} ${p.field}: ${p.message}`).join('; ')
}
