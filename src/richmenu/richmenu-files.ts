import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { messagingApi } from '@line/bot-sdk'
import { richMenuFileSchema, type Segment } from './richmenu.schemas.ts'

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

/**
 * Every menu folder under `dir` with its problems. A folder with any problem is left out of
 * `menus`; a deploy refuses to run while there are problems.
 */
export function loadRichMenus(dir = richMenusDir): {
  menus: RichMenuFile[]
  problems: RichMenuProblem[]
} {
  const menus: RichMenuFile[] = []
  const problems: RichMenuProblem[] = []
  if (!existsSync(dir)) return { menus, problems }
  const names = readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()
  for (const name of names) {
    const file = join(dir, name, 'menu.json')
    const before = problems.length
    const add = (field: string, message: string, at = file) =>
      problems.push({ file: at, field, message })
    if (!existsSync(file)) {
      add('(file)', 'a menu folder needs menu.json')
      continue
    }
    let json: unknown
    try {
      json = JSON.parse(readFileSync(file, 'utf8'))
    } catch (error) {
      add('(file)', `not JSON: ${error instanceof Error ? error.message : String(error)}`)
      continue
    }
    const parsed = richMenuFileSchema.safeParse(json)
    if (!parsed.success) {
      for (const issue of parsed.error.issues) add(issue.path.join('.') || '(file)', issue.message)
      continue
    }
    const found = IMAGES.find(([f]) => existsSync(join(dir, name, f)))
    if (!found) {
      add('(image)', 'a menu folder needs image.png or image.jpg', join(dir, name))
      continue
    }
    const image: RichMenuImage = {
      file: join(dir, name, found[0]),
      bytes: readFileSync(join(dir, name, found[0])),
      contentType: found[1],
    }
    if (problems.length > before) continue
    const { segments, alias, default: isDefault, richMenu } = parsed.data
    menus.push({
      name,
      segments,
      alias: alias ?? null,
      isDefault,
      richMenu: richMenu as unknown as messagingApi.RichMenuRequest,
      image,
      contentHash: createHash('sha256')
        .update(JSON.stringify(parsed.data))
        .update('\0')
        .update(image.bytes)
        .digest('hex'),
    })
  }
  return { menus, problems }
}
