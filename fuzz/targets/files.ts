// The files operators write: topologies for `kasane simulate` (the examples, mutated as YAML and as
// JSON), gateway configurations and authority.json. A bad file is a list of problems, each with a
// field, never an exception.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadTopology } from '../../src/sim/topology.js';
import { GATEWAY_CONFIG_LIMITS, parseGatewayConfig } from '../../src/gateway/config.js';
import { parseAuthorityConfig } from '../../src/authority/config.js';
import { readDocument } from '../../src/files/document.js';
import { exampleTexts } from '../captures.js';
import { Finding, type FuzzTarget } from '../harness.js';
import { mutateJson, mutateYaml } from '../mutate.js';
import { typedResult } from '../oracle.js';
import { parse } from 'yaml';

const enc = new TextEncoder();
const dec = new TextDecoder();

export const topology: FuzzTarget = {
  name: 'topology',
  description: 'topology files (loadTopology on YAML and JSON text): every problem with its field, no exception',
  async setup() {
    const yaml = [...exampleTexts(), enc.encode(SMALL_TOPOLOGY)];
    const json = yaml.map((t) => enc.encode(JSON.stringify(parse(dec.decode(t)))));
    const seeds = [...yaml, ...json];
    const values = new Map(seeds.map((s) => [s, parse(dec.decode(s)) as unknown]));
    return {
      seeds,
      // The YAML library's own pace, with room for a loaded machine: what is slower grows faster than the file.
      usPerByte: 10,
      next: (rng) => {
        const s = rng.pick(seeds);
        return s[0] === 0x7b ? mutateJson(rng, s, seeds) : mutateYaml(rng, s, seeds, values.get(s));
      },
      run(input) {
        const r = loadTopology({ text: dec.decode(input), file: 'fuzz.yaml' });
        if (r.ok) return;
        if (r.error.issues.length === 0)
          throw new Finding('untyped-error', `refused without any issue: ${r.error.message}`);
        for (const i of r.error.issues)
          if (typeof i.path !== 'string' || i.path === '' || typeof i.message !== 'string' || i.message === '')
            throw new Finding('untyped-error', `an issue without a path or message: ${JSON.stringify(i)}`);
      },
    };
  },
};

/** A small topology beside the examples: most inputs stay small, and parsing small files is fast. */
const SMALL_TOPOLOGY = `vpns: [{ name: V, id: 1 }]
nodes:
  - { name: A, terminal: 10.1.0.10 }
  - { name: B, terminal: 10.2.0.10, silent: true }
  - { name: G1, gateway: 192.0.2.1, inside: [A], members: { V: [A] } }
  - { name: G2, gateway: 192.0.2.2, inside: [B], members: { V: [10.2.0.0/24] }, timers: { searchTimeout: 500 } }
  - { name: R, router: true }
links: [[A, G1], [B, G2], { a: G1, b: R, mtu: 1400 }, { a: R, b: G2, loss: { searchPackets: 1 } }]
traffic: [{ from: A, to: B, count: 2 }]
events: [{ at: 500, rotate: V }]
`;

const GATEWAY_CONFIG = `data: /var/lib/kasane/g1
inside: [lan0]
outside: [wan0]
attached: [10.1.0.0/24]
tun: { inside: kasane-in, outside: kasane-out }
pathMtu: 1500
allowPlain: [203.0.113.0/24]
metrics: { listen: 127.0.0.1:9108 }
routingTable: 5150
timers: { idleTimeout: 60000, searchTimeout: 1000 }
limits: { maxPaths: 1000 }
ike: { port: 500, natPort: 4500, idleTimeout: 300000, cookieThreshold: 64, maxHalfOpen: 4096 }
keystore: { pkcs11: { module: /usr/lib/softhsm/libsofthsm2.so, token: kasane, pinFile: /etc/kasane/pin, key: kasane-ike } }
logLevel: info
`;

const AUTHORITY_CONFIG = JSON.stringify(
  {
    format: 'kasane-authority/1',
    name: 'ACME',
    listen: { host: '127.0.0.1', port: 7443 },
    url: 'https://127.0.0.1:7443',
    database: 'postgres://kasane@db/kasane',
    sans: ['authority.acme.example'],
    rotation: { periodMs: 86_400_000, overlapMs: 60_000, graceMs: 300_000, urgentGraceMs: 5_000 },
    enrollment: { tokenTtlMs: 3_600_000, certificateDays: 365 },
    federation: { permitValidityMs: 3_600_000, syncIntervalMs: 10_000 },
  },
  null,
  2,
);

export const configs: FuzzTarget = {
  name: 'config',
  description: 'gateway configuration files (YAML) and authority.json: every problem named, no exception',
  async setup() {
    const seeds = [
      enc.encode(GATEWAY_CONFIG),
      enc.encode(AUTHORITY_CONFIG),
      new Uint8Array(readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url))).subarray(0, 2000)),
    ];
    const gateway = parse(GATEWAY_CONFIG) as unknown;
    return {
      seeds,
      usPerByte: 10,
      next: (rng) => {
        const s = rng.pick(seeds.slice(0, 2));
        return s[0] === 0x7b ? mutateJson(rng, s, seeds) : mutateYaml(rng, s, seeds, gateway);
      },
      run(input) {
        const text = dec.decode(input);
        if (input[0] === 0x7b) return typedResult(parseAuthorityConfig(text, 'authority.json'), 'parseAuthorityConfig');
        const doc = readDocument({ text, file: 'gateway.yaml' }, GATEWAY_CONFIG_LIMITS);
        if (doc.ok) typedResult(parseGatewayConfig(doc.value.value, 'gateway.yaml'), 'parseGatewayConfig');
        else if (doc.issues.length === 0)
          throw new Finding('untyped-error', 'a gateway configuration refused without a problem listed');
      },
    };
  },
};
