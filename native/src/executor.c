/* The executor (see executor.h for why it is native and how it is locked). Semantics follow
 * docs/executor.md step by step; the TypeScript reference is src/core/ts-executor.ts. */
#include "executor.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "esp.h"
#include "ip.h"
#include "table.h"

#define REPLAY_WINDOW 1024
#define MAX_IDS 65536

typedef struct {
  char name[ID_NAME_MAX + 1];
  uint8_t len;
  uint32_t refs; /* 0: free slot */
} id_slot;

typedef struct {
  tnode node; /* key: family, local (16), remote (16) */
  int action;
  uint32_t vpn;
  int32_t peer; /* id index or -1 */
  int64_t mtu; /* -1: none */
  int64_t tunnel; /* -1: group mode; else the SPI of the tunnel sending SA */
  uint64_t packets, bytes;
  double last_used;
} rule;

typedef struct {
  tnode node; /* key: VPN id */
  uint32_t spi, vpn, epoch;
  uint64_t next_seq;
  size_t udp; /* GROUP_UDP_HEADER: ESP in UDP (the default); 0: raw ESP */
  aead a;
} txsa;

typedef struct {
  tnode node; /* key: SPI */
  uint32_t spi, vpn, epoch;
  int32_t sender;
  aead a;
  uint64_t top; /* highest sequence number accepted (0: none yet) */
  uint64_t bits[REPLAY_WINDOW / 64]; /* bit (seq % 1024) set: seq accepted */
} rxsa;

/* Tunnel mode: the two halves of an IKE Child SA (ESP in UDP). */
typedef struct {
  tnode node; /* key: SPI */
  uint32_t spi, vpn;
  int32_t peer;
  uint8_t laddr[4], raddr[4];
  uint16_t lport, rport;
  uint64_t next_seq; /* 2^32: exhausted */
  uint64_t soft;
  aead a;
  uint64_t packets, bytes;
  double last_used;
} ttxsa;

typedef struct {
  tnode node; /* key: SPI */
  uint32_t spi, vpn;
  int32_t peer;
  uint8_t laddr[4], raddr[4];
  uint16_t lport, rport;
  aead a;
  uint32_t window;
  uint64_t top;
  uint64_t bits[TUNNEL_WINDOW_MAX / 64]; /* bit (seq % TUNNEL_WINDOW_MAX) set: seq accepted */
  uint32_t *ranges; /* nlocal then nremote [start, end] pairs */
  uint32_t nlocal, nremote;
  uint64_t packets, bytes, replay_drops, auth_failures, selector_drops;
  double last_used;
  uint32_t last_src;
  uint16_t last_port;
} ttrxsa;

struct executor {
  pthread_mutex_t lock;
  atomic_int refs;
  table rules, tx, rx, ttx, trx;
  id_slot *ids;
  size_t nids, ids_cap;
  uint64_t counters[C_COUNT];
};

/* ---- gateway id table: small integers for the strings peer/sender ids, refcounted ---- */

static int32_t id_intern(executor *ex, const char *name, size_t len) {
  size_t free_slot = SIZE_MAX;
  if (len == 0 || len > ID_NAME_MAX) return -2;
  for (size_t i = 0; i < ex->nids; i++) {
    id_slot *s = &ex->ids[i];
    if (s->refs == 0) {
      if (free_slot == SIZE_MAX) free_slot = i;
    } else if (s->len == len && memcmp(s->name, name, len) == 0) {
      s->refs++;
      return (int32_t)i;
    }
  }
  if (free_slot == SIZE_MAX) {
    if (ex->nids >= MAX_IDS) return -1;
    if (ex->nids == ex->ids_cap) {
      size_t cap = ex->ids_cap ? ex->ids_cap * 2 : 16;
      id_slot *n = realloc(ex->ids, cap * sizeof *n);
      if (!n) return -1;
      ex->ids = n;
      ex->ids_cap = cap;
    }
    free_slot = ex->nids++;
  }
  id_slot *s = &ex->ids[free_slot];
  memcpy(s->name, name, len);
  s->name[len] = 0;
  s->len = (uint8_t)len;
  s->refs = 1;
  return (int32_t)free_slot;
}

static void id_release(executor *ex, int32_t id) {
  if (id >= 0 && (size_t)id < ex->nids && ex->ids[id].refs > 0) ex->ids[id].refs--;
}

/* ---- anti-replay window (RFC 4303 section 3.4.3, 64-bit sequence numbers) ---- */

static int replay_ok(const rxsa *s, uint64_t seq) {
  if (seq > s->top) return 1;
  if (s->top - seq >= REPLAY_WINDOW) return 0;
  uint64_t bit = seq % REPLAY_WINDOW;
  return !(s->bits[bit / 64] >> (bit % 64) & 1);
}

static void replay_accept(rxsa *s, uint64_t seq) {
  if (seq > s->top) {
    uint64_t diff = seq - s->top;
    if (diff >= REPLAY_WINDOW) {
      memset(s->bits, 0, sizeof s->bits);
    } else {
      /* Clear the slots of the numbers skipped over (they were last used a window ago). */
      for (uint64_t q = s->top + 1; q < seq; q++) {
        uint64_t b = q % REPLAY_WINDOW;
        s->bits[b / 64] &= ~((uint64_t)1 << (b % 64));
      }
    }
    s->top = seq;
  }
  uint64_t bit = seq % REPLAY_WINDOW;
  s->bits[bit / 64] |= (uint64_t)1 << (bit % 64);
}

/* Every sequence number below floor counts as received (only ever raises the window). Slots of
 * numbers above the new top are set too: replay_accept clears the ones it skips over. */
static void replay_raise_floor(rxsa *s, uint64_t floor) {
  if (floor < 2 || floor - 1 <= s->top) return;
  s->top = floor - 1;
  memset(s->bits, 0xff, sizeof s->bits);
}

/* ---- lifetime ---- */

