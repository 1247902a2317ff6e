import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createCanvas } from '@napi-rs/canvas'
import { expect } from 'vitest'
import { loadRichMenus } from '../../src/richmenu/richmenu-files.ts'

/** A small valid menu.json: 800×400, two postback areas side by side. */
export function menuJson(
  over: Record<string, unknown> = {},
  richMenu: Record<string, unknown> = {},
) {
  return {
    segments: ['member'],
    ...over,
    richMenu: {
      size: { width: 800, height: 400 },
      selected: false,
      name: 'test menu',
      chatBarText: 'Menu',
      areas: [
        area(0, 400, { type: 'postback', label: 'Card', data: 'action=card' }),
        area(400, 400, { type: 'postback', label: 'Help', data: 'action=help' }),
      ],
      ...richMenu,
    },
  }
}

export function area(x: number, width: number, action: Record<string, unknown>, height = 400) {
  return { bounds: { x, y: 0, width, height }, action }
}

/** A real image of the given size, one flat colour. */
export function image(
  width = 800,
  height = 400,
  type: 'png' | 'jpeg' = 'png',
  colour = '#06c755',
): Buffer {
  const canvas = createCanvas(width, height)
  const ctx = canvas.getContext('2d')
  ctx.fillStyle = colour
  ctx.fillRect(0, 0, width, height)
  return type === 'png' ? canvas.toBuffer('image/png') : canvas.toBuffer('image/jpeg')
}

/** A temp richmenus/ folder; `add` writes one menu folder (menu.json and, unless null, an image). */
export function menuFolder() {
  const dir = mkdtempSync(join(tmpdir(), 'kizuna-richmenus-'))
  const add = (
    name: string,
    json: unknown = menuJson(),
    files: Record<string, Buffer | null> = { 'image.png': image() },
  ) => {
    mkdirSync(join(dir, name), { recursive: true })
    writeFileSync(join(dir, name, 'menu.json'), JSON.stringify(json, null, 2))
    for (const [file, bytes] of Object.entries(files)) {
      if (bytes) writeFileSync(join(dir, name, file), bytes)
    }
    return join(dir, name)
  }
  return { dir, add }
}

/** Loads one folder `m` with this menu.json (and image) and returns its problems by field. */
export function problemsOf(json: unknown, files?: Record<string, Buffer | null>) {
  const { dir, add } = menuFolder()
  add('m', json, files)
  const { menus, problems } = loadRichMenus(dir)
  expect(menus).toEqual([])
  return problems.map((p) => ({ ...p, file: p.file.slice(dir.length + 1) }))
}

/** Expects `json` (as m/menu.json) to be refused at `field` with a message matching `message`. */
export function expectProblem(json: unknown, field: string, message: RegExp) {
  const problems = problemsOf(json)
  expect(problems, JSON.stringify(problems)).toContainEqual({
    file: 'm/menu.json',
    field,
    message: expect.stringMatching(message),
  })
}
