import type { z } from 'zod'
import { describeFields } from '../../platform/errors.ts'
import { checkInput } from '../../platform/input.ts'
import { reportBadRow } from './progress.ts'
import type { SourceRecord } from './read-records.ts'

/** Validates one record; reports it by line and field and returns undefined when it is bad. */
export function parseRow<T extends z.ZodType>(
  schema: T,
  item: SourceRecord,
): z.infer<T> | undefined {
  if (item.error !== undefined) {
    reportBadRow(item.line, item.error)
    return undefined
  }
  const checked = checkInput(schema, item.record)
  if (checked.ok) return checked.data
  reportBadRow(item.line, describeFields(checked.fields).replaceAll('(body)', '(row)'))
  return undefined
}
