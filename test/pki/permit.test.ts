// Permits as RFC 5755 attribute certificates: issue, parse, verify; every refusal by its reason;
// the structure read by openssl and strongSwan's `pki`, not only by our own parser.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, X509Certificate as NodeX509 } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  Attribute,
  AuthorityKeyIdentifier,
  Extension,
  GeneralName,
  GeneralNames,
  KeyIdentifier,
  Name as AsnName,
} from '@peculiar/asn1-x509';
import { AttCertIssuer, IssuerSerial, V2Form, type AttributeCertificateInfo } from '@peculiar/asn1-x509-attr';
import { AsnConvert } from '@peculiar/asn1-schema';
import { createAuthorityCa, issueGatewayCertificate, type AuthorityCa, type CertAndKey } from '../../src/pki/ca.js';
import { generateKeyPair } from '../../src/pki/keys.js';
import {
  checkAttributeAuthority,
  createAttributeAuthority,
  decodePermitAsn,
  groupAttribute,
  issuePermit,
  OID_AUTHORITY_KEY_IDENTIFIER,
  parsePermit,
  permitFromPem,
  permitToPem,
  signPermitInfo,
  verifyPermit,
  type Permit,
} from '../../src/pki/permit.js';
import { x509 } from '../../src/pki/x509.js';

const CI = !!process.env.CI;
const isRoot = process.getuid?.() === 0;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function hasCommand(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.error === undefined;
}

/** strongSwan's `pki`: installed from Debian when running as root (always so in CI). */
function ensurePki(): { ok: true } | { ok: false; why: string } {
  if (hasCommand('pki', ['--help'])) return { ok: true };
  if (!isRoot || !hasCommand('apt-get', ['--version']))
    return {
      ok: false,
      why: 'strongSwan `pki` is missing and this is not root with apt-get (install the Debian package strongswan-pki)',
    };
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    spawnSync(
      'apt-get',
      ['install', '-y', '-qq', '--no-install-recommends', '-o', 'DPkg::Lock::Timeout=300', 'strongswan-pki'],
      { env, encoding: 'utf8' },
    );
  let r = install();
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-qq', '-o', 'DPkg::Lock::Timeout=300'], { env, stdio: 'ignore' });
    r = install();
  }
  if (r.status !== 0 || !hasCommand('pki', ['--help']))
    return { ok: false, why: `apt-get install strongswan-pki failed: ${r.stderr}` };
  return { ok: true };
}

function sha1(b: Uint8Array): string {
  return createHash('sha1').update(b).digest('hex');
}

/** The SHA-1 of the AA's EC point, computed from node's view of the certificate (not our ASN.1 code). */
function expectedKeyId(cert: x509.X509Certificate): string {
  const jwk = new NodeX509(Buffer.from(cert.rawData)).publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
  return sha1(point);
}

function nameOf(cert: x509.X509Certificate, which: 'subject' | 'issuer'): AsnName {
  return AsnConvert.parse(
    which === 'subject' ? cert.subjectName.toArrayBuffer() : cert.issuerName.toArrayBuffer(),
    AsnName,
  );
}

/** Re-signs a permit after `change` edits its AttributeCertificateInfo. */
async function tamper(
  permit: Uint8Array,
  key: CryptoKey,
  change: (info: AttributeCertificateInfo) => void,
): Promise<Uint8Array> {
  const ac = decodePermitAsn(permit);
  change(ac.acinfo);
  return signPermitInfo(ac.acinfo, key);
}

function refusedWith(r: { ok: boolean; error?: { code: string; message: string } }, code: string): void {
  assert.equal(r.ok, false, `expected refusal ${code}, got ok`);
  assert.equal(r.error!.code, code, r.error!.message);
  assert.ok(r.error!.message.length > 0);
}

interface AsnLine {
  depth: number;
  tag: string;
  value: string;
}