executor *exec_new(void) {
  executor *ex = calloc(1, sizeof *ex);
  if (!ex) return NULL;
  if (pthread_mutex_init(&ex->lock, NULL) != 0) {
    free(ex);
    return NULL;
  }
  if (table_init(&ex->rules) || table_init(&ex->tx) || table_init(&ex->rx) || table_init(&ex->ttx) ||
      table_init(&ex->trx)) {
    table_free(&ex->rules, NULL);
    table_free(&ex->tx, NULL);
    table_free(&ex->rx, NULL);
    table_free(&ex->ttx, NULL);
    table_free(&ex->trx, NULL);
    pthread_mutex_destroy(&ex->lock);
    free(ex);
    return NULL;
  }
  atomic_init(&ex->refs, 1);
  return ex;
}

void exec_retain(executor *ex) { atomic_fetch_add(&ex->refs, 1); }

static void free_rule(tnode *n) { free(n); }
static void free_tx(tnode *n) {
  txsa *s = (txsa *)n;
  aead_free(&s->a);
  free(s);
}
static void free_rx(tnode *n) {
  rxsa *s = (rxsa *)n;
  aead_free(&s->a);
  free(s);
}

static void free_ttx(tnode *n) {
  ttxsa *s = (ttxsa *)n;
  aead_free(&s->a);
  free(s);
}
static void free_trx(tnode *n) {
  ttrxsa *s = (ttrxsa *)n;
  aead_free(&s->a);
  free(s->ranges);
  free(s);
}

void exec_release(executor *ex) {
  if (atomic_fetch_sub(&ex->refs, 1) != 1) return;
  table_free(&ex->rules, free_rule);
  table_free(&ex->tx, free_tx);
  table_free(&ex->rx, free_rx);
  table_free(&ex->ttx, free_ttx);
  table_free(&ex->trx, free_trx);
  free(ex->ids);
  pthread_mutex_destroy(&ex->lock);
  free(ex);
}

/* ---- installs ---- */

static size_t path_key(uint8_t *key, int family, const uint8_t *local, const uint8_t *remote) {
  size_t alen = family == 6 ? 16 : 4;
  memset(key, 0, TABLE_KEY_MAX);
  key[0] = (uint8_t)family;
  memcpy(key + 1, local, alen);
  memcpy(key + 17, remote, alen);
  return TABLE_KEY_MAX;
}

static void u32_key(uint8_t *key, uint32_t v) { wr32(key, v); }

int exec_install_path(executor *ex, int family, const uint8_t *local, const uint8_t *remote, int action,
                      uint32_t vpn, const char *peer, size_t peer_len, int64_t mtu, int64_t tunnel_spi) {
  uint8_t key[TABLE_KEY_MAX];
  if ((family != 4 && family != 6) || action < ACT_ENCRYPT || action > ACT_PENDING || mtu < -1 || mtu > 0xffffffffLL ||
      tunnel_spi < -1 || tunnel_spi > 0xffffffffLL)
    return -2;
  path_key(key, family, local, remote);
  pthread_mutex_lock(&ex->lock);
  int32_t peer_id = -1;
  if (peer && peer_len) {
    peer_id = id_intern(ex, peer, peer_len);
    if (peer_id < 0) {
      pthread_mutex_unlock(&ex->lock);
      return peer_id;
    }
  }
  rule *r = (rule *)table_find(&ex->rules, key, TABLE_KEY_MAX);
  if (r) {
    /* Replacing a rule keeps its counters: the core ages the path, not the action. */
    id_release(ex, r->peer);
  } else {
    r = calloc(1, sizeof *r);
    if (!r) {
      id_release(ex, peer_id);
      pthread_mutex_unlock(&ex->lock);
      return -1;
    }
    memcpy(r->node.key, key, TABLE_KEY_MAX);
    r->node.klen = TABLE_KEY_MAX;
    table_insert(&ex->rules, &r->node);
  }
  r->action = action;
  r->vpn = vpn;
  r->peer = peer_id;
  r->mtu = mtu;
  r->tunnel = tunnel_spi;
  pthread_mutex_unlock(&ex->lock);
  return 0;
}

int exec_remove_path(executor *ex, int family, const uint8_t *local, const uint8_t *remote) {
  uint8_t key[TABLE_KEY_MAX];
  if (family != 4 && family != 6) return -2;
  path_key(key, family, local, remote);
  pthread_mutex_lock(&ex->lock);
  rule *r = (rule *)table_remove(&ex->rules, key, TABLE_KEY_MAX);
  if (r) id_release(ex, r->peer);
  pthread_mutex_unlock(&ex->lock);
  free(r);
  return r ? 1 : 0;
}

int exec_install_tx(executor *ex, uint32_t spi, uint32_t vpn, uint32_t epoch, const uint8_t key[32],
                    const uint8_t salt[4], uint64_t next_seq, int encap) {
  uint8_t k[4];
  if (next_seq == 0 || (encap != ENCAP_UDP && encap != ENCAP_ESP)) return -2;
  txsa *s = calloc(1, sizeof *s);
  if (!s) return -1;
  if (aead_init(&s->a, key, salt, 1) != 0) {
    free(s);
    return -1;
  }
  s->spi = spi;
  s->vpn = vpn;
  s->epoch = epoch;
  s->next_seq = next_seq;
  s->udp = encap == ENCAP_UDP ? GROUP_UDP_HEADER : 0;
  u32_key(k, vpn);
  memcpy(s->node.key, k, 4);
  s->node.klen = 4;
  pthread_mutex_lock(&ex->lock);
  txsa *old = (txsa *)table_remove(&ex->tx, k, 4);
  table_insert(&ex->tx, &s->node);
  pthread_mutex_unlock(&ex->lock);
  if (old) free_tx(&old->node);
  return 0;
}

int exec_remove_tx(executor *ex, uint32_t vpn) {
  uint8_t k[4];
  u32_key(k, vpn);
  pthread_mutex_lock(&ex->lock);
  txsa *old = (txsa *)table_remove(&ex->tx, k, 4);
  pthread_mutex_unlock(&ex->lock);
  if (old) free_tx(&old->node);
  return old ? 1 : 0;
}

