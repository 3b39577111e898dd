// The DER bounds in front of the ASN.1 library (src/pki/der.ts) and the library's own BOOLEAN
// refusal (src/pki/x509.ts): what a peer's DER may look like before anything decodes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Name as AsnName } from '@peculiar/asn1-x509';
import { CERTIFICATE_LIMITS, checkDer, NAME_LIMITS, sameName } from '../../src/pki/der.js';
import { x509 } from '../../src/pki/x509.js';
import { createAuthorityCa } from '../../src/pki/ca.js';
import { booleanBombName, tlv } from '../ike/engine/attacker.js';

const now = Date.UTC(2026, 11, 5);

test('our own certificates and names pass the bounds', async () => {
  const ca = await createAuthorityCa({ authority: 'Authority 重ね', now });
  for (const c of [ca.root.cert, ca.issuing.cert]) {
    assert.ok(checkDer(new Uint8Array(c.rawData), CERTIFICATE_LIMITS).ok);
    assert.ok(checkDer(new Uint8Array(c.subjectName.toArrayBuffer()), NAME_LIMITS).ok);
  }
});

test('refused: a long BOOLEAN, constructed strings, indefinite lengths, trailing bytes, too many elements, too deep, too large', () => {
  const codes = (b: Uint8Array) => {
    const r = checkDer(b, CERTIFICATE_LIMITS);
    return r.ok ? 'ok' : `${r.error.code}: ${r.error.message}`;
  };
  assert.match(codes(booleanBombName(100)), /der-malformed: a BOOLEAN is one octet/);
  assert.match(codes(tlv(0x30, tlv(0x01, Buffer.from([0x01])))), /a BOOLEAN is one octet, 00 or FF/);
  assert.match(codes(tlv(0x24, tlv(0x04, Buffer.from('ab')))), /universal type 4 must be primitive/);
  assert.match(codes(Buffer.from([0x30, 0x80, 0x05, 0x00, 0x00, 0x00])), /der-not-an-element/);
  assert.match(codes(Buffer.concat([tlv(0x05, Buffer.alloc(0)), Buffer.from([0])])), /der-trailing-bytes/);
  assert.match(
    codes(tlv(0x30, Buffer.concat(Array.from({ length: 600 }, () => tlv(0x05, Buffer.alloc(0)))))),
    /der-too-many-elements/,
  );
  let deep: Buffer = tlv(0x05, Buffer.alloc(0));
  for (let i = 0; i < 40; i++) deep = tlv(0x30, deep);
  assert.match(codes(deep), /der-too-deep/);
  assert.match(codes(tlv(0x04, Buffer.alloc(20_000))), /der-too-large/);
  assert.match(codes(tlv(0x06, Buffer.alloc(100, 0x81))), /OBJECT IDENTIFIER of 100 octets/);
  assert.match(codes(tlv(0x02, Buffer.from([0, 1]))), /not minimal/);
  assert.match(codes(tlv(0x09, Buffer.from([0]))), /universal type 9 is not accepted/);
  assert.match(codes(Buffer.from([0x1f, 0x81, 0x01, 0x00])), /der-not-an-element/);
  assert.equal(
    codes(tlv(0x30, Buffer.concat([tlv(0x01, Buffer.from([0xff])), tlv(0xa0, tlv(0x0c, Buffer.from('x')))]))),
    'ok',
  );
});

test('never throws, and is linear: random and structured garbage', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
      checkDer(b, CERTIFICATE_LIMITS);
      sameName(b, b.subarray(1));
    }),
    { numRuns: 5000 },
  );
});

test('the ASN.1 library itself refuses a BOOLEAN of more than one octet, wherever it is', () => {
  assert.throws(
    () => new x509.Name(new Uint8Array(booleanBombName(60_000)).buffer as ArrayBuffer),
    /BOOLEAN is one octet/,
  );
  assert.throws(() => AsnConvert.parse(new Uint8Array(booleanBombName(2)).buffer as ArrayBuffer, AsnName));
  assert.equal(
    AsnConvert.parse(
      new Uint8Array(
        tlv(
          0x30,
          tlv(0x31, tlv(0x30, Buffer.concat([tlv(0x06, Buffer.from([0x55, 4, 3])), tlv(0x01, Buffer.from([0xff]))]))),
        ),
      ).buffer as ArrayBuffer,
      AsnName,
    ).length,
    1,
  );
});

