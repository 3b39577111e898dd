// DER and PEM from others: permits (a peer gateway's, after IKE authentication), certificates (a
// peer authority's members and attribute authority, a bundle file), CSRs (enrollment). Every
// refusal must be a result with a code, never an exception, and quick.
import { parsePermit, permitFromPem, permitToPem, verifyPermit, issuePermit } from '../../src/pki/permit.js';
import { checkAttributeAuthority } from '../../src/pki/permit.js';
import { createCsr, verifyCsr } from '../../src/pki/ca.js';
import { derToPem, generateKeyPair, pemToDer } from '../../src/pki/keys.js';
import { readCertificate } from '../../src/pki/x509.js';
import { parseBundle } from '../../src/authority/client.js';
import { HOUR, makeAuthority, makeGateway } from '../../test/ike/engine/peers.js';
import { type FuzzTarget } from '../harness.js';
import { mutateBytes, mutateDer, mutateJson } from '../mutate.js';
import { refusedCleanly, typedResult } from '../oracle.js';
import type { Rng } from '../rng.js';

const T0 = Date.UTC(2026, 11, 5, 12);

async function world() {
  const A = await makeAuthority('Authority A 重ね', T0 - HOUR);
  const B = await makeAuthority('authority-b', T0 - HOUR);
  const ga = await makeGateway(A, 'ga', T0 - HOUR);
  const gb = await makeGateway(B, 'gb', T0 - HOUR);
  return { A, B, ga, gb };
}

/** One time in four, as PEM (with a label of its own) instead of DER. */
function maybePem(input: Uint8Array): { pem?: string; der: Uint8Array } {
  if (input.length > 0 && input[0] === 0x2d) return { pem: new TextDecoder().decode(input), der: input };
  return { der: input };
}

const isPem = (x: Uint8Array): boolean => x[0] === 0x2d;
const derOnly = (seeds: Uint8Array[]): Uint8Array[] => seeds.filter((x) => !isPem(x));

/**
 * One mutation of a seed that is PEM or DER. PEM is mutated inside its armour (with the chance `inArmour`, splicing
 * from `donors`) or as bytes; DER is mutated as DER, one time in twenty replaced by random bytes.
 */
function mutatePemOrDer(
  rng: Rng,
  seeds: Uint8Array[],
  label: string,
  pem: { inArmour: number; donors: Uint8Array[] },
): Uint8Array {
  const s = rng.pick(seeds);
  if (isPem(s))
    return rng.chance(pem.inArmour)
      ? new TextEncoder().encode(
          derToPem(mutateDer(rng, pemToDer(new TextDecoder().decode(s), label), pem.donors), label),
        )
      : mutateBytes(rng, s, []);
  return rng.chance(0.05) ? rng.bytes(rng.size(2000)) : mutateDer(rng, s, derOnly(seeds));
}

export const permits: FuzzTarget = {
  name: 'permit',
  description:
    "RFC 5755 attribute certificates (verifyPermit, which parses with parsePermit's decoder, against a real attribute authority and holder; permitFromPem)",
  async setup() {
    const { A, B, ga, gb } = await world();
    const seeds: Uint8Array[] = [];
    for (const [issuer, holder, groups] of [
      [A, gb, ['shared']],
      [B, ga, ['shared', 'other', '東京']],
      [A, gb, ['x'.repeat(200)]],
    ] as const) {
      const p = await issuePermit({
        attributeAuthority: { cert: issuer.aa.cert, privateKey: issuer.aa.key },
        holder: holder.cert,
        groups: [...groups],
        notBefore: new Date(T0 - HOUR),
        notAfter: new Date(T0 + HOUR),
      });
      seeds.push(p.der);
    }
    seeds.push(
      new TextEncoder().encode(
        permitToPem(
          parsePermit(seeds[0]).ok
            ? (parsePermit(seeds[0]) as { value: Parameters<typeof permitToPem>[0] }).value
            : (undefined as never),
        ),
      ),
    );
    return {
      seeds,
      next: (rng) => mutatePemOrDer(rng, seeds, 'ATTRIBUTE CERTIFICATE', { inArmour: 0.5, donors: seeds }),
      async run(input) {
        const { pem, der } = maybePem(input);
        if (pem !== undefined) return typedResult(permitFromPem(pem), 'permitFromPem');
        // verifyPermit parses first (parsePermit's decoder), then checks against the real AA and holder.
        typedResult(
          verifyPermit(der, { attributeAuthority: A.aa.cert, holder: gb.cert, group: 'shared', now: new Date(T0) }),
          'verifyPermit',
        );
      },
    };
  },
};

export const certificates: FuzzTarget = {
  name: 'certificate',
  description:
    'certificates from others (readCertificate, then checkAttributeAuthority as federation does) and gateway bundle files (parseBundle)',
  async setup() {
    const { A, ga } = await world();
    const certs = [A.ca.root.cert, A.ca.issuing.cert, A.aa.cert, ga.cert].map((c) => new Uint8Array(c.rawData));
    const bundle = JSON.stringify({
      format: 'kasane-gateway-bundle/1',
      gateway: { name: 'ga', address: '192.0.2.1' },
      authority: {
        name: A.name,
        url: 'https://127.0.0.1:7443',
        caCertificate: A.ca.root.cert.toString('pem'),
        caFingerprint: 'x',
      },
      certificate: ga.cert.toString('pem'),
      chain: [A.ca.issuing.cert.toString('pem'), A.ca.root.cert.toString('pem')],
    });
    const seeds = [...certs, new TextEncoder().encode(bundle)];
    return {
      seeds,
      next: (rng) => {
        const s = rng.pick(seeds);
        if (s[0] === 0x7b) return mutateJson(rng, s, []);
        return rng.chance(0.05) ? rng.bytes(rng.size(2000)) : mutateDer(rng, s, certs);
      },
      async run(input) {
        if (input[0] === 0x7b) {
          try {
            parseBundle(new TextDecoder().decode(input));
          } catch (e) {
            refusedCleanly(e, 'parseBundle');
          }
          return;
        }
        const c = await readCertificate(input);
        typedResult(c, 'readCertificate');
        if (c.ok)
          typedResult(await checkAttributeAuthority(c.value, A.ca.root.cert, new Date(T0)), 'checkAttributeAuthority');
      },
    };
  },
};

export const csrs: FuzzTarget = {
  name: 'csr',
  description: 'PKCS#10 requests as enrollment receives them (verifyCsr, PEM and DER)',
  async setup() {
    const seeds: Uint8Array[] = [];
    for (const cn of ['gw1', undefined, '東京 gateway']) {
      const pem = await createCsr(await generateKeyPair(), cn);
      seeds.push(new TextEncoder().encode(pem), pemToDer(pem, 'CERTIFICATE REQUEST'));
    }
    return {
      seeds,
      next: (rng) => mutatePemOrDer(rng, seeds, 'CERTIFICATE REQUEST', { inArmour: 0.6, donors: derOnly(seeds) }),
      async run(input) {
        const { pem, der } = maybePem(input);
        typedResult(await verifyCsr(pem ?? der), 'verifyCsr');
      },
    };
  },
};
