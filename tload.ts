import { loadTopology } from './src/sim/topology.js';
const t0 = Date.now();
const r = loadTopology({ path: process.argv[2] });
console.log(process.argv[2], r.ok, Date.now() - t0, 'ms', Math.round(process.memoryUsage().rss / 1e6), 'MB', r.ok ? '' : r.error.message.slice(0, 300));
