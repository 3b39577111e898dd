/* The executor (see executor.h for why it is native and how it is locked). Semantics follow
 * docs/executor.md step by step; the TypeScript reference is src/core/ts-executor.ts. */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "executor_state.h"

_Static_assert(GROUP_REPLAY_WINDOW <= REPLAY_WINDOW_MAX && TUNNEL_WINDOW_MAX <= REPLAY_WINDOW_MAX, "windows fit the bitmap");

#define MAX_IDS 65536

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

/* ---- lifetime ---- */

executor *exec_new(void) {
  /* Aligned: each thread's row of counters on cache lines of its own. */
  executor *ex = aligned_alloc(64, (sizeof *ex + 63) / 64 * 64);
  if (!ex) return NULL;
  memset(ex, 0, sizeof *ex);
  pthread_rwlockattr_t attr;
  int failed = pthread_rwlockattr_init(&attr) != 0;
  if (!failed) {
    (void)pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    failed = pthread_rwlock_init(&ex->lock, &attr) != 0;
    pthread_rwlockattr_destroy(&attr);
  }
  if (failed) {
    free(ex);
    return NULL;
  }
  if (pathtable_init(&ex->rules, sizeof(rule)) || table_init(&ex->tx) || table_init(&ex->rx) || table_init(&ex->ttx) ||
      table_init(&ex->trx)) {
    pathtable_free(&ex->rules);
    table_free(&ex->tx, NULL);
    table_free(&ex->rx, NULL);
    table_free(&ex->ttx, NULL);
    table_free(&ex->trx, NULL);
    pthread_rwlock_destroy(&ex->lock);
    free(ex);
    return NULL;
  }
  atomic_init(&ex->refs, 1);
  return ex;
}

void exec_retain(executor *ex) { atomic_fetch_add(&ex->refs, 1); }

/* Frees a group SA, sending or receiving (both begin with group_sa_state). */
static void free_group_sa(tnode *n) {
  group_sa_state *s = (group_sa_state *)n;
  aead_free(&s->a);
  free(s);
}
static void free_rx(tnode *n) {
  pthread_spin_destroy(&((rxsa *)n)->wlock);
  replay_free(&((rxsa *)n)->w);
  free_group_sa(n);
}

/* Frees a tunnel SA (a ttxsa; free_trx frees a ttrxsa's selectors first). */
static void free_tunnel_sa(tnode *n) {
  tunnel_sa_state *s = (tunnel_sa_state *)n;
  aead_free(&s->a);
  free(s);
}
static void free_trx(tnode *n) {
  free(((ttrxsa *)n)->ranges);
  pthread_spin_destroy(&((ttrxsa *)n)->wlock);
  replay_free(&((ttrxsa *)n)->w);
  free_tunnel_sa(n);
}

void exec_release(executor *ex) {
  if (atomic_fetch_sub(&ex->refs, 1) != 1) return;
  pathtable_free(&ex->rules);
  table_free(&ex->tx, free_group_sa);
  table_free(&ex->rx, free_rx);
  table_free(&ex->ttx, free_tunnel_sa);
  table_free(&ex->trx, free_trx);
  free(ex->ids);
  pthread_rwlock_destroy(&ex->lock);
  free(ex);
}

/* ---- SA tables (control path: the packet path only looks SAs up) ---- */

/* Where an SA keeps the id reference of its peer (or sender): an int32_t at this offset of its struct. */
static const size_t NO_PEER = SIZE_MAX; /* group sending SAs hold none */

static int32_t *peer_ref(tnode *n, size_t peer_at) { return (int32_t *)((char *)n + peer_at); }

/* Installs SA `n` under key `id` in `t`, replacing the one there, with an id reference for `peer`
 * (none when peer_at is NO_PEER). `carry(n, old, arg)`, if given, takes over under the lock what a
 * reinstall must keep from the SA it replaces (copied, or moved out of `old`, which is released
 * after the lock: no packet uses it then); `release` frees an SA. Returns 0, or id_intern's error
 * (then `n` is freed). */
