import type { Context } from 'hono'
import { type ZodError, z } from 'zod'
import { type AppError, type FieldProblem, fieldsError, invalidField } from './errors.ts'
import { readRawBody } from './raw-body.ts'

export type Checked<T> = { ok: true; data: T } | { ok: false; fields: FieldProblem[] }

const NUL_MESSAGE = 'contains a NUL character (\\u0000), which cannot be stored'
const SURROGATE_MESSAGE = 'contains an unpaired surrogate (half of a character)'

/**
 * Checks input against `schema`, every bad field at once. Strings and keys holding a NUL
 * character or a lone UTF-16 surrogate (JSON's `"\ud800"`, half of a character) are bad wherever
 * they are: Postgres text and jsonb cannot hold a NUL, and a lone surrogate fails a `::json` cast
 * or is stored as U+FFFD (so the same request sent again no longer matches what was stored).
 * Either would be a 500 or a wrong answer later instead of a 400 here with the field's name.
 */
export function checkInput<S extends z.ZodType>(schema: S, input: unknown): Checked<z.output<S>> {
  const bad = badTextFields(input)
  // Too deep for any schema of ours: refused before zod walks it too.
  if (bad.some((f) => f.message === TOO_DEEP)) return { ok: false, fields: bad }
  const parsed = schema.safeParse(input)
  if (parsed.success && bad.length === 0) return { ok: true, data: parsed.data }
  return { ok: false, fields: parsed.success ? bad : [...bad, ...zodFields(parsed.error)] }
}

/** A control character (C0, DEL, C1) other than NUL (checkInput's) and the line breaks and tab. */
const CONTROL_CHARACTER = /(?![\0\t\n\v\f\r])\p{Cc}/u
/** A line break or tab inside a name (a spreadsheet cell's Alt+Enter), with spaces around it. */
const BREAK = /\s*[\t\n\v\f\r]\s*/g

/**
 * A name or label shown on one line (a product's or a store's name, an API key's label):
 * trimmed, a line break or tab inside it made one space, and refused when another control
 * character is left in it, naming the field as a NUL is (checkInput). A tab or line break left
 * in would split a line of `kizuna stores list` or `keys list` (tab-separated, a line each).
 */
export function oneLineSchema(error?: string) {
  return z
    .string(error)
    .trim()
    .overwrite((name) => name.replace(BREAK, ' '))
    .superRefine((name, ctx) => {
      const found = CONTROL_CHARACTER.exec(name)?.[0]
      if (found === undefined) return
      const code = found.charCodeAt(0).toString(16).padStart(4, '0')
      ctx.addIssue({ code: 'custom', message: `contains a control character (\\u${code})` })
    })
}

/** Like checkInput, for a request: throws a 400 naming every bad field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const checked = checkInput(schema, input)
  if (checked.ok) return checked.data
  throw fieldsError(checked.fields)
}

// Strict: bytes that are not UTF-8 (Shift_JIS) would otherwise be read as U+FFFD and stored, and
// two different names could be read as the same text. A leading byte-order mark is dropped.
const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * A request's JSON body through parseInput: 413 beyond `maxBytes`, 400 for a body that is not
 * UTF-8, not JSON or has a bad field. Read with readRawBody: Hono's bodyLimit rebuilt a full web Request for
 * every call (~6% of the register scan's CPU).
 */
export async function jsonInput<S extends z.ZodType>(
  c: Context,
  schema: S,
  maxBytes: number,
): Promise<z.output<S>> {
  const raw = await readRawBody(c, maxBytes)
  let text: string
  try {
    // TextDecoder drops a leading byte-order mark, as Request.json() did.
    text = utf8.decode(raw)
  } catch {
    throw invalidField('(body)', 'is not UTF-8; send UTF-8 JSON')
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw notJsonError()
  }
  return parseInput(schema, json)
}

const BAD_ENCODING = 'not valid percent-encoded UTF-8'

/**
 * `raw`, a piece of a URL, percent-decoded strictly: BAD_REQUEST naming `field` when it does not
 * decode (`%E0%A4%A`, `%80`, a lone `%`). Hono keeps such a piece as it came, in a path param and
 * in a query value, and it was then stored or looked up as typed.
 */
