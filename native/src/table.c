/* Seeded chained hash table (see table.h for why it is native). */
#include "table.h"

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
