/**
 * @file Test runner config: tests import the TypeScript sources directly; `dlc` resolves to the
 * public entry point so examples load the same way they do for users. dist/ is built once, up front,
 * by test/build-dist.ts for the tests that run the bundles.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { alias: { dlc: fileURLToPath(new URL('./compiler/index.ts', import.meta.url)) } },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/build-dist.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
