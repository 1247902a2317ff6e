import { writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { messageVarsSchema } from '../flex/flex.schemas.ts'
import { renderPreviewPage } from '../flex/flex-preview.ts'
import { describeProblems, validateTemplateFolder } from '../flex/flex-validate.ts'
import {
  flexTemplatesDir,
  loadMessageTemplate,
  readJsonFile,
  renderMessageDraft,
} from '../flex/message-template.ts'
import { loadFlexSample } from '../flex/render.ts'
import { runCommand } from './with-db.ts'

export function registerFlexCommands(program: Command): void {
  const flex = program
    .command('flex')
    .description('message templates in flex-templates/ (LINE Flex + email versions)')
  flex
    .command('validate')
    .description(
      'render every template with its .sample.json and check it: variables schema, LINE limits, ' +
        "LINE's Flex schema, email subject/html/text; one line per template, exit 1 on any error",
    )
    .option('--dir <dir>', 'the templates folder', flexTemplatesDir)
    .action((opts: { dir: string }) =>
      runCommand(() => {
        const reports = validateTemplateFolder(resolve(opts.dir))
        for (const r of reports) {
          console.log(
            r.problems.length === 0 ? `ok    ${r.id}` : `FAIL  ${r.id}  ${describeProblems(r)}`,
          )
        }
        const failed = reports.filter((r) => r.problems.length > 0).length
        console.error(`${reports.length} templates, ${failed} with errors`)
        if (failed > 0) process.exitCode = 1
      }),
    )
  flex
    .command('preview')
    .description(
      'write one HTML page showing a template as LINE draws it and as email; prints its path',
    )
    .argument('<id>', 'template id (file name without .json)')
    .option('--vars <file>', 'variables as a JSON file (default: <id>.sample.json)')
    .option('--out <file>', 'where to write the page (default: ./<id>.preview.html)')
    .option('--dir <dir>', 'the templates folder', flexTemplatesDir)
    .action((id: string, opts: { vars?: string; out?: string; dir: string }) =>
      runCommand(() => {
        const dir = resolve(opts.dir)
        const template = loadMessageTemplate(id, dir)
        const vars = opts.vars ? readVars(opts.vars) : loadFlexSample(id, dir)
        const { message, problems } = renderMessageDraft(id, vars, { dir })
        const out = resolve(opts.out ?? `${id}.preview.html`)
        writeFileSync(out, renderPreviewPage({ template, message, problems }))
        console.log(out)
        for (const p of problems) console.error(`${template.file}: ${p.path} ${p.message}`)
        if (problems.length > 0) process.exitCode = 1
      }),
    )
}

function readVars(file: string): Record<string, unknown> {
  const parsed = messageVarsSchema.safeParse(readJsonFile(file))
  if (!parsed.success) throw new Error(`${file}: the variables must be a JSON object`)
  return parsed.data
}
