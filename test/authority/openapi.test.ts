// docs/openapi.yaml is kept in sync with the server: the same routes, the same request-body fields
// (required or not), the same query parameters.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import YAML from 'yaml';
import { ipFromBytes, ipToBytes, Prefix } from '../../src/base/addr.js';
import { routeList, type RouteInfo } from '../../src/authority/server.js';
import { checkAddress, checkPrefixes } from '../../src/authority/validate.js';
import { ROOT, startTestAuthority, type TestAuthority } from './helpers/authority.js';

type Doc = {
  paths: Record<string, Record<string, Operation> & { parameters?: Param[] }>;
  components: { schemas: Record<string, Schema>; parameters: Record<string, Param> };
};
type Operation = {
  security?: unknown[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  parameters?: Param[];
};
type Param = { name: string; in: string; $ref?: string };
type Schema = {
  $ref?: string;
  properties?: Record<string, unknown>;
  required?: string[];
  additionalProperties?: boolean;
};

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

describe('OpenAPI document', () => {
  let t: TestAuthority;
  let routes: RouteInfo[];
  const doc = YAML.parse(readFileSync(`${ROOT}/docs/openapi.yaml`, 'utf8')) as Doc;
  const resolve = <T extends { $ref?: string }>(x: T): T => {
    if (!x.$ref) return x;
    const [, , kind, name] = x.$ref.split('/');
    return (doc.components as unknown as Record<string, Record<string, T>>)[kind][name];
  };

  before(async () => {
    t = await startTestAuthority();
    routes = routeList(t.running.app);
  });
  after(() => t.close());

  it('documents exactly the routes the server has', () => {
    const served = routes.map((r) => r.route).sort();
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) =>
        Object.keys(ops)
          .filter((m) => METHODS.includes(m))
          .map((m) => `${m.toUpperCase()} ${path}`),
      )
      .sort();
    assert.ok(served.length >= 30, `${served.length} routes`);
    assert.deepEqual(documented, served);
  });

  it('documents the same request bodies and query parameters', () => {
    for (const r of routes) {
      const [method, path] = r.route.split(' ');
      const op = doc.paths[path][method.toLowerCase()];
      const body = r.body as Schema | undefined;
      if (body) {
        const schema = resolve(op.requestBody?.content['application/json']?.schema ?? {});
        assert.deepEqual(
          Object.keys(schema.properties ?? {}).sort(),
          Object.keys(body.properties ?? {}).sort(),
          `${r.route} body fields`,
        );
        assert.deepEqual(
          [...(schema.required ?? [])].sort(),
          [...(body.required ?? [])].sort(),
          `${r.route} required fields`,
        );
        assert.equal(schema.additionalProperties, false, `${r.route} refuses unknown fields`);
      } else {
        assert.equal(op.requestBody, undefined, `${r.route} takes no body`);
      }
      const query = r.query as Schema | undefined;
      const params = [...(doc.paths[path].parameters ?? []), ...(op.parameters ?? [])]
        .map((p) => resolve(p))
        .filter((p) => p.in === 'query');
      assert.deepEqual(
        params.map((p) => p.name).sort(),
        Object.keys(query?.properties ?? {}).sort(),
        `${r.route} query parameters`,
      );
    }
  });

  it('marks public and gateway endpoints', () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const m of Object.keys(ops).filter((x) => METHODS.includes(x))) {
        const op = ops[m];
        if (path.startsWith('/v1/gateway/'))
          assert.deepEqual(op.security, [{ gatewayCertificate: [] }], `${m} ${path}`);
        else if (path === '/v1/federation/exchange')
          assert.deepEqual(op.security, [{ peerAuthorityCertificate: [] }], `${m} ${path}`);
        else if (
          ['/v1/health', '/v1/ca', '/v1/ca/crl', '/v1/enroll'].includes(path) ||
          (path === '/v1/session' && m === 'post')
        )
          assert.deepEqual(op.security, [], `${m} ${path}`);
        else if (path === '/v1/session') assert.deepEqual(op.security, [{ consoleSession: [] }], `${m} ${path}`);
        else assert.equal(op.security, undefined, `${m} ${path} uses the admin token`);
      }
    }
  });

  it('the Prefix and Address schemas take IPv4 and IPv6 in any spelling, within the limits the server applies', () => {
    type Text = { pattern: string; maxLength: number; examples: string[] };
    const schemas = doc.components.schemas as unknown as Record<string, Text>;
    const bodyLimit = (route: string, field: string): number | undefined =>
      (routes.find((r) => r.route === route)?.body as { properties: Record<string, { maxLength?: number }> })
        .properties[field].maxLength;
    assert.equal(schemas.Prefix.maxLength, bodyLimit('POST /v1/directory', 'prefix'));
    assert.equal(schemas.Address.maxLength, bodyLimit('POST /v1/gateways', 'address'));
    const fits = (t: Text, text: string): boolean => new RegExp(t.pattern).test(text) && text.length <= t.maxLength;
    for (const [name, check] of [
      ['Prefix', checkPrefixes],
      ['Address', (x: string[]) => checkAddress(x[0])],
    ] as const) {
      const t = schemas[name];
      assert.ok(
        t.examples.some((x) => x.includes(':')) && t.examples.some((x) => x.includes('.')),
        `${name} examples show both families`,
      );
      for (const x of t.examples) assert.ok(fits(t, x) && check([x]).ok, `${name} example ${x}`);
    }
    // Every prefix and address, canonical or spelled out in full in upper case, fits the documented schema.
    const spelledOut = (ip: string): string => {
      if (!ip.includes(':')) return ip;
      const b = ipToBytes(ip);
      return Array.from({ length: 8 }, (_, i) =>
        ((b[2 * i] << 8) | b[2 * i + 1]).toString(16).padStart(4, '0').toUpperCase(),
      ).join(':');
    };
    const v4 = fc
      .tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 32 }))
      .map(([b, len]) => Prefix.of(ipFromBytes(b, 0, 4), len));
    const v6 = fc
      .tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 128 }))
      .map(([b, len]) => Prefix.of(ipFromBytes(b, 0, 6), len));
    fc.assert(
      fc.property(fc.oneof(v4, v6), (p) => {
        const address = ipFromBytes(p.bytes, 0, p.family);
        for (const text of [p.toString(), `${spelledOut(address)}/${p.length}`])
          assert.ok(fits(schemas.Prefix, text), text);
        for (const text of [address, spelledOut(address)]) assert.ok(fits(schemas.Address, text), text);
      }),
    );
  });
});
