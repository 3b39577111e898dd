// Regenerates test/vectors/executor-v6.json from the TypeScript reference executor.
// Run after a deliberate change of executor semantics (docs/executor.md), then review the diff:
//   node --import tsx test/core/gen-executor-v6-vectors.ts
import { writeFileSync } from 'node:fs';
import { TsExecutor } from '../../src/core/ts-executor.js';
import { generateExecutorV6Vectors } from './executor-v6-vectors.js';

const scenarios = generateExecutorV6Vectors(() => new TsExecutor());
const path = new URL('../vectors/executor-v6.json', import.meta.url);
writeFileSync(path, JSON.stringify({ version: 1, semantics: 'docs/executor.md (IPv6)', scenarios }, null, 1) + '\n');
console.log(`wrote ${path.pathname}: ${scenarios.reduce((n, s) => n + s.steps.length, 0)} steps`);