test('sameName: byte-equal, or the same text in other string types; anything else differs', () => {
  const name = (parts: [string, number, string][]) =>
    tlv(
      0x30,
      Buffer.concat(
        parts.map(([oid, tag, v]) =>
          tlv(
            0x31,
            tlv(
              0x30,
              Buffer.concat([
                tlv(0x06, Buffer.from(oid, 'hex')),
                tlv(tag, tag === 0x1e ? Buffer.from(v, 'utf16le').swap16() : Buffer.from(v)),
              ]),
            ),
          ),
        ),
      ),
    );
  const [UTF8, PRINTABLE, BMP] = [0x0c, 0x13, 0x1e];
  const O = (tag: number, text: string): [string, number, string] => ['55040a', tag, text];
  const CN = (tag: number, text: string): [string, number, string] => ['550403', tag, text];
  const utf8 = name([O(UTF8, 'ACME'), CN(UTF8, 'gw1')]);
  assert.ok(sameName(utf8, utf8));
  // Another name's RDNs, whether it is the same name as utf8, and why.
  const others: [[string, number, string][], boolean, string][] = [
    [[O(PRINTABLE, 'ACME'), CN(PRINTABLE, 'gw1')], true, 'the same text as PrintableString'],
    [[O(BMP, 'ACME'), CN(UTF8, 'gw1')], true, 'the same text as BMPString'],
    [[O(UTF8, 'ACME'), CN(UTF8, 'gw2')], false, 'another CN'],
    [[CN(UTF8, 'gw1'), O(UTF8, 'ACME')], false, 'RDN order matters'],
    [[O(UTF8, 'ACME')], false, 'one RDN fewer'],
  ];
  for (const [parts, same, why] of others) assert.equal(sameName(utf8, name(parts)), same, why);
  assert.ok(!sameName(utf8, booleanBombName(10)));
  assert.ok(!sameName(utf8, Buffer.from('garbage')));
  // The x509 library's own encoding of a name compares equal to ours.
  const lib = Buffer.from(new x509.Name('O=ACME, CN=gw1').toArrayBuffer());
  assert.ok(sameName(lib, name([O(PRINTABLE, 'ACME'), CN(PRINTABLE, 'gw1')])), lib.toString('hex'));
});

test('a permit with more elements than ours ever have is refused before the library walks them', async () => {
  const { parsePermit } = await import('../../src/pki/permit.js');
  const { PERMIT_LIMITS } = await import('../../src/pki/der.js');
  const { HOUR, makeAuthority, makeGateway, permitFor } = await import('../ike/engine/peers.js');
  const { derChildren, rewriteDer } = await import('../ike/engine/attacker.js');
  const A = await makeAuthority('a', now - HOUR);
  const g = await makeGateway(A, 'g', now - HOUR);
  const good = await permitFor(A, g, 'vpn', now - HOUR, now + HOUR);
  assert.ok(parsePermit(good).ok);
  // acinfo's attributes (its 7th element) get a second attribute of 150 NULLs.
  assert.ok(derChildren(derChildren(Buffer.from(good))[0]).length >= 7);
  const many = rewriteDer(good, [0, 6], (attrs) => [
    ...attrs,
    tlv(
      0x30,
      Buffer.concat([
        tlv(0x06, Buffer.from([0x2a, 3])),
        tlv(0x31, Buffer.concat(Array.from({ length: 150 }, () => tlv(0x05, Buffer.alloc(0))))),
      ]),
    ),
  ]);
  const r = parsePermit(many);
  assert.ok(!r.ok);
  assert.equal(r.error.code, 'permit-too-large');
  assert.match(r.error.message, new RegExp(`more than ${PERMIT_LIMITS.maxElements} ASN.1 elements`));
});