static int install_sa(executor *ex, table *t, tnode *n, uint32_t id, size_t peer_at, const char *peer,
                      size_t peer_len, void (*carry)(tnode *n, tnode *old, const void *arg), const void *arg,
                      void (*release)(tnode *)) {
  u32_key(n->key, id);
  n->klen = 4;
  pthread_rwlock_wrlock(&ex->lock);
  if (peer_at != NO_PEER) {
    int32_t ref = id_intern(ex, peer, peer_len);
    if (ref < 0) {
      pthread_rwlock_unlock(&ex->lock);
      release(n);
      return ref;
    }
    *peer_ref(n, peer_at) = ref;
  }
  tnode *old = table_remove(t, n->key, 4);
  if (old && peer_at != NO_PEER) id_release(ex, *peer_ref(old, peer_at));
  if (carry) carry(n, old, arg);
  table_insert(t, n);
  pthread_rwlock_unlock(&ex->lock);
  if (old) release(old);
  return 0;
}

/* Removes the SA under key `id` from `t`, dropping its id reference (peer_at: see install_sa, or NO_PEER). */
static int remove_sa(executor *ex, table *t, uint32_t id, size_t peer_at, void (*release)(tnode *)) {
  uint8_t k[4];
  u32_key(k, id);
  pthread_rwlock_wrlock(&ex->lock);
  tnode *old = table_remove(t, k, 4);
  if (old && peer_at != NO_PEER) id_release(ex, *peer_ref(old, peer_at));
  pthread_rwlock_unlock(&ex->lock);
  if (old) release(old);
  return old != NULL;
}

/* ---- installs ---- */

int exec_install_path(executor *ex, int family, const uint8_t *local, const uint8_t *remote, int action,
                      uint32_t vpn, const char *peer, size_t peer_len, int64_t mtu, int64_t tunnel_spi) {
  uint8_t key[TABLE_KEY_MAX];
  if ((family != 4 && family != 6) || action < ACT_ENCRYPT || action > ACT_PENDING || mtu < -1 || mtu > 0xffffffffLL ||
      tunnel_spi < -1 || tunnel_spi > 0xffffffffLL)
    return -2;
  path_key(key, family, local, remote);
  pthread_rwlock_wrlock(&ex->lock);
  int32_t peer_id = -1;
  if (peer && peer_len) {
    peer_id = id_intern(ex, peer, peer_len);
    if (peer_id < 0) {
      pthread_rwlock_unlock(&ex->lock);
      return peer_id;
    }
  }
  rule *r = (rule *)pathtable_find(&ex->rules, key);
  if (r) {
    /* Replacing a rule keeps its counters: the core ages the path, not the action. */
    id_release(ex, r->peer);
  } else {
    r = pathtable_insert(&ex->rules, key);
    if (!r) {
      id_release(ex, peer_id);
      pthread_rwlock_unlock(&ex->lock);
      return -1;
    }
  }
  r->action = action;
  r->vpn = vpn;
  r->peer = peer_id;
  r->mtu = mtu;
  r->tunnel = tunnel_spi;
  pthread_rwlock_unlock(&ex->lock);
  return 0;
}

int exec_remove_path(executor *ex, int family, const uint8_t *local, const uint8_t *remote) {
  uint8_t key[TABLE_KEY_MAX];
  if (family != 4 && family != 6) return -2;
  path_key(key, family, local, remote);
  pthread_rwlock_wrlock(&ex->lock);
  rule old;
  int found = pathtable_remove(&ex->rules, key, &old);
  if (found) id_release(ex, old.peer);
  pthread_rwlock_unlock(&ex->lock);
  return found;
}

/* A group SA of `size` bytes (a txsa or an rxsa) with what both hold filled, its cipher keyed to seal
 * (`encrypt`) or to open; NULL when out of memory. */
