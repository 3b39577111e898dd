/* Hash tables with a per-table random seed: a chained one for receiving SAs (by SPI), sending SAs
 * (by VPN id) and IPv6 path rules, and an open-addressed one with 8-byte keys for IPv4 path rules
 * (a gateway may hold a million paths: docs/benchmarks.md, "Key table memory"). Native so that the TUN reader thread
 * finds a packet's rule in O(1) without calling into JavaScript (dataplane.md: one JS call per packet
 * caps the path far below the TUN's own rate). Not thread-safe: the executor's lock guards it. */
#ifndef KASANE_TABLE_H
#define KASANE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#define TABLE_KEY_MAX 33 /* family (1) + local (16) + remote (16) */

typedef struct tnode {
  struct tnode *next;
  uint64_t hash;
  uint8_t klen;
  uint8_t key[TABLE_KEY_MAX];
} tnode;

typedef struct {
  tnode **buckets;
  size_t mask; /* bucket count - 1 (power of two) */
  size_t count;
  uint64_t seed;
} table;

int table_init(table *t);
/* Frees the buckets; calls free_node on every node still present. */
void table_free(table *t, void (*free_node)(tnode *));
tnode *table_find(const table *t, const uint8_t *key, size_t klen);
/* Inserts a node whose key is set; the caller has checked that the key is absent. 0 or -1 (no memory). */
int table_insert(table *t, tnode *n);
/* Unlinks and returns the node with this key, or NULL. */
tnode *table_remove(table *t, const uint8_t *key, size_t klen);
void table_foreach(const table *t, void (*fn)(tnode *, void *), void *ctx);

/* Open-addressed table of fixed-size records keyed by 8 bytes: an index of positions (linear
 * probing, load at most 1/2, deletion by backward shift) over dense arrays of keys and records
 * (a removed record's place is taken by the last one). About 8 + 8 + the record bytes per entry,
 * no allocation per entry. Records move on insert and remove: do not keep pointers across them. */
typedef struct {
  uint32_t *index; /* position + 1; 0: empty */
  size_t mask;     /* index size - 1 (power of two) */
  uint64_t *keys;
  uint8_t *recs;
  size_t rsize, count, cap;
  uint64_t seed;
} ktable;

/* Path rules keyed as path_key() writes them (family, local 16, remote 16): IPv4 in a ktable
 * keyed by the two addresses, IPv6 in the chained table (a tnode followed by the record). */
typedef struct {
  ktable v4;
  table v6;
  size_t rsize; /* a multiple of 8 */
} pathtable;

int pathtable_init(pathtable *t, size_t rsize);
void pathtable_free(pathtable *t);
void *pathtable_find(const pathtable *t, const uint8_t key[TABLE_KEY_MAX]);
/* A zeroed record for a key the caller has checked is absent, or NULL (no memory). */
void *pathtable_insert(pathtable *t, const uint8_t key[TABLE_KEY_MAX]);
/* Removes the key's record, copied to `out` first; 1 if it was there, else 0. */
int pathtable_remove(pathtable *t, const uint8_t key[TABLE_KEY_MAX], void *out);
/* fn must not insert or remove. */
void pathtable_foreach(const pathtable *t, void (*fn)(const uint8_t key[TABLE_KEY_MAX], void *rec, void *ctx),
                       void *ctx);

#endif
