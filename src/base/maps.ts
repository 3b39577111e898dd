// Small helpers for Maps used as indexes (one key, many values).

/** Appends `value` to the list under `key`, making the list on first use; returns that list. */
export function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): V[] {
  const list = map.get(key);
  if (list === undefined) {
    const fresh = [value];
    map.set(key, fresh);
    return fresh;
  }
  list.push(value);
  return list;
}
