import type { ValidateFunction } from 'ajv/dist/2020.js'
import { compileVarsSchema } from './message-template.ts'
import type { TemplateProblem } from './template-error.ts'

type Schema = Record<string, unknown>

/**
 * What the largest case is widest in: JSON bytes (LINE's 30 KB bubble) or UTF-16 units (altText,
 * postback data). No one character is widest in both, so `kizuna flex validate` renders both.
 */
export const WIDEST = ['bytes', 'utf16'] as const
export type Widest = (typeof WIDEST)[number]

/**
 * Characters a string is filled with, widest first, the first its pattern and format take: a
 * control character or half a character (a lone surrogate) is 6 bytes of JSON (`\u0001`,
 * `\ud800`) and 1 for `maxLength` (ajv counts code points); an emoji is 4 bytes and 2 UTF-16
 * units; the ASCII fillers serve strings whose pattern or format refuses the others. A template
 * whose text refuses the first two (`"pattern": "^[^\\p{Cc}\\p{Cs}]*$"`) is filled at 4 bytes.
 */
const FILLERS: Record<Widest, string[]> = {
  bytes: ['\u0001', '\ud800', '😀', 'あ', 'a', '0'],
  utf16: ['😀', '\u0001', '\ud800', 'あ', 'a', '0'],
}
/** A string that still fits its schema at this length has no bound worth the name. */
const UNBOUNDED = 4096

const compiled = new WeakMap<Schema, ValidateFunction>()

function fits(schema: Schema, value: unknown): boolean {
  let validate = compiled.get(schema)
  if (!validate) {
    validate = compileVarsSchema(schema)
    compiled.set(schema, validate)
  }
  return validate(value)
}

/**
 * The largest variables a template's `variables` schema allows, for `kizuna flex validate` to
 * render beside the sample: every array at its `maxItems` (items built from the sample's in
 * turn), every optional property present, in every item too, every string at its `maxLength` in
 * the widest filler the string's pattern and format take (or, without a maxLength, at the longest
 * length its pattern takes), integers at their `maximum`, booleans true, and of `anyOf`/`oneOf`
 * the branch with the longest JSON. A string grows from the sample's value or, when the sample
 * has none, from what its schema starts with (`https://` for a URL). An array without maxItems or
 * a string nothing bounds has no largest value: each is a problem (`vars/lines has no maxItems`),
 * and its sample value is used; so is a value the sample leaves out and the schema gives no way
 * to build (`vars/postcode has no value in the sample…`). A string bounded only by a pattern that
 * a longer value can't follow stays at its sample.
 */
export function worstCaseVars(
  schema: Schema,
  sample: Record<string, unknown>,
  widest: Widest = 'bytes',
): { vars: Record<string, unknown>; problems: TemplateProblem[] } {
  const problems = new Map<string, TemplateProblem>()
  const report: Report = (path, what, hint) =>
    problems.set(path, {
      path,
      message: `${what}, so no largest value can be checked against LINE's limits${hint ? `: ${hint}` : ''}`,
    })
  const vars = largest(schema, sample, 'vars', { report, fillers: FILLERS[widest] })
  return {
    vars: isObject(vars) ? vars : sample,
    problems: [...problems.values()],
  }
}

/** Names a var whose largest value can't be known: `what` says why (`has no maxItems`). */
type Report = (path: string, what: string, hint?: string) => void
/** The walk's: where problems go, and the fillers, widest first. */
type Ctx = { report: Report; fillers: string[] }

/**
 * `value`, or (undefined: the sample has none and none could be built) a report of the field,
 * which would otherwise go unchecked.
 */
function built(value: unknown, schema: unknown, path: string, ctx: Ctx): unknown {
  if (value === undefined && schema !== false) {
    ctx.report(
      path,
      'has no value in the sample and none could be built from its schema',
      'give one in the sample',
    )
  }
  return value
}

function largest(schema: unknown, sample: unknown, path: string, ctx: Ctx): unknown {
  if (!isObject(schema)) return sample
  if ('const' in schema) return schema.const
  if (Array.isArray(schema.enum)) return longestJson(schema.enum)
  const { anyOf, oneOf, ...rest } = schema
  const branches = Array.isArray(anyOf) ? anyOf : oneOf
  if (Array.isArray(branches) && branches.length > 0) {
    const values = branches.map((b) => largest({ ...rest, ...b }, sample, path, ctx))
    return longestJson(values)
  }
  switch (typeOf(schema, sample)) {
    case 'object':
      return largestObject(schema, sample, path, ctx)
    case 'array':
      return largestArray(schema, sample, path, ctx)
    case 'string':
      return largestString(schema, sample, path, ctx)
    case 'integer':
    case 'number':
      return typeof schema.maximum === 'number' ? schema.maximum : Number.MAX_SAFE_INTEGER
    case 'boolean':
      return true
    case 'null':
      return null
    default:
      return sample
  }
}

