import {
  ACTION_TEXT_MAX,
  ALT_TEXT_MAX,
  CAROUSEL_MAX_BUBBLES,
  CONTAINER_MAX_BYTES,
  FLEX_LABEL_MAX,
  IMAGE_URL_MAX,
  RICH_MENU_LABEL_MAX,
  URI_MAX,
  URI_SCHEMES,
} from './flex.schemas.ts'
import { childPath, type TemplateProblem } from './template-error.ts'

export type LimitOptions = {
  /** Accept http:// images: only the local LINE stand-in loads them; real LINE refuses them. */
  allowHttpImages?: boolean
}

type Obj = Record<string, unknown>

/**
 * LINE's limits on a Flex message (LINE-API.md §3) that its JSON schema does not express:
 * sizes in bytes, carousel rules, action text lengths, URI schemes, HTTPS images. Paths start
 * at `line` (`line.contents.body.contents[3].action.label`). Messages name the field, never its
 * value: they end up in delivery.last_error, and a URL can carry a token or a customer's id.
 */
export function checkFlexMessage(
  message: { altText: string; contents: unknown },
  opts: LimitOptions = {},
): TemplateProblem[] {
  const problems: TemplateProblem[] = []
  const add = (path: string, message: string) => problems.push({ path, message })
  const alt = message.altText.length
  if (alt < 1 || alt > ALT_TEXT_MAX) {
    add('line.altText', `must be 1 to ${ALT_TEXT_MAX} characters (is ${alt})`)
  }
  const contents = message.contents
  const path = 'line.contents'
  if (!isObj(contents)) {
    add(path, 'must be a bubble or carousel')
    return problems
  }
  if (contents.type === 'carousel') {
    const bubbles = Array.isArray(contents.contents) ? contents.contents : []
    if (bubbles.length < 1 || bubbles.length > CAROUSEL_MAX_BUBBLES) {
      add(
        `${path}.contents`,
        `must hold 1 to ${CAROUSEL_MAX_BUBBLES} bubbles (has ${bubbles.length})`,
      )
    }
    checkBytes(contents, path, CONTAINER_MAX_BYTES.carousel, add)
    const first = isObj(bubbles[0]) ? (bubbles[0].size ?? 'mega') : 'mega'
    bubbles.forEach((bubble, i) => {
      const at = `${path}.contents[${i}]`
      if (!isObj(bubble)) return
      checkBytes(bubble, at, CONTAINER_MAX_BYTES.bubble, add)
      const size = bubble.size ?? 'mega'
      if (size !== first) add(`${at}.size`, `is ${String(size)}; every bubble must be ${first}`)
    })
  } else {
    checkBytes(contents, path, CONTAINER_MAX_BYTES.bubble, add)
  }
  walk(contents, ['line', 'contents'], opts, add)
  return problems
}

export type Add = (path: string, message: string) => void

/** Where an action sits: the label limit and the allowed types differ (LINE-API.md §3). */
export type ActionPlace = 'flex' | 'richmenu'

function checkBytes(node: unknown, path: string, max: number, add: Add): void {
  const bytes = Buffer.byteLength(JSON.stringify(node))
  if (bytes > max) add(path, `is ${bytes} bytes of JSON; LINE takes at most ${max}`)
}

/** Walks the container keeping the path as a key stack: strings are built only for problems. */
function walk(node: unknown, keys: (string | number)[], opts: LimitOptions, add: Add): void {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) {
      if (typeof node[i] !== 'object') continue
      keys.push(i)
      walk(node[i], keys, opts, add)
      keys.pop()
    }
    return
  }
  if (!isObj(node)) return
  // LINE answers 400 "must be non-empty text" (its schema allows ""); with spans it ignores text.
  if (node.type === 'text' && node.text === '' && !hasItems(node.contents)) {
    add(pathOf(keys, 'text'), 'must be non-empty text')
  }
  if (node.type === 'image' || node.type === 'icon' || node.type === 'video') {
    checkImageUrl(node.url, () => pathOf(keys, 'url'), opts, add)
    if (node.type === 'video')
      checkImageUrl(node.previewUrl, () => pathOf(keys, 'previewUrl'), opts, add)
  }
  for (const key in node) {
    const value = node[key]
    if (typeof value !== 'object' || value === null) continue
    if (key === 'action' && isObj(value)) checkAction(value, pathOf(keys, 'action'), add)
    else {
      keys.push(key)
      walk(value, keys, opts, add)
      keys.pop()
    }
  }
}