int exec_install_rx(executor *ex, uint32_t spi, uint32_t vpn, uint32_t epoch, const char *sender,
                    size_t sender_len, const uint8_t key[32], const uint8_t salt[4], uint64_t floor) {
  uint8_t k[4];
  rxsa *s = calloc(1, sizeof *s);
  if (!s) return -1;
  if (aead_init(&s->a, key, salt, 0) != 0) {
    free(s);
    return -1;
  }
  s->spi = spi;
  s->vpn = vpn;
  s->epoch = epoch;
  u32_key(k, spi);
  memcpy(s->node.key, k, 4);
  s->node.klen = 4;
  pthread_mutex_lock(&ex->lock);
  s->sender = id_intern(ex, sender, sender_len);
  if (s->sender < 0) {
    int e = s->sender;
    pthread_mutex_unlock(&ex->lock);
    free_rx(&s->node);
    return e;
  }
  rxsa *old = (rxsa *)table_remove(&ex->rx, k, 4);
  if (old) {
    /* Reinstalling an SPI keeps its replay window: a refresh must not reopen old sequence numbers. */
    s->top = old->top;
    memcpy(s->bits, old->bits, sizeof s->bits);
    id_release(ex, old->sender);
  }
  replay_raise_floor(s, floor);
  table_insert(&ex->rx, &s->node);
  pthread_mutex_unlock(&ex->lock);
  if (old) free_rx(&old->node);
  return 0;
}

int exec_remove_rx(executor *ex, uint32_t spi) {
  uint8_t k[4];
  u32_key(k, spi);
  pthread_mutex_lock(&ex->lock);
  rxsa *old = (rxsa *)table_remove(&ex->rx, k, 4);
  if (old) id_release(ex, old->sender);
  pthread_mutex_unlock(&ex->lock);
  if (old) free_rx(&old->node);
  return old ? 1 : 0;
}

/* ---- tunnel SAs ---- */

int exec_install_tunnel_tx(executor *ex, uint32_t spi, uint32_t vpn, const char *peer, size_t peer_len,
                           const uint8_t *key, size_t keylen, const uint8_t salt[4], const uint8_t laddr[4],
                           uint16_t lport, const uint8_t raddr[4], uint16_t rport, uint64_t next_seq, uint64_t soft) {
  uint8_t k[4];
  if (spi == 0 || vpn == 0 || next_seq == 0 || next_seq > 0xffffffffULL || soft == 0 || soft > 0x100000000ULL ||
      lport == 0 || rport == 0 || (keylen != 16 && keylen != 32))
    return -2;
  ttxsa *s = calloc(1, sizeof *s);
  if (!s) return -1;
  if (aead_init_key(&s->a, key, keylen, salt, 1) != 0) {
    free(s);
    return -1;
  }
  s->spi = spi;
  s->vpn = vpn;
  memcpy(s->laddr, laddr, 4);
  memcpy(s->raddr, raddr, 4);
  s->lport = lport;
  s->rport = rport;
  s->next_seq = next_seq;
  s->soft = soft;
  u32_key(k, spi);
  memcpy(s->node.key, k, 4);
  s->node.klen = 4;
  pthread_mutex_lock(&ex->lock);
  s->peer = id_intern(ex, peer, peer_len);
  if (s->peer < 0) {
    int e = s->peer;
    pthread_mutex_unlock(&ex->lock);
    free_ttx(&s->node);
    return e;
  }
  ttxsa *old = (ttxsa *)table_remove(&ex->ttx, k, 4);
  if (old) {
    /* The IV is the sequence number: a reinstall (a NAT moved the peer) must never go back. */
    if (old->next_seq > s->next_seq) s->next_seq = old->next_seq;
    s->packets = old->packets;
    s->bytes = old->bytes;
    s->last_used = old->last_used;
    id_release(ex, old->peer);
  }
  table_insert(&ex->ttx, &s->node);
  pthread_mutex_unlock(&ex->lock);
  if (old) free_ttx(&old->node);
  return 0;
}

int exec_remove_tunnel_tx(executor *ex, uint32_t spi) {
  uint8_t k[4];
  u32_key(k, spi);
  pthread_mutex_lock(&ex->lock);
  ttxsa *old = (ttxsa *)table_remove(&ex->ttx, k, 4);
  if (old) id_release(ex, old->peer);
  pthread_mutex_unlock(&ex->lock);
  if (old) free_ttx(&old->node);
  return old ? 1 : 0;
}

int exec_install_tunnel_rx(executor *ex, uint32_t spi, uint32_t vpn, const char *peer, size_t peer_len,
                           const uint8_t *key, size_t keylen, const uint8_t salt[4], const uint8_t laddr[4],
                           uint16_t lport, const uint8_t raddr[4], uint16_t rport, const uint32_t *ranges,
                           uint32_t nlocal, uint32_t nremote, uint32_t window) {
  uint8_t k[4];
  if (spi == 0 || vpn == 0 || lport == 0 || rport == 0 || (keylen != 16 && keylen != 32) || window < 64 ||
      window > TUNNEL_WINDOW_MAX || window % 32 != 0 || nlocal > 4096 || nremote > 4096)
    return -2;
  for (uint32_t i = 0; i < nlocal + nremote; i++)
    if (ranges[2 * i] > ranges[2 * i + 1]) return -2;
  ttrxsa *s = calloc(1, sizeof *s);
  if (!s) return -1;
  size_t rbytes = (size_t)(nlocal + nremote) * 2 * sizeof(uint32_t);
  s->ranges = malloc(rbytes ? rbytes : 1);
  if (!s->ranges || aead_init_key(&s->a, key, keylen, salt, 0) != 0) {
    free(s->ranges);
    free(s);
    return -1;
  }
  if (rbytes) memcpy(s->ranges, ranges, rbytes);
  s->nlocal = nlocal;
  s->nremote = nremote;
  s->spi = spi;
  s->vpn = vpn;
  memcpy(s->laddr, laddr, 4);
  memcpy(s->raddr, raddr, 4);
  s->lport = lport;
  s->rport = rport;
  s->window = window;
  u32_key(k, spi);
  memcpy(s->node.key, k, 4);
  s->node.klen = 4;
  pthread_mutex_lock(&ex->lock);
  s->peer = id_intern(ex, peer, peer_len);
  if (s->peer < 0) {
    int e = s->peer;
    pthread_mutex_unlock(&ex->lock);
    free_trx(&s->node);
    return e;
  }
  ttrxsa *old = (ttrxsa *)table_remove(&ex->trx, k, 4);
  if (old) {
    /* A refresh must not reopen old sequence numbers: the window (and its size) stays. */
    s->window = old->window;
    s->top = old->top;
    memcpy(s->bits, old->bits, sizeof s->bits);
    s->packets = old->packets;
    s->bytes = old->bytes;
    s->replay_drops = old->replay_drops;
    s->auth_failures = old->auth_failures;
    s->selector_drops = old->selector_drops;
    s->last_used = old->last_used;
    s->last_src = old->last_src;
    s->last_port = old->last_port;
    id_release(ex, old->peer);
  }
  table_insert(&ex->trx, &s->node);
  pthread_mutex_unlock(&ex->lock);
  if (old) free_trx(&old->node);
  return 0;
}

