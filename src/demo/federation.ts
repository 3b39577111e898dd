// Seed 001 on real Linux networking: two authorities that peer over mutual TLS, a gateway under
// each, terminals behind them, and one pairwise VPN (P7, id 7000) that both operators share. The
// first packet runs the key search, then IKEv2 between the gateways with certificates and permits
// (attribute certificates) each authority issued; withdrawing the share withdraws the permits and
// the tunnel goes. Used by `kasane demo federation` and the end-to-end tests.
//
//   A (10.1.0.10) - GA (10.200.1.2) --+               AUTHA 10.200.9.2 (authority-a)
//                                      +-- R ---------+
//   B (10.2.0.10) - GB (10.200.2.2) --+               AUTHB 10.200.8.2 (authority-b)
//
// With `ipv6`, every link is dual stack too (A fd00:1::10, B fd00:2::10, the WAN links
// fd00:200:N::/64) and the gateways' outside addresses are IPv6 (GA fd00:200:1::2, GB
// fd00:200:2::2): IKE and the Child SAs run over IPv6, carrying v6 in v6 and v4 in v6. The
// authorities stay on IPv4 (their API and peering are not what this shows).
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { buildSites, waitFor, type SiteSpec, type Sites } from '../testbed/sites.js';

export const FEDERATION_TERMINALS = { A: '10.1.0.10', B: '10.2.0.10' } as const;
export const FEDERATION_TERMINALS6 = { A: 'fd00:1::10', B: 'fd00:2::10' } as const;
/** The gateways' outside addresses with `ipv6`. */
export const FEDERATION_GATEWAYS6 = { GA: 'fd00:200:1::2', GB: 'fd00:200:2::2' } as const;
export const SHARED_VPN = 'P7';

export interface FederationOptions {
  dir: string;
  cli?: string[];
  log?: (l: string) => void;
  /**
   * How long permits last (default: the authorities' default, 1 h) and how often the authorities exchange (default 1 s
   * here).
   */
  permitValidityMs?: number;
  syncIntervalMs?: number;
  /** The gateways delete an idle Child SA (and its IKE SA) after this long (default: the gateway's, 5 min). */
  ikeIdleTimeoutMs?: number;
  /** Extra YAML for each gateway (e.g. GB's IKE key in a PKCS#11 token). */
  gatewayConfig?: { GA?: string; GB?: string };
  /** Dual-stack links and terminals, the gateways' outside addresses IPv6 (an IPv6 WAN). */
  ipv6?: boolean;
}

export function federationSpec(o: FederationOptions): SiteSpec {
  const federation = {
    syncIntervalMs: o.syncIntervalMs ?? 1000,
    ...(o.permitValidityMs !== undefined && { permitValidityMs: o.permitValidityMs }),
  };
  const side = [
    { n: 1, t: 'A', g: 'GA', auth: 'AUTHA', authority: 'authority-a', authAddr: '10.200.9.2', r: 'ga', ra: 'aa' },
    { n: 2, t: 'B', g: 'GB', auth: 'AUTHB', authority: 'authority-b', authAddr: '10.200.8.2', r: 'gb', ra: 'ab' },
  ] as const;
  const v6 = <X>(...x: X[]): X[] => (o.ipv6 ? x : []);
  return {
    dir: o.dir,
    cli: o.cli,
    log: o.log,
    hosts: ['A', 'B', 'GA', 'GB', 'R', 'AUTHA', 'AUTHB'],
    links: side.flatMap((s) => [
      {
        a: [s.t, 'eth0', `10.${s.n}.0.10/24`, ...v6(`fd00:${s.n}::10/64`)],
        b: [s.g, 'lan0', `10.${s.n}.0.1/24`, ...v6(`fd00:${s.n}::1/64`)],
      },
      {
        a: [s.g, 'wan0', `10.200.${s.n}.2/24`, ...v6(`fd00:200:${s.n}::2/64`)],
        b: ['R', s.r, `10.200.${s.n}.1/24`, ...v6(`fd00:200:${s.n}::1/64`)],
      },
      { a: [s.auth, 'eth0', `${s.authAddr}/24`], b: ['R', s.ra, s.authAddr.replace(/\.2$/, '.1/24')] },
    ]) as SiteSpec['links'],
    routes: {
      ...Object.fromEntries(
        side.flatMap((s) => [
          [s.t, [['default', 'via', `10.${s.n}.0.1`], ...v6(['default', 'via', `fd00:${s.n}::1`])]],
          [s.g, [['default', 'via', `10.200.${s.n}.1`], ...v6(['default', 'via', `fd00:200:${s.n}::1`])]],
          [s.auth, [['default', 'via', s.authAddr.replace(/\.2$/, '.1')]]],
        ]),
      ),
      R: side.flatMap((s) => [
        [`10.${s.n}.0.0/24`, 'via', `10.200.${s.n}.2`],
        ...v6([`fd00:${s.n}::/64`, 'via', `fd00:200:${s.n}::2`]),
      ]),
    },
    routers: ['R'],
    authorities: side.map((s) => ({ name: s.authority, host: s.auth, address: s.authAddr, config: { federation } })),
    vpns: [{ name: SHARED_VPN, id: 7000, mode: 'pairwise' }],
    gateways: side.map((s) => ({
      name: s.g,
      authority: s.authority,
      address: o.ipv6 ? FEDERATION_GATEWAYS6[s.g] : `10.200.${s.n}.2`,
      inside: ['lan0'],
      outside: ['wan0'],
      members: { [SHARED_VPN]: [`10.${s.n}.0.0/24`, ...v6(`fd00:${s.n}::/64`)] },
      config: `ike: { halfOpenTimeout: 5000, retransmitTries: 3${o.ikeIdleTimeoutMs ? `, idleTimeout: ${o.ikeIdleTimeoutMs}` : ''} }\n${o.gatewayConfig?.[s.g] ?? ''}`,
    })),
    // The operators exchange their roots once (out of band), peer, and share P7; the gateways start
    // once the authorities have exchanged members and permits.
    async beforeGateways(sites) {
      for (const a of sites.authorities)
        writeFileSync(join(o.dir, `${a.name}.root.pem`), sites.adminOf(a.name, 'authority', 'ca'));
      for (const [me, other] of [sites.authorities, [...sites.authorities].reverse()]) {
        sites.adminOf(
          me.name,
          'authority',
          'peer',
          'add',
          other.name,
          '--peer-url',
          `https://${other.address}:7443`,
          '--root',
          join(o.dir, `${other.name}.root.pem`),
        );
        sites.adminOf(me.name, 'vpn', 'share', SHARED_VPN, '--peer', other.name);
      }
      await waitFor(() => exchanged(sites), 60_000, 'the authorities to exchange members and permits');
      o.log?.(
        `${sites.authorities.map((a) => a.name).join(' and ')} peered; ${SHARED_VPN} shared; members and permits exchanged`,
      );
    },
  };
}

/** Both authorities list the other's member of P7 and hold a permit each way. */
export function exchanged(sites: Sites): boolean {
  return sites.authorities.every((a) => {
    const v = JSON.parse(sites.adminOf(a.name, 'authority', 'peer', 'list', '--json')) as {
      shares: { foreignMembers: unknown[]; permitsIn: number; permitsOut: number }[];
    };
    return v.shares[0]?.foreignMembers.length === 1 && v.shares[0].permitsIn === 1 && v.shares[0].permitsOut === 1;
  });
}

export function buildFederation(o: FederationOptions): Promise<Sites> {
  return buildSites(federationSpec(o));
}