function pathOf(keys: (string | number)[], last: string): string {
  let path = ''
  for (const key of keys) path = childPath(path, key)
  return childPath(path, last)
}

function checkImageUrl(url: unknown, at: () => string, opts: LimitOptions, add: Add): void {
  if (typeof url !== 'string') return
  const https = /^https:\/\//i.test(url) || (opts.allowHttpImages && /^http:\/\//i.test(url))
  if (!https || !URL.canParse(url)) add(at(), 'must be an https:// URL')
  else if (url.length > IMAGE_URL_MAX) add(at(), `must be at most ${IMAGE_URL_MAX} characters`)
}

/** Action objects (LINE-API.md §3 "Actions"), as used inside Flex or a rich menu's areas. */
export function checkAction(
  action: Obj,
  path: string,
  add: Add,
  place: ActionPlace = 'flex',
): void {
  const labelMax = place === 'flex' ? FLEX_LABEL_MAX : RICH_MENU_LABEL_MAX
  maxChars(action.label, `${path}.label`, labelMax, add, graphemeLength)
  switch (action.type) {
    case 'postback':
      maxChars(action.data, `${path}.data`, ACTION_TEXT_MAX, add)
      maxChars(action.displayText, `${path}.displayText`, ACTION_TEXT_MAX, add, graphemeLength)
      maxChars(action.text, `${path}.text`, ACTION_TEXT_MAX, add, graphemeLength)
      maxChars(action.fillInText, `${path}.fillInText`, ACTION_TEXT_MAX, add, graphemeLength)
      break
    case 'message':
      maxChars(action.text, `${path}.text`, ACTION_TEXT_MAX, add, graphemeLength)
      break
    case 'datetimepicker':
      maxChars(action.data, `${path}.data`, ACTION_TEXT_MAX, add)
      break
    case 'uri':
      checkUri(action.uri, `${path}.uri`, add)
      if (isObj(action.altUri)) checkUri(action.altUri.desktop, `${path}.altUri.desktop`, add)
      break
    case 'clipboard':
      if (typeof action.clipboardText === 'string' && action.clipboardText.length < 1) {
        add(`${path}.clipboardText`, 'must not be empty')
      }
      maxChars(action.clipboardText, `${path}.clipboardText`, URI_MAX, add)
      break
    case 'richmenuswitch':
      if (place !== 'richmenu') add(`${path}.type`, 'richmenuswitch works only in rich menus')
      maxChars(action.data, `${path}.data`, ACTION_TEXT_MAX, add)
      break
    case 'camera':
    case 'cameraRoll':
    case 'location':
      add(`${path}.type`, `${action.type} works only in quick replies`)
      break
  }
}

function checkUri(uri: unknown, path: string, add: Add): void {
  if (typeof uri !== 'string') return
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(uri)?.[1]?.toLowerCase()
  if (!scheme || !(URI_SCHEMES as readonly string[]).includes(`${scheme}:`)) {
    add(path, `must use ${URI_SCHEMES.join(' ')}`)
  } else if (uri.length > URI_MAX) {
    add(path, `must be at most ${URI_MAX} characters (is ${uri.length})`)
  } else if ((scheme === 'http' || scheme === 'https') && !URL.canParse(uri)) {
    add(path, 'is not a valid URL')
  }
}

/**
 * LINE counts characters in UTF-16 code units (🍎 or 𠮷 is two), except action labels and
 * the texts a user sees as their own message (postback displayText/fillInText/text, message
 * text), which are counted in grapheme clusters (👨‍👩‍👧‍👦 is one). [DOCS:text-character-count]
 */
export function maxChars(
  value: unknown,
  path: string,
  max: number,
  add: Add,
  count: (text: string) => number = utf16Length,
): void {
  if (typeof value !== 'string') return
  const n = count(value)
  if (n > max) add(path, `must be at most ${max} characters (is ${n})`)
}

function utf16Length(text: string): number {
  return text.length
}

/**
 * `text` cut to at most `max` characters as a template's schema counts them (code points, so a
 * surrogate pair is never split), the last one an ellipsis: for data longer than a template
 * takes (a name imported with 200 characters into a card that shows 100).
 */
export function clipToLength(text: string, max: number): string {
  const chars = Array.from(text)
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : text
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' })

export function graphemeLength(text: string): number {
  let n = 0
  for (const _ of graphemes.segment(text)) n++
  return n
}

function hasItems(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0
}

function isObj(value: unknown): value is Obj {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}
