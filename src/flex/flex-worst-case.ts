import {
  byJsonLength,
  fits,
  isObject,
  nextNumber,
  numberRange,
  type Report,
  resolveSchema,
  type Schema,
  seedsOf,
  typeOf,
  type Walk,
} from './flex-var-schema.ts'
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
/**
 * Characters as wide as each filler, for the items of a `uniqueItems` array to differ: the
 * control characters JSON writes as `\u00XX` (not `\n`, `\t`…), lone high surrogates, emoji.
 */
const ALIKE: Record<string, string[]> = {
  '\u0001': [...range(0x1, 0x7), 0xb, ...range(0xe, 0x1f)].map((c) => String.fromCodePoint(c)),
  '\ud800': range(0xd800, 0xdbff).map((c) => String.fromCharCode(c)),
  '😀': range(0x1f600, 0x1f64f).map((c) => String.fromCodePoint(c)),
  あ: range(0x3042, 0x3093).map((c) => String.fromCodePoint(c)),
  a: range(0x61, 0x7a).map((c) => String.fromCodePoint(c)),
  '0': range(0x30, 0x39).map((c) => String.fromCodePoint(c)),
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
  const problems = new Map<string, TemplateProblem>()
  // The first problem of a path: why its value could not be built, not that it then has none.
  const report: Report = (path, what, hint) => {
    if (problems.has(path)) return
    const message = `${what}, so no largest value can be checked against LINE's limits`
    problems.set(path, { path, message: hint ? `${message}: ${hint}` : message })
  }
  const ctx = { report, root: schema, expanding: new Set<string>(), fillers: FILLERS[widest] }
  const vars = largest(schema, sample, 'vars', ctx, 0)
  return {
    vars: isObject(vars) ? vars : sample,
    problems: [...problems.values()],
  }
}

/** The walk's, and the fillers, widest first. */
type Ctx = Walk & { fillers: string[] }

/**
 * `value`, or (undefined: the sample has none and none could be built) a report of the field,
 * which would otherwise go unchecked.
 */
export function built(value: unknown, schema: unknown, path: string, report: Report): unknown {
  if (value === undefined && schema !== false) {
    report(
      path,
      'has no value in the sample and none could be built from its schema',
      'give one in the sample',
    )
  }
  return value
}

/**
 * The largest value of `schema` at `path`; `variant` > 0 asks for one as large that differs
 * from the variant-0 value (the items of a `uniqueItems` array).
 */
function largest(node: unknown, sample: unknown, path: string, ctx: Ctx, variant: number): unknown {
  if (node === false) return undefined
  if (!isObject(node)) {
    ctx.report(path, 'has no "type"')
    return sample
  }
  const resolved = resolveSchema(node, path, ctx)
  if (!resolved) return sample
  const inner = { ...ctx, expanding: new Set([...ctx.expanding, ...resolved.refs]) }
  const schema = resolved.schema
  if ('const' in schema) return schema.const
  if (Array.isArray(schema.enum)) return byLength(schema.enum, variant)
  const { anyOf, oneOf, ...rest } = schema
  const branches = Array.isArray(anyOf) ? anyOf : oneOf
  if (Array.isArray(branches) && branches.length > 0) {
    const values = branches.map((b) =>
      largest(isObject(b) ? { ...rest, ...b } : b, sample, path, inner, variant),
    )
    return byJsonLength(values, true)
  }
  switch (typeOf(schema)) {
    case 'object':
      return largestObject(schema, sample, path, inner, variant)
    case 'array':
      return largestArray(schema, sample, path, inner, variant)
    case 'string':
      return largestString(schema, sample, path, inner, variant)
    case 'integer':
    case 'number':
      return longestNumber(schema, sample, path, inner, variant)
    case 'boolean':
      return variant % 2 === 0
    case 'null':
      return null
    default:
      ctx.report(path, 'has no "type"')
      return sample
  }
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
 * `count` fillers; for `variant` > 0, the last ones are characters as wide that spell the
 * variant (undefined when `count` is too short to).
 */
function filled(filler: string, count: number, variant: number): string | undefined {
  const alike = ALIKE[filler] ?? [filler]
  const digits: string[] = []
  for (let v = variant; v > 0; v = Math.floor(v / alike.length)) {
    digits.unshift(alike[v % alike.length] ?? filler)
  }
  if (digits.length > count || (variant > 0 && alike.length < 2)) return undefined
  return filler.repeat(count - digits.length) + digits.join('')
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

/** Of `values`, the longest JSON, or for a variant the variant-th longest. */
function byLength(values: unknown[], variant: number): unknown {
  if (variant === 0) return byJsonLength(values, true)
  const sorted = [...values].sort(
    (a, b) => JSON.stringify(b ?? null).length - JSON.stringify(a ?? null).length,
  )
  return sorted[variant % sorted.length]
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i)
}