int exec_remove_tunnel_rx(executor *ex, uint32_t spi) {
  uint8_t k[4];
  u32_key(k, spi);
  pthread_mutex_lock(&ex->lock);
  ttrxsa *old = (ttrxsa *)table_remove(&ex->trx, k, 4);
  if (old) id_release(ex, old->peer);
  pthread_mutex_unlock(&ex->lock);
  if (old) free_trx(&old->node);
  return old ? 1 : 0;
}

/* Anti-replay for 32-bit sequence numbers with a per-SA window (RFC 4303 section 3.4.3). */
static int treplay_ok(const ttrxsa *s, uint64_t seq) {
  if (seq > s->top) return 1;
  if (s->top - seq >= s->window) return 0;
  uint64_t bit = seq % TUNNEL_WINDOW_MAX;
  return !(s->bits[bit / 64] >> (bit % 64) & 1);
}

static void treplay_accept(ttrxsa *s, uint64_t seq) {
  if (seq > s->top) {
    if (seq - s->top >= TUNNEL_WINDOW_MAX) {
      memset(s->bits, 0, sizeof s->bits);
    } else {
      for (uint64_t q = s->top + 1; q < seq; q++) {
        uint64_t b = q % TUNNEL_WINDOW_MAX;
        s->bits[b / 64] &= ~((uint64_t)1 << (b % 64));
      }
    }
    s->top = seq;
  } else if (s->top - seq >= s->window) {
    return;
  }
  uint64_t bit = seq % TUNNEL_WINDOW_MAX;
  s->bits[bit / 64] |= (uint64_t)1 << (bit % 64);
}

static int in_ranges(const uint32_t *r, uint32_t n, uint32_t ip) {
  for (uint32_t i = 0; i < n; i++)
    if (ip >= r[2 * i] && ip <= r[2 * i + 1]) return 1;
  return 0;
}

/* ---- per packet ---- */

typedef struct {
  size_t ihl, tot;
  uint8_t proto;
  uint16_t frag;
} ipv4_info;

/* Step 1: version 4, IHL >= 5, total length within the buffer, header checksum. */
static int parse_ipv4(const uint8_t *pkt, size_t len, ipv4_info *ip) {
  if (len < 20) return -1;
  if (pkt[0] >> 4 != 4) return -1;
  ip->ihl = (size_t)(pkt[0] & 15) * 4;
  ip->tot = rd16(pkt + 2);
  if (ip->ihl < 20 || ip->tot < ip->ihl || ip->tot > len) return -1;
  if (csum_fold(csum_add(0, pkt, ip->ihl)) != 0xffff) return -1;
  ip->proto = pkt[9];
  ip->frag = rd16(pkt + 6);
  return 0;
}

/* Step 2: ICMP echo request or reply whose data (at least 8 bytes) starts with "KSRC". */
static int is_search(const uint8_t *pkt, const ipv4_info *ip) {
  if (ip->proto != IPPROTO_ICMP_) return 0;
  if (ip->tot - ip->ihl < 16) return 0;
  const uint8_t *icmp = pkt + ip->ihl;
  return (icmp[0] == 8 || icmp[0] == 0) && memcmp(icmp + 8, "KSRC", 4) == 0;
}

static rule *find_rule(executor *ex, int side, const uint8_t *pkt) {
  uint8_t key[TABLE_KEY_MAX];
  const uint8_t *src = pkt + 12, *dst = pkt + 16;
  if (side == SIDE_INSIDE)
    path_key(key, 4, src, dst);
  else
    path_key(key, 4, dst, src);
  return (rule *)table_find(&ex->rules, key, TABLE_KEY_MAX);
}

/* UDP 4500 -> 4500 in front of an ESP packet of esplen bytes, checksum 0 (RFC 3948 section 3.1). */
static void udp_encap_header(uint8_t *u, size_t esplen) {
  wr16(u, GROUP_UDP_PORT);
  wr16(u + 2, GROUP_UDP_PORT);
  wr16(u + 4, (uint16_t)(GROUP_UDP_HEADER + esplen));
  u[6] = u[7] = 0;
}

/* Clamps every MSS option of an unfragmented TCP SYN above `limit` to it, keeping the TCP checksum
 * valid incrementally (RFC 1624). The TCP segment is tcp[0..len). Never reads outside it. */
static void clamp_mss(uint8_t *tcp, size_t len, uint16_t limit) {
  if (len < 20 || !(tcp[13] & 0x02)) return;
  size_t doff = (size_t)(tcp[12] >> 4) * 4;
  if (doff < 20 || doff > len) return;
  for (size_t i = 20; i < doff;) {
    uint8_t kind = tcp[i];
    if (kind == 0) return;
    if (kind == 1) {
      i++;
      continue;
    }
    if (i + 1 >= doff) return;
    size_t olen = tcp[i + 1];
    if (olen < 2 || i + olen > doff) return;
    if (kind == 2 && olen == 4) {
      size_t at = i + 2;
      uint16_t mss = rd16(tcp + at);
      if (mss > limit) {
        wr16(tcp + at, limit);
        /* A word at an odd offset straddles two checksum words: it contributes byte-swapped. */
        uint16_t o = mss, n = limit;
        if (at & 1) {
          o = (uint16_t)(o << 8 | o >> 8);
          n = (uint16_t)(n << 8 | n >> 8);
        }
        wr16(tcp + 16, csum_replace16(rd16(tcp + 16), o, n));
      }
    }
    i += olen;
  }
}