/** `openssl asn1parse -i` output as (depth, tag, value) lines. */
function asn1parse(der: Uint8Array, dir: string): AsnLine[] {
  const f = join(dir, `p-${Math.random().toString(36).slice(2)}.der`);
  writeFileSync(f, der);
  const r = spawnSync('openssl', ['asn1parse', '-inform', 'DER', '-in', f, '-i'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => {
      const m = /^\s*\d+:d=(\d+)\s+hl=\s*\d+\s+l=\s*\d+\s+(?:prim|cons):\s*(.*)$/.exec(l);
      assert.ok(m, `unexpected asn1parse line: ${l}`);
      // "OBJECT            :name", "OCTET STRING      [HEX DUMP]:3016...", "cont [ 0 ]"
      const c = m[2].indexOf(':');
      const tag = (c < 0 ? m[2] : m[2].slice(0, c)).replace('[HEX DUMP]', '').replace(/\s+/g, ' ').trim();
      return { depth: Number(m[1]), tag, value: c < 0 ? '' : m[2].slice(c + 1).trim() };
    });
}

describe('permits (RFC 5755 attribute certificates)', () => {
  const now = Math.floor(Date.now() / 1000) * 1000;
  let A: AuthorityCa;
  let B: AuthorityCa;
  let aaA: CertAndKey;
  let aaA2: CertAndKey; // A's replacement AA: same subject, another key
  let aaB: CertAndKey;
  let gwA: x509.X509Certificate;
  let gwB: x509.X509Certificate;
  let gwBtwin: x509.X509Certificate; // same subject and issuer as gwB, another serial
  let good: Permit;
  let dir: string;
  const nb = new Date(now - 60_000);
  const na = new Date(now + 4 * HOUR);
  const at = new Date(now);
  const issueA = (over: Partial<Parameters<typeof issuePermit>[0]> = {}) =>
    issuePermit({
      attributeAuthority: { cert: aaA.cert, privateKey: aaA.key },
      holder: gwB,
      groups: ['vpn-ab', 'vpn-ab-2'],
      notBefore: nb,
      notAfter: na,
      ...over,
    });
  /** A permit for vpn-ab from B's attribute authority. */
  const issueB = (holder: x509.X509Certificate) =>
    issueA({ attributeAuthority: { cert: aaB.cert, privateKey: aaB.key }, holder, groups: ['vpn-ab'] });
  const verifyA = (der: Uint8Array, over: Partial<Parameters<typeof verifyPermit>[1]> = {}) =>
    verifyPermit(der, { attributeAuthority: aaA.cert, holder: gwB, group: 'vpn-ab', now: at, ...over });
  /** A gateway certificate with a fresh key, from `ca`'s issuing CA. */
  const gateway = async (ca: AuthorityCa, authority: string, name: string) =>
    issueGatewayCertificate({
      issuing: ca.issuing,
      authority,
      gateway: name,
      publicKey: (await generateKeyPair()).publicKey,
      now,
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kasane-permit-'));
    A = await createAuthorityCa({ authority: 'Authority A', now });
    B = await createAuthorityCa({ authority: 'Authority B 重ね', now });
    aaA = await createAttributeAuthority({ root: A.root, now });
    aaA2 = await createAttributeAuthority({ root: A.root, authority: 'Authority A', now });
    aaB = await createAttributeAuthority({ root: B.root, now });
    gwA = await gateway(A, 'Authority A', 'gw-a');
    gwB = await gateway(B, 'Authority B 重ね', 'gw-b');
    gwBtwin = await gateway(B, 'Authority B 重ね', 'gw-b');
    good = await issueA();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('issue, parse, verify', () => {
    it("A's AA issues a permit for B's gateway (a foreign holder) that verifies with A's AA certificate", () => {
      assert.equal(aaA2.cert.subject, aaA.cert.subject);
      assert.equal(good.issuer, aaA.cert.subject);
      assert.equal(good.issuer, 'O=Authority A, CN=Authority A attribute authority');
      assert.deepEqual(good.holder, { issuer: gwB.issuer, serialNumber: gwB.serialNumber });
      assert.deepEqual(good.groups, ['vpn-ab', 'vpn-ab-2']);
      assert.equal(good.notBefore.getTime(), nb.getTime());
      assert.equal(good.notAfter.getTime(), na.getTime());
      assert.equal(good.authorityKeyId, expectedKeyId(aaA.cert));
      assert.equal(good.noRevAvail, true);
      assert.match(good.serialNumber, /^[0-7][0-9a-f]{31}$/);

      const parsed = parsePermit(good.der);
      assert.ok(parsed.ok, JSON.stringify(parsed));
      assert.deepEqual(parsed.value, good);

      for (const group of ['vpn-ab', 'vpn-ab-2']) {
        const v = verifyA(good.der, { group });
        assert.ok(v.ok, JSON.stringify(v));
        assert.equal(v.value.serialNumber, good.serialNumber);
      }
      // The validity bounds themselves are inside.
      assert.ok(verifyA(good.der, { now: good.notBefore }).ok);
      assert.ok(verifyA(good.der, { now: good.notAfter }).ok);
    });

    it('the mirror image: B issues for A, and a permit for a holder under the same authority', async () => {
      const pb = await issueB(gwA);
      assert.ok(verifyPermit(pb.der, { attributeAuthority: aaB.cert, holder: gwA, group: 'vpn-ab', now: at }).ok);
      const own = await issueA({ holder: gwA });
      assert.ok(verifyA(own.der, { holder: gwA }).ok);
    });

    it('takes the serial from the injected random source and truncates dates to seconds', async () => {
      const p = await issueA({
        random: (n) => new Uint8Array(n).fill(0x99),
        notBefore: new Date(now + 123),
        notAfter: new Date(now + HOUR + 999),
      });
      assert.equal(p.serialNumber, '59' + '99'.repeat(15));
      assert.equal(p.notBefore.getTime(), now);
      assert.equal(p.notAfter.getTime(), now + HOUR);
    });

    it('PEM round trip', () => {
      const pem = permitToPem(good);
      assert.match(
        pem,
        /^-----BEGIN ATTRIBUTE CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END ATTRIBUTE CERTIFICATE-----\n$/,
      );
      const back = permitFromPem(pem);
      assert.ok(back.ok);
      assert.deepEqual(Buffer.from(back.value.der), Buffer.from(good.der));
      refusedWith(permitFromPem(pem.replace(/ATTRIBUTE CERTIFICATE/g, 'CERTIFICATE')), 'permit-pem');
    });

    it('refuses bad parameters when issuing', async () => {
      await assert.rejects(issueA({ groups: [] }), /at least one group/);
      await assert.rejects(issueA({ groups: ['ok', ''] }), /non-empty/);
      await assert.rejects(issueA({ notBefore: na, notAfter: na }), /notAfter must be after notBefore/);
      await assert.rejects(
        issuePermit({
          attributeAuthority: { cert: aaA.cert, privateKey: aaB.key },
          holder: gwB,
          groups: ['x'],
          notBefore: nb,
          notAfter: na,
        }),
        /does not match the AA/,
      );
      const clash = await gateway(A, 'Authority A', 'Authority A attribute authority');
      assert.equal(clash.subject, aaA.cert.subject);
      await assert.rejects(issueA({ holder: clash }), /self-issued/);
    });

    it('the AA certificate: signed by the root, CA:FALSE, digitalSignature only', async () => {
      const c = new NodeX509(Buffer.from(aaA.cert.rawData));
      assert.equal(c.ca, false);
      assert.ok(c.verify(new NodeX509(Buffer.from(A.root.cert.rawData)).publicKey));
      const ku = aaA.cert.getExtension(x509.KeyUsagesExtension);
      assert.equal(ku?.usages, x509.KeyUsageFlags.digitalSignature);
      assert.ok((await checkAttributeAuthority(aaA.cert, A.root.cert, at)).ok);
      refusedWith(await checkAttributeAuthority(aaA.cert, B.root.cert, at), 'aa-wrong-issuer');
      refusedWith(await checkAttributeAuthority(A.issuing.cert, A.root.cert, at), 'aa-is-ca');
      refusedWith(await checkAttributeAuthority(aaA.cert, A.root.cert, new Date(now + 6 * 365 * DAY)), 'aa-not-valid');
      // Same name as A's root, another key: the signature check catches it.
      const fakeRoot = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: '01',
        name: A.root.cert.subjectName,
        notBefore: new Date(now - HOUR),
        notAfter: new Date(now + DAY),
        keys: await generateKeyPair(),
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      });
      refusedWith(await checkAttributeAuthority(aaA.cert, fakeRoot, at), 'aa-bad-signature');
    });
  });

  describe('verification refuses, each with its own reason', () => {
    it("a permit from another authority's AA", async () => {
      const pb = await issueB(gwB);
      refusedWith(verifyA(pb.der), 'permit-wrong-issuer');
    });

    it("a signature not by the given AA (A's name and key identifier, B's key)", async () => {
      const forged = await tamper(good.der, aaB.key, () => {});
      assert.ok(parsePermit(forged).ok);
      refusedWith(verifyA(forged), 'permit-bad-signature');
    });

    it('an AA with the same name but another key: by the key identifier, or by the signature without one', async () => {
      refusedWith(verifyA(good.der, { attributeAuthority: aaA2.cert }), 'permit-aki-mismatch');
      const noAki = await tamper(good.der, aaA.key, (info) => {
        info.extensions!.splice(
          info.extensions!.findIndex((e) => e.extnID === OID_AUTHORITY_KEY_IDENTIFIER),
          1,
        );
      });
      const p = parsePermit(noAki);
      assert.ok(p.ok && p.value.authorityKeyId === undefined);
      assert.ok(verifyA(noAki).ok, 'the key identifier is optional');
      refusedWith(verifyA(noAki, { attributeAuthority: aaA2.cert }), 'permit-bad-signature');
    });

    it('an authority key identifier that does not match the AA', async () => {
      const wrong = await tamper(good.der, aaA.key, (info) => {
        const e = info.extensions!.find((x) => x.extnID === OID_AUTHORITY_KEY_IDENTIFIER)!;
        e.extnValue = new OctetString(
          AsnConvert.serialize(
            new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(new Uint8Array(20).fill(7)) }),
          ),
        );
      });
      refusedWith(verifyA(wrong), 'permit-aki-mismatch');
    });

    it('a holder that is not exactly the presented certificate', async () => {
      assert.equal(gwBtwin.subject, gwB.subject);
      assert.equal(gwBtwin.issuer, gwB.issuer);
      assert.notEqual(gwBtwin.serialNumber, gwB.serialNumber);
      refusedWith(verifyA(good.der, { holder: gwBtwin }), 'permit-wrong-holder');
      refusedWith(verifyA(good.der, { holder: gwA }), 'permit-wrong-holder');
      // Right serial, other issuer name.
      const otherIssuer = await tamper(good.der, aaA.key, (info) => {
        info.holder.baseCertificateID!.issuer = new GeneralNames([
          new GeneralName({ directoryName: nameOf(A.issuing.cert, 'subject') }),
        ]);
      });
      refusedWith(verifyA(otherIssuer), 'permit-wrong-holder');
    });

    it('a group the permit does not name', () => {
      const r = verifyA(good.der, { group: 'vpn-other' });
      refusedWith(r, 'permit-wrong-group');
      assert.match(r.ok ? '' : r.error.message, /vpn-other/);
      refusedWith(verifyA(good.der, { group: 'VPN-AB' }), 'permit-wrong-group');
    });

    it('not yet valid, expired', async () => {
      refusedWith(verifyA(good.der, { now: new Date(good.notBefore.getTime() - 1) }), 'permit-not-yet-valid');
      refusedWith(verifyA(good.der, { now: new Date(good.notAfter.getTime() + 1) }), 'permit-expired');
      const old = await issueA({ notBefore: new Date(now - 3 * HOUR), notAfter: new Date(now - HOUR) });
      refusedWith(verifyA(old.der), 'permit-expired');
    });

    it('a validity longer than the maximum (7 days unless told)', async () => {
      const long = await issueA({ notBefore: nb, notAfter: new Date(nb.getTime() + 7 * DAY + 1000) });
      refusedWith(verifyA(long.der), 'permit-validity-too-long');
      assert.ok(verifyA(long.der, { maxValidityMs: 8 * DAY }).ok);
      const week = await issueA({ notBefore: nb, notAfter: new Date(nb.getTime() + 7 * DAY) });
      assert.ok(verifyA(week.der).ok);
      refusedWith(verifyA(good.der, { maxValidityMs: HOUR }), 'permit-validity-too-long');
    });

    it('an AA certificate that is not valid at the time of use', async () => {
      const shortAa = await createAttributeAuthority({ root: A.root, now, validityDays: 1 });
      const p = await issuePermit({
        attributeAuthority: { cert: shortAa.cert, privateKey: shortAa.key },
        holder: gwB,
        groups: ['vpn-ab'],
        notBefore: new Date(now + 2 * DAY),
        notAfter: new Date(now + 3 * DAY),
      });
      refusedWith(
        verifyA(p.der, { attributeAuthority: shortAa.cert, now: new Date(now + 2.5 * DAY) }),
        'permit-issuer-not-valid',
      );
      refusedWith(
        verifyA(p.der, { attributeAuthority: shortAa.cert, now: new Date(now - HOUR) }),
        'permit-issuer-not-valid',
      );
    });

    it('a self-issued permit (issuer name = holder subject), which strongSwan crashes on', async () => {
      // The issuer names the holder's own subject, signed by A's AA key.
      const selfNamed = await tamper(good.der, aaA.key, (info) => {
        info.issuer = new AttCertIssuer({
          v2Form: new V2Form({
            issuerName: new GeneralNames([new GeneralName({ directoryName: nameOf(gwB, 'subject') })]),
          }),
        });
      });
      refusedWith(verifyA(selfNamed), 'permit-self-issued');
      // A holder certificate that carries the AA's own subject.
      const clash = await gateway(A, 'Authority A', 'Authority A attribute authority');
      const forClash = await tamper(good.der, aaA.key, (info) => {
        info.holder.baseCertificateID = new IssuerSerial({
          issuer: new GeneralNames([new GeneralName({ directoryName: nameOf(clash, 'issuer') })]),
          // A copy of exactly the serial's bytes: a small Buffer's .buffer is node's whole shared pool.
          serial: Uint8Array.from(Buffer.from(clash.serialNumber, 'hex')).buffer,
          issuerUID: undefined as never,
        });
      });
      refusedWith(verifyA(forClash, { holder: clash }), 'permit-self-issued');
      // The holder's subject in other letter case: still refused as self-issued.
      const upper = await gateway(B, 'AUTHORITY B 重ね', 'GW-B');
      const caseVariant = await tamper(good.der, aaA.key, (info) => {
        info.issuer = new AttCertIssuer({
          v2Form: new V2Form({
            issuerName: new GeneralNames([new GeneralName({ directoryName: nameOf(upper, 'subject') })]),
          }),
        });
      });
      refusedWith(verifyA(caseVariant), 'permit-self-issued');
    });

    it('a wrong version', async () => {
      for (const version of [0, 2]) {
        const v = await tamper(good.der, aaA.key, (info) => {
          info.version = version;
        });
        refusedWith(parsePermit(v), 'permit-version');
        refusedWith(verifyA(v), 'permit-version');
      }
    });

    it('group values: octets and OIDs ignored, none usable refused, missing attribute refused', async () => {
      const mixed = await tamper(good.der, aaA.key, (info) => {
        info.attributes = [groupAttribute([{ octets: new Uint8Array([1, 2, 3]) }, 'vpn-ab', { oid: '1.2.3.4' }])];
      });
      const pm = parsePermit(mixed);
      assert.ok(pm.ok);
      assert.deepEqual(pm.value.groups, ['vpn-ab']);
      assert.ok(verifyA(mixed).ok);
      const octetsOnly = await tamper(good.der, aaA.key, (info) => {
        info.attributes = [groupAttribute([{ octets: Buffer.from('vpn-ab') }, { oid: '1.3.6.1.4.1.1' }])];
      });
      refusedWith(verifyA(octetsOnly), 'permit-no-groups');
      const none = await tamper(good.der, aaA.key, (info) => {
        info.attributes = [];
      });
      refusedWith(verifyA(none), 'permit-no-groups');
      // Another attribute type does not count as a group.
      const role = await tamper(good.der, aaA.key, (info) => {
        info.attributes = [new Attribute({ type: '2.5.4.72', values: [info.attributes[0].values[0]] })];
      });
      refusedWith(verifyA(role), 'permit-no-groups');
    });

    it('structural refusals from the parser', async () => {
      const cases: Array<[string, (info: AttributeCertificateInfo) => void]> = [
        [
          'permit-signature-algorithm',
          (info) => {
            info.signature = new AlgorithmIdentifier({ algorithm: '1.2.840.10045.4.3.3' });
          },
        ],
        [
          'permit-holder-form',
          (info) => {
            info.holder.entityName = new GeneralNames([new GeneralName({ directoryName: nameOf(gwB, 'subject') })]);
          },
        ],
        [
          'permit-holder-form',
          (info) => {
            info.holder.baseCertificateID!.issuer = new GeneralNames([new GeneralName({ dNSName: 'gw-b.example' })]);
          },
        ],
        [
          'permit-issuer-form',
          (info) => {
            info.issuer = new AttCertIssuer({
              v1Form: [new GeneralName({ directoryName: nameOf(aaA.cert, 'subject') })],
            });
          },
        ],
        [
          'permit-critical-extension',
          (info) => {
            info.extensions!.push(
              new Extension({
                extnID: '1.3.6.1.4.1.99999.1',
                critical: true,
                extnValue: new OctetString(new Uint8Array([5, 0])),
              }),
            );
          },
        ],
        [
          'permit-duplicate-attribute',
          (info) => {
            info.attributes.push(groupAttribute(['vpn-x']));
          },
        ],
        [
          'permit-validity',
          (info) => {
            info.attrCertValidityPeriod.notAfterTime = new Date(now - DAY);
          },
        ],
        [
          'permit-serial',
          (info) => {
            info.serialNumber = new Uint8Array([0x80, 1]).buffer;
          },
        ],
        // A UTF8String with a long-form length: not DER.
        [
          'permit-group-syntax',
          (info) => {
            info.attributes = [
              new Attribute({
                type: '1.3.6.1.5.5.7.10.4',
                values: [new Uint8Array([0x30, 0x09, 0x30, 0x07, 0x0c, 0x81, 0x04, 0x76, 0x70, 0x6e, 0x31]).buffer],
              }),
            ];
          },
        ],
      ];
      for (const [code, change] of cases) {
        const bad = await tamper(good.der, aaA.key, change);
        refusedWith(parsePermit(bad), code);
        refusedWith(verifyA(bad), code);
      }
      // An unknown non-critical extension is ignored.
      const extra = await tamper(good.der, aaA.key, (info) => {
        info.extensions!.push(
          new Extension({
            extnID: '1.3.6.1.4.1.99999.1',
            critical: false,
            extnValue: new OctetString(new Uint8Array([5, 0])),
          }),
        );
      });
      assert.ok(verifyA(extra).ok);
    });

    it('trailing bytes, truncation, non-DER encodings, garbage, bad inputs', () => {
      refusedWith(parsePermit(Buffer.concat([good.der, Buffer.from([0])])), 'permit-trailing-bytes');
      refusedWith(verifyA(Buffer.concat([good.der, Buffer.from([0, 0])])), 'permit-trailing-bytes');
      refusedWith(parsePermit(good.der.subarray(0, good.der.length - 1)), 'permit-malformed');
      refusedWith(parsePermit(new Uint8Array(0)), 'permit-malformed');
      refusedWith(parsePermit(new Uint8Array(20_000)), 'permit-too-large');
      // The signature BIT STRING with 1 unused bit: the same bits, but not DER.
      const d = Buffer.from(good.der);
      const sigAlg = Buffer.from('300a06082a8648ce3d040302', 'hex');
      const at2 = d.lastIndexOf(sigAlg) + sigAlg.length;
      assert.equal(d[at2], 0x03);
      assert.equal(d[at2 + 2], 0x00);
      d[at2 + 2] = 0x01;
      refusedWith(parsePermit(d), 'permit-not-der');
      refusedWith(verifyA(d), 'permit-not-der');
      // Callers' mistakes are results too.
      refusedWith(verifyA(good.der, { now: new Date(NaN) }), 'permit-bad-input');
      refusedWith(verifyA(good.der, { holder: {} as x509.X509Certificate }), 'permit-bad-input');
      refusedWith(parsePermit('not bytes' as unknown as Uint8Array), 'permit-malformed');
    });
  });

  describe('read by other implementations', () => {
    it('openssl asn1parse shows the RFC 5755 structure', (t) => {
      if (!hasCommand('openssl', ['version'])) {
        if (CI) assert.fail('openssl is required in CI (Debian package openssl)');
        t.skip('openssl is not installed (Debian package openssl)');
        return;
      }
      const l = asn1parse(good.der, dir);
      const i = (depth: number, tag: string, from = 0) =>
        l.findIndex((x, k) => k >= from && x.depth === depth && x.tag === tag);
      // AttributeCertificate ::= SEQUENCE { acinfo SEQUENCE { version INTEGER 1,
      //   holder SEQUENCE { [0] baseCertificateID ...
      assert.deepEqual(
        l.slice(0, 6).map((x) => [x.depth, x.tag]),
        [
          [0, 'SEQUENCE'],
          [1, 'SEQUENCE'],
          [2, 'INTEGER'],
          [2, 'SEQUENCE'],
          [3, 'cont [ 0 ]'],
          [4, 'SEQUENCE'],
        ],
      );
      assert.equal(l[2].value, '01');
      // baseCertificateID.issuer = GeneralNames { [4] directoryName = B's issuing CA }, then the serial.
      assert.deepEqual([l[6].depth, l[6].tag], [5, 'cont [ 4 ]']);
      const holderBlock = l.slice(6, i(4, 'INTEGER', 6) + 1);
      assert.ok(
        holderBlock.some((x) => x.tag === 'UTF8STRING' && x.value === 'Authority B 重ね issuing CA'),
        JSON.stringify(holderBlock),
      );
      assert.equal(holderBlock.at(-1)!.value.toLowerCase(), gwB.serialNumber.toLowerCase());
      // Only baseCertificateID in the holder: the next depth-2 item is the issuer, a [0] v2Form.
      const issuerAt = l.findIndex((x, k) => k > 2 && x.depth === 2 && x.tag !== 'SEQUENCE');
      assert.equal(l[issuerAt].tag, 'cont [ 0 ]');
      assert.equal(l[issuerAt - 1].depth > 2, true);
      assert.deepEqual([l[issuerAt + 2].depth, l[issuerAt + 2].tag], [4, 'cont [ 4 ]']);
      assert.ok(l.slice(issuerAt, issuerAt + 12).some((x) => x.value === 'Authority A attribute authority'));
      // Signature algorithm, inside and outside.
      assert.equal(
        l.filter((x) => x.tag === 'OBJECT' && /^(ecdsa-with-SHA256|1\.2\.840\.10045\.4\.3\.2)$/.test(x.value)).length,
        2,
      );
      // The group attribute: OID, then a SET with one IetfAttrSyntax whose values are UTF8Strings.
      const g = l.findIndex((x) => x.tag === 'OBJECT' && /^(id-aca-group|1\.3\.6\.1\.5\.5\.7\.10\.4)$/.test(x.value));
      assert.ok(g > 0, 'group attribute OID');
      assert.deepEqual(
        l.slice(g + 1, g + 5).map((x) => x.tag),
        ['SET', 'SEQUENCE', 'SEQUENCE', 'UTF8STRING'],
      );
      assert.deepEqual(
        l.slice(g + 4, g + 6).map((x) => [x.tag, x.value]),
        [
          ['UTF8STRING', 'vpn-ab'],
          ['UTF8STRING', 'vpn-ab-2'],
        ],
      );
      // Extensions: AKI = [0] keyIdentifier SHA-1 of the AA key bits; noRevAvail = NULL.
      const aki = l.findIndex(
        (x) => x.tag === 'OBJECT' && /^(X509v3 Authority Key Identifier|2\.5\.29\.35)$/.test(x.value),
      );
      assert.ok(aki > 0, 'AKI extension');
      assert.equal(l[aki + 1].tag, 'OCTET STRING');
      assert.equal(l[aki + 1].value.toLowerCase(), '30168014' + expectedKeyId(aaA.cert));
      const nra = l.findIndex(
        (x) => x.tag === 'OBJECT' && /^(X509v3 No Revocation Available|2\.5\.29\.56)$/.test(x.value),
      );
      assert.ok(nra > 0, 'noRevAvail extension');
      assert.deepEqual([l[nra + 1].tag, l[nra + 1].value], ['OCTET STRING', '0500']);
      assert.equal(l.at(-1)!.tag, 'BIT STRING');
    });

    it("strongSwan's `pki --print --type ac` reads it", { timeout: 600_000 }, (t) => {
      const pki = ensurePki();
      if (!pki.ok) {
        if (CI) assert.fail(`CI must run this test: ${pki.why}`);
        t.skip(pki.why);
        return;
      }
      const f = join(dir, 'permit.pem');
      writeFileSync(f, permitToPem(good));
      writeFileSync(join(dir, 'permit.der'), good.der);
      for (const file of [f, join(dir, 'permit.der')]) {
        const r = spawnSync('pki', ['--print', '--type', 'ac', '--in', file], {
          encoding: 'utf8',
          env: { ...process.env, TZ: 'UTC' },
        });
        assert.equal(r.status, 0, r.stdout + r.stderr);
        const out = r.stdout;
        const colon = (h: string) => h.toLowerCase().match(/../g)!.join(':');
        assert.match(out, new RegExp(`hserial:\\s+${colon(gwB.serialNumber)}`));
        assert.match(out, new RegExp(`serial:\\s+${colon(good.serialNumber)}`));
        assert.match(out, /issuer:\s+"O=Authority A, CN=Authority A attribute authority"/);
        assert.match(out, /groups:\s+vpn-ab\n\s+vpn-ab-2\n/);
        assert.match(out, new RegExp(`authkey:\\s+${colon(expectedKeyId(aaA.cert))}`));
        const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
        const fmt = (d: Date) => {
          const p = (n: number) => String(n).padStart(2, '0');
          return `${months[d.getUTCMonth()]} ${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} ${d.getUTCFullYear()}`;
        };
        assert.match(out, new RegExp(`not before ${fmt(good.notBefore)}, ok`));
        assert.match(out, new RegExp(`not after\\s+${fmt(good.notAfter)}, ok`));
      }
    });
  });

  describe('hostile input (fast-check)', () => {
    it('parsePermit on random bytes returns an error and never throws', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 700 }), fc.boolean(), (raw, wrap) => {
          // Half of the inputs start as a well-formed outer SEQUENCE so that parsing goes deeper.
          const input =
            wrap && raw.length < 65536
              ? Buffer.concat([Buffer.from([0x30, 0x82, raw.length >> 8, raw.length & 0xff]), raw])
              : raw;
          const r = parsePermit(input);
          assert.equal(r.ok, false);
        }),
        { numRuns: 3000 },
      );
    });

    it('every truncation of a valid permit is refused by the parser', () => {
      for (let n = 0; n < good.der.length; n++) {
        const r = parsePermit(good.der.subarray(0, n));
        assert.equal(r.ok, false, `prefix of ${n} bytes`);
      }
    });

    it('no single-byte change of a valid permit verifies, and none makes the parser throw', () => {
      // Every position with three masks, then random masks by fast-check.
      for (let pos = 0; pos < good.der.length; pos++) {
        for (const mask of [0x01, 0x80, 0xff]) {
          const m = Buffer.from(good.der);
          m[pos] ^= mask;
          parsePermit(m);
          const v = verifyA(m);
          assert.equal(v.ok, false, `byte ${pos} ^ ${mask} verified`);
        }
      }
      fc.assert(
        fc.property(fc.nat({ max: good.der.length - 1 }), fc.integer({ min: 1, max: 255 }), (pos, mask) => {
          const m = Buffer.from(good.der);
          m[pos] ^= mask;
          parsePermit(m);
          const v = verifyA(m, { group: 'vpn-ab-2' });
          assert.equal(v.ok, false);
        }),
        { numRuns: 1000 },
      );
    });
  });
});