static void *group_sa_new(size_t size, uint32_t spi, uint32_t vpn, uint32_t epoch, const uint8_t key[32],
                          const uint8_t salt[4], int encrypt) {
  group_sa_state *s = calloc(1, size);
  if (!s) return NULL;
  if (aead_init(&s->a, key, salt, encrypt) != 0) {
    free(s);
    return NULL;
  }
  s->spi = spi;
  s->vpn = vpn;
  s->epoch = epoch;
  return s;
}

int exec_install_tx(executor *ex, uint32_t spi, uint32_t vpn, uint32_t epoch, const uint8_t key[32],
                    const uint8_t salt[4], uint64_t next_seq, int encap) {
  if (next_seq == 0 || (encap != ENCAP_UDP && encap != ENCAP_ESP)) return -2;
  txsa *s = group_sa_new(sizeof *s, spi, vpn, epoch, key, salt, 1);
  if (!s) return -1;
  s->next_seq = next_seq;
  s->udp = encap == ENCAP_UDP ? GROUP_UDP_HEADER : 0;
  return install_sa(ex, &ex->tx, &s->sa.node, vpn, NO_PEER, NULL, 0, NULL, NULL, free_group_sa);
}

int exec_remove_tx(executor *ex, uint32_t vpn) { return remove_sa(ex, &ex->tx, vpn, NO_PEER, free_group_sa); }

/* Reinstalling an SPI keeps its replay window (moved over): a refresh must not reopen old sequence
 * numbers. */
static void carry_rx(tnode *n, tnode *old, const void *floor) {
  rxsa *s = (rxsa *)n;
  if (old) replay_move(&s->w, &((rxsa *)old)->w);
  replay_raise_floor(&s->w, *(const uint64_t *)floor);
}

int exec_install_rx(executor *ex, uint32_t spi, uint32_t vpn, uint32_t epoch, const char *sender,
                    size_t sender_len, const uint8_t key[32], const uint8_t salt[4], uint64_t floor) {
  rxsa *s = group_sa_new(sizeof *s, spi, vpn, epoch, key, salt, 0);
  if (!s) return -1;
  if (pthread_spin_init(&s->wlock, PTHREAD_PROCESS_PRIVATE) != 0) {
    free_group_sa(&s->sa.node);
    return -1;
  }
  replay_init(&s->w, GROUP_REPLAY_WINDOW);
  return install_sa(ex, &ex->rx, &s->sa.node, spi, offsetof(rxsa, sender), sender, sender_len, carry_rx, &floor,
                    free_rx);
}

int exec_remove_rx(executor *ex, uint32_t spi) {
  return remove_sa(ex, &ex->rx, spi, offsetof(rxsa, sender), free_rx);
}

/* ---- tunnel SAs ---- */

/* What both halves of a tunnel SA must be: an SPI, a VPN, two ports, an AES-GCM key, one family. */
static int tunnel_sa_valid(const tunnel_sa *sa) {
  return sa->spi != 0 && sa->vpn != 0 && sa->lport != 0 && sa->rport != 0 && (sa->keylen == 16 || sa->keylen == 32) &&
         (sa->family == 4 || sa->family == 6);
}

/* A tunnel SA of `size` bytes (a ttxsa or ttrxsa) with what both halves hold filled from `sa`, its
 * cipher keyed to seal (`encrypt`) or to open; NULL when out of memory. */
static void *tunnel_sa_new(size_t size, const tunnel_sa *sa, int encrypt) {
  tunnel_sa_state *s = calloc(1, size);
  if (!s) return NULL;
  if (aead_init_key(&s->a, sa->key, sa->keylen, sa->salt, encrypt) != 0) {
    free(s);
    return NULL;
  }
  s->spi = sa->spi;
  s->vpn = sa->vpn;
  s->family = sa->family;
  memcpy(s->laddr, sa->laddr, sa->family == 6 ? 16 : 4);
  memcpy(s->raddr, sa->raddr, sa->family == 6 ? 16 : 4);
  s->lport = sa->lport;
  s->rport = sa->rport;
  return s;
}

