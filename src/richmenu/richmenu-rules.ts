import { imageSize } from 'image-size'
import { checkAction, graphemeLength, maxChars } from '../flex/flex-limits.ts'
import {
  loadOpenApiValidator,
  messagingApiSpecPath,
  type ValidationDetail,
} from '../sandbox/openapi-validator.ts'
import {
  RICH_MENU_LIMITS as L,
  RICH_MENU_ACTION_REQUIRED,
  RICH_MENU_ACTION_TYPES,
} from './richmenu.schemas.ts'

/** One finding on a field of menu.json (`richMenu.areas[3].action.label`). */
export type FieldProblem = { field: string; message: string }

type Obj = Record<string, unknown>
type Bounds = { x: number; y: number; width: number; height: number }

const MENU_KEYS = ['size', 'selected', 'name', 'chatBarText', 'areas']

/**
 * LINE's rules on a rich menu object (LINE-API.md §3, §4) and LINE's OpenAPI `RichMenuRequest`
 * schema. `problems` make LINE refuse the menu; `warnings` are what LINE takes but is likely a
 * mistake (overlapping areas: LINE documents no rule, the first area drawn wins on a tap).
 */
export function checkRichMenuObject(richMenu: Obj): {
  problems: FieldProblem[]
  warnings: FieldProblem[]
} {
  const problems: FieldProblem[] = []
  const warnings: FieldProblem[] = []
  const add = (field: string, message: string) => problems.push({ field, message })
  const at = (key: string) => `richMenu.${key}`
  unknownKeys(richMenu, MENU_KEYS, 'richMenu', add)
  for (const key of MENU_KEYS) {
    if (richMenu[key] === undefined) add(at(key), 'is missing; LINE needs it')
  }
  if (richMenu.selected !== undefined && typeof richMenu.selected !== 'boolean') {
    add(at('selected'), 'must be true (the menu opens with the chat) or false')
  }
  for (const [key, max] of [
    ['name', L.nameMax],
    ['chatBarText', L.chatBarTextMax],
  ] as const) {
    const value = richMenu[key]
    if (value === undefined) continue
    if (typeof value !== 'string' || value.length === 0) add(at(key), 'must be non-empty text')
    else maxChars(value, at(key), max, add, graphemeLength)
  }
  const size = checkSize(richMenu.size, add)
  checkAreas(richMenu.areas, size, add, warnings)
  for (const d of schemaProblems(richMenu)) {
    const field = d.property ? `richMenu.${d.property}` : 'richMenu'
    if (!problems.some((p) => p.field === field)) add(field, `${d.message} (LINE's schema)`)
  }
  return { problems, warnings }
}

function checkSize(size: unknown, add: (f: string, m: string) => void) {
  if (size === undefined) return undefined
  if (!isObj(size)) {
    add('richMenu.size', 'must be {"width": …, "height": …} in pixels')
    return undefined
  }
  unknownKeys(size, ['width', 'height'], 'richMenu.size', add)
  const { width, height } = size
  let ok = true
  if (!isInt(width) || width < L.widthMin || width > L.widthMax) {
    add('richMenu.size.width', `must be a whole number from ${L.widthMin} to ${L.widthMax}`)
    ok = false
  }
  if (!isInt(height) || height < L.heightMin) {
    add('richMenu.size.height', `must be a whole number, at least ${L.heightMin}`)
    ok = false
  }
  if (!ok) return undefined
  const w = width as number
  const h = height as number
  if (w / h < L.ratioMin) {
    add(
      'richMenu.size',
      `width / height is ${(w / h).toFixed(2)}; LINE needs at least ${L.ratioMin} ` +
        `(lower the height to ${Math.floor(w / L.ratioMin)} or less; 2500×1686 and 2500×843 are usual)`,
    )
  }
  return { width: w, height: h }
}

function checkAreas(
  areas: unknown,
  size: { width: number; height: number } | undefined,
  add: (f: string, m: string) => void,
  warnings: FieldProblem[],
): void {
  if (areas === undefined) return
  if (!Array.isArray(areas) || areas.length < 1 || areas.length > L.areasMax) {
    add('richMenu.areas', `must be a list of 1 to ${L.areasMax} areas`)
    if (!Array.isArray(areas)) return
  }
  const placed: [number, Bounds][] = []
  areas.forEach((area: unknown, i) => {
    const at = `richMenu.areas[${i}]`
    if (!isObj(area)) {
      add(at, 'must be {"bounds": …, "action": …}')
      return
    }
    unknownKeys(area, ['bounds', 'action'], at, add)
    const bounds = checkBounds(area.bounds, `${at}.bounds`, size, add)
    if (bounds) placed.push([i, bounds])
    if (!isObj(area.action)) add(`${at}.action`, 'is missing; say what a tap does')
    else checkRichMenuAction(area.action, `${at}.action`, add)
  })
  for (let a = 0; a < placed.length; a++) {
    for (let b = a + 1; b < placed.length; b++) {
      const [i, p] = placed[a] as [number, Bounds]
      const [j, q] = placed[b] as [number, Bounds]
      if (
        p.x < q.x + q.width &&
        q.x < p.x + p.width &&
        p.y < q.y + q.height &&
        q.y < p.y + p.height
      ) {
        warnings.push({
          field: `richMenu.areas[${j}].bounds`,
          message: `overlaps areas[${i}]; a tap on the overlap may go to either`,
        })
      }
    }
  }
}

