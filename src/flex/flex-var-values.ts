import {
  isObject,
  type Report,
  resolveSchema,
  type Schema,
  typeOf,
  type Walk,
} from './flex-var-schema.ts'
import type { TemplateProblem } from './template-error.ts'

/**
 * What the largest and the smallest case builders share to build a value: one walk over a
 * schema node (its `$ref`s, `const`, `enum`, `anyOf`/`oneOf`), handing each type to the
 * builder's own function, and the numbers, seeds and fillers they build from.
 */

/** Builds a value of one type; `variant` > 0 asks for one that differs (`uniqueItems`). */
export type Build<C extends Walk> = (
  schema: Schema,
  sample: unknown,
  path: string,
  ctx: C,
  variant: number,
) => unknown

/** A builder: the longest or the shortest of choices, and its function per type. */
export type Builder<C extends Walk> = { longest: boolean; types: Record<string, Build<C>> }

/**
 * The value `builder` builds of `node` at `path`: `const`, of an `enum` the longest or shortest
 * (for a variant the variant-th), of `anyOf`/`oneOf` branches the longest or shortest, else its
 * type's. A node that can't be resolved, or has no type, keeps the sample's value (reported).
 */
export function buildValue<C extends Walk>(
  node: unknown,
  sample: unknown,
  path: string,
  ctx: C,
  variant: number,
  builder: Builder<C>,
): unknown {
  if (node === false) return undefined
  const resolved = isObject(node) ? resolveSchema(node, path, ctx) : undefined
  if (!isObject(node)) ctx.report(path, 'has no "type"')
  if (!resolved) return sample
  const inner: C = { ...ctx, expanding: new Set([...ctx.expanding, ...resolved.refs]) }
  const schema = resolved.schema
  if ('const' in schema) return schema.const
  if (Array.isArray(schema.enum)) {
    const sign = builder.longest ? -1 : 1
    const sorted = [...schema.enum].sort((a, b) => sign * (jsonLength(a) - jsonLength(b)))
    return sorted[variant % sorted.length]
  }
  const { anyOf, oneOf, ...rest } = schema
  const branches = Array.isArray(anyOf) ? anyOf : oneOf
  if (Array.isArray(branches) && branches.length > 0) {
    const values = branches.map((b) =>
      buildValue(isObject(b) ? { ...rest, ...b } : b, sample, path, inner, variant, builder),
    )
    return byJsonLength(values, builder.longest)
  }
  const type = typeOf(schema)
  if (type === 'null') return null
  const build = type === undefined ? undefined : builder.types[type]
  if (!build) {
    ctx.report(path, 'has no "type"')
    return sample
  }
  return build(schema, sample, path, inner, variant)
}

function jsonLength(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '')
}

/**
 * Where a builder's problems go: the first of a path (why its value could not be built, not
 * that it then has none), saying which value (`largest`) can't be checked.
 */
export function problemsOf(which: 'largest' | 'smallest') {
  const problems = new Map<string, TemplateProblem>()
  const report: Report = (path, what, hint) => {
    if (problems.has(path)) return
    const message = `${what}, so no ${which} value can be checked against LINE's limits`
    problems.set(path, { path, message: hint ? `${message}: ${hint}` : message })
  }
  return { report, list: () => [...problems.values()] }
}

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

/** The next number up or down from `x` (one ulp): the longest written inside a bound. */
export function nextNumber(x: number, up: boolean): number {
  if (x === 0) return up ? Number.MIN_VALUE : -Number.MIN_VALUE
  const bits = new Float64Array([x])
  const int = new BigInt64Array(bits.buffer)
  int[0] = (int[0] ?? 0n) + (x > 0 === up ? 1n : -1n)
  return bits[0] ?? x
}

/**
 * The lowest and highest numbers the schema's bounds allow (exclusive bounds and `multipleOf`
 * honoured; without one, the largest number there is), and the step between two allowed ones.
 */
export function numberRange(schema: Schema, integer: boolean) {
  const step = typeof schema.multipleOf === 'number' ? schema.multipleOf : integer ? 1 : 0
  const edge = (inclusive: unknown, exclusive: unknown, sign: 1 | -1): number => {
    // Inwards onto the step's grid; above 2^53 every number is a whole multiple, as ajv sees it.
    const round = (x: number) => (step ? (sign > 0 ? Math.floor : Math.ceil)(x / step) * step : x)
    const bounds = [sign * Number.MAX_VALUE]
    if (typeof inclusive === 'number') bounds.push(round(inclusive))
    if (typeof exclusive === 'number') {
      const x = round(exclusive)
      bounds.push(x !== exclusive ? x : step ? x - sign * step : nextNumber(x, sign < 0))
    }
    return sign > 0 ? Math.min(...bounds) : Math.max(...bounds)
  }
  return {
    lo: edge(schema.minimum, schema.exclusiveMinimum, -1),
    hi: edge(schema.maximum, schema.exclusiveMaximum, 1),
    step,
  }
}

/** URL formats: a value that grows from `https://example.com/` takes them. */
const URL_FORMATS = new Set(['uri', 'iri', 'uri-reference', 'iri-reference', 'url'])

/**
 * What a value may start with when the sample has none: the literal start of an anchored
 * pattern (`tel:` of `^tel:[0-9]+$`, `http` of `^https?://`), and a URL for a URL format.
 */
export function seedsOf(schema: Schema): string[] {
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

/** Of `values`, the one whose JSON is the longest (`longest`) or the shortest. */
export function byJsonLength(values: unknown[], longest: boolean): unknown {
  let best: unknown
  let bestLength = -1
  for (const value of values) {
    if (value === undefined) continue
    const length = jsonLength(value)
    if (bestLength < 0 || (longest ? length > bestLength : length < bestLength)) {
      best = value
      bestLength = length
    }
  }
  return best
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
/**
 * `count` fillers; for `variant` > 0, the last ones are characters as wide that spell the
 * variant (undefined when `count` is too short to).
 */
export function filled(filler: string, count: number, variant: number): string | undefined {
  const alike = ALIKE[filler] ?? [filler]
  const digits: string[] = []
  for (let v = variant; v > 0; v = Math.floor(v / alike.length)) {
    digits.unshift(alike[v % alike.length] ?? filler)
  }
  if (digits.length > count || (variant > 0 && alike.length < 2)) return undefined
  return filler.repeat(count - digits.length) + digits.join('')
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i)
}
