// The native fast path: a C addon (native/) that runs the executor's semantics (docs/executor.md)
// and owns the TUN datapath (docs/dataplane.md). loadNative() reports when it is unavailable; the
// TypeScript executor (src/core/ts-executor.ts) is the fallback.
export { loadNative, type NativeBinding } from './binding.js';
export { NativeExecutor, COUNTER_NAMES } from './native-executor.js';
export { NativeDatapath, type DatapathOptions, type PuntBatch, type UdpBatch } from './datapath.js';
export {
  guardTableName,
  policyRules,
  routingSetup,
  routingTeardown,
  runRouting,
  type PolicyRule,
  type RoutingCommand,
  type TunRouting,
} from './routing.js';
