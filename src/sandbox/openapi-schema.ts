/**
 * Turns OpenAPI 3.0 component schemas into plain JSON Schema `$defs` that Ajv can compile.
 *
 * OpenAPI polymorphism: a base schema carries `discriminator: { propertyName, mapping }` and each
 * subtype is `allOf: [{ $ref: base }, {...}]`. Plain JSON Schema would only check the base, so for
 * every base with a mapping we add `<Base>__dispatch`: the property must be one of the mapping keys,
 * and `if <prop> = key then $ref subtype`. Every `$ref` to the base is pointed at the dispatching
 * variant, except the subtypes' own `allOf` references, which keep the plain base (no recursion).
 * `nullable` becomes a `null` type, and OpenAPI-only annotations are dropped.
 */

export type JsonSchema = { [key: string]: unknown }

type Discriminator = { propertyName: string; mapping: Record<string, string> }

const COMPONENT_REF = '#/components/schemas/'
const ANNOTATIONS = new Set(['discriminator', 'example', 'externalDocs', 'xml', 'nullable'])

export function dispatchName(name: string): string {
  return `${name}__dispatch`
}

export type SchemaConverter = {
  /** Converts one OpenAPI schema (a component or an inline request/parameter schema). */
  convert(schema: unknown): JsonSchema
  /** All component schemas, converted, plus the dispatching variants. */
  defs: Record<string, JsonSchema>
}

/** `refBase` is the `$id` the defs will be registered under, so converted refs resolve anywhere. */
export function createSchemaConverter(
  components: Record<string, unknown>,
  refBase: string,
): SchemaConverter {
  const discriminators = new Map<string, Discriminator>()
  /** subtype name → the bases whose mapping lists it */
  const basesOfSubtype = new Map<string, Set<string>>()
  for (const [name, schema] of Object.entries(components)) {
    const disc = readDiscriminator(schema)
    if (!disc) continue
    discriminators.set(name, disc)
    for (const ref of Object.values(disc.mapping)) {
      const sub = refName(ref)
      if (!sub) continue
      const set = basesOfSubtype.get(sub) ?? new Set<string>()
      set.add(name)
      basesOfSubtype.set(sub, set)
    }
  }

  const convertRef = (ref: string, plainBases: Set<string> | undefined): JsonSchema => {
    const name = refName(ref)
    if (!name) throw new Error(`unsupported $ref ${ref}`)
    const useDispatch = discriminators.has(name) && !plainBases?.has(name)
    return { $ref: `${refBase}#/$defs/${useDispatch ? dispatchName(name) : name}` }
  }

  /** `allOfPlainBases`: bases this schema's own `allOf` members may reference without dispatch. */
  const convert = (schema: unknown, allOfPlainBases?: Set<string>): JsonSchema => {
    if (!isObject(schema)) throw new Error('schema must be an object')
    if (typeof schema.$ref === 'string') return convertRef(schema.$ref, undefined)
    const out: JsonSchema = {}
    for (const [key, value] of Object.entries(schema)) {
      if (ANNOTATIONS.has(key) || key.startsWith('x-')) continue
      out[key] =
        key === 'allOf'
          ? asArray(value).map((member) =>
              isObject(member) && typeof member.$ref === 'string'
                ? convertRef(member.$ref, allOfPlainBases)
                : convert(member),
            )
          : convertKeyword(key, value)
    }
    if (schema.nullable === true) return makeNullable(out)
    return out
  }

  const convertKeyword = (key: string, value: unknown): unknown => {
    switch (key) {
      case 'properties':
        return mapValues(value, (v) => convert(v))
      case 'items':
      case 'not':
        return convert(value)
      case 'additionalProperties':
        return isObject(value) ? convert(value) : value
      case 'anyOf':
      case 'oneOf':
        return asArray(value).map((v) => convert(v))
      default:
        return value
    }
  }

  const defs: Record<string, JsonSchema> = {}
  for (const [name, schema] of Object.entries(components)) {
    defs[name] = convert(schema, basesOfSubtype.get(name))
  }
  for (const [name, disc] of discriminators) {
    defs[dispatchName(name)] = buildDispatch(name, disc, refBase)
  }

  return { defs, convert: (schema) => convert(schema) }
}

function buildDispatch(name: string, disc: Discriminator, refBase: string): JsonSchema {
  const prop = disc.propertyName
  const branches = Object.entries(disc.mapping).map(([value, ref]) => ({
    if: { properties: { [prop]: { const: value } }, required: [prop] },
    // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then keyword, not a thenable
    then: { $ref: `${refBase}#/$defs/${refName(ref) ?? name}` },
  }))
  return {
    type: 'object',
    required: [prop],
    properties: { [prop]: { type: 'string', enum: Object.keys(disc.mapping) } },
    allOf: branches,
  }
}

function makeNullable(schema: JsonSchema): JsonSchema {
  if (typeof schema.type === 'string') {
    const out: JsonSchema = { ...schema, type: [schema.type, 'null'] }
    if (Array.isArray(schema.enum) && !schema.enum.includes(null)) out.enum = [...schema.enum, null]
    return out
  }
  return { anyOf: [{ type: 'null' }, schema] }
}

function readDiscriminator(schema: unknown): Discriminator | undefined {
  if (!isObject(schema) || !isObject(schema.discriminator)) return undefined
  const { propertyName, mapping } = schema.discriminator
  if (typeof propertyName !== 'string' || !isObject(mapping)) return undefined
  const entries = Object.entries(mapping).filter(
    (e): e is [string, string] => typeof e[1] === 'string',
  )
  return { propertyName, mapping: Object.fromEntries(entries) }
}

function refName(ref: string): string | undefined {
  return ref.startsWith(COMPONENT_REF) ? ref.slice(COMPONENT_REF.length) : undefined
}

function mapValues(value: unknown, fn: (v: unknown) => unknown): Record<string, unknown> {
  if (!isObject(value)) return {}
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fn(v)]))
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : []
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
