import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    globalSetup: ['test/support/global-setup.ts'],
    fileParallelism: false,
    // Files share one module graph: each no longer imports the app afresh (~0.9 s a file on a
    // slow machine, 106 s of a 13-minute run). Nothing in src keeps global state a test changes
    // (metrics have a registry per app, every test starts its own Kizuna), and no test mocks.
    isolate: false,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
})
