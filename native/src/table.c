/* Seeded chained hash table (see table.h for why it is native). */
#include "table.h"

#include "ip.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static uint64_t mix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

static uint64_t hash_key(uint64_t seed, const uint8_t *key, size_t len) {
  uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL);
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, key, 8);
    h = mix64(h ^ w);
    key += 8;
    len -= 8;
  }
  if (len) {
    uint64_t w = 0;
    memcpy(&w, key, len);
    h = mix64(h ^ w ^ 0x5bd1e995ULL);
  }
  return h;
}

int table_init(table *t) {
  t->mask = 63;
  t->count = 0;
  t->buckets = calloc(t->mask + 1, sizeof(tnode *));
  if (!t->buckets) return -1;
  if (getrandom(&t->seed, sizeof t->seed, 0) != (ssize_t)sizeof t->seed) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t->seed = mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)t);
  }
  return 0;
}

void table_free(table *t, void (*free_node)(tnode *)) {
  if (!t->buckets) return;
  for (size_t i = 0; i <= t->mask; i++) {
    tnode *n = t->buckets[i];
    while (n) {
      tnode *next = n->next;
      if (free_node) free_node(n);
      n = next;
    }
  }
  free(t->buckets);
  t->buckets = NULL;
  t->count = 0;
}

tnode *table_find(const table *t, const uint8_t *key, size_t klen) {
  uint64_t h = hash_key(t->seed, key, klen);
  for (tnode *n = t->buckets[h & t->mask]; n; n = n->next)
    if (n->hash == h && n->klen == klen && memcmp(n->key, key, klen) == 0) return n;
  return NULL;
}

static int grow(table *t) {
  size_t nmask = t->mask * 2 + 1;
  tnode **nb = calloc(nmask + 1, sizeof(tnode *));
  if (!nb) return -1;
  for (size_t i = 0; i <= t->mask; i++) {
    tnode *n = t->buckets[i];
    while (n) {
      tnode *next = n->next;
      n->next = nb[n->hash & nmask];
      nb[n->hash & nmask] = n;
      n = next;
    }
  }
  free(t->buckets);
  t->buckets = nb;
  t->mask = nmask;
  return 0;
}

int table_insert(table *t, tnode *n) {
  /* Load factor 1; if growing fails the table keeps working with longer chains. */
  if (t->count >= t->mask + 1) (void)grow(t);
  n->hash = hash_key(t->seed, n->key, n->klen);
  n->next = t->buckets[n->hash & t->mask];
  t->buckets[n->hash & t->mask] = n;
  t->count++;
  return 0;
}

tnode *table_remove(table *t, const uint8_t *key, size_t klen) {
  uint64_t h = hash_key(t->seed, key, klen);
  for (tnode **pp = &t->buckets[h & t->mask]; *pp; pp = &(*pp)->next) {
    tnode *n = *pp;
    if (n->hash == h && n->klen == klen && memcmp(n->key, key, klen) == 0) {
      *pp = n->next;
      t->count--;
      return n;
    }
  }
  return NULL;
}

void table_foreach(const table *t, void (*fn)(tnode *, void *), void *ctx) {
  for (size_t i = 0; i <= t->mask; i++)
    for (tnode *n = t->buckets[i]; n;) {
      tnode *next = n->next; /* fn may free n */
      fn(n, ctx);
      n = next;
    }
}

/* ---- open-addressed, 8-byte keys ---- */

static uint64_t seed_of(void *salt) {
  uint64_t s;
  if (getrandom(&s, sizeof s, 0) == (ssize_t)sizeof s) return s;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)salt);
}

static int ktable_init(ktable *t, size_t rsize) {
  memset(t, 0, sizeof *t);
  t->rsize = rsize;
  t->mask = 15;
  t->index = calloc(t->mask + 1, sizeof *t->index);
  t->seed = seed_of(t);
  return t->index ? 0 : -1;
}

static void ktable_free(ktable *t) {
  free(t->index);
  free(t->keys);
  free(t->recs);
  memset(t, 0, sizeof *t);
}

static size_t khome(const ktable *t, uint64_t key) { return (size_t)mix64(key ^ t->seed) & t->mask; }

/* The index cell holding position pos + 1 of `key`, or of the first empty cell on its run. */
static size_t kcell(const ktable *t, uint64_t key) {
  size_t i = khome(t, key);
  while (t->index[i] && t->keys[t->index[i] - 1] != key) i = (i + 1) & t->mask;
  return i;
}

static void *ktable_find(const ktable *t, uint64_t key) {
  uint32_t c = t->index[kcell(t, key)];
  return c ? t->recs + (size_t)(c - 1) * t->rsize : NULL;
}

