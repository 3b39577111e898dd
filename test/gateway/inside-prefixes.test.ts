// The LANs a gateway serves first-hand, read from its inside interfaces: IPv4 and IPv6 prefixes,
// never the link-local ones (they name no LAN; link-local traffic is never intercepted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { insidePrefixes, outsideAddress6 } from '../../src/gateway/daemon.js';

/** What `ip -j addr show dev IF scope global` prints for a dual-stack LAN interface (trimmed). */
const SHOW: Record<string, string> = {
  lan0: JSON.stringify([
    {
      ifname: 'lan0',
      addr_info: [
        { family: 'inet', local: '10.1.0.1', prefixlen: 24, scope: 'global' },
        { family: 'inet6', local: '2001:db8:1::1', prefixlen: 64, scope: 'global' },
        { family: 'inet6', local: '2001:db8:1::2', prefixlen: 64, scope: 'global' },
        { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
      ],
    },
  ]),
  lan1: JSON.stringify([
    { ifname: 'lan1', addr_info: [{ family: 'inet6', local: 'fd00:2::1', prefixlen: 48, scope: 'global' }] },
  ]),
  down: JSON.stringify([{ ifname: 'down' }]),
};

test("the inside interfaces' prefixes of both families, once each, without link-local ones", () => {
  const got = insidePrefixes(['lan0', 'lan1', 'down'], (i) => SHOW[i]).map(String);
  assert.deepEqual(got, ['10.1.0.0/24', '2001:db8:1::/64', 'fd00:2::/48']);
});

test('the source of ICMPv6 Packet Too Big: the first usable global IPv6 address of the outside interfaces', () => {
  const show = (i: string) =>
    JSON.stringify([
      {
        ifname: i,
        addr_info:
          i === 'wan0'
            ? [
                { family: 'inet', local: '192.0.2.2', prefixlen: 24, scope: 'global' },
                { family: 'inet6', local: '2001:DB8:FFFF::9', prefixlen: 64, scope: 'global', deprecated: true },
                { family: 'inet6', local: '2001:db8:ffff:0::2', prefixlen: 64, scope: 'global' },
              ]
            : [],
      },
    ]);
  assert.equal(outsideAddress6(['wan1', 'wan0'], show), '2001:db8:ffff::2');
  assert.equal(
    outsideAddress6(['wan1'], show),
    undefined,
    'no IPv6 on the WAN: Packet Too Big cannot be sent (counted drops)',
  );
});
