// A camera and a BarcodeDetector for headless Chromium, which has neither; installed with
// context.addInitScript, so it is in place before the page's own script runs.
// getUserMedia answers a canvas's captureStream() (or, with `refuse`, fails as a denied
// permission prompt does); the detector finds `barcode` only in frames of a playing video, from
// the third one it is shown on. What the page asked for is kept in `window.fakeCamera`.
// biome-ignore lint/correctness/noUnusedVariables: called by the init script that inlines this file
function installFakeCamera({ barcode = null, refuse = false }) {
  const seen = { constraints: [], formats: null, frames: 0, streams: [] }
  window.fakeCamera = seen

  class FakeBarcodeDetector {
    static async getSupportedFormats() {
      return ['ean_13', 'qr_code']
    }
    constructor(options) {
      seen.formats = options?.formats ?? null
    }
    async detect(source) {
      // As the real one: a video with no frame yet has nothing to find.
      if (!(source instanceof HTMLVideoElement) || source.readyState < 2) return []
      if (source.videoWidth === 0 || source.paused) return []
      seen.frames += 1
      if (!barcode || seen.frames < 3) return []
      return [{ rawValue: barcode, format: 'ean_13', boundingBox: new DOMRectReadOnly() }]
    }
  }
  window.BarcodeDetector = FakeBarcodeDetector

  navigator.mediaDevices.getUserMedia = async (constraints) => {
    seen.constraints.push(constraints)
    if (refuse) throw new DOMException('Permission denied', 'NotAllowedError')
    const canvas = document.createElement('canvas')
    canvas.width = 320
    canvas.height = 240
    const context = canvas.getContext('2d')
    let frame = 0
    const draw = () => {
      context.fillStyle = frame++ % 2 ? '#ffffff' : '#202020'
      context.fillRect(0, 0, canvas.width, canvas.height)
    }
    draw()
    setInterval(draw, 50)
    const stream = canvas.captureStream(20)
    seen.streams.push(stream)
    return stream
  }
}