static int64_t clamp_limit(int64_t v) { return v < 0 ? 0 : v > 65535 ? 65535 : v; }

/* Options whose copy flag is clear become NOPs (what non-first fragments carry, RFC 791). */
static void nop_uncopied_options(uint8_t *h, size_t ihl) {
  for (size_t i = 20; i < ihl;) {
    uint8_t type = h[i];
    if (type == 0) return;
    if (type == 1) {
      i++;
      continue;
    }
    size_t olen = i + 1 < ihl ? h[i + 1] : 0;
    if (olen < 2 || i + olen > ihl) return;
    if (!(type & 0x80)) memset(h + i, 1, olen);
    i += olen;
  }
}

/* The carried form (docs/executor.md): the whole inner packet under ESP (next header 4) behind a
 * 20-byte outer header with DF; a packet larger than the path is fragmented first (RFC 791), each
 * fragment in its own ESP packet, written back to back at out. */
static int encrypt_carried(executor *ex, rule *r, txsa *tx, uint8_t *pkt, size_t len, const ipv4_info *ip,
                           uint8_t *out, exec_note *note) {
  size_t ihl = ip->ihl, tot = ip->tot, data = tot - ihl;
  int fragment = (ip->frag & (IP_MF | IP_OFFMASK)) != 0;
  int64_t limit = r->mtu >= 0 && r->mtu < 65535 ? r->mtu : 65535;
  size_t udp = tx->udp, hdr = 20 + udp;
  int64_t overhead = CARRIED_OVERHEAD_MAX - GROUP_UDP_HEADER + (int64_t)udp;
  if (r->mtu >= 0 && ip->proto == IPPROTO_TCP_ && !fragment && tot >= ihl + 20)
    clamp_mss(pkt + ihl, data, (uint16_t)clamp_limit(r->mtu - overhead - 40));
  size_t piece = data, n = 1;
  if (hdr + esp_sealed_len(tot) > (uint64_t)limit) {
    /* A fragment that says DF cannot be split further. */
    int64_t room = limit - overhead - (int64_t)ihl;
    if ((ip->frag & IP_DF) || room < 8) return C_PUNT_TOO_BIG;
    piece = (size_t)(room / 8 * 8);
    n = (data + piece - 1) / piece;
    if (n > EXEC_MAX_FRAGMENTS) return C_PUNT_TOO_BIG;
  }
  if (tx->next_seq + (n - 1) < tx->next_seq) return C_DROP_NO_SA; /* the 64-bit space would wrap */
  uint8_t later[60];
  memcpy(later, pkt, ihl);
  nop_uncopied_options(later, ihl);
  uint16_t frag = ip->frag;
  size_t base = (size_t)(frag & IP_OFFMASK) * 8;
  uint64_t first = tx->next_seq;
  size_t pos = 0;
  for (size_t i = 0, at = 0; i < n; i++, at += piece) {
    size_t dl = data - at < piece ? data - at : piece;
    uint8_t h[60];
    memcpy(h, i == 0 ? pkt : later, ihl);
    if (n > 1) {
      int more = at + dl < data || (frag & IP_MF);
      wr16(h + 2, (uint16_t)(ihl + dl));
      wr16(h + 6, (uint16_t)((frag & IP_DF) | (more ? IP_MF : 0) | ((base + at) / 8)));
      ipv4_set_checksum(h, ihl);
    }
    uint8_t *o = out + pos;
    size_t el = esp_seal2(&tx->a, tx->spi, tx->next_seq, h, ihl, pkt + ihl + at, dl, 4, o + hdr);
    if (el == 0) return C_DROP_NO_SA;
    tx->next_seq++;
    memset(o, 0, 20);
    o[0] = 0x45;
    o[1] = pkt[1];
    wr16(o + 2, (uint16_t)(hdr + el));
    o[4] = pkt[4];
    o[5] = pkt[5];
    o[6] = 0x40; /* DF: nothing of ours is fragmented on the way */
    o[8] = pkt[8];
    o[9] = udp ? IPPROTO_UDP_ : IPPROTO_ESP_;
    memcpy(o + 12, pkt + 12, 8);
    ipv4_set_checksum(o, 20);
    if (udp) udp_encap_header(o + 20, el);
    pos += hdr + el;
  }
  note->out = out;
  note->out_len = pos;
  note->count = (uint32_t)n;
  note->vpn = r->vpn;
  note->spi = tx->spi;
  note->seq = first;
  ex->counters[C_ENCRYPT_PACKETS]++;
  ex->counters[C_ENCRYPT_BYTES] += len;
  if (n > 1) ex->counters[C_ENCRYPT_FRAGMENTS] += n;
  return V_FORWARD_ENCRYPT;
}

static int encrypt_out(executor *ex, rule *r, uint8_t *pkt, size_t len, const ipv4_info *ip, uint8_t *out,
                       exec_note *note) {
  uint8_t k[4];
  u32_key(k, r->vpn);
  txsa *tx = (txsa *)table_find(&ex->tx, k, 4);
  if (!tx || tx->next_seq == 0) return C_DROP_NO_SA; /* next_seq 0: the 64-bit space is used up */
  /* Protocol 4 (IP in IP) from a terminal too: in the transport form its next header would read as
   * the carried form's. */
  if (!(ip->frag & IP_DF) || (ip->frag & (IP_MF | IP_OFFMASK)) || ip->proto == 4)
    return encrypt_carried(ex, r, tx, pkt, len, ip, out, note);
  size_t plen = ip->tot - ip->ihl, udp = tx->udp;
  size_t outlen = ip->ihl + udp + esp_sealed_len(plen);
  /* The MTU test counts the buffer as given (as the reference does) plus the ESP overhead. */
  size_t grown = len + udp + (esp_sealed_len(plen) - plen);
  /* Over 65535 bytes no IPv4 packet can carry it (grown >= outlen). */
  if (grown > 65535 || (r->mtu >= 0 && grown > (uint64_t)r->mtu)) return C_PUNT_TOO_BIG;
  if (r->mtu >= 0 && ip->proto == IPPROTO_TCP_ && ip->tot >= ip->ihl + 20)
    clamp_mss(pkt + ip->ihl, plen, (uint16_t)clamp_limit(r->mtu - ESP_OVERHEAD_MAX - (int64_t)udp - 40));
  uint64_t seq = tx->next_seq;
  memcpy(out, pkt, ip->ihl);
  size_t el = esp_seal(&tx->a, tx->spi, seq, pkt + ip->ihl, plen, ip->proto, out + ip->ihl + udp);
  if (el == 0) return C_DROP_NO_SA;
  tx->next_seq = seq + 1;
  out[9] = udp ? IPPROTO_UDP_ : IPPROTO_ESP_;
  if (udp) udp_encap_header(out + ip->ihl, el);
  wr16(out + 2, (uint16_t)outlen);
  ipv4_set_checksum(out, ip->ihl);
  note->out = out;
  note->out_len = outlen;
  note->vpn = r->vpn;
  note->spi = tx->spi;
  note->seq = seq;
  ex->counters[C_ENCRYPT_PACKETS]++;
  ex->counters[C_ENCRYPT_BYTES] += len;
  return V_FORWARD_ENCRYPT;
}

