import type { z } from 'zod'
import { describeFields } from '../../platform/errors.ts'
import { checkInput } from '../../platform/input.ts'
import { reportBadRow } from './progress.ts'
import type { SourceRecord } from './read-records.ts'

/** Validates one record: its value, or what is wrong with it by field (`field: problem; …`). */
export function checkRow<T extends z.ZodType>(
  schema: T,
  item: SourceRecord,
): { value: z.infer<T>; error?: undefined } | { error: string } {
  if (item.error !== undefined) return { error: item.error }
  const checked = checkInput(schema, item.record)
  if (checked.ok) return { value: checked.data }
  return { error: describeFields(checked.fields).replaceAll('(body)', '(row)') }
}

/** Validates one record; reports it by line and field and returns undefined when it is bad. */
export function parseRow<T extends z.ZodType>(
  schema: T,
  item: SourceRecord,
): z.infer<T> | undefined {
  const checked = checkRow(schema, item)
  if (checked.error === undefined) return checked.value
  reportBadRow(item.line, checked.error)
  return undefined
}
