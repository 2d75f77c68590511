/**
 * @file Test runner config: tests import the TypeScript sources directly; `dlc` resolves to the
 * public entry point so examples load the same way they do for users. dist/ is built once, up front,
 * by test/build-dist.ts for the tests that run the bundles. Suites that need WebGPU or Chromium skip
 * with a banner when the machine lacks them (test/helpers/requirements.ts); the reporter below repeats
 * those banners at the end.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import type { Reporter } from 'vitest/node';

/**
 * Repeats, after vitest's summary where a newcomer looks, the banners of suites skipped because the
 * machine lacks WebGPU or Chromium (printed by test/helpers/requirements.ts as `!!! SKIPPED:`,
 * `!!! MISSING:` and `!!! TO GET IT:` lines): a run that passed without them says so last.
 */
function skippedRequirements(): Reporter {
  const lines: string[] = [];
  return {
    onUserConsoleLog(log) {
      for (const l of log.content.split('\n')) if (/^!!! (SKIPPED|MISSING|TO GET IT):/.test(l) && !lines.includes(l)) lines.push(l);
    },
    onTestRunEnd() {
      if (!lines.length) return;
      const bar = '!'.repeat(100);
      const by = (k: string) => lines.filter((l) => l.startsWith(`!!! ${k}:`));
      const body = [...by('SKIPPED'), ...by('MISSING'), ...by('TO GET IT')];
      process.stderr.write(`\n${bar}\n!!! NOT EVERYTHING WAS TESTED: this machine lacks what these need.\n${body.join('\n')}\n${bar}\n\n`);
    },
  };
}

export default defineConfig({
  resolve: { alias: { dlc: fileURLToPath(new URL('./compiler/index.ts', import.meta.url)) } },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/build-dist.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default', skippedRequirements()],
  },
});