static int decrypt_in(executor *ex, rule *r, const uint8_t *pkt, size_t len, const ipv4_info *ip, uint8_t *out,
                      exec_note *note) {
  uint8_t k[4];
  uint32_t spi;
  uint64_t seq;
  size_t plen;
  uint8_t nh;
  if (ip->proto != IPPROTO_ESP_ && ip->proto != IPPROTO_UDP_) return C_DROP_UNSOLICITED_PLAIN;
  /* Our ESP always leaves with DF (the carried form): a fragment of ESP cannot be opened. */
  if (ip->frag & (IP_MF | IP_OFFMASK)) return C_DROP_FRAGMENT;
  const uint8_t *esp = pkt + ip->ihl;
  size_t elen = ip->tot - ip->ihl;
  if (ip->proto == IPPROTO_UDP_) {
    /* ESP in UDP to port 4500, its UDP length exactly the IP payload's; the UDP checksum is not
     * checked (RFC 3948 section 3.1: the ICV covers what matters). */
    if (elen < GROUP_UDP_HEADER || rd16(esp + 2) != GROUP_UDP_PORT) return C_DROP_UNSOLICITED_PLAIN;
    if (rd16(esp + 4) != elen) return C_DROP_MALFORMED;
    esp += GROUP_UDP_HEADER;
    elen -= GROUP_UDP_HEADER;
  }
  if (esp_parse(esp, elen, &spi, &seq) != 0) return C_DROP_MALFORMED;
  u32_key(k, spi);
  rxsa *rx = (rxsa *)table_find(&ex->rx, k, 4);
  if (!rx) return C_PUNT_UNKNOWN_SPI;
  if (rx->vpn != r->vpn) return C_DROP_VPN_MISMATCH;
  if (rx->sender != r->peer) return C_DROP_PEER_MISMATCH;
  if (!replay_ok(rx, seq)) return C_DROP_REPLAY;
  if (esp_open(&rx->a, esp, elen, out + ip->ihl, &plen, &nh) != 0) return C_DROP_AUTH_FAILED;
  replay_accept(rx, seq);
  if (nh == 4) {
    /* Carried form: the whole inner packet, for this path only (a member may not smuggle packets
     * for other terminals); it goes on with the outer TOS and TTL, as the transport form does. */
    ipv4_info in;
    uint8_t *inner = out + ip->ihl;
    if (parse_ipv4(inner, plen, &in) != 0 || in.tot != plen || memcmp(inner + 12, pkt + 12, 8) != 0) return C_DROP_MALFORMED;
    memmove(out, inner, plen);
    out[1] = pkt[1];
    out[8] = pkt[8];
    ipv4_set_checksum(out, in.ihl);
    note->out_len = plen;
  } else {
    memcpy(out, pkt, ip->ihl);
    out[9] = nh;
    wr16(out + 2, (uint16_t)(ip->ihl + plen));
    ipv4_set_checksum(out, ip->ihl);
    note->out_len = ip->ihl + plen;
  }
  note->out = out;
  note->vpn = rx->vpn;
  note->spi = spi;
  note->seq = seq;
  memcpy(note->sender, ex->ids[rx->sender].name, (size_t)ex->ids[rx->sender].len + 1);
  ex->counters[C_DECRYPT_PACKETS]++;
  ex->counters[C_DECRYPT_BYTES] += len;
  return V_FORWARD_DECRYPT;
}

/* Counts a packet toward its rule: only those the rule disposed of (discarded or forwarded). */
static void rule_used(rule *r, size_t len, double now) {
  r->packets++;
  r->bytes += len;
  r->last_used = now;
}

static void note_peer(executor *ex, int32_t id, exec_note *note) {
  memcpy(note->sender, ex->ids[id].name, (size_t)ex->ids[id].len + 1);
}

/* Outbound tunnel mode: the whole inner packet (fragments too) becomes outer IPv4 + UDP + ESP
 * (docs/executor.md, "Tunnel mode"). */