/* A reinstall (a NAT moved the peer, a refresh) keeps the counters of the SA it replaces. */
static void tunnel_sa_carry(tunnel_sa_state *s, const tunnel_sa_state *old) {
  s->packets = old->packets;
  s->bytes = old->bytes;
  s->last_used = old->last_used;
}

static void carry_ttx(tnode *n, tnode *old_node, const void *unused) {
  (void)unused;
  ttxsa *s = (ttxsa *)n;
  const ttxsa *old = (const ttxsa *)old_node;
  if (!old) return;
  /* The IV is the sequence number: a reinstall (a NAT moved the peer) must never go back. */
  if (old->next_seq > s->next_seq) s->next_seq = old->next_seq;
  tunnel_sa_carry(&s->sa, &old->sa);
}

int exec_install_tunnel_tx(executor *ex, const tunnel_sa *sa, uint64_t next_seq, uint64_t soft) {
  if (!tunnel_sa_valid(sa) || next_seq == 0 || next_seq > 0xffffffffULL || soft == 0 || soft > 0x100000000ULL)
    return -2;
  ttxsa *s = tunnel_sa_new(sizeof *s, sa, 1);
  if (!s) return -1;
  s->next_seq = next_seq;
  s->soft = soft;
  return install_sa(ex, &ex->ttx, &s->sa.node, sa->spi, offsetof(ttxsa, sa.peer), sa->peer, sa->peer_len, carry_ttx,
                    NULL, free_tunnel_sa);
}

int exec_remove_tunnel_tx(executor *ex, uint32_t spi) {
  return remove_sa(ex, &ex->ttx, spi, offsetof(ttxsa, sa.peer), free_tunnel_sa);
}

static void carry_trx(tnode *n, tnode *old_node, const void *unused) {
  (void)unused;
  ttrxsa *s = (ttrxsa *)n;
  ttrxsa *old = (ttrxsa *)old_node;
  if (!old) return;
  /* A refresh must not reopen old sequence numbers: the window (and its size) moves over. */
  replay_move(&s->w, &old->w);
  tunnel_sa_carry(&s->sa, &old->sa);
  s->replay_drops = old->replay_drops;
  s->auth_failures = old->auth_failures;
  s->selector_drops = old->selector_drops;
  s->last = old->last;
}

int exec_install_tunnel_rx(executor *ex, const tunnel_sa *sa, const tunnel_range *ranges, uint32_t nlocal,
                           uint32_t nremote, uint32_t window) {
  if (!tunnel_sa_valid(sa) || window < 64 || window > TUNNEL_WINDOW_MAX || window % 32 != 0 || nlocal > 4096 ||
      nremote > 4096)
    return -2;
  for (uint32_t i = 0; i < nlocal + nremote; i++) {
    size_t alen = ranges[i].family == 6 ? 16 : 4;
    if ((ranges[i].family != 4 && ranges[i].family != 6) || memcmp(ranges[i].start, ranges[i].end, alen) > 0) return -2;
  }
  ttrxsa *s = tunnel_sa_new(sizeof *s, sa, 0);
  if (!s) return -1;
  if (pthread_spin_init(&s->wlock, PTHREAD_PROCESS_PRIVATE) != 0) {
    free_tunnel_sa(&s->sa.node);
    return -1;
  }
  size_t rbytes = (size_t)(nlocal + nremote) * sizeof(tunnel_range);
  s->ranges = malloc(rbytes ? rbytes : 1);
  if (!s->ranges) {
    free_trx(&s->sa.node);
    return -1;
  }
  if (rbytes) memcpy(s->ranges, ranges, rbytes);
  s->nlocal = nlocal;
  s->nremote = nremote;
  replay_init(&s->w, window);
  return install_sa(ex, &ex->trx, &s->sa.node, sa->spi, offsetof(ttrxsa, sa.peer), sa->peer, sa->peer_len, carry_trx,
                    NULL, free_trx);
}

int exec_remove_tunnel_rx(executor *ex, uint32_t spi) {
  return remove_sa(ex, &ex->trx, spi, offsetof(ttrxsa, sa.peer), free_trx);
}

