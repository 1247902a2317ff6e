import type { ValidateFunction } from 'ajv/dist/2020.js'
import { compileVarsSchema } from './message-template.ts'

/**
 * What the largest and the smallest case builders (flex-worst-case.ts, flex-smallest-case.ts)
 * share: a `variables` schema node with its local `$ref`s and a simple `allOf` written out, the
 * keywords they do not follow named, and checks against ajv.
 */

export type Schema = Record<string, unknown>

/** Names a var whose value can't be built: `what` says why (`has no maxItems`). */
export type Report = (path: string, what: string, hint?: string) => void

/** The walk's: where problems go, the whole schema (`$ref`s), the `$ref`s being expanded. */
export type Walk = { report: Report; root: Schema; expanding: ReadonlySet<string> }

/**
 * Keywords the builders do not follow. Those that constrain a value could make a built value one
 * the schema refuses; those that shape it (`prefixItems`, `patternProperties`) would leave it at
 * the sample's, unchecked: either way the var is named rather than silently passed.
 */
const UNFOLLOWED = [
  'not',
  'if',
  'then',
  'else',
  'dependentSchemas',
  'dependentRequired',
  'prefixItems',
  'contains',
  'minContains',
  'maxContains',
  'patternProperties',
  'propertyNames',
  'unevaluatedProperties',
  'unevaluatedItems',
  'minProperties',
  'maxProperties',
  '$dynamicRef',
  '$recursiveRef',
]

/** Bounds that `allOf` branches tighten: the smaller of two (max…) or the larger (min…). */
const SMALLER = new Set(['maxLength', 'maxItems', 'maximum', 'exclusiveMaximum'])
const LARGER = new Set(['minLength', 'minItems', 'minimum', 'exclusiveMinimum'])

type Resolved = { schema: Schema; refs: string[] } | { what: string; hint?: string }

/** Per `variables` schema, its nodes as resolved (the same object for the same node). */
const resolvedIn = new WeakMap<Schema, WeakMap<Schema, Resolved>>()

/**
 * `schema` with its `$ref` (local: `#/$defs/line`) and `allOf` written out, and the `$ref`s that
 * took, to be marked as being expanded while the node's value is built (a `$ref` met again inside
 * itself has no largest value). Undefined, reported, when it can't be: a `$ref` out of the file
 * or inside itself, `allOf` branches that disagree, a keyword the builders do not follow.
 */
export function resolveSchema(
  schema: Schema,
  path: string,
  walk: Walk,
): { schema: Schema; refs: string[] } | undefined {
  let cache = resolvedIn.get(walk.root)
  if (!cache) {
    cache = new WeakMap()
    resolvedIn.set(walk.root, cache)
  }
  let resolved = cache.get(schema)
  if (!resolved) {
    resolved = resolve(schema, walk.root, [])
    cache.set(schema, resolved)
  }
  if ('what' in resolved) walk.report(path, resolved.what, resolved.hint)
  else {
    const again = resolved.refs.find((ref) => walk.expanding.has(ref))
    if (!again) return resolved
    walk.report(path, `has "$ref": "${again}" inside itself`)
  }
  return undefined
}

function resolve(schema: Schema, root: Schema, chain: string[]): Resolved {
  const refs: string[] = []
  let node = schema
  while (typeof node.$ref === 'string') {
    const ref = node.$ref
    if (chain.includes(ref) || refs.includes(ref))
      return { what: `has "$ref": "${ref}" inside itself` }
    const target = ref.startsWith('#') ? pointer(root, ref.slice(1)) : undefined
    if (!isObject(target)) return { what: `has "$ref": "${ref}", which is not in this file` }
    refs.push(ref)
    const { $ref: _, ...rest } = node
    node = { ...target, ...rest }
  }
  if (Array.isArray(node.allOf)) {
    const { allOf, ...rest } = node
    let merged: Schema = rest
    for (const branch of allOf) {
      if (!isObject(branch)) return unfollowed('allOf')
      const inner = resolve(branch, root, [...chain, ...refs])
      if ('what' in inner) return inner
      refs.push(...inner.refs)
      const both = merge(merged, inner.schema)
      if ('what' in both) return both
      merged = both.schema
    }
    node = merged
  }
  if (isObject(node.additionalProperties)) return unfollowed('additionalProperties')
  const keyword = UNFOLLOWED.find((k) => k in node)
  if (keyword) return unfollowed(keyword)
  return { schema: node, refs }
}

function unfollowed(keyword: string): Resolved {
  return { what: `has "${keyword}", which kizuna flex validate does not follow` }
}

/** Two `allOf` branches as one schema, or why not: they disagree on a keyword. */
function merge(a: Schema, b: Schema): { schema: Schema } | { what: string; hint: string } {
  const out: Schema = { ...a }
  for (const [key, value] of Object.entries(b)) {
    const mine = out[key]
    if (mine === undefined || JSON.stringify(mine) === JSON.stringify(value)) out[key] = value
    else if (key === 'properties' && isObject(mine) && isObject(value)) {
      const both: Schema = { ...mine }
      for (const [name, sub] of Object.entries(value)) {
        both[name] = name in mine ? { allOf: [mine[name], sub] } : sub
      }
      out[key] = both
    } else if (key === 'required' && Array.isArray(mine) && Array.isArray(value)) {
      out[key] = [...new Set([...mine, ...value])]
    } else if (SMALLER.has(key) && typeof mine === 'number' && typeof value === 'number') {
      out[key] = Math.min(mine, value)
    } else if (LARGER.has(key) && typeof mine === 'number' && typeof value === 'number') {
      out[key] = Math.max(mine, value)
    } else if (key === 'uniqueItems') out[key] = mine === true || value === true
    else if (!key.startsWith('$') && key !== 'description' && key !== 'title') {
      return { what: `has "allOf" branches with different "${key}"`, hint: 'write them as one' }
    }
  }
  return { schema: out }
}

/** A JSON pointer (`/$defs/line`) into the schema. */
function pointer(root: unknown, path: string): unknown {
  if (path === '') return root
  if (!path.startsWith('/')) return undefined
  let node = root
  for (const raw of path.slice(1).split('/')) {
    const key = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~')
    if (!isObject(node) || !Object.hasOwn(node, key)) return undefined
    node = node[key]
  }
  return node
}

/** The type the schema says (the first not null of a list), or what its keywords imply. */
export function typeOf(schema: Schema): string | undefined {
  const type = schema.type
  if (typeof type === 'string') return type
  if (Array.isArray(type))
    return type.find((t) => t !== 'null') ?? (type.length ? 'null' : undefined)
  if (isObject(schema.properties)) return 'object'
  if (schema.items !== undefined) return 'array'
  if (typeof schema.maxLength === 'number' || typeof schema.pattern === 'string') return 'string'
  return undefined
}

const compiled = new WeakMap<Schema, ValidateFunction | null>()

/**
 * Whether a (resolved) node of `root` takes the value. The node is compiled alone, with the
 * root's `$defs` for a `$ref` further down; one ajv can't compile takes nothing.
 */
export function fits(schema: Schema, value: unknown, root: Schema): boolean {
  let validate = compiled.get(schema)
  if (validate === undefined) {
    try {
      const defs = Object.fromEntries(
        ['$defs', 'definitions'].filter((k) => isObject(root[k])).map((k) => [k, root[k]]),
      )
      validate = compileVarsSchema(schema === root ? root : { ...defs, ...schema })
    } catch {
      validate = null // a `$ref` to elsewhere in the file than its $defs
    }
    compiled.set(schema, validate)
  }
  return validate?.(value) === true
}

export function isObject(value: unknown): value is Schema {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}
