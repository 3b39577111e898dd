// Writes test/vectors/esp-group.json: group-mode key derivation and ESP sealing, end to end, so
// that the native executor can be checked against the same bytes as the TypeScript one.
// Generated once; test/crypto/esp-group-vectors.test.ts checks it. Rerun only on a deliberate
// format change:  npx tsx test/crypto/gen-esp-group-vectors.ts
import { writeFileSync } from 'node:fs';
import { deriveSearchKey, deriveSenderKey } from '../../src/crypto/kdf.js';
import { espSeal } from '../../src/crypto/esp.js';
import { seededRandom } from '../../src/base/random.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const rnd = seededRandom('kasane esp-group vectors v1');
const keyA = Uint8Array.from({ length: 32 }, (_, i) => i);
const keyB = rnd(32);

interface Input {
  name: string;
  vpnKey: Uint8Array;
  vpnId: number;
  epoch: number;
  sender: string;
  spi: number;
  seq: bigint;
  nextHeader: number;
  payload: Uint8Array;
}

const inputs: Input[] = [
  {
    name: 'first packet of gw1',
    vpnKey: keyA,
    vpnId: 1,
    epoch: 1,
    sender: 'gw1',
    spi: 0x00001001,
    seq: 1n,
    nextHeader: 1,
    payload: rnd(64),
  },
  {
    name: 'same VPN and seq, other sender',
    vpnKey: keyA,
    vpnId: 1,
    epoch: 1,
    sender: 'gw2',
    spi: 0x00001002,
    seq: 1n,
    nextHeader: 1,
    payload: rnd(64),
  },
  {
    name: 'empty payload (2 bytes of padding), last 32-bit seq',
    vpnKey: keyA,
    vpnId: 2,
    epoch: 7,
    sender: 'gateway-b.example',
    spi: 0x0a0b0c0d,
    seq: 0xffffffffn,
    nextHeader: 59,
    payload: new Uint8Array(0),
  },
  {
    name: '1-byte payload (1 byte of padding), first seq above 2^32',
    vpnKey: keyB,
    vpnId: 2,
    epoch: 8,
    sender: 'gateway-b.example',
    spi: 0x0a0b0c0e,
    seq: 0x100000000n,
    nextHeader: 17,
    payload: rnd(1),
  },
  {
    name: '2-byte payload (no padding)',
    vpnKey: keyB,
    vpnId: 2,
    epoch: 8,
    sender: 'gateway-b.example',
    spi: 0x0a0b0c0e,
    seq: 0x100000001n,
    nextHeader: 17,
    payload: rnd(2),
  },
  {
    name: '3-byte payload (3 bytes of padding), largest seq, UTF-8 sender',
    vpnKey: keyB,
    vpnId: 300,
    epoch: 2,
    sender: 'ゲートウェイ東京',
    spi: 0xfedcba98,
    seq: 0xffffffffffffffffn,
    nextHeader: 6,
    payload: rnd(3),
  },
  {
    name: '1400-byte payload, largest ids, 63-byte sender',
    vpnKey: keyB,
    vpnId: 0xffffffff,
    epoch: 0xffffffff,
    sender: 's'.repeat(62) + '9',
    spi: 0xffffffff,
    seq: 0x0123456789abcdefn,
    nextHeader: 6,
    payload: rnd(1400),
  },
  {
    name: 'zero ids',
    vpnKey: keyA,
    vpnId: 0,
    epoch: 0,
    sender: 'a',
    spi: 256,
    seq: 42n,
    nextHeader: 4,
    payload: rnd(41),
  },
];

const cases = inputs.map((c) => {
  const { key, salt } = deriveSenderKey(c.vpnKey, c.vpnId, c.epoch, c.sender);
  const esp = espSeal({ spi: c.spi, key, salt }, c.seq, c.nextHeader, c.payload);
  return {
    name: c.name,
    input: {
      vpnKey: hex(c.vpnKey),
      vpnId: c.vpnId,
      epoch: c.epoch,
      sender: c.sender,
      spi: c.spi,
      seq: c.seq.toString(),
      nextHeader: c.nextHeader,
      payload: hex(c.payload),
    },
    output: {
      senderKey: hex(key),
      senderSalt: hex(salt),
      searchKey: hex(deriveSearchKey(c.vpnKey, c.vpnId, c.epoch)),
      esp: hex(esp),
    },
  };
});

const file = {
  description:
    'kasane group-mode ESP vectors. senderKey||senderSalt = HKDF-SHA256(ikm=vpnKey, salt="kasane/v1", info="esp sender"||u32be vpnId||u32be epoch||u8 len||UTF-8 sender, L=36); ' +
    'searchKey = HKDF-SHA256(vpnKey, "kasane/v1", "search auth"||u32be vpnId||u32be epoch, L=32); ' +
    'esp = SPI(4)|seq low(4)|IV=seq(8, big-endian)|AES-256-GCM(payload|pad 1,2,3..|pad length|next header)|ICV(16), nonce = salt||IV, AAD = SPI||seq(64). seq is decimal.',
  cases,
};
const path = new URL('../vectors/esp-group.json', import.meta.url);
writeFileSync(path, JSON.stringify(file, null, 2) + '\n');
console.log(`wrote ${cases.length} cases to ${path.pathname}`);
