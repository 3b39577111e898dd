// Runs one routing plan (src/native/routing.ts) in the network namespace it is started in:
//   routing-helper.ts setup|teardown '<TunRouting as JSON>'
// Prints {"ok":true} or {"ok":false,"message":...}. The namespace test starts it with `ip netns exec`,
// so that nothing touches the host's own namespace.
import { routingSetup, routingTeardown, runRouting, type TunRouting } from '../../src/native/routing.js';

const [what, json] = process.argv.slice(2);
const plan = JSON.parse(json) as TunRouting;
const r = runRouting(what === 'teardown' ? routingTeardown(plan) : routingSetup(plan));
process.stdout.write(JSON.stringify(r.ok ? { ok: true } : { ok: false, message: r.error.message }) + '\n');
