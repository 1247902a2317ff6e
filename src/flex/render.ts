import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { messagingApi } from '@line/bot-sdk'
import { z } from 'zod'
import {
  ALT_TEXT_MAX,
  CONTAINER_MAX_BYTES,
  type FlexTemplate,
  type FlexVars,
  flexTemplateIdSchema,
  flexTemplateSchema,
  flexVarsSchema,
} from './flex.schemas.ts'

export const flexTemplatesDir = fileURLToPath(new URL('../../flex-templates/', import.meta.url))

const PLACEHOLDER = /\{\{\s*(\w+)\s*\}\}/g
const cache = new Map<string, FlexTemplate>()

export type RenderedFlex = { altText: string; contents: messagingApi.FlexContainer }

/** Ids of every template in flex-templates/ (`<id>.json`, not the `.sample.json` files). */
export function listFlexTemplateIds(dir = flexTemplatesDir): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') && !f.endsWith('.sample.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort()
}

/** Reads and validates `flex-templates/<id>.json` (cached per process). */
export function loadFlexTemplate(id: string, dir = flexTemplatesDir): FlexTemplate {
  const key = `${dir}\0${id}`
  const cached = cache.get(key)
  if (cached) return cached
  const validId = flexTemplateIdSchema.parse(id)
  const template = parseJsonFile(`${dir}${validId}.json`, flexTemplateSchema)
  cache.set(key, template)
  return template
}

/** Reads `flex-templates/<id>.sample.json`: example variables for previews and tests. */
export function loadFlexSample(id: string, dir = flexTemplatesDir): FlexVars {
  return parseJsonFile(`${dir}${flexTemplateIdSchema.parse(id)}.sample.json`, flexVarsSchema)
}

/**
 * Fills `{{name}}` placeholders. Substitution happens inside the parsed JSON's string values,
 * never in the JSON text, so a value (quotes, backslashes, braces) can only ever be string
 * content: it is escaped when the message is serialised. A missing variable is an error.
 */
export function renderFlexTemplate(id: string, vars: FlexVars): RenderedFlex {
  const template = loadFlexTemplate(id)
  const fill = (text: string) =>
    text.replace(PLACEHOLDER, (_, name: string) => {
      const value = Object.hasOwn(vars, name) ? vars[name] : undefined
      if (value === undefined) throw new Error(`flex template ${id}: no value for {{${name}}}`)
      return String(value)
    })
  const altText = fill(template.altText)
  const contents = substitute(template.contents, fill) as unknown as messagingApi.FlexContainer
  if (altText.length > ALT_TEXT_MAX) {
    throw new Error(`flex template ${id}: altText is over ${ALT_TEXT_MAX} characters`)
  }
  const bytes = Buffer.byteLength(JSON.stringify(contents))
  const max = CONTAINER_MAX_BYTES[template.contents.type]
  if (bytes > max) throw new Error(`flex template ${id}: ${bytes} bytes is over LINE's ${max}`)
  return { altText, contents }
}

function substitute(node: unknown, fill: (text: string) => string): unknown {
  if (typeof node === 'string') return fill(node)
  if (Array.isArray(node)) return node.map((child) => substitute(child, fill))
  if (node !== null && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, substitute(v, fill)]))
  }
  return node
}

function parseJsonFile<T>(file: string, schema: z.ZodType<T>): T {
  let raw: unknown
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'))
  } catch (error) {
    throw new Error(`${file}: ${error instanceof Error ? error.message : String(error)}`)
  }
  const result = schema.safeParse(raw)
  if (!result.success) throw new Error(`${file}: ${z.prettifyError(result.error)}`)
  return result.data
}