static int tunnel_out(executor *ex, rule *r, uint8_t *pkt, size_t len, const ipv4_info *ip, uint8_t *out,
                      exec_note *note, double now) {
  uint8_t k[4];
  u32_key(k, (uint32_t)r->tunnel);
  ttxsa *t = (ttxsa *)table_find(&ex->ttx, k, 4);
  if (!t) return C_DROP_NO_SA;
  if (t->next_seq > 0xffffffffULL) return C_DROP_TUNNEL_SEQ_EXHAUSTED;
  size_t tot = ip->tot;
  size_t esplen = esp_tunnel_len(tot);
  size_t outlen = TUNNEL_HDR_LEN + esplen;
  int df = (ip->frag & IP_DF) != 0;
  if (outlen > 65535 || (r->mtu >= 0 && outlen > (uint64_t)r->mtu && df)) return C_PUNT_TOO_BIG;
  if (r->mtu >= 0 && ip->proto == IPPROTO_TCP_ && !(ip->frag & (IP_MF | IP_OFFMASK)) && tot >= ip->ihl + 20) {
    int64_t limit = r->mtu - TUNNEL_OVERHEAD_MAX - 40;
    clamp_mss(pkt + ip->ihl, tot - ip->ihl, (uint16_t)(limit < 0 ? 0 : limit > 65535 ? 65535 : limit));
  }
  uint32_t seq = (uint32_t)t->next_seq;
  if (esp_tunnel_seal(&t->a, t->spi, seq, pkt, tot, 4, out + TUNNEL_HDR_LEN) == 0) return C_DROP_NO_SA;
  t->next_seq++;
  t->packets++;
  t->bytes += tot;
  t->last_used = now;
  /* Outer IPv4: TOS copied, id from the sequence number, DF copied, TTL 64, UDP. */
  memset(out, 0, TUNNEL_HDR_LEN);
  out[0] = 0x45;
  out[1] = pkt[1] & 0xfc; /* DSCP copied, ECN not (RFC 6040 compatibility mode: CE is not propagated back) */
  wr16(out + 2, (uint16_t)outlen);
  wr16(out + 4, (uint16_t)seq);
  out[6] = df ? 0x40 : 0;
  out[8] = 64;
  out[9] = IPPROTO_UDP_;
  memcpy(out + 12, t->laddr, 4);
  memcpy(out + 16, t->raddr, 4);
  ipv4_set_checksum(out, 20);
  /* UDP: checksum 0 (RFC 3948 section 3.1). */
  wr16(out + 20, t->lport);
  wr16(out + 22, t->rport);
  wr16(out + 24, (uint16_t)(8 + esplen));
  note->out = out;
  note->out_len = outlen;
  note->vpn = t->vpn;
  note->spi = t->spi;
  note->seq = seq;
  note_peer(ex, t->peer, note);
  ex->counters[C_TUNNEL_ENCRYPT_PACKETS]++;
  ex->counters[C_TUNNEL_ENCRYPT_BYTES] += len;
  return V_FORWARD_TUNNEL_ENCRYPT;
}

static int udp_locked(executor *ex, const uint8_t src[4], uint16_t sport, const uint8_t *d, size_t len, double now,
                      uint8_t *out, exec_note *note) {
  uint8_t k[4];
  size_t plen;
  uint8_t nh;
  ipv4_info ip;
  if (len == 1 && d[0] == 0xff) return C_DROP_TUNNEL_KEEPALIVE;
  if (len < 4) return C_DROP_MALFORMED;
  uint32_t spi = rd32(d);
  if (spi == 0) return C_PUNT_IKE; /* the non-ESP marker: IKE */
  uint32_t seq = len >= 8 ? rd32(d + 4) : 0;
  if (len < ESP_TUNNEL_MIN || (len - ESP_HDR_LEN - ESP_ICV_LEN) % 4 != 0 || seq == 0) return C_DROP_MALFORMED;
  u32_key(k, spi);
  ttrxsa *rx = (ttrxsa *)table_find(&ex->trx, k, 4);
  if (!rx) return C_PUNT_UNKNOWN_SPI;
  if (!treplay_ok(rx, seq)) {
    rx->replay_drops++;
    return C_DROP_REPLAY;
  }
  if (esp_tunnel_open(&rx->a, d, len, out, &plen, &nh) != 0) {
    rx->auth_failures++;
    return C_DROP_AUTH_FAILED;
  }
  /* Authenticated: the sequence number is spent whatever the content turns out to be. */
  treplay_accept(rx, seq);
  rx->last_src = rd32(src);
  rx->last_port = sport;
  if (nh == 59) return C_DROP_TUNNEL_DUMMY;
  if (nh != 4 || parse_ipv4(out, plen, &ip) != 0) return C_DROP_MALFORMED;
  uint32_t isrc = rd32(out + 12), idst = rd32(out + 16);
  if (!in_ranges(rx->ranges + 2 * rx->nlocal, rx->nremote, isrc) || !in_ranges(rx->ranges, rx->nlocal, idst)) {
    rx->selector_drops++;
    return C_DROP_SELECTOR;
  }
  rule *r = find_rule(ex, SIDE_OUTSIDE, out);
  if (r) {
    if (r->action == ACT_DISCARD) {
      rule_used(r, ip.tot, now);
      return C_DROP_DISCARD;
    }
    if (r->action == ACT_ENCRYPT && r->vpn != rx->vpn) return C_DROP_VPN_MISMATCH;
    if (r->action == ACT_ENCRYPT && r->peer != rx->peer) return C_DROP_PEER_MISMATCH;
    rule_used(r, ip.tot, now);
  }
  rx->packets++;
  rx->bytes += ip.tot;
  rx->last_used = now;
  /* Only what the inner header covers goes on: the rest is TFC padding (RFC 4303 section 2.7). */
  note->out = out;
  note->out_len = ip.tot;
  note->vpn = rx->vpn;
  note->spi = spi;
  note->seq = seq;
  note_peer(ex, rx->peer, note);
  ex->counters[C_TUNNEL_DECRYPT_PACKETS]++;
  ex->counters[C_TUNNEL_DECRYPT_BYTES] += len;
  return V_FORWARD_TUNNEL_DECRYPT;
}

int exec_process_udp(executor *ex, const uint8_t src[4], uint16_t sport, const uint8_t *payload, size_t len,
                     double now, uint8_t *out, exec_note *note) {
  note->count = 1;
  pthread_mutex_lock(&ex->lock);
  int v = udp_locked(ex, src, sport, payload, len, now, out, note);
  if (v < C_COUNT) ex->counters[v]++;
  pthread_mutex_unlock(&ex->lock);
  return v;
}

int exec_tunnel_tx_stats(executor *ex, uint32_t spi, double o[TUNNEL_TX_STATS], char peer[ID_NAME_MAX + 1]) {
  uint8_t k[4];
  u32_key(k, spi);
  pthread_mutex_lock(&ex->lock);
  ttxsa *t = (ttxsa *)table_find(&ex->ttx, k, 4);
  if (t) {
    o[0] = t->vpn;
    o[1] = (double)t->packets;
    o[2] = (double)t->bytes;
    o[3] = t->last_used;
    o[4] = (double)t->next_seq;
    o[5] = (double)t->soft;
    memcpy(peer, ex->ids[t->peer].name, (size_t)ex->ids[t->peer].len + 1);
  }
  pthread_mutex_unlock(&ex->lock);
  return t != NULL;
}