static int kgrow_index(ktable *t) {
  size_t nmask = t->mask * 2 + 1;
  uint32_t *ni = calloc(nmask + 1, sizeof *ni);
  if (!ni) return -1;
  free(t->index);
  t->index = ni;
  t->mask = nmask;
  for (size_t p = 0; p < t->count; p++) t->index[kcell(t, t->keys[p])] = (uint32_t)(p + 1);
  return 0;
}

static void *ktable_insert(ktable *t, uint64_t key) {
  if ((t->count + 1) * 2 > t->mask + 1 && kgrow_index(t)) return NULL;
  if (t->count == t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 16;
    if (ncap > UINT32_MAX - 1) return NULL;
    uint64_t *nk = realloc(t->keys, ncap * sizeof *nk);
    if (!nk) return NULL;
    t->keys = nk;
    uint8_t *nr = realloc(t->recs, ncap * t->rsize);
    if (!nr) return NULL;
    t->recs = nr;
    t->cap = ncap;
  }
  size_t p = t->count++;
  t->keys[p] = key;
  t->index[kcell(t, key)] = (uint32_t)(p + 1);
  uint8_t *rec = t->recs + p * t->rsize;
  memset(rec, 0, t->rsize);
  return rec;
}

static int ktable_remove(ktable *t, uint64_t key, void *out) {
  size_t i = kcell(t, key);
  if (!t->index[i]) return 0;
  size_t p = t->index[i] - 1;
  if (out) memcpy(out, t->recs + p * t->rsize, t->rsize);
  /* Backward shift: later members of the run move into the hole when their home allows it. */
  for (size_t j = (i + 1) & t->mask; t->index[j]; j = (j + 1) & t->mask) {
    size_t home = khome(t, t->keys[t->index[j] - 1]);
    if (((j - home) & t->mask) >= ((j - i) & t->mask)) {
      t->index[i] = t->index[j];
      i = j;
    }
  }
  t->index[i] = 0;
  /* The last record takes the removed one's place. */
  size_t last = --t->count;
  if (p != last) {
    t->keys[p] = t->keys[last];
    memcpy(t->recs + p * t->rsize, t->recs + last * t->rsize, t->rsize);
    t->index[kcell(t, t->keys[p])] = (uint32_t)(p + 1);
  }
  return 1;
}

/* ---- path rules ---- */

static uint64_t v4_key(const uint8_t key[TABLE_KEY_MAX]) {
  return (uint64_t)rd32(key + 1) << 32 | rd32(key + 17);
}

int pathtable_init(pathtable *t, size_t rsize) {
  t->rsize = rsize;
  t->v6.buckets = NULL;
  if (ktable_init(&t->v4, rsize)) return -1;
  if (table_init(&t->v6)) {
    ktable_free(&t->v4);
    return -1;
  }
  return 0;
}

static void free_v6(tnode *n) { free(n); }

void pathtable_free(pathtable *t) {
  ktable_free(&t->v4);
  table_free(&t->v6, free_v6);
}

void *pathtable_find(const pathtable *t, const uint8_t key[TABLE_KEY_MAX]) {
  if (key[0] == 4) return t->v4.index ? ktable_find(&t->v4, v4_key(key)) : NULL;
  if (!t->v6.buckets) return NULL;
  tnode *n = table_find(&t->v6, key, TABLE_KEY_MAX);
  return n ? n + 1 : NULL;
}

void *pathtable_insert(pathtable *t, const uint8_t key[TABLE_KEY_MAX]) {
  if (key[0] == 4) return ktable_insert(&t->v4, v4_key(key));
  tnode *n = calloc(1, sizeof *n + t->rsize);
  if (!n) return NULL;
  memcpy(n->key, key, TABLE_KEY_MAX);
  n->klen = TABLE_KEY_MAX;
  table_insert(&t->v6, n);
  return n + 1;
}

int pathtable_remove(pathtable *t, const uint8_t key[TABLE_KEY_MAX], void *out) {
  if (key[0] == 4) return ktable_remove(&t->v4, v4_key(key), out);
  tnode *n = table_remove(&t->v6, key, TABLE_KEY_MAX);
  if (!n) return 0;
  if (out) memcpy(out, n + 1, t->rsize);
  free(n);
  return 1;
}

void pathtable_foreach(const pathtable *t, void (*fn)(const uint8_t key[TABLE_KEY_MAX], void *rec, void *ctx),
                       void *ctx) {
  uint8_t key[TABLE_KEY_MAX];
  for (size_t p = 0; p < t->v4.count; p++) {
    memset(key, 0, sizeof key);
    key[0] = 4;
    wr32(key + 1, (uint32_t)(t->v4.keys[p] >> 32));
    wr32(key + 17, (uint32_t)t->v4.keys[p]);
    fn(key, t->v4.recs + p * t->rsize, ctx);
  }
  for (size_t i = 0; i <= t->v6.mask; i++)
    for (tnode *n = t->v6.buckets[i]; n; n = n->next) fn(n->key, n + 1, ctx);
}
