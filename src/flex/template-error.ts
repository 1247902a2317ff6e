import { isAbsolute, relative } from 'node:path'

/** One problem in a template or its result: `path` is a JSON path (`line.contents.body…`). */
export type TemplateProblem = { path: string; message: string }

/**
 * A template that can't be loaded, variables that don't fit its schema, or a rendered message
 * over LINE's limits. `file` is the template file (relative to the working directory when
 * inside it); `path` is where the first problem is; `problems` lists all of them.
 */
export class TemplateError extends Error {
  override name = 'TemplateError'
  readonly file: string
  readonly path: string
  readonly problems: TemplateProblem[]

  constructor(file: string, problems: TemplateProblem | TemplateProblem[], opts?: ErrorOptions) {
    const list = Array.isArray(problems) ? problems : [problems]
    const text = list.map((p) => (p.path ? `${p.path} ${p.message}` : p.message)).join('; ')
    super(`${file}: ${text}`, opts)
    this.file = file
    this.path = list[0]?.path ?? ''
    this.problems = list
  }
}

/** `flex-templates/x.json` when under the working directory, else the absolute path. */
export function displayPath(file: string): string {
  const rel = relative(process.cwd(), file)
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file
}

/** Appends a key or index to a JSON path the way LINE's error details write it. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`
  return path ? `${path}.${key}` : key
}
