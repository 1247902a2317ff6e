import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { messagingApi } from '@line/bot-sdk'
import { childPath } from '../flex/template-error.ts'
import {
  MENU_FOLDER_NAME,
  type RichMenuFileJson,
  richMenuFileSchema,
  type Segment,
} from './richmenu.schemas.ts'
import { checkRichMenuImage, checkRichMenuObject } from './richmenu-rules.ts'

export const richMenusDir = fileURLToPath(new URL('../../richmenus/', import.meta.url))

export type RichMenuImage = { file: string; bytes: Buffer; contentType: 'image/png' | 'image/jpeg' }

/** One folder of richmenus/, checked. */
export type RichMenuFile = {
  /** The folder's name. */
  name: string
  segments: Segment[]
  alias: string | null
  isDefault: boolean
  /** LINE's rich menu object, as it is sent. */
  richMenu: messagingApi.RichMenuRequest
  image: RichMenuImage
  /** sha256 of the menu (Kizuna's keys and LINE's object) and the image: what a deploy compares. */
  contentHash: string
}

export type RichMenuProblem = { file: string; field: string; message: string }

const IMAGES = [
  ['image.png', 'image/png'],
  ['image.jpg', 'image/jpeg'],
  ['image.jpeg', 'image/jpeg'],
] as const

/** menu.json of one folder, read and checked on its own (no image, no other folders). */
export type MenuJson = {
  name: string
  file: string
  /** Set when the file parsed against Kizuna's keys (LINE's rules may still have failed). */
  data: RichMenuFileJson | undefined
  problems: RichMenuProblem[]
  warnings: RichMenuProblem[]
}

/**
 * Every menu folder under `dir` with its problems. A folder with any problem is left out of
 * `menus`; a deploy refuses to run while there are problems. `warnings` (e.g. overlapping
 * areas) leave the menu in.
 */
export function loadRichMenus(dir = richMenusDir): {
  menus: RichMenuFile[]
  problems: RichMenuProblem[]
  warnings: RichMenuProblem[]
} {
  const menus: RichMenuFile[] = []
  const problems: RichMenuProblem[] = []
  const warnings: RichMenuProblem[] = []
  const folders = listMenuFolders(dir).map((name) => readMenuJson(dir, name))
  checkMenuSet(folders)
  for (const folder of folders) {
    warnings.push(...folder.warnings)
    const { name, data } = folder
    const image = data ? readMenuImage(dir, name, data, folder.problems) : undefined
    problems.push(...folder.problems)
    if (!data || !image || folder.problems.length > 0) continue
    const { segments, alias, default: isDefault, richMenu } = data
    menus.push({
      name,
      segments,
      alias: alias ?? null,
      isDefault,
      richMenu: richMenu as unknown as messagingApi.RichMenuRequest,
      image,
      contentHash: createHash('sha256')
        .update(JSON.stringify(data))
        .update('\0')
        .update(image.bytes)
        .digest('hex'),
    })
  }
  return { menus, problems, warnings }
}

/**
 * The aliases the menu's `richmenuswitch` areas open, sorted, once each: the LINE app links the
 * menu an alias names to whoever taps such an area.
 */
export function switchAliasesOf(menu: Pick<RichMenuFile, 'richMenu'>): string[] {
  const aliases = (menu.richMenu.areas ?? []).flatMap((a) =>
    a.action?.type === 'richmenuswitch' && 'richMenuAliasId' in a.action
      ? [String(a.action.richMenuAliasId)]
      : [],
  )
  return [...new Set(aliases)].sort()
}

/** The folder names under `dir`, sorted (files beside them, such as README.md, are not menus). */
export function listMenuFolders(dir = richMenusDir): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()
}