export function decodeUrlPart(raw: string, field: string): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    throw invalidField(field, BAD_ENCODING)
  }
}

/**
 * A segment of `url`'s path counted from its end (`at`: -1 the last, -2 the one before), decoded
 * once and strictly (decodeUrlPart, 400 naming `field`). For a path param Hono would keep as it
 * came when it does not decode; decoding Hono's param again would misread an id holding "%".
 */
export function pathPartOf(url: string, at: number, field: string): string {
  return decodeUrlPart(new URL(url).pathname.split('/').at(at) ?? '', field)
}

/**
 * The query parameter `name` of `url` (its first, as Hono's `c.req.query`), `+` read as a space
 * as Hono reads it, decoded by decodeUrlPart (400 naming `name`); undefined when absent.
 */
export function queryParamOf(url: string, name: string): string | undefined {
  for (const pair of new URL(url).search.slice(1).split('&')) {
    const eq = pair.indexOf('=')
    const key = (eq === -1 ? pair : pair.slice(0, eq)).replaceAll('+', ' ')
    // A key that does not decode is not `name` (Hono's query would not find it either).
    if (tryDecode(key) !== name) continue
    return decodeUrlPart(eq === -1 ? '' : pair.slice(eq + 1).replaceAll('+', ' '), name)
  }
  return undefined
}

function tryDecode(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw)
  } catch {
    return undefined
  }
}

/** A body that is not JSON: a 400 naming the whole body (`(body)`), as any bad field is named. */
export function notJsonError(): AppError {
  return invalidField('(body)', 'is not valid JSON')
}

/**
 * Text from elsewhere that must be kept, not refused (a LINE profile): its NUL characters, which
 * no Postgres text can hold, become U+FFFD, as the webhook inbox does for its bodies.
 */
export function storableText<T extends string | undefined>(text: T): T {
  return (text?.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text) as T
}

/** Every issue of a zod error as a field and its problem. */
export function zodFields(error: ZodError): FieldProblem[] {
  return error.issues.flatMap((issue) =>
    // A strict object's unknown keys, each named as its own field (a typo shows where it is).
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({
          field: fieldName([...issue.path, key]),
          message: 'is not a known field',
        }))
      : [{ field: fieldName(issue.path), message: issue.message }],
  )
}

function fieldName(path: readonly PropertyKey[]): string {
  return path.map(String).join('.') || '(body)'
}

/** Deeper than any body we take; deeper ones are refused before anything else reads them. */
export const MAX_JSON_DEPTH = 64
const TOO_DEEP = `is nested deeper than ${MAX_JSON_DEPTH} levels`

/** Why a string cannot be taken as text, if it cannot. */
function textProblem(s: string): string | undefined {
  if (s.includes('\u0000')) return NUL_MESSAGE
  if (!s.isWellFormed()) return SURROGATE_MESSAGE
  return undefined
}

/**
 * The fields of a parsed JSON value whose string or key holds a NUL character or a lone
 * surrogate, and a value nested deeper than MAX_JSON_DEPTH (a walk of it, or zod's, would exhaust
 * the stack: a 500). On the register scan's path: one path stack for the walk, a field name built
 * only for a find.
 */
function badTextFields(value: unknown): FieldProblem[] {
  const found: FieldProblem[] = []
  const path: PropertyKey[] = []
  const walk = (v: unknown) => {
    if (typeof v === 'string') {
      const problem = textProblem(v)
      if (problem) found.push({ field: fieldName(path), message: problem })
      return
    }
    if (v === null || typeof v !== 'object') return
    if (path.length >= MAX_JSON_DEPTH) {
      found.push({
        field: fieldName(path),
        message: TOO_DEEP,
      })
      return
    }
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        path.push(i)
        walk(v[i])
        path.pop()
      }
      return
    }
    for (const [key, item] of Object.entries(v)) {
      const problem = textProblem(key)
      if (problem) {
        found.push({ field: fieldName(path), message: `a key ${problem}` })
        continue
      }
      path.push(key)
      walk(item)
      path.pop()
    }
  }
  walk(value)
  return found
}
