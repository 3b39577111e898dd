/* Chained hash table with a per-table random seed, used for path rules (keyed by family, local,
 * remote), receiving SAs (by SPI) and sending SAs (by VPN id). Native so that the TUN reader thread
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

#endif
