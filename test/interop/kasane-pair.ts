// The harness of the kasane-against-strongSwan tests: kasane's gateway IKE edge
// (kasane-ike-gateway.ts) on gwA under authority A, charon on gwB under authority B, in the
// two-site topology of authorities.ts, over IPv4 or IPv6 outside addresses and with the
// terminals' prefixes of either family or both. `pair()` (re)starts both gateways for one case.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { authority, HOUR, permitPem, SITES, type Side, type SiteFamily } from './authorities.js';
import { JsonLines, waitExit, type Testbed } from '../../src/testbed/netns.js';
import { Charon } from '../../src/testbed/strongswan.js';
import type { KasaneIkeGatewayConfig } from './kasane-ike-gateway.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GATEWAY = fileURLToPath(new URL('./kasane-ike-gateway.ts', import.meta.url));

export interface Kasane {
  lines: JsonLines;
  send(cmd: string): void;
  close(): Promise<void>;
}

/** Which family the gateways talk IKE and ESP over, and which families of terminals the VPN carries. */
export interface PairLayout {
  outside: SiteFamily;
  inside: SiteFamily[];
}

export interface PairOptions {
  kasanePermit?: string;
  charonPermits?: string[];
  kasaneVpnName?: string;
  charonGroups?: string[];
  kasaneAa?: string;
  timers?: Record<string, number>;
  ikeProposal?: string;
  espProposal?: string;
}

export interface Parties {
  A: Side;
  B: Side;
  rogue: Side;
  cas: string[];
  forGA: string;
  forGB: string;
  now: number;
}

/** Authorities A (kasane's), B (strongSwan's) and a rogue one, and the permits A and B exchange for VPN P7. */
export async function parties(): Promise<Parties> {
  const now = Date.now();
  const A = await authority('authority-a', 'GA', now);
  const B = await authority('authority-b', 'GB', now);
  const rogue = await authority('rogue', 'GX', now);
  const cas = [A.ca.root, A.ca.issuing, B.ca.root, B.ca.issuing].map((c) => c.cert.toString('pem'));
  const forGA = await permitPem(B, A, 'P7', now - HOUR, now + 12 * HOUR); // GA presents it to GB
  const forGB = await permitPem(A, B, 'P7', now - HOUR, now + 12 * HOUR); // GB presents it to GA
  return { A, B, rogue, cas, forGA, forGB, now };
}

export class KasanePair {
  private run = 0;
  charon?: Charon;
  kasane?: Kasane;

  constructor(
    private readonly tb: Testbed,
    private readonly ns: Record<'hostA' | 'gwA' | 'R' | 'gwB' | 'hostB', string>,
    private readonly dir: string,
    private readonly plugin: string,
    private readonly p: Parties,
    private readonly layout: PairLayout,
  ) {}

  async stop(): Promise<void> {
    await this.kasane?.close();
    await this.charon?.stop();
    this.kasane = undefined;
    this.charon = undefined;
  }

  /** Starts charon on gwB and kasane on gwA for one case. */
  async pair(o: PairOptions = {}): Promise<{ charon: Charon; kasane: Kasane }> {
    await this.stop();
    this.run++;
    const { A, B, cas, forGA, forGB } = this.p;
    const out = SITES[this.layout.outside];
    const inside = this.layout.inside.map((f) => SITES[f]);
    const charon = Charon.prepare(
      this.tb,
      this.ns.gwB,
      join(this.dir, `v${this.layout.outside}-${this.layout.inside.join('')}-${this.run}-charon`),
      this.plugin,
      {
        cert: B.cert.toString('pem'),
        key: B.keyPem,
        cas,
        aas: [B.aa.cert.toString('pem')],
        permits: o.charonPermits ?? [forGB],
      },
      [
        {
          name: 'p7',
          localAddr: out.gwB,
          remoteAddr: out.gwA,
          localId: B.cert.subject,
          remoteId: A.cert.subject,
          groups: o.charonGroups ?? ['P7'],
          localTs: inside.map((s) => s.lanB).join(','),
          remoteTs: inside.map((s) => s.lanA).join(','),
          ikeProposal: o.ikeProposal,
          espProposal: o.espProposal,
        },
      ],
    );
    this.charon = charon;
    await charon.start();
    const other = this.layout.outside === 4 ? 6 : 4;
    const cfg: KasaneIkeGatewayConfig = {
      name: 'GA',
      address: out.gwA,
      addresses: [SITES[other].gwA],
      routing: { insideTun: 'kin', outsideTun: 'kout', insideIfaces: ['lan0'], outsideIfaces: ['wan0'] },
      certificatePem: A.cert.toString('pem'),
      keyPem: A.keyPem,
      attributeAuthorityPem: o.kasaneAa ?? A.aa.cert.toString('pem'),
      caPems: [A.ca.issuing.cert.toString('pem'), A.ca.root.cert.toString('pem')],
      peer: {
        name: 'GB',
        address: out.gwB,
        certificatePem: B.cert.toString('pem'),
        vpnId: 7,
        vpnName: o.kasaneVpnName ?? 'P7',
        localPrefixes: inside.map((s) => s.lanA),
        remotePrefixes: inside.map((s) => s.lanB),
      },
      permitPem: o.kasanePermit ?? forGA,
      hosts: inside.map((s) => ({ local: s.hostA, remote: s.hostB })),
      timers: o.timers,
    };
    this.kasane = await startKasane(this.tb, this.ns.gwA, cfg);
    return { charon, kasane: this.kasane };
  }

  /** hostA pings hostB over `family` (ping -6 for IPv6); true when the replies come. */
  ping(family: SiteFamily = 4, count = 2): boolean {
    try {
      this.tb.exec(
        this.ns.hostA,
        'ping',
        `-${family}`,
        '-c',
        String(count),
        '-i',
        '0.2',
        '-W',
        '2',
        SITES[family].hostB,
      );
      return true;
    } catch {
      return false;
    }
  }
}

/** Starts kasane's IKE gateway (kasane-ike-gateway.ts) in namespace `ns` and waits until it is ready. */
export async function startKasane(tb: Testbed, ns: string, cfg: KasaneIkeGatewayConfig): Promise<Kasane> {
  const child = tb.spawn(ns, process.execPath, ['--import', 'tsx', GATEWAY, JSON.stringify(cfg)], {
    stdin: true,
    cwd: ROOT,
  });
  const lines = new JsonLines(child);
  const first = await lines.wait(
    (e) => e.event === 'ready' || e.event === 'error',
    30_000,
    `kasane IKE gateway ${cfg.name}`,
  );
  assert.equal(first.event, 'ready', `kasane gateway ${cfg.name}: ${JSON.stringify(first)} ${lines.stderr}`);
  return {
    lines,
    send: (cmd) => child.stdin!.write(cmd + '\n'),
    async close() {
      child.stdin!.write('close\n');
      await lines.wait((e) => e.event === 'closed', 15_000, `kasane gateway ${cfg.name} closed`);
      assert.equal(await waitExit(child, 10_000), 0, `kasane gateway ${cfg.name} exit; stderr: ${lines.stderr}`);
    },
  };
}

export const ikeEvent = (k: Kasane, name: string, ms = 15_000) =>
  k.lines.wait((e) => e.event === 'ike' && e.msg === `IKE ${name}`, ms, `kasane IKE ${name}`);
export const childSas = (c: Charon) =>
  new Set([...c.fullLog().matchAll(/CHILD_SA p7\{(\d+)\} established/g)].map((m) => m[1])).size;