/** Reads `dir/name/menu.json` and checks it against Kizuna's keys and LINE's rules. */
export function readMenuJson(dir: string, name: string): MenuJson {
  const file = join(dir, name, 'menu.json')
  const out: MenuJson = { name, file, data: undefined, problems: [], warnings: [] }
  const add = (field: string, message: string) => out.problems.push({ file, field, message })
  if (!MENU_FOLDER_NAME.test(name)) {
    add(
      '(folder)',
      `"${name}" is not a menu name: use 1–32 of a-z, 0-9 and -, starting with a letter or digit`,
    )
  }
  if (!existsSync(file)) {
    add('(file)', 'a menu folder needs menu.json')
    return out
  }
  let json: unknown
  try {
    json = JSON.parse(readFileSync(file, 'utf8'))
  } catch (error) {
    add('(file)', `not JSON: ${error instanceof Error ? error.message : String(error)}`)
    return out
  }
  const parsed = richMenuFileSchema.safeParse(json)
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const at = issue.path.reduce<string>(
        (path, key) => childPath(path, typeof key === 'symbol' ? String(key) : key),
        '',
      )
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          add(childPath(at, key), 'is not a menu.json key; use segments, alias, default, richMenu')
        }
      } else add(at || '(file)', issue.message)
    }
    return out
  }
  out.data = parsed.data
  const checked = checkRichMenuObject(parsed.data.richMenu)
  for (const p of checked.problems) add(p.field, p.message)
  for (const w of checked.warnings) out.warnings.push({ file, ...w })
  return out
}

/** The folder's one image, checked against the menu's size; problems go to `problems`. */
function readMenuImage(
  dir: string,
  name: string,
  data: RichMenuFileJson,
  problems: RichMenuProblem[],
): RichMenuImage | undefined {
  const found = IMAGES.filter(([f]) => existsSync(join(dir, name, f)))
  const [first] = found
  if (!first) {
    problems.push({
      file: join(dir, name),
      field: '(image)',
      message: `a menu folder needs image.png or image.jpg (draw one: kizuna richmenu draw ${name})`,
    })
    return undefined
  }
  if (found.length > 1) {
    problems.push({
      file: join(dir, name),
      field: '(image)',
      message: `has ${found.map(([f]) => f).join(' and ')}; keep one`,
    })
    return undefined
  }
  const file = join(dir, name, first[0])
  const image: RichMenuImage = { file, bytes: readFileSync(file), contentType: first[1] }
  const size = data.richMenu.size as { width: number; height: number } | undefined
  for (const message of checkRichMenuImage(image.bytes, image.contentType, size)) {
    problems.push({ file, field: '(image)', message })
  }
  return image
}

/**
 * Rules across folders: aliases unique, a segment claimed by one folder, one default at most,
 * and every `richmenuswitch` pointing at an alias some folder defines.
 */
function checkMenuSet(folders: MenuJson[]): void {
  const claim = (
    key: (data: RichMenuFileJson) => string[],
    field: string,
    what: (value: string) => string,
  ) => {
    const owners = new Map<string, MenuJson[]>()
    for (const folder of folders) {
      for (const value of folder.data ? key(folder.data) : []) {
        owners.set(value, [...(owners.get(value) ?? []), folder])
      }
    }
    for (const [value, claimants] of owners) {
      if (claimants.length < 2) continue
      for (const folder of claimants) {
        const others = claimants.filter((c) => c !== folder).map((c) => c.name)
        folder.problems.push({
          file: folder.file,
          field,
          message: `${what(value)} is also in ${others.join(', ')}; keep it in one menu`,
        })
      }
    }
  }
  claim(
    (d) => (d.alias ? [d.alias] : []),
    'alias',
    (v) => `alias "${v}"`,
  )
  claim(
    (d) => d.segments,
    'segments',
    (v) => `segment "${v}"`,
  )
  claim(
    (d) => (d.default ? ['default'] : []),
    'default',
    () => '"default": true',
  )
  const aliases = new Set(folders.flatMap((f) => (f.data?.alias ? [f.data.alias] : [])))
  for (const folder of folders) {
    const areas = folder.data?.richMenu.areas
    if (!Array.isArray(areas)) continue
    areas.forEach((area: { action?: { type?: unknown; richMenuAliasId?: unknown } }, i) => {
      const target = area?.action?.richMenuAliasId
      if (area?.action?.type !== 'richmenuswitch' || typeof target !== 'string') return
      if (aliases.has(target)) return
      folder.problems.push({
        file: folder.file,
        field: `richMenu.areas[${i}].action.richMenuAliasId`,
        message: `no menu has "alias": "${target}"; add it to the menu this tab opens`,
      })
    })
  }
}
