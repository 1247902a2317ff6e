import { isValidEan13 } from './ean13.ts'

/**
 * EAN-13 as a PNG with the digits printed under the bars, white background and quiet zones.
 * About 400×260 px: inside LINE's 1024×1024 image limit, and sharp enough for register scanners.
 */
export async function renderEan13Png(code: string): Promise<Buffer> {
  if (!isValidEan13(code)) throw new Error('not a valid EAN-13 code')
  // Loaded at the first card image: ~14 MB that workers and most web processes never use.
  const { toBuffer } = await import('bwip-js/node')
  return toBuffer({
    bcid: 'ean13',
    text: code,
    scale: 3,
    height: 20,
    includetext: true,
    guardwhitespace: true,
    paddingwidth: 10,
    paddingheight: 10,
    backgroundcolor: 'FFFFFF',
  })
}