function checkBounds(
  bounds: unknown,
  at: string,
  size: { width: number; height: number } | undefined,
  add: (f: string, m: string) => void,
): Bounds | undefined {
  if (!isObj(bounds)) {
    add(at, 'is missing; give {"x", "y", "width", "height"} in pixels of the image')
    return undefined
  }
  unknownKeys(bounds, ['x', 'y', 'width', 'height'], at, add)
  let ok = true
  for (const key of ['x', 'y'] as const) {
    if (!isInt(bounds[key]) || (bounds[key] as number) < 0) {
      add(`${at}.${key}`, 'must be a whole number, 0 or more')
      ok = false
    }
  }
  for (const key of ['width', 'height'] as const) {
    if (!isInt(bounds[key]) || (bounds[key] as number) < 1) {
      add(`${at}.${key}`, 'must be a whole number, 1 or more')
      ok = false
    }
  }
  if (!ok) return undefined
  const b = bounds as Bounds
  if (size && b.x + b.width > size.width) {
    add(
      at,
      `reaches x=${b.x + b.width}, past the image's width ${size.width}; keep x + width ≤ ${size.width}`,
    )
  }
  if (size && b.y + b.height > size.height) {
    add(
      at,
      `reaches y=${b.y + b.height}, past the image's height ${size.height}; keep y + height ≤ ${size.height}`,
    )
  }
  return b
}

/** The keys of each action type in LINE's messaging-api.yml (Action's `type`, `label` and its own). */
const ACTION_KEYS: Record<(typeof RICH_MENU_ACTION_TYPES)[number], string[]> = {
  postback: ['type', 'label', 'data', 'displayText', 'text', 'inputOption', 'fillInText'],
  message: ['type', 'label', 'text'],
  uri: ['type', 'label', 'uri', 'altUri'],
  datetimepicker: ['type', 'label', 'data', 'mode', 'initial', 'max', 'min'],
  richmenuswitch: ['type', 'label', 'richMenuAliasId', 'data'],
  clipboard: ['type', 'label', 'clipboardText'],
}

/** An area's action: a type LINE takes in rich menus, its known and required keys, its limits. */
function checkRichMenuAction(action: Obj, at: string, add: (f: string, m: string) => void): void {
  const type = action.type
  if (!(RICH_MENU_ACTION_TYPES as readonly unknown[]).includes(type)) {
    add(
      `${at}.type`,
      `must be one of ${RICH_MENU_ACTION_TYPES.join(', ')} (is ${JSON.stringify(type)})`,
    )
    return
  }
  // LINE drops a key it does not know without a word: a misspelt `labl` or `displaytext` is lost.
  unknownKeys(action, ACTION_KEYS[type as keyof typeof ACTION_KEYS], at, add)
  for (const key of RICH_MENU_ACTION_REQUIRED[type as keyof typeof RICH_MENU_ACTION_REQUIRED]) {
    if (typeof action[key] !== 'string')
      add(`${at}.${key}`, `is missing; a ${type} action needs it`)
  }
  if (type === 'richmenuswitch') {
    const alias = action.richMenuAliasId
    if (typeof alias === 'string' && !/^[a-z0-9_-]{1,32}$/.test(alias)) {
      add(`${at}.richMenuAliasId`, `must be 1–${L.richMenuAliasIdMax} of a-z, 0-9, _ and -`)
    }
  }
  checkAction(action, at, add, 'richmenu')
}

let validate: ((body: unknown) => ValidationDetail[]) | undefined

/** The create-rich-menu body against LINE's messaging-api.yml (loaded once). */
function schemaProblems(richMenu: Obj): ValidationDetail[] {
  if (!validate) {
    const api = loadOpenApiValidator(messagingApiSpecPath)
    const create = api.findOperation('POST', '/v2/bot/richmenu')
    if (!create) throw new Error('the vendored messaging-api.yml has no create-rich-menu operation')
    validate = (body) => api.validateBody(create.op, body)
  }
  return validate(richMenu)
}

/**
 * The image file: PNG or JPEG by its first bytes (and matching its name), at most 1 MB, exactly
 * the menu's size in pixels.
 */
export function checkRichMenuImage(
  bytes: Buffer,
  contentType: 'image/png' | 'image/jpeg',
  size: { width: number; height: number } | undefined,
): string[] {
  const problems: string[] = []
  const actual = sniff(bytes)
  if (!actual) return ['is neither PNG nor JPEG data; export the image as PNG or JPEG']
  if (actual !== contentType) {
    const want = actual === 'image/png' ? 'image.png' : 'image.jpg'
    problems.push(`holds ${actual === 'image/png' ? 'PNG' : 'JPEG'} data; rename it to ${want}`)
  }
  if (bytes.length > L.imageBytesMax) {
    problems.push(
      `is ${bytes.length} bytes; LINE takes at most ${L.imageBytesMax} (1 MB): ` +
        'save it with fewer colours or as JPEG',
    )
  }
  let dims: { width?: number; height?: number } = {}
  try {
    dims = imageSize(bytes)
  } catch {
    problems.push('cannot be read as an image (is the file cut short?)')
    return problems
  }
  if (size && (dims.width !== size.width || dims.height !== size.height)) {
    problems.push(
      `is ${dims.width}×${dims.height} pixels; richMenu.size is ${size.width}×${size.height}: ` +
        'they must be the same',
    )
  }
  return problems
}

function sniff(bytes: Buffer): 'image/png' | 'image/jpeg' | undefined {
  if (bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) {
    return 'image/png'
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg'
  return undefined
}

function unknownKeys(obj: Obj, known: string[], at: string, add: (f: string, m: string) => void) {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key))
      add(`${at}.${key}`, `is not a key LINE knows here; use ${known.join(', ')}`)
  }
}

function isInt(value: unknown): value is number {
  return Number.isInteger(value)
}

function isObj(value: unknown): value is Obj {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}