int exec_tunnel_rx_stats(executor *ex, uint32_t spi, double o[TUNNEL_RX_STATS], char peer[ID_NAME_MAX + 1]) {
  uint8_t k[4];
  u32_key(k, spi);
  pthread_mutex_lock(&ex->lock);
  ttrxsa *t = (ttrxsa *)table_find(&ex->trx, k, 4);
  if (t) {
    o[0] = t->vpn;
    o[1] = (double)t->packets;
    o[2] = (double)t->bytes;
    o[3] = t->last_used;
    o[4] = (double)t->top;
    o[5] = (double)t->replay_drops;
    o[6] = (double)t->auth_failures;
    o[7] = (double)t->selector_drops;
    o[8] = t->last_src;
    o[9] = t->last_port;
    memcpy(peer, ex->ids[t->peer].name, (size_t)ex->ids[t->peer].len + 1);
  }
  pthread_mutex_unlock(&ex->lock);
  return t != NULL;
}

static int process_locked(executor *ex, int side, uint8_t *pkt, size_t len, double now, uint8_t *out,
                          exec_note *note) {
  ipv4_info ip;
  int v;
  if (parse_ipv4(pkt, len, &ip) != 0) return C_DROP_MALFORMED;
  if (is_search(pkt, &ip)) return C_PUNT_SEARCH;
  rule *r = find_rule(ex, side, pkt);
  if (!r) return C_PUNT_MISS;
  switch (r->action) {
    case ACT_PENDING:
      return C_PUNT_PENDING;
    case ACT_DISCARD:
      rule_used(r, len, now);
      return C_DROP_DISCARD;
    case ACT_PLAIN:
      rule_used(r, len, now);
      note->out = pkt;
      note->out_len = len;
      ex->counters[C_PLAIN_PACKETS]++;
      ex->counters[C_PLAIN_BYTES] += len;
      return V_FORWARD_PLAIN;
    default:
      if (r->tunnel >= 0) {
        /* Tunnel traffic from the peer arrives on the tunnel port (exec_process_udp). */
        if (side != SIDE_INSIDE) return C_DROP_UNSOLICITED_PLAIN;
        v = tunnel_out(ex, r, pkt, len, &ip, out, note, now);
      } else {
        v = side == SIDE_INSIDE ? encrypt_out(ex, r, pkt, len, &ip, out, note)
                                : decrypt_in(ex, r, pkt, len, &ip, out, note);
      }
      if (v >= V_FORWARD_PLAIN) rule_used(r, len, now);
      return v;
  }
}

int exec_process(executor *ex, int side, uint8_t *pkt, size_t len, double now, uint8_t *out, exec_note *note,
                 int flags) {
  note->count = 1;
  pthread_mutex_lock(&ex->lock);
  int v = process_locked(ex, side, pkt, len, now, out, note);
  int repunt = (flags & EXEC_RECHECK) && v >= V_FIRST_PUNT && v <= V_LAST_PUNT;
  if (v < C_COUNT && !repunt) ex->counters[v]++;
  pthread_mutex_unlock(&ex->lock);
  return v;
}

int exec_gso_plain(executor *ex, int side, const uint8_t *pkt, size_t len, double now, uint32_t segments,
                   uint64_t bytes) {
  ipv4_info ip;
  int fwd = 0;
  if (parse_ipv4(pkt, len, &ip) != 0 || is_search(pkt, &ip)) return 0;
  pthread_mutex_lock(&ex->lock);
  rule *r = find_rule(ex, side, pkt);
  if (r && r->action == ACT_PLAIN) {
    r->packets += segments;
    r->bytes += bytes;
    r->last_used = now;
    ex->counters[C_PLAIN_PACKETS] += segments;
    ex->counters[C_PLAIN_BYTES] += bytes;
    fwd = 1;
  }
  pthread_mutex_unlock(&ex->lock);
  return fwd;
}

int exec_path_stats(executor *ex, int family, const uint8_t *local, const uint8_t *remote, double stats[3]) {
  uint8_t key[TABLE_KEY_MAX];
  if (family != 4 && family != 6) return 0;
  path_key(key, family, local, remote);
  pthread_mutex_lock(&ex->lock);
  rule *r = (rule *)table_find(&ex->rules, key, TABLE_KEY_MAX);
  if (r) {
    stats[0] = (double)r->packets;
    stats[1] = (double)r->bytes;
    stats[2] = r->last_used;
  }
  pthread_mutex_unlock(&ex->lock);
  return r != NULL;
}

void exec_counters(executor *ex, uint64_t out[C_COUNT]) {
  pthread_mutex_lock(&ex->lock);
  memcpy(out, ex->counters, sizeof ex->counters);
  pthread_mutex_unlock(&ex->lock);
}

uint64_t exec_tx_next_seq(executor *ex, uint32_t vpn) {
  uint8_t k[4];
  u32_key(k, vpn);
  pthread_mutex_lock(&ex->lock);
  txsa *tx = (txsa *)table_find(&ex->tx, k, 4);
  uint64_t s = tx ? tx->next_seq : 0;
  pthread_mutex_unlock(&ex->lock);
  return s;
}

typedef struct {
  exec_rule_fn fn;
  void *ctx;
} foreach_ctx;

static void foreach_rule(tnode *n, void *c) {
  foreach_ctx *fc = c;
  rule *r = (rule *)n;
  fc->fn(fc->ctx, n->key[0], n->key + 1, n->key + 17, r->action, r->packets, r->bytes, r->last_used);
}

void exec_foreach_rule(executor *ex, exec_rule_fn fn, void *ctx) {
  foreach_ctx fc = {fn, ctx};
  pthread_mutex_lock(&ex->lock);
  table_foreach(&ex->rules, foreach_rule, &fc);
  pthread_mutex_unlock(&ex->lock);
}