int exec_process_udp(executor *ex, int family, const uint8_t *src, uint16_t sport, const uint8_t *payload, size_t len,
                     double now, uint8_t *out, exec_note *note) {
  note->count = 1;
  pthread_rwlock_rdlock(&ex->lock);
  int v = exec_tunnel_decrypt(ex, family, src, sport, payload, len, now, out, note);
  if (v < C_COUNT) count(ex, v, 1);
  pthread_rwlock_unlock(&ex->lock);
  return v;
}

/* What the statistics of both halves of a tunnel SA begin with (executor.h), and its peer. */
static void tunnel_sa_stats(const executor *ex, const tunnel_sa_state *t, double *o, char peer[ID_NAME_MAX + 1]) {
  o[0] = t->vpn;
  o[1] = (double)__atomic_load_n(&t->packets, __ATOMIC_RELAXED);
  o[2] = (double)__atomic_load_n(&t->bytes, __ATOMIC_RELAXED);
  __atomic_load(&t->last_used, &o[3], __ATOMIC_RELAXED);
  memcpy(peer, ex->ids[t->peer].name, (size_t)ex->ids[t->peer].len + 1);
}

int exec_tunnel_tx_stats(executor *ex, uint32_t spi, double o[TUNNEL_TX_STATS], char peer[ID_NAME_MAX + 1]) {
  pthread_rwlock_rdlock(&ex->lock);
  ttxsa *t = sa_find(&ex->ttx, spi);
  if (t) {
    tunnel_sa_stats(ex, &t->sa, o, peer);
    o[4] = (double)__atomic_load_n(&t->next_seq, __ATOMIC_RELAXED);
    o[5] = (double)t->soft;
  }
  pthread_rwlock_unlock(&ex->lock);
  return t != NULL;
}

int exec_tunnel_rx_stats(executor *ex, uint32_t spi, double o[TUNNEL_RX_STATS], char peer[ID_NAME_MAX + 1],
                         uint8_t last_src[16]) {
  pthread_rwlock_rdlock(&ex->lock);
  ttrxsa *t = sa_find(&ex->trx, spi);
  if (t) {
    pthread_spin_lock(&t->wlock);
    tunnel_sa_stats(ex, &t->sa, o, peer);
    o[4] = (double)t->w.top;
    o[5] = (double)t->replay_drops;
    o[6] = (double)t->auth_failures;
    o[7] = (double)t->selector_drops;
    o[8] = t->last.family;
    o[9] = t->last.port;
    memcpy(last_src, t->last.addr, 16);
    pthread_spin_unlock(&t->wlock);
  }
  pthread_rwlock_unlock(&ex->lock);
  return t != NULL;
}

static int forward_plain(executor *ex, uint8_t *pkt, size_t len, exec_note *note) {
  note->out = pkt;
  note->out_len = len;
  count(ex, C_PLAIN_PACKETS, 1);
  count(ex, C_PLAIN_BYTES, len);
  return V_FORWARD_PLAIN;
}

/* Steps 1 and 2 of docs/executor.md for either family: -1 and the packet's description, or a verdict
 * (malformed, never intercepted, search). */
static int classify(executor *ex, uint8_t *pkt, size_t len, ipv4_info *ip, ipv6_info *ip6, exec_note *note) {
  if (len && pkt[0] >> 4 == 6) {
    if (ipv6_parse(pkt, len, ip6) != 0) return C_DROP_BAD_IPV6;
    /* What the link needs (neighbour discovery, MLD, link-local traffic) passes untouched. */
    if (ipv6_never_intercepted(pkt, ip6)) {
      note->out = pkt;
      note->out_len = len;
      count(ex, C_PASS_PACKETS, 1);
      count(ex, C_PASS_BYTES, len);
      return V_FORWARD_PASS;
    }
    return is_search6(pkt, ip6) ? C_PUNT_SEARCH : -1;
  }
  if (parse_ipv4(pkt, len, ip) != 0) return C_DROP_MALFORMED;
  return is_search(pkt, ip) ? C_PUNT_SEARCH : -1;
}


