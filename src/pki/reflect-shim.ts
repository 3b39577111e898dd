// @peculiar/x509 resolves its algorithms through tsyringe, which refuses to load unless the
// Reflect metadata API exists. No polyfill package is installed, so this provides the small part
// of that API tsyringe uses (define/get metadata per object and property). Imported for its effect
// by src/pki/x509.ts before the library itself.
type Key = string | symbol | undefined;
const store = new WeakMap<object, Map<Key, Map<unknown, unknown>>>();

function table(target: object, prop: Key, create: boolean): Map<unknown, unknown> | undefined {
  let byProp = store.get(target);
  if (!byProp) {
    if (!create) return undefined;
    byProp = new Map();
    store.set(target, byProp);
  }
  let t = byProp.get(prop);
  if (!t && create) {
    t = new Map();
    byProp.set(prop, t);
  }
  return t;
}

const api = {
  defineMetadata(key: unknown, value: unknown, target: object, prop?: Key): void {
    table(target, prop, true)!.set(key, value);
  },
  hasOwnMetadata(key: unknown, target: object, prop?: Key): boolean {
    return table(target, prop, false)?.has(key) ?? false;
  },
  getOwnMetadata(key: unknown, target: object, prop?: Key): unknown {
    return table(target, prop, false)?.get(key);
  },
  hasMetadata(key: unknown, target: object, prop?: Key): boolean {
    for (let o: object | null = target; o; o = Object.getPrototypeOf(o))
      if (api.hasOwnMetadata(key, o, prop)) return true;
    return false;
  },
  getMetadata(key: unknown, target: object, prop?: Key): unknown {
    for (let o: object | null = target; o; o = Object.getPrototypeOf(o)) {
      const t = table(o, prop, false);
      if (t?.has(key)) return t.get(key);
    }
    return undefined;
  },
  metadata(key: unknown, value: unknown) {
    return (target: object, prop?: Key): void => api.defineMetadata(key, value, target, prop);
  },
};

const R = Reflect as unknown as Record<string, unknown>;
for (const [name, fn] of Object.entries(api)) if (typeof R[name] !== 'function') R[name] = fn;

export {};