function largestObject(schema: Schema, sample: unknown, path: string, ctx: Ctx) {
  const given = isObject(sample) ? sample : {}
  const properties = isObject(schema.properties) ? schema.properties : {}
  const out: Record<string, unknown> = { ...given }
  for (const [key, sub] of Object.entries(properties)) {
    const at = `${path}/${key}`
    const value = built(largest(sub, given[key], at, ctx), sub, at, ctx)
    if (value === undefined) delete out[key]
    else out[key] = value
  }
  return out
}

function largestArray(schema: Schema, sample: unknown, path: string, ctx: Ctx) {
  const given = Array.isArray(sample) ? sample : []
  const max = typeof schema.maxItems === 'number' ? schema.maxItems : undefined
  if (max === undefined) ctx.report(path, 'has no maxItems')
  const count = max ?? given.length
  const items = schema.items
  const at = `${path}/*`
  return Array.from({ length: count }, (_, i) =>
    built(
      largest(items, given.length ? given[i % given.length] : undefined, at, ctx),
      items,
      at,
      ctx,
    ),
  )
}

function largestString(schema: Schema, sample: unknown, path: string, ctx: Ctx) {
  const given = typeof sample === 'string' ? sample : undefined
  const seeds = [...new Set(['', given ?? '', ...seedsOf(schema)])]
  const sized = (length: number): string | undefined => {
    for (const filler of ctx.fillers) {
      for (const seed of seeds) {
        const head = Array.from(seed).slice(0, length)
        const value = head.join('') + filler.repeat(Math.max(0, length - head.length))
        if (fits(schema, value)) return value
      }
    }
    return undefined
  }
  if (typeof schema.maxLength === 'number') return sized(schema.maxLength) ?? sample
  if (sized(UNBOUNDED) !== undefined) {
    ctx.report(path, 'has no maxLength')
    return sample
  }
  // The longest length the pattern or format takes, searched between the first of the sample's
  // and the seeds' lengths that it takes, and the cap.
  let low = seeds.map((s) => Array.from(s).length).find((length) => sized(length) !== undefined)
  if (low === undefined) return sample
  let high = UNBOUNDED
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2)
    if (sized(mid) === undefined) high = mid
    else low = mid
  }
  return sized(low) ?? sample
}

/** URL formats: a value that grows from `https://example.com/` takes them. */
const URL_FORMATS = new Set(['uri', 'iri', 'uri-reference', 'iri-reference', 'url'])

/**
 * What a value may start with when the sample has none: the literal start of an anchored
 * pattern (`tel:` of `^tel:[0-9]+$`, `http` of `^https?://`), and a URL for a URL format.
 */
function seedsOf(schema: Schema): string[] {
  const seeds: string[] = []
  if (typeof schema.format === 'string' && URL_FORMATS.has(schema.format)) {
    seeds.push('https://example.com/')
  }
  const pattern = typeof schema.pattern === 'string' ? schema.pattern : ''
  const literal = /^\^((?:[\w:/@-]|\\[./:?-])+)(.?)/.exec(pattern)
  if (literal?.[1]) {
    const text = literal[1].replace(/\\(.)/g, '$1')
    // A quantifier after the last letter may leave it out (`s?`): the start stops before it.
    seeds.push(/^[?*{]$/.test(literal[2] ?? '') ? text.slice(0, -1) : text)
  }
  return seeds
}

function typeOf(schema: Schema, sample: unknown): string | undefined {
  const type = schema.type
  if (typeof type === 'string') return type
  if (Array.isArray(type)) return type.find((t) => t !== 'null')
  if (isObject(schema.properties)) return 'object'
  if (schema.items !== undefined) return 'array'
  if (typeof schema.maxLength === 'number' || typeof schema.pattern === 'string') return 'string'
  return Array.isArray(sample) ? 'array' : sample === null ? undefined : typeof sample
}

function longestJson(values: unknown[]): unknown {
  let best: unknown = values[0]
  let bestLength = -1
  for (const value of values) {
    const length = Buffer.byteLength(JSON.stringify(value) ?? '')
    if (length > bestLength) {
      best = value
      bestLength = length
    }
  }
  return best
}

function isObject(value: unknown): value is Schema {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}
