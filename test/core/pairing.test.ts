// Pairing (seed 000 §3.3): which gateways protect a path with which VPN, from the entries a search
// collected: Figure 2, nested VPNs outermost first, blocked paths, and direction independence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pairLayers, reverseChain } from '../../src/core/search/pairing.js';
import type { SearchEntry } from '../../src/core/packet/search-message.js';

const proof = new Uint8Array(16);
function e(gateway: string, side: 'src' | 'dst', vpns: number[]): SearchEntry {
  return { side, gateway, address: '192.0.2.1', vpns: vpns.map((vpnId) => ({ vpnId, epoch: 1, seq: 1n, proof })) };
}

test('Figure 2: B (G2: VPN1, VPN2) to A (G1: VPN1) pairs G2-G1 in VPN1', () => {
  const p = pairLayers([e('G2', 'src', [1, 2]), e('G1', 'dst', [1])]);
  assert.deepEqual(p, { blocked: false, layers: [{ vpnId: 1, src: 0, dst: 1 }] });
});

test('Figure 2: A (G1: VPN1) to C (G3: VPN2) is blocked: no common VPN', () => {
  const p = pairLayers([e('G1', 'src', [1]), e('G3', 'dst', [2])]);
  assert.equal(p.blocked, true);
  assert.equal(p.blocked && p.reason, 'no-common-vpn');
});

test('multi-stage: inner pairs with inner, outer with outer, outermost first', () => {
  // Path order from B to A: Gi2 (dept), Go2 (company), Go1 (company), Gi1 (dept).
  const chain = [e('Gi2', 'src', [20]), e('Go2', 'src', [10]), e('Go1', 'dst', [10]), e('Gi1', 'dst', [20])];
  const p = pairLayers(chain);
  assert.deepEqual(p, {
    blocked: false,
    layers: [
      { vpnId: 10, src: 1, dst: 2 },
      { vpnId: 20, src: 0, dst: 3 },
    ],
  });
});

test('a protecting gateway without a partner blocks the path (no crossing, no plain bypass)', () => {
  const p = pairLayers([e('Gi2', 'src', [20]), e('Go2', 'src', [10]), e('Go1', 'dst', [10])]);
  assert.equal(p.blocked && p.reason, 'unmatched-layer');
});

test('non-protecting gateways on the path are ignored by pairing', () => {
  const p = pairLayers([e('X', 'src', []), e('G2', 'src', [3]), e('Y', 'dst', []), e('G1', 'dst', [3])]);
  assert.deepEqual(p, { blocked: false, layers: [{ vpnId: 3, src: 1, dst: 3 }] });
});

test('several common VPNs: the lowest id wins', () => {
  const p = pairLayers([e('G2', 'src', [9, 4, 7]), e('G1', 'dst', [7, 9, 4])]);
  assert.equal(!p.blocked && p.layers[0].vpnId, 4);
});

test('a chain with a source entry after a destination entry is refused', () => {
  const p = pairLayers([e('G1', 'dst', [1]), e('G2', 'src', [1])]);
  assert.equal(p.blocked && p.reason, 'bad-chain');
});

test('pairing is direction-independent (property): searching from either end pairs the same gateways', () => {
  const side = fc.array(fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 3 }), { maxLength: 4 });
  fc.assert(
    fc.property(side, side, (srcVpns, dstVpns) => {
      const chain = [...srcVpns.map((v, i) => e(`S${i}`, 'src', v)), ...dstVpns.map((v, i) => e(`D${i}`, 'dst', v))];
      const fwd = pairLayers(chain);
      const rev = pairLayers(reverseChain(chain));
      assert.equal(fwd.blocked, rev.blocked);
      if (fwd.blocked || rev.blocked) return;
      const n = chain.length - 1;
      const norm = (ls: { vpnId: number; src: number; dst: number }[], flip: boolean) =>
        ls.map((l) => (flip ? { vpnId: l.vpnId, a: n - l.dst, b: n - l.src } : { vpnId: l.vpnId, a: l.src, b: l.dst }));
      assert.deepEqual(norm(fwd.layers, false), norm(rev.layers, true));
      // Layers nest: outer pairs enclose inner pairs.
      for (let k = 1; k < fwd.layers.length; k++) {
        assert.ok(fwd.layers[k].src < fwd.layers[k - 1].src && fwd.layers[k].dst > fwd.layers[k - 1].dst);
      }
    }),
  );
});