void inner_of(const uint8_t *pkt, const ipv4_info *ip, const ipv6_info *ip6, inner_info *in) {
  if (pkt[0] >> 4 == 6) {
    in->family = 6;
    in->tot = ip6->tot;
    in->tclass = ipv6_tclass(pkt);
    in->df = 1;
    in->tcp_syn_room = ip6->upper_proto == IPPROTO_TCP_ && ip6->has_upper && ip6->fragment == V6_FRAG_NONE &&
                       ip6->tot >= ip6->upper_off + 20;
    in->tcp_off = ip6->upper_off;
  } else {
    in->family = 4;
    in->tot = ip->tot;
    in->tclass = pkt[1];
    in->df = (ip->frag & IP_DF) != 0;
    in->tcp_syn_room = ip->proto == IPPROTO_TCP_ && !(ip->frag & (IP_MF | IP_OFFMASK)) && ip->tot >= ip->ihl + 20;
    in->tcp_off = ip->ihl;
  }
}

/* Lowers every MSS option above `limit` in a TCP SYN at tcp[0..len) to it, keeping the TCP checksum
 * valid incrementally (RFC 1624). Never reads outside the segment. */
static void clamp_mss(uint8_t *tcp, size_t len, uint16_t limit) {
  if (len < 20 || !(tcp[13] & 0x02)) return;
  size_t doff = (size_t)(tcp[12] >> 4) * 4;
  if (doff < 20 || doff > len) return;
  size_t olen;
  for (size_t i = 20; next_option(tcp, doff, &i, &olen); i += olen) {
    if (tcp[i] == 2 && olen == 4) {
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
  }
}

void clamp_inner_mss(uint8_t *pkt, const inner_info *in, int64_t room) {
  if (!in->tcp_syn_room) return;
  int64_t limit = room - (in->family == 6 ? 60 : 40);
  clamp_mss(pkt + in->tcp_off, in->tot - in->tcp_off, (uint16_t)(limit < 0 ? 0 : limit > 65535 ? 65535 : limit));
}

void clamp_syn_mss(uint8_t *pkt, const ipv4_info *ip, const ipv6_info *ip6, int64_t room) {
  inner_info in;
  inner_of(pkt, ip, ip6, &in);
  clamp_inner_mss(pkt, &in, room);
}

static int process_locked(executor *ex, int side, uint8_t *pkt, size_t len, double now, uint8_t *out,
                          exec_note *note) {
  ipv4_info ip;
  ipv6_info ip6;
  int v = classify(ex, pkt, len, &ip, &ip6, note);
  if (v >= 0) return v;
  int v6 = pkt[0] >> 4 == 6;
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
      return forward_plain(ex, pkt, len, note);
    default:
      if (r->tunnel >= 0) {
        /* Tunnel traffic from the peer arrives on the tunnel port (exec_process_udp). */
        if (side != SIDE_INSIDE) return C_DROP_UNSOLICITED_PLAIN;
        inner_info in;
        inner_of(pkt, &ip, &ip6, &in);
        v = exec_tunnel_encrypt(ex, r, pkt, len, &in, out, note, now);
      } else if (v6) {
        v = side == SIDE_INSIDE ? exec_encrypt6(ex, r, pkt, len, &ip6, out, note)
                                : exec_decrypt6(ex, r, pkt, len, &ip6, out, note);
      } else {
        v = side == SIDE_INSIDE ? exec_encrypt(ex, r, pkt, len, &ip, out, note) : exec_decrypt(ex, r, pkt, len, &ip, out, note);
      }
      if (v >= V_FORWARD_PLAIN) rule_used(r, len, now);
      return v;
  }
}

int exec_process(executor *ex, int side, uint8_t *pkt, size_t len, double now, uint8_t *out, exec_note *note,
                 int flags) {
  note->count = 1;
  pthread_rwlock_rdlock(&ex->lock);
  int v = process_locked(ex, side, pkt, len, now, out, note);
  int repunt = (flags & EXEC_RECHECK) && v >= V_FIRST_PUNT && v <= V_LAST_PUNT;
  if (v < C_COUNT && !repunt) count(ex, v, 1);
  pthread_rwlock_unlock(&ex->lock);
  return v;
}

