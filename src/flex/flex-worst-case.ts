import { fits, isObject, type Schema, type Walk } from './flex-var-schema.ts'
import {
  type Builder,
  buildValue,
  built,
  filled,
  nextNumber,
  numberRange,
  problemsOf,
  seedsOf,
} from './flex-var-values.ts'
import type { TemplateProblem } from './template-error.ts'

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

/**
 * The largest variables a template's `variables` schema allows, for `kizuna flex validate` to
 * render beside the sample: every array at its `maxItems` (items built from the sample's in
 * turn, made to differ under `uniqueItems`), every optional property present, in every item too,
 * every string at its `maxLength` in the widest filler the string's pattern and format take (or,
 * without a maxLength, at the longest length its pattern takes), numbers the longest written
 * that the bounds allow (`-1000` of -1000..10, `99.99999999999999` of a number up to 100, and
 * without bounds the longest there is), booleans true, and of `anyOf`/`oneOf` the branch with the
 * longest JSON. Local `$ref`s and a simple `allOf` are followed. A string grows from the sample's
 * value or, when the sample has none, from what its schema starts with (`https://` for a URL).
 * An array without maxItems or a string nothing bounds has no largest value: each is a problem
 * (`vars/lines has no maxItems`), and its sample value is used; so is a value the sample leaves
 * out and the schema gives no way to build (`vars/postcode has no value in the sample…`), and a
 * keyword the builder does not follow (`vars/code has "not"…`). A string bounded only by a
 * pattern that a longer value can't follow stays at its sample.
 */
export function worstCaseVars(
  schema: Schema,
  sample: Record<string, unknown>,
  widest: Widest = 'bytes',
): { vars: Record<string, unknown>; problems: TemplateProblem[] } {
  const { report, list } = problemsOf('largest')
  const ctx = { report, root: schema, expanding: new Set<string>(), fillers: FILLERS[widest] }
  const vars = largest(schema, sample, 'vars', ctx, 0)
  return {
    vars: isObject(vars) ? vars : sample,
    problems: list(),
  }
}

/** The walk's, and the fillers, widest first. */
type Ctx = Walk & { fillers: string[] }

const LARGEST: Builder<Ctx> = {
  longest: true,
  types: {
    object: largestObject,
    array: largestArray,
    string: largestString,
    integer: longestNumber,
    number: longestNumber,
    boolean: (_schema, _sample, _path, _ctx, variant) => variant % 2 === 0,
  },
}

/**
 * The largest value of `schema` at `path`; `variant` > 0 asks for one as large that differs
 * from the variant-0 value (the items of a `uniqueItems` array).
 */
function largest(node: unknown, sample: unknown, path: string, ctx: Ctx, variant: number): unknown {
  return buildValue(node, sample, path, ctx, variant, LARGEST)
}

function largestObject(schema: Schema, sample: unknown, path: string, ctx: Ctx, variant: number) {
  const given = isObject(sample) ? sample : {}
  const properties = isObject(schema.properties) ? schema.properties : {}
  const out: Record<string, unknown> = { ...given }
  for (const [key, sub] of Object.entries(properties)) {
    const at = `${path}/${key}`
    const value = built(largest(sub, given[key], at, ctx, variant), sub, at, ctx.report)
    if (value === undefined) delete out[key]
    else out[key] = value
  }
  return out
}

function largestArray(schema: Schema, sample: unknown, path: string, ctx: Ctx, variant: number) {
  const given = Array.isArray(sample) ? sample : []
  const max = typeof schema.maxItems === 'number' ? schema.maxItems : undefined
  if (max === undefined) ctx.report(path, 'has no maxItems')
  const count = max ?? given.length
  const items = schema.items
  const at = `${path}/*`
  const unique = schema.uniqueItems === true
  const out = Array.from({ length: count }, (_, i) => {
    const from = given.length ? given[i % given.length] : undefined
    const value = largest(items, from, at, ctx, unique ? variant * count + i : variant)
    return built(value, items, at, ctx.report)
  })
  if (unique && new Set(out.map((v) => JSON.stringify(v))).size < out.length) {
    ctx.report(path, 'has uniqueItems and items that cannot all differ')
  }
  return out
}

function largestString(schema: Schema, sample: unknown, path: string, ctx: Ctx, variant: number) {
  const given = typeof sample === 'string' ? sample : undefined
  const seeds = [...new Set(['', given ?? '', ...seedsOf(schema)])]
  const sized = (length: number): string | undefined => {
    for (const filler of ctx.fillers) {
      for (const seed of seeds) {
        const head = Array.from(seed).slice(0, length)
        const fill = filled(filler, Math.max(0, length - head.length), variant)
        if (fill === undefined) continue
        const value = head.join('') + fill
        if (fits(schema, value, ctx.root)) return value
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

/**
 * The number the schema allows that is written longest: of its bounds and the numbers just
 * inside them (99.99999999999999 below 100), and for a float around zero the smallest normal
 * number (-2.2250738585072014e-308, as long as a number is written). A variant steps inwards.
 */
function longestNumber(schema: Schema, sample: unknown, path: string, ctx: Ctx, variant: number) {
  const integer = schema.type === 'integer'
  const { lo, hi, step } = numberRange(schema, integer)
  const candidates = [hi, lo, nextNumber(hi, false), nextNumber(lo, true)]
  if (!step && lo < 0 && hi >= 0) candidates.push(-2.2250738585072014e-308)
  if (!step && lo <= 0 && hi > 0) candidates.push(2.2250738585072014e-308)
  const allowed = candidates
    .filter((n) => lo <= n && n <= hi && fits(schema, n, ctx.root))
    .sort((a, b) => String(b).length - String(a).length)
  let value = allowed[0]
  if (value === undefined) {
    ctx.report(path, 'has bounds no number fits')
    return sample
  }
  for (let i = 0; i < variant; i++) {
    const inwards: boolean = value === hi || value > 0
    value = step ? value + (inwards ? -step : step) : nextNumber(value, !inwards)
  }
  return value
}
