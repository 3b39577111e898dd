// Seed 000 Figure 1(2), multi-stage (nested) VPNs, on real Linux networking: terminals behind an
// inner gateway (VPN dept) behind an outer gateway (VPN company) on each side. One key search from
// the first packet sets up both layers; the WAN carries ESP inside ESP. Used by
// `kasane demo multistage` and the end-to-end tests.
//
//   A 10.1.1.10 - Gi1 (dept) - Go1 (company) - R - Go2 (company) - Gi2 (dept) - B 10.2.1.10
//                                              |
//                                       AUTH 10.200.9.2
//
// With `ipv6`, every link is dual stack too: A fd00:1:1::10 and B fd00:2:1::10; dept holds
// fd00:N:1::/64, company fd00:N::/32, the WAN links are fd00:200:N::/64.
import { buildSites, type SiteSpec, type Sites } from '../testbed/sites.js';

export const MULTISTAGE_TERMINALS = { A: '10.1.1.10', B: '10.2.1.10' } as const;
export const MULTISTAGE_TERMINALS6 = { A: 'fd00:1:1::10', B: 'fd00:2:1::10' } as const;

export function multistageSpec(o: {
  dir: string;
  cli?: string[];
  gatewayConfig?: string;
  log?: (l: string) => void;
  ipv6?: boolean;
}): SiteSpec {
  const sides = [1, 2] as const;
  const t = (n: 1 | 2) => (n === 1 ? 'A' : 'B');
  const v6 = <X>(...x: X[]): X[] => (o.ipv6 ? x : []);
  return {
    dir: o.dir,
    cli: o.cli,
    log: o.log,
    hosts: ['A', 'B', 'Gi1', 'Go1', 'Gi2', 'Go2', 'R', 'AUTH'],
    links: [
      ...sides.flatMap((n) => [
        {
          a: [t(n), 'eth0', `10.${n}.1.10/24`, ...v6(`fd00:${n}:1::10/64`)],
          b: [`Gi${n}`, 'lan0', `10.${n}.1.1/24`, ...v6(`fd00:${n}:1::1/64`)],
        },
        {
          a: [`Gi${n}`, 'wan0', `10.${n}.0.2/24`, ...v6(`fd00:${n}::2/64`)],
          b: [`Go${n}`, 'lan0', `10.${n}.0.1/24`, ...v6(`fd00:${n}::1/64`)],
        },
        {
          a: [`Go${n}`, 'wan0', `10.200.${n}.2/24`, ...v6(`fd00:200:${n}::2/64`)],
          b: ['R', `g${n}`, `10.200.${n}.1/24`, ...v6(`fd00:200:${n}::1/64`)],
        },
      ]),
      { a: ['AUTH', 'eth0', '10.200.9.2/24'], b: ['R', 'auth', '10.200.9.1/24'] },
    ] as SiteSpec['links'],
    routes: {
      ...Object.fromEntries(
        sides.flatMap((n) => [
          [t(n), [['default', 'via', `10.${n}.1.1`], ...v6(['default', 'via', `fd00:${n}:1::1`])]],
          [`Gi${n}`, [['default', 'via', `10.${n}.0.1`], ...v6(['default', 'via', `fd00:${n}::1`])]],
          [
            `Go${n}`,
            [
              [`10.${n}.1.0/24`, 'via', `10.${n}.0.2`],
              ['default', 'via', `10.200.${n}.1`],
              ...v6([`fd00:${n}:1::/64`, 'via', `fd00:${n}::2`], ['default', 'via', `fd00:200:${n}::1`]),
            ],
          ],
        ]),
      ),
      R: sides.flatMap((n) => [
        [`10.${n}.0.0/16`, 'via', `10.200.${n}.2`],
        ...v6([`fd00:${n}::/32`, 'via', `fd00:200:${n}::2`]),
      ]),
      AUTH: [['default', 'via', '10.200.9.1']],
    },
    routers: ['R'],
    authorities: [{ name: 'multistage', host: 'AUTH', address: '10.200.9.2' }],
    vpns: [
      { name: 'company', id: 10 },
      { name: 'dept', id: 20 },
    ],
    // The outer gateways first: the inner ones reach the authority through them. The outer ones let
    // them do so in the clear (the authority's own TLS protects that traffic).
    gateways: [
      ...sides.map((n) => ({
        name: `Go${n}`,
        address: `10.200.${n}.2`,
        inside: ['lan0'],
        outside: ['wan0'],
        members: { company: [`10.${n}.0.0/16`, ...v6(`fd00:${n}::/32`)] },
        config: `allowPlain: [10.200.9.0/24]\n${o.gatewayConfig ?? ''}`,
      })),
      ...sides.map((n) => ({
        name: `Gi${n}`,
        address: `10.${n}.0.2`,
        inside: ['lan0'],
        outside: ['wan0'],
        members: { dept: [`10.${n}.1.0/24`, ...v6(`fd00:${n}:1::/64`)] },
        config: o.gatewayConfig,
      })),
    ],
  };
}

export function buildMultistage(o: Parameters<typeof multistageSpec>[0]): Promise<Sites> {
  return buildSites(multistageSpec(o));
}