int exec_gso_plain(executor *ex, int side, const uint8_t *pkt, size_t len, double now, uint32_t segments,
                   uint64_t bytes) {
  ipv4_info ip;
  ipv6_info ip6;
  int fwd = 0, link = 0;
  if (len && pkt[0] >> 4 == 6) {
    if (ipv6_parse(pkt, len, &ip6) != 0 || is_search6(pkt, &ip6)) return 0;
    link = ipv6_never_intercepted(pkt, &ip6);
  } else if (parse_ipv4(pkt, len, &ip) != 0 || is_search(pkt, &ip)) {
    return 0;
  }
  pthread_rwlock_rdlock(&ex->lock);
  rule *r = link ? NULL : find_rule(ex, side, pkt);
  if (link) {
    count(ex, C_PASS_PACKETS, segments);
    count(ex, C_PASS_BYTES, bytes);
    fwd = 1;
  } else if (r && r->action == ACT_PLAIN) {
    stat_add(&r->packets, segments);
    stat_add(&r->bytes, bytes);
    stat_time(&r->last_used, now);
    count(ex, C_PLAIN_PACKETS, segments);
    count(ex, C_PLAIN_BYTES, bytes);
    fwd = 1;
  }
  pthread_rwlock_unlock(&ex->lock);
  return fwd;
}

int exec_path_stats(executor *ex, int family, const uint8_t *local, const uint8_t *remote, double stats[3]) {
  uint8_t key[TABLE_KEY_MAX];
  if (family != 4 && family != 6) return 0;
  path_key(key, family, local, remote);
  pthread_rwlock_rdlock(&ex->lock);
  rule *r = (rule *)pathtable_find(&ex->rules, key);
  if (r) {
    stats[0] = (double)__atomic_load_n(&r->packets, __ATOMIC_RELAXED);
    stats[1] = (double)__atomic_load_n(&r->bytes, __ATOMIC_RELAXED);
    __atomic_load(&r->last_used, &stats[2], __ATOMIC_RELAXED);
  }
  pthread_rwlock_unlock(&ex->lock);
  return r != NULL;
}

void exec_counters(executor *ex, uint64_t out[C_COUNT]) {
  for (int c = 0; c < C_COUNT; c++) {
    uint64_t sum = 0;
    for (int t = 0; t <= AEAD_THREADS; t++) sum += __atomic_load_n(&ex->counters[t][c], __ATOMIC_RELAXED);
    out[c] = sum;
  }
}

uint64_t exec_tx_next_seq(executor *ex, uint32_t vpn) {
  pthread_rwlock_rdlock(&ex->lock);
  txsa *tx = sa_find(&ex->tx, vpn);
  uint64_t s = tx ? __atomic_load_n(&tx->next_seq, __ATOMIC_RELAXED) : 0;
  pthread_rwlock_unlock(&ex->lock);
  return s;
}

typedef struct {
  exec_rule_fn fn;
  void *ctx;
} foreach_ctx;

static void foreach_rule(const uint8_t key[TABLE_KEY_MAX], void *rec, void *c) {
  foreach_ctx *fc = c;
  rule *r = rec;
  double last_used;
  __atomic_load(&r->last_used, &last_used, __ATOMIC_RELAXED);
  fc->fn(fc->ctx, key[0], key + 1, key + 17, r->action, __atomic_load_n(&r->packets, __ATOMIC_RELAXED),
         __atomic_load_n(&r->bytes, __ATOMIC_RELAXED), last_used);
}

void exec_foreach_rule(executor *ex, exec_rule_fn fn, void *ctx) {
  foreach_ctx fc = {fn, ctx};
  pthread_rwlock_rdlock(&ex->lock);
  pathtable_foreach(&ex->rules, foreach_rule, &fc);
  pthread_rwlock_unlock(&ex->lock);
}
