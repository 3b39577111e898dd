// Regenerates test/vectors/executor.json from the TypeScript reference executor.
// Run after a deliberate change of executor semantics (docs/executor.md), then review the diff.
import { writeFileSync } from 'node:fs';
import { TsExecutor } from '../src/core/ts-executor.js';
import { generateExecutorVectors } from '../test/support/executor-vectors.js';

const scenarios = generateExecutorVectors(() => new TsExecutor());
const path = new URL('../test/vectors/executor.json', import.meta.url);
writeFileSync(path, JSON.stringify({ version: 1, semantics: 'docs/executor.md', scenarios }, null, 1) + '\n');
console.log(`wrote ${path.pathname}: ${scenarios.reduce((n, s) => n + s.steps.length, 0)} steps`);
