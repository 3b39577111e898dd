/* N-API bindings: the executor, the TUN datapath, and test/benchmark hooks. Native because the
 * per-packet work (crypto with reused contexts, TUN I/O in batches, GSO) cannot be done fast enough
 * from JavaScript (docs/dataplane.md, "Why native", has the measurements); JavaScript keeps every
 * decision and calls in here only to install state, read counters and handle punted packets. */
#define NAPI_VERSION 8
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "esp.h"
#include "executor.h"
#include "gro.h"
#include "gso.h"
#include "ipv6.h"
#include "uso.h"
#include "datapath.h"

#define CHECK(call)                                   \
  do {                                                \
    if ((call) != napi_ok) return throw_last(env);    \
  } while (0)

static napi_value throw_last(napi_env env) {
  const napi_extended_error_info *info = NULL;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    napi_get_last_error_info(env, &info);
    napi_throw_error(env, NULL, info && info->error_message ? info->error_message : "native call failed");
  }
  return NULL;
}

static napi_value throw_msg(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static napi_value boolean(napi_env env, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}

static napi_value number(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

/* ---- argument helpers: each returns false with a JS exception pending ---- */

static bool arg_u32(napi_env env, napi_value v, uint32_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d) {
    napi_throw_type_error(env, NULL, "expected an unsigned 32-bit integer");
    return false;
  }
  *out = (uint32_t)d;
  return true;
}

static bool arg_double(napi_env env, napi_value v, double *out) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a number");
    return false;
  }
  return true;
}

static bool arg_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is;
  napi_typedarray_type t;
  void *p;
  napi_value ab;
  size_t off;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &t, len, &p, &ab, &off) != napi_ok || t != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "expected a Uint8Array");
    return false;
  }
  *data = p;
  return true;
}

static bool arg_fixed_bytes(napi_env env, napi_value v, size_t want, uint8_t **data) {
  size_t len;
  if (!arg_bytes(env, v, data, &len)) return false;
  if (len != want) {
    napi_throw_range_error(env, NULL, "byte array of the wrong length");
    return false;
  }
  return true;
}

/* A UTF-8 string of 0..ID_NAME_MAX bytes (undefined/null: empty). */
static bool arg_id(napi_env env, napi_value v, char *buf, size_t *len) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) {
    *len = 0;
    buf[0] = 0;
    return true;
  }
  size_t need;
  if (t != napi_string || napi_get_value_string_utf8(env, v, NULL, 0, &need) != napi_ok || need > ID_NAME_MAX) {
    napi_throw_range_error(env, NULL, "gateway id must be a string of at most 63 UTF-8 bytes");
    return false;
  }
  napi_get_value_string_utf8(env, v, buf, ID_NAME_MAX + 1, len);
  return true;
}

static bool arg_executor(napi_env env, napi_value v, executor **ex) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "expected an executor handle");
    return false;
  }
  *ex = p;
  return true;
}

/* An IPv4 (4 bytes) or IPv6 (16 bytes) address; the length tells the family. */
static bool arg_ip(napi_env env, napi_value v, int *family, uint8_t **addr) {
  size_t len;
  if (!arg_bytes(env, v, addr, &len)) return false;
  if (len != 4 && len != 16) {
    napi_throw_range_error(env, NULL, "an address is 4 (IPv4) or 16 (IPv6) bytes");
    return false;
  }
  *family = len == 16 ? 6 : 4;
  return true;
}

static bool arg_address(napi_env env, napi_value fam, napi_value v, int *family, uint8_t **addr) {
  uint32_t f;
  if (!arg_u32(env, fam, &f)) return false;
  if (f != 4 && f != 6) {
    napi_throw_range_error(env, NULL, "family must be 4 or 6");
    return false;
  }
  *family = (int)f;
  return arg_fixed_bytes(env, v, f == 4 ? 4 : 16, addr);
}

#define ARGS(n)                                                           \
  size_t argc = n;                                                        \
  napi_value argv[n];                                                     \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));            \
  if (argc < n) return throw_msg(env, "missing arguments");

/* ---- executor ---- */

static void executor_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  exec_release(data);
}

static napi_value executor_new(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value ext;
  executor *ex = exec_new();
  if (!ex) return throw_msg(env, "out of memory");
  if (napi_create_external(env, ex, executor_finalize, NULL, &ext) != napi_ok) {
    exec_release(ex);
    return throw_last(env);
  }
  return ext;
}

static napi_value install_result(napi_env env, int r) {
  if (r == -2) return throw_msg(env, "invalid argument");
  if (r < 0) return throw_msg(env, "out of memory or OpenSSL failure");
  return undefined(env);
}

/* installPath(ex, family, local, remote, action, vpn, peer, mtu (-1: none)[, tunnelSpi (-1: none)]) */
static napi_value install_path(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 8) return throw_msg(env, "missing arguments");
  executor *ex;
  int family, fam2;
  uint8_t *local, *remote;
  uint32_t action, vpn;
  double mtu, tunnel = -1;
  char peer[ID_NAME_MAX + 1];
  size_t peer_len;
  if (!arg_executor(env, argv[0], &ex) || !arg_address(env, argv[1], argv[2], &family, &local) ||
      !arg_address(env, argv[1], argv[3], &fam2, &remote) || !arg_u32(env, argv[4], &action) ||
      !arg_u32(env, argv[5], &vpn) || !arg_id(env, argv[6], peer, &peer_len) || !arg_double(env, argv[7], &mtu))
    return NULL;
  if (argc > 8 && !arg_double(env, argv[8], &tunnel)) return NULL;
  if (!(mtu >= -1 && mtu <= 4294967295.0) || mtu != (double)(int64_t)mtu) return throw_msg(env, "mtu must be -1 or 0..2^32-1");
  if (!(tunnel >= -1 && tunnel <= 4294967295.0) || tunnel != (double)(int64_t)tunnel)
    return throw_msg(env, "tunnel SPI must be -1 or 0..2^32-1");
  return install_result(env, exec_install_path(ex, family, local, remote, (int)action, vpn, peer, peer_len, (int64_t)mtu,
                                               (int64_t)tunnel));
}

/* removePath(ex, family, local, remote): boolean */
static napi_value remove_path(napi_env env, napi_callback_info info) {
  ARGS(4);
  executor *ex;
  int family, fam2;
  uint8_t *local, *remote;
  if (!arg_executor(env, argv[0], &ex) || !arg_address(env, argv[1], argv[2], &family, &local) ||
      !arg_address(env, argv[1], argv[3], &fam2, &remote))
    return NULL;
  return boolean(env, exec_remove_path(ex, family, local, remote) == 1);
}

/* removeTxSa(ex, vpn), removeRxSa(ex, spi), removeTunnelTx(ex, spi), removeTunnelRx(ex, spi): boolean */
static napi_value remove_sa(napi_env env, napi_callback_info info, int (*remove)(executor *ex, uint32_t id)) {
  ARGS(2);
  executor *ex;
  uint32_t id;
  if (!arg_executor(env, argv[0], &ex) || !arg_u32(env, argv[1], &id)) return NULL;
  return boolean(env, remove(ex, id) == 1);
}

/* installTxSa(ex, spi, vpn, epoch, key, salt, nextSeq: bigint, rawEsp: boolean) */
static napi_value install_tx(napi_env env, napi_callback_info info) {
  ARGS(8);
  executor *ex;
  uint32_t spi, vpn, epoch;
  uint8_t *key, *salt;
  uint64_t next;
  bool lossless;
  if (!arg_executor(env, argv[0], &ex) || !arg_u32(env, argv[1], &spi) || !arg_u32(env, argv[2], &vpn) ||
      !arg_u32(env, argv[3], &epoch) || !arg_fixed_bytes(env, argv[4], 32, &key) ||
      !arg_fixed_bytes(env, argv[5], 4, &salt))
    return NULL;
  if (napi_get_value_bigint_uint64(env, argv[6], &next, &lossless) != napi_ok || !lossless || next == 0)
    return throw_msg(env, "nextSeq must be a bigint in 1..2^64-1");
  bool raw = false;
  if (napi_get_value_bool(env, argv[7], &raw) != napi_ok) return throw_msg(env, "rawEsp must be a boolean");
  return install_result(env, exec_install_tx(ex, spi, vpn, epoch, key, salt, next, raw ? ENCAP_ESP : ENCAP_UDP));
}

static napi_value remove_tx(napi_env env, napi_callback_info info) { return remove_sa(env, info, exec_remove_tx); }

/* installRxSa(ex, spi, vpn, epoch, sender, key, salt, floor: bigint (0: none)) */
static napi_value install_rx(napi_env env, napi_callback_info info) {
  ARGS(8);
  executor *ex;
  uint32_t spi, vpn, epoch;
  uint8_t *key, *salt;
  char sender[ID_NAME_MAX + 1];
  size_t sender_len;
  uint64_t floor;
  bool lossless;
  if (!arg_executor(env, argv[0], &ex) || !arg_u32(env, argv[1], &spi) || !arg_u32(env, argv[2], &vpn) ||
      !arg_u32(env, argv[3], &epoch) || !arg_id(env, argv[4], sender, &sender_len) ||
      !arg_fixed_bytes(env, argv[5], 32, &key) || !arg_fixed_bytes(env, argv[6], 4, &salt))
    return NULL;
  if (sender_len == 0) return throw_msg(env, "sender must not be empty");
  if (napi_get_value_bigint_uint64(env, argv[7], &floor, &lossless) != napi_ok || !lossless)
    return throw_msg(env, "floor must be a bigint in 0..2^64-1");
  return install_result(env, exec_install_rx(ex, spi, vpn, epoch, sender, sender_len, key, salt, floor));
}

static napi_value remove_rx(napi_env env, napi_callback_info info) { return remove_sa(env, info, exec_remove_rx); }

/* A drop/punt code, or [code, bytes, vpn, spi, seq (bigint), sender/peer, count] for a forward
 * (count > 1: bytes holds that many IPv4 packets back to back, see exec_note). */
static napi_value verdict_value(napi_env env, int v, const exec_note *note) {
  if (v < V_FORWARD_PLAIN) return number(env, v);
  napi_value arr, bytes, seq, sender;
  void *copy;
  if (napi_create_array_with_length(env, 7, &arr) != napi_ok ||
      napi_create_buffer_copy(env, note->out_len, note->out, &copy, &bytes) != napi_ok)
    return throw_last(env);
  napi_set_element(env, arr, 0, number(env, v));
  napi_set_element(env, arr, 1, bytes);
  napi_set_element(env, arr, 6, number(env, note->count));
  if (v != V_FORWARD_PLAIN && v != V_FORWARD_PASS) {
    napi_create_bigint_uint64(env, note->seq, &seq);
    napi_set_element(env, arr, 2, number(env, note->vpn));
    napi_set_element(env, arr, 3, number(env, note->spi));
    napi_set_element(env, arr, 4, seq);
    if (v != V_FORWARD_ENCRYPT) {
      napi_create_string_utf8(env, note->sender, NAPI_AUTO_LENGTH, &sender);
      napi_set_element(env, arr, 5, sender);
    }
  }
  return arr;
}

/* process(ex, side, packet, now, recheck?): a drop/punt code, or [code, bytes, vpn, spi, seq, sender] */
static napi_value process(napi_env env, napi_callback_info info) {
  ARGS(5);
  executor *ex;
  uint32_t side;
  uint8_t *data;
  size_t len;
  double now;
  bool recheck = false;
  if (!arg_executor(env, argv[0], &ex) || !arg_u32(env, argv[1], &side) || !arg_bytes(env, argv[2], &data, &len) ||
      !arg_double(env, argv[3], &now))
    return NULL;
  if (napi_get_value_bool(env, argv[4], &recheck) != napi_ok) return throw_msg(env, "recheck must be a boolean");
  if (side > 1) return throw_msg(env, "side must be 0 (inside) or 1 (outside)");
  /* The caller's bytes are never modified: work on a copy (this is not the fast path). */
  uint8_t *buf = malloc(2 * len + EXEC_OUT_EXTRA + 2);
  if (!buf) return throw_msg(env, "out of memory");
  uint8_t *pkt = buf, *out = buf + len + 1;
  if (len) memcpy(pkt, data, len);
  exec_note note;
  int v = exec_process(ex, (int)side, pkt, len, now, out, &note, recheck ? EXEC_RECHECK : 0);
  napi_value res = verdict_value(env, v, &note);
  free(buf);
  return res;
}

/* processUdp(ex, srcAddr (4 or 16 bytes), srcPort, payload, now): as process() */
static napi_value process_udp(napi_env env, napi_callback_info info) {
  ARGS(5);
  executor *ex;
  uint8_t *src, *data;
  uint32_t port;
  size_t len;
  double now;
  int family;
  if (!arg_executor(env, argv[0], &ex) || !arg_ip(env, argv[1], &family, &src) || !arg_u32(env, argv[2], &port) ||
      !arg_bytes(env, argv[3], &data, &len) || !arg_double(env, argv[4], &now))
    return NULL;
  if (port > 65535) return throw_msg(env, "port must be 0..65535");
  uint8_t *out = malloc(len + 1);
  if (!out) return throw_msg(env, "out of memory");
  exec_note note;
  int v = exec_process_udp(ex, family, src, (uint16_t)port, data, len, now, out, &note);
  napi_value res = verdict_value(env, v, &note);
  free(out);
  return res;
}

static bool arg_port(napi_env env, napi_value v, uint16_t *out) {
  uint32_t p;
  if (!arg_u32(env, v, &p)) return false;
  if (p == 0 || p > 65535) {
    napi_throw_range_error(env, NULL, "port must be 1..65535");
    return false;
  }
  *out = (uint16_t)p;
  return true;
}

static bool arg_key(napi_env env, napi_value v, uint8_t **key, size_t *len) {
  if (!arg_bytes(env, v, key, len)) return false;
  if (*len != 16 && *len != 32) {
    napi_throw_range_error(env, NULL, "key must be 16 or 32 bytes");
    return false;
  }
  return true;
}

/* What installTunnelTx and installTunnelRx take first:
 * (ex, spi, vpn, peer, key, salt, localAddr, localPort, remoteAddr, remotePort, ...). */
typedef struct {
  executor *ex;
  tunnel_sa sa; /* its peer: the peer below */
  char peer[ID_NAME_MAX + 1];
  int remote_family;
} tunnel_sa_args;

static bool arg_tunnel_sa(napi_env env, const napi_value *argv, tunnel_sa_args *a) {
  uint8_t *key, *salt, *laddr, *raddr;
  if (!arg_executor(env, argv[0], &a->ex) || !arg_u32(env, argv[1], &a->sa.spi) || !arg_u32(env, argv[2], &a->sa.vpn) ||
      !arg_id(env, argv[3], a->peer, &a->sa.peer_len) || !arg_key(env, argv[4], &key, &a->sa.keylen) ||
      !arg_fixed_bytes(env, argv[5], 4, &salt) || !arg_ip(env, argv[6], &a->sa.family, &laddr) ||
      !arg_port(env, argv[7], &a->sa.lport) || !arg_ip(env, argv[8], &a->remote_family, &raddr) ||
      !arg_port(env, argv[9], &a->sa.rport))
    return false;
  a->sa.peer = a->peer;
  a->sa.key = key;
  a->sa.salt = salt;
  a->sa.laddr = laddr;
  a->sa.raddr = raddr;
  return true;
}

/* What is wrong with parsed tunnel SA arguments, or NULL. */
static const char *tunnel_sa_problem(const tunnel_sa_args *a) {
  if (a->sa.family != a->remote_family) return "local and remote addresses must be of one family";
  if (a->sa.peer_len == 0) return "peer must not be empty";
  return NULL;
}

/* installTunnelTx(ex, spi, vpn, peer, key, salt, localAddr, localPort, remoteAddr, remotePort, nextSeq, softSeq) */
static napi_value install_tunnel_tx(napi_env env, napi_callback_info info) {
  ARGS(12);
  tunnel_sa_args a;
  double next, soft;
  if (!arg_tunnel_sa(env, argv, &a) || !arg_double(env, argv[10], &next) || !arg_double(env, argv[11], &soft))
    return NULL;
  const char *problem = tunnel_sa_problem(&a);
  if (problem) return throw_msg(env, problem);
  if (!(next >= 1 && next <= 4294967295.0) || next != (double)(uint64_t)next)
    return throw_msg(env, "nextSeq must be in 1..2^32-1");
  if (!(soft >= 1 && soft <= 4294967296.0) || soft != (double)(uint64_t)soft)
    return throw_msg(env, "softSeqLimit must be in 1..2^32");
  return install_result(env, exec_install_tunnel_tx(a.ex, &a.sa, (uint64_t)next, (uint64_t)soft));
}

/* installTunnelRx(ex, spi, vpn, peer, key, salt, localAddr, localPort, remoteAddr, remotePort,
 *                 ranges: Uint8Array of 33-byte selectors (family, start (16), end (16); IPv4 in the first 4
 *                 bytes), local ones then remote ones, nLocal, window) */
#define RANGE_BYTES 33
static napi_value install_tunnel_rx(napi_env env, napi_callback_info info) {
  ARGS(13);
  tunnel_sa_args a;
  uint32_t nlocal, window;
  uint8_t *rp;
  size_t nr;
  if (!arg_tunnel_sa(env, argv, &a) || !arg_bytes(env, argv[10], &rp, &nr) || !arg_u32(env, argv[11], &nlocal) ||
      !arg_u32(env, argv[12], &window))
    return NULL;
  if (nr % RANGE_BYTES || nlocal > nr / RANGE_BYTES || nr / RANGE_BYTES > 8192)
    return throw_msg(env, "ranges must hold 33-byte selectors");
  const char *problem = tunnel_sa_problem(&a);
  if (problem) return throw_msg(env, problem);
  size_t n = nr / RANGE_BYTES;
  tunnel_range *ranges = calloc(n ? n : 1, sizeof *ranges);
  if (!ranges) return throw_msg(env, "out of memory");
  for (size_t i = 0; i < n; i++) {
    ranges[i].family = rp[i * RANGE_BYTES];
    memcpy(ranges[i].start, rp + i * RANGE_BYTES + 1, 16);
    memcpy(ranges[i].end, rp + i * RANGE_BYTES + 17, 16);
  }
  int r = exec_install_tunnel_rx(a.ex, &a.sa, ranges, nlocal, (uint32_t)(n - nlocal), window);
  free(ranges);
  return install_result(env, r);
}

static napi_value remove_tunnel_tx(napi_env env, napi_callback_info info) {
  return remove_sa(env, info, exec_remove_tunnel_tx);
}

static napi_value remove_tunnel_rx(napi_env env, napi_callback_info info) {
  return remove_sa(env, info, exec_remove_tunnel_rx);
}

static napi_value stats_pair(napi_env env, const double *vals, size_t n, const char *peer) {
  napi_value ab, arr, res, name;
  void *p;
  CHECK(napi_create_arraybuffer(env, n * sizeof(double), &p, &ab));
  memcpy(p, vals, n * sizeof(double));
  CHECK(napi_create_typedarray(env, napi_float64_array, n, ab, 0, &arr));
  CHECK(napi_create_string_utf8(env, peer, NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_array_with_length(env, 2, &res));
  napi_set_element(env, res, 0, arr);
  napi_set_element(env, res, 1, name);
  return res;
}

/* tunnelTxStats(ex, spi): [Float64Array (TUNNEL_TX_STATS), peer] | undefined */
static napi_value tunnel_tx_stats(napi_env env, napi_callback_info info) {
  ARGS(2);
  executor *ex;
  uint32_t spi;
  double st[TUNNEL_TX_STATS];
  char peer[ID_NAME_MAX + 1];
  if (!arg_executor(env, argv[0], &ex) || !arg_u32(env, argv[1], &spi)) return NULL;
  if (!exec_tunnel_tx_stats(ex, spi, st, peer)) return undefined(env);
  return stats_pair(env, st, TUNNEL_TX_STATS, peer);
}

/* tunnelRxStats(ex, spi): [Float64Array (TUNNEL_RX_STATS), peer, last source address] | undefined */
static napi_value tunnel_rx_stats(napi_env env, napi_callback_info info) {
  ARGS(2);
  executor *ex;
  uint32_t spi;
  double st[TUNNEL_RX_STATS];
  char peer[ID_NAME_MAX + 1];
  uint8_t last[16];
  napi_value res, addr;
  void *copy;
  if (!arg_executor(env, argv[0], &ex) || !arg_u32(env, argv[1], &spi)) return NULL;
  if (!exec_tunnel_rx_stats(ex, spi, st, peer, last)) return undefined(env);
  res = stats_pair(env, st, TUNNEL_RX_STATS, peer);
  CHECK(napi_create_buffer_copy(env, st[8] == 6 ? 16 : 4, last, &copy, &addr));
  napi_set_element(env, res, 2, addr);
  return res;
}

/* ipv6Walk(packet): [upperProto, upperOffset (-1: none), fragment (0 none, 1 first, 2 later),
 * extLength, neverIntercepted (0/1), total] | undefined when malformed. For the tests. */
static napi_value ipv6_walk(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint8_t *data;
  size_t len;
  ipv6_info ip;
  napi_value arr;
  if (!arg_bytes(env, argv[0], &data, &len)) return NULL;
  if (ipv6_parse(data, len, &ip) != 0) return undefined(env);
  double vals[6] = {ip.upper_proto, ip.has_upper ? (double)ip.upper_off : -1, ip.fragment, (double)ip.ext_len,
                    ipv6_never_intercepted(data, &ip), (double)ip.tot};
  CHECK(napi_create_array_with_length(env, 6, &arr));
  for (uint32_t i = 0; i < 6; i++) napi_set_element(env, arr, i, number(env, vals[i]));
  return arr;
}

/* pathStats(ex, family, local, remote): Float64Array [packets, bytes, lastUsed] | undefined */
static napi_value path_stats(napi_env env, napi_callback_info info) {
  ARGS(4);
  executor *ex;
  int family, fam2;
  uint8_t *local, *remote;
  double st[3];
  if (!arg_executor(env, argv[0], &ex) || !arg_address(env, argv[1], argv[2], &family, &local) ||
      !arg_address(env, argv[1], argv[3], &fam2, &remote))
    return NULL;
  if (!exec_path_stats(ex, family, local, remote, st)) return undefined(env);
  napi_value ab, arr;
  void *p;
  CHECK(napi_create_arraybuffer(env, sizeof st, &p, &ab));
  memcpy(p, st, sizeof st);
  CHECK(napi_create_typedarray(env, napi_float64_array, 3, ab, 0, &arr));
  return arr;
}

static napi_value f64_array(napi_env env, const uint64_t *vals, size_t n) {
  napi_value ab, arr;
  void *p;
  CHECK(napi_create_arraybuffer(env, n * sizeof(double), &p, &ab));
  for (size_t i = 0; i < n; i++) ((double *)p)[i] = (double)vals[i];
  CHECK(napi_create_typedarray(env, napi_float64_array, n, ab, 0, &arr));
  return arr;
}

/* counters(ex): Float64Array in the order of the C_* enum */
static napi_value counters(napi_env env, napi_callback_info info) {
  ARGS(1);
  executor *ex;
  uint64_t c[C_COUNT];
  if (!arg_executor(env, argv[0], &ex)) return NULL;
  exec_counters(ex, c);
  return f64_array(env, c, C_COUNT);
}

static napi_value tx_next_seq(napi_env env, napi_callback_info info) {
  ARGS(2);
  executor *ex;
  uint32_t vpn;
  napi_value v;
  if (!arg_executor(env, argv[0], &ex) || !arg_u32(env, argv[1], &vpn)) return NULL;
  CHECK(napi_create_bigint_uint64(env, exec_tx_next_seq(ex, vpn), &v));
  return v;
}

typedef struct {
  uint8_t *keys;
  double *stats;
  size_t n, cap;
  int oom;
} rule_dump;

static void dump_rule(void *ctx, int family, const uint8_t *local, const uint8_t *remote, int action,
                      uint64_t packets, uint64_t bytes, double last_used) {
  rule_dump *d = ctx;
  if (d->oom) return;
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 64;
    uint8_t *k = realloc(d->keys, cap * 33);
    if (k) d->keys = k;
    double *s = realloc(d->stats, cap * 4 * sizeof(double));
    if (s) d->stats = s;
    if (!k || !s) {
      d->oom = 1;
      return;
    }
    d->cap = cap;
  }
  uint8_t *k = d->keys + d->n * 33;
  k[0] = (uint8_t)family;
  memcpy(k + 1, local, 16);
  memcpy(k + 17, remote, 16);
  double *s = d->stats + d->n * 4;
  s[0] = action;
  s[1] = (double)packets;
  s[2] = (double)bytes;
  s[3] = last_used;
  d->n++;
}

/* allPathStats(ex): [keys: Buffer (33 bytes per rule: family, local 16, remote 16),
 *                    stats: Float64Array (4 per rule: action, packets, bytes, lastUsed)] */
static napi_value all_path_stats(napi_env env, napi_callback_info info) {
  ARGS(1);
  executor *ex;
  rule_dump d = {0};
  if (!arg_executor(env, argv[0], &ex)) return NULL;
  exec_foreach_rule(ex, dump_rule, &d);
  if (d.oom) {
    free(d.keys);
    free(d.stats);
    return throw_msg(env, "out of memory");
  }
  napi_value keys, ab, stats, arr;
  void *p;
  if (napi_create_buffer_copy(env, d.n * 33, d.keys ? (void *)d.keys : (void *)"", &p, &keys) != napi_ok ||
      napi_create_arraybuffer(env, d.n * 4 * sizeof(double), &p, &ab) != napi_ok) {
    free(d.keys);
    free(d.stats);
    return throw_last(env);
  }
  if (d.n) memcpy(p, d.stats, d.n * 4 * sizeof(double));
  free(d.keys);
  free(d.stats);
  CHECK(napi_create_typedarray(env, napi_float64_array, d.n * 4, ab, 0, &stats));
  CHECK(napi_create_array_with_length(env, 2, &arr));
  napi_set_element(env, arr, 0, keys);
  napi_set_element(env, arr, 1, stats);
  return arr;
}

/* ---- TUN datapath ---- */

typedef struct {
  datapath *dp;
  napi_threadsafe_function tsfn;
  napi_ref callback;
  napi_ref *bufs, *metas;
  punt_batch *batches;
  size_t n;
  int refs; /* the JS handle and the tsfn each hold one (both released on the JS thread) */
  int closed;
} dp_handle;

static void handle_unref(napi_env env, dp_handle *h) {
  if (--h->refs > 0) return;
  if (h->dp) dp_free(h->dp);
  if (env) {
    for (size_t i = 0; i < h->n; i++) {
      if (h->bufs[i]) napi_delete_reference(env, h->bufs[i]);
      if (h->metas[i]) napi_delete_reference(env, h->metas[i]);
    }
    if (h->callback) napi_delete_reference(env, h->callback);
  }
  free(h->bufs);
  free(h->metas);
  free(h->batches);
  free(h);
}

static int submit_batch(void *ctx, punt_batch *b) {
  dp_handle *h = ctx;
  return napi_call_threadsafe_function(h->tsfn, b, napi_tsfn_nonblocking) == napi_ok ? 0 : -1;
}

static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  dp_handle *h = context;
  punt_batch *b = data;
  (void)js_cb;
  if (env && h->dp) {
    /* onPunt(buf, meta, count) for a batch; onPunt(message, null, -1) once a reader thread has
     * stopped on a device error (no batch). */
    napi_value args[3], cb, global;
    bool built = b ? napi_get_reference_value(env, h->bufs[b->index], &args[0]) == napi_ok &&
                         napi_get_reference_value(env, h->metas[b->index], &args[1]) == napi_ok &&
                         napi_create_uint32(env, (uint32_t)b->count, &args[2]) == napi_ok
                   : napi_create_string_utf8(env, dp_failure(h->dp), NAPI_AUTO_LENGTH, &args[0]) == napi_ok &&
                         napi_get_null(env, &args[1]) == napi_ok && napi_create_int32(env, -1, &args[2]) == napi_ok;
    if (built && napi_get_reference_value(env, h->callback, &cb) == napi_ok &&
        napi_get_global(env, &global) == napi_ok)
      napi_call_function(env, global, cb, 3, args, NULL);
  }
  /* The batch's memory is reused once the callback returns. */
  if (b && h->dp) dp_release_batch(h->dp, b);
}

static void tsfn_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  handle_unref(env, data);
}

static void handle_close(dp_handle *h) {
  if (h->closed) return;
  h->closed = 1;
  dp_stop(h->dp);
  napi_release_threadsafe_function(h->tsfn, napi_tsfn_release);
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  dp_handle *h = data;
  handle_close(h);
  handle_unref(env, h);
}

static bool arg_handle(napi_env env, napi_value v, dp_handle **h) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "expected a datapath handle");
    return false;
  }
  *h = p;
  return true;
}

/* datapathOpen(ex, devices: [name, side, queues][], bufs: Buffer[], metas: Uint32Array[], onPunt,
 *              options: DP_OPT_* bits[, udp: [address (4 or 16 bytes), port, second address of the
 *              other family?]]) */
static napi_value datapath_open(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) return throw_msg(env, "missing arguments");
  executor *ex;
  uint32_t ndev, nbuf, nmeta, options;
  char err[256] = "";
  uint8_t *uaddr = NULL, *uaddr2 = NULL;
  uint16_t uport = 0;
  int ufam = 0, ufam2 = 0;
  if (!arg_executor(env, argv[0], &ex) || !arg_u32(env, argv[5], &options)) return NULL;
  if (argc > 6) {
    napi_valuetype ut;
    napi_typeof(env, argv[6], &ut);
    if (ut != napi_undefined && ut != napi_null) {
      napi_value va, vp, va2;
      napi_valuetype t2;
      if (napi_get_element(env, argv[6], 0, &va) != napi_ok || napi_get_element(env, argv[6], 1, &vp) != napi_ok ||
          napi_get_element(env, argv[6], 2, &va2) != napi_ok)
        return throw_msg(env, "udp must be [address, port, address?]");
      if (!arg_ip(env, va, &ufam, &uaddr) || !arg_port(env, vp, &uport)) return NULL;
      napi_typeof(env, va2, &t2);
      if (t2 != napi_undefined && t2 != napi_null) {
        if (!arg_ip(env, va2, &ufam2, &uaddr2)) return NULL;
        if (ufam2 == ufam) return throw_msg(env, "the second tunnel port address must be of the other family");
      }
    }
  }
  CHECK(napi_get_array_length(env, argv[1], &ndev));
  CHECK(napi_get_array_length(env, argv[2], &nbuf));
  CHECK(napi_get_array_length(env, argv[3], &nmeta));
  if (ndev == 0 || ndev > 2 || nbuf == 0 || nbuf != nmeta || nbuf > 1024)
    return throw_msg(env, "datapathOpen: 1 or 2 devices and matching buffer/meta arrays");
  dp_handle *h = calloc(1, sizeof *h);
  if (!h) return throw_msg(env, "out of memory");
  h->n = nbuf;
  h->bufs = calloc(nbuf, sizeof(napi_ref));
  h->metas = calloc(nbuf, sizeof(napi_ref));
  h->batches = calloc(nbuf, sizeof(punt_batch));
  h->refs = 1;
  if (!h->bufs || !h->metas || !h->batches) {
    handle_unref(env, h);
    return throw_msg(env, "out of memory");
  }
  for (uint32_t i = 0; i < nbuf; i++) {
    napi_value b, m;
    napi_typedarray_type t;
    size_t len, off;
    void *p;
    napi_value ab;
    if (napi_get_element(env, argv[2], i, &b) != napi_ok || napi_get_element(env, argv[3], i, &m) != napi_ok) {
      handle_unref(env, h);
      return throw_last(env);
    }
    uint8_t *bd;
    size_t blen;
    if (!arg_bytes(env, b, &bd, &blen)) {
      handle_unref(env, h);
      return NULL;
    }
    if (napi_get_typedarray_info(env, m, &t, &len, &p, &ab, &off) != napi_ok || t != napi_uint32_array || len < 3) {
      handle_unref(env, h);
      return throw_msg(env, "metas must be Uint32Arrays");
    }
    h->batches[i] = (punt_batch){.buf = bd, .cap = blen, .meta = p, .max = len / 3, .index = (int)i};
    napi_create_reference(env, b, 1, &h->bufs[i]);
    napi_create_reference(env, m, 1, &h->metas[i]);
  }
  napi_create_reference(env, argv[4], 1, &h->callback);
  h->dp = dp_new(ex, h->batches, nbuf, submit_batch, h, (int)options);
  if (!h->dp) {
    handle_unref(env, h);
    return throw_msg(env, "out of memory");
  }
  for (uint32_t i = 0; i < ndev; i++) {
    napi_value d, vname, vside, vq;
    char name[64];
    size_t nlen;
    uint32_t side, queues;
    if (napi_get_element(env, argv[1], i, &d) != napi_ok || napi_get_element(env, d, 0, &vname) != napi_ok ||
        napi_get_element(env, d, 1, &vside) != napi_ok || napi_get_element(env, d, 2, &vq) != napi_ok ||
        napi_get_value_string_utf8(env, vname, name, sizeof name, &nlen) != napi_ok ||
        !arg_u32(env, vside, &side) || !arg_u32(env, vq, &queues)) {
      handle_unref(env, h);
      return throw_last(env);
    }
    if (dp_add_device(h->dp, name, (int)side, (int)queues, err, sizeof err) != 0) {
      handle_unref(env, h);
      return throw_msg(env, err);
    }
  }
  if ((uaddr && dp_add_udp(h->dp, ufam, uaddr, uport, err, sizeof err) != 0) ||
      (uaddr2 && dp_add_udp(h->dp, ufam2, uaddr2, uport, err, sizeof err) != 0)) {
    handle_unref(env, h);
    return throw_msg(env, err);
  }
  napi_value resource_name, ext;
  napi_create_string_utf8(env, "kasane-datapath", NAPI_AUTO_LENGTH, &resource_name);
  if (napi_create_threadsafe_function(env, NULL, NULL, resource_name, 0, 1, h, tsfn_finalize, h, call_js,
                                      &h->tsfn) != napi_ok) {
    handle_unref(env, h);
    return throw_msg(env, "napi_create_threadsafe_function failed");
  }
  h->refs = 2;
  if (napi_create_external(env, h, handle_finalize, NULL, &ext) != napi_ok) {
    handle_close(h);
    handle_unref(env, h);
    return throw_last(env);
  }
  if (dp_start(h->dp, err, sizeof err) != 0) {
    handle_close(h);
    return throw_msg(env, err);
  }
  return ext;
}

/* datapathWrite(h, side, packet): 0 or -errno */
static napi_value datapath_write(napi_env env, napi_callback_info info) {
  ARGS(3);
  dp_handle *h;
  uint32_t side;
  uint8_t *data;
  size_t len;
  if (!arg_handle(env, argv[0], &h) || !arg_u32(env, argv[1], &side) || !arg_bytes(env, argv[2], &data, &len))
    return NULL;
  if (h->closed) return number(env, -EBADF);
  return number(env, dp_write(h->dp, (int)side, data, len));
}

/* datapathSendLocal(h, packet): 0 or -errno (see dp_send_local) */
static napi_value datapath_send_local(napi_env env, napi_callback_info info) {
  ARGS(2);
  dp_handle *h;
  uint8_t *data;
  size_t len;
  if (!arg_handle(env, argv[0], &h) || !arg_bytes(env, argv[1], &data, &len)) return NULL;
  if (h->closed) return number(env, -EBADF);
  return number(env, dp_send_local(h->dp, data, len));
}

/* datapathSendUdp(h, dstAddr (4 or 16 bytes), dstPort, payload, df: 0 kernel's choice | 1 set | 2 clear): 0 or -errno */
static napi_value datapath_send_udp(napi_env env, napi_callback_info info) {
  ARGS(5);
  dp_handle *h;
  uint8_t *dst, *data;
  uint16_t port;
  size_t len;
  uint32_t df;
  int family;
  if (!arg_handle(env, argv[0], &h) || !arg_ip(env, argv[1], &family, &dst) || !arg_port(env, argv[2], &port) ||
      !arg_bytes(env, argv[3], &data, &len) || !arg_u32(env, argv[4], &df))
    return NULL;
  if (df > 2) return throw_msg(env, "df must be 0, 1 or 2");
  if (h->closed) return number(env, -EBADF);
  return number(env, dp_send_udp(h->dp, family, dst, port, data, len, (int)df));
}

static napi_value datapath_stats(napi_env env, napi_callback_info info) {
  ARGS(1);
  dp_handle *h;
  uint64_t s[DP_STAT_COUNT];
  if (!arg_handle(env, argv[0], &h)) return NULL;
  dp_stats(h->dp, s);
  return f64_array(env, s, DP_STAT_COUNT);
}

static napi_value datapath_close(napi_env env, napi_callback_info info) {
  ARGS(1);
  dp_handle *h;
  if (!arg_handle(env, argv[0], &h)) return NULL;
  handle_close(h);
  return undefined(env);
}

/* datapathRef(h, keepAlive): whether the open datapath keeps the event loop alive */
static napi_value datapath_ref(napi_env env, napi_callback_info info) {
  ARGS(2);
  dp_handle *h;
  bool ref;
  if (!arg_handle(env, argv[0], &h)) return NULL;
  CHECK(napi_get_value_bool(env, argv[1], &ref));
  if (!h->closed) CHECK(ref ? napi_ref_threadsafe_function(env, h->tsfn) : napi_unref_threadsafe_function(env, h->tsfn));
  return undefined(env);
}

/* ---- test and benchmark hooks ---- */

/* Collects what a hook emits (segments, frames) into a JavaScript array of Buffer copies. */
typedef struct {
  napi_env env;
  napi_value arr;
  uint32_t n;
  int failed;
} collector;

static void collect(void *ctx, uint8_t *bytes, size_t len) {
  collector *c = ctx;
  napi_value b;
  void *p;
  if (napi_create_buffer_copy(c->env, len, bytes, &p, &b) != napi_ok) {
    c->failed = 1;
    return;
  }
  napi_set_element(c->env, c->arr, c->n++, b);
}

/* A collector into a new JavaScript array, c->arr. */
static void collector_init(collector *c, napi_env env) {
  c->env = env;
  napi_create_array(env, &c->arr);
  c->n = 0;
  c->failed = 0;
}

/* Element i of a JavaScript array of byte arrays; false (an exception may be pending) when it is none. */
static bool arg_bytes_at(napi_env env, napi_value arr, uint32_t i, uint8_t **data, size_t *len) {
  napi_value v;
  return napi_get_element(env, arr, i, &v) == napi_ok && arg_bytes(env, v, data, len);
}

/* vnetFrame(frame): the packets the datapath would process for a frame read from the TUN
 * (virtio_net_hdr + packet): GSO segments, or the packet with its partial checksum completed;
 * null when the datapath would count the frame as bad. */
static napi_value vnet_frame(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint8_t *data;
  size_t len;
  napi_value nul;
  if (!arg_bytes(env, argv[0], &data, &len)) return NULL;
  napi_get_null(env, &nul);
  if (len < VNET_HDR_LEN || len > VNET_HDR_LEN + 65535) return nul;
  vnet_hdr h;
  vnet_read(&h, data);
  /* Segmentation works in place and writes into the VNET_HDR_LEN bytes before the packet. */
  uint8_t *buf = malloc(len);
  if (!buf) return throw_msg(env, "out of memory");
  uint8_t *pkt = buf + VNET_HDR_LEN;
  memcpy(pkt, data + VNET_HDR_LEN, len - VNET_HDR_LEN);
  size_t plen = len - VNET_HDR_LEN;
  collector c;
  collector_init(&c, env);
  napi_value res = c.arr;
  if ((h.gso_type & ~VNET_GSO_ECN) != VNET_GSO_NONE) {
    if (gso_segment(&h, pkt, plen, collect, &c) < 0) res = nul;
  } else if ((h.flags & VNET_F_NEEDS_CSUM) && gso_complete_csum(&h, pkt, plen) != 0) {
    res = nul;
  } else {
    collect(&c, pkt, plen);
  }
  free(buf);
  if (c.failed) return throw_last(env);
  return res;
}

/* groCoalesce(packets: Uint8Array[]): the frames (virtio_net_hdr + packet) the datapath would
 * write for these forwarded packets, given as one read burst (each written at GRO's slot first, as
 * decrypted packets are). */
static napi_value gro_coalesce(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t n;
  CHECK(napi_get_array_length(env, argv[0], &n));
  gro_table g;
  if (gro_init(&g) != 0) return throw_msg(env, "out of memory");
  uint8_t *buf = malloc(VNET_HDR_LEN + 65536);
  if (!buf) {
    gro_free(&g);
    return throw_msg(env, "out of memory");
  }
  collector c;
  collector_init(&c, env);
  for (uint32_t i = 0; i < n; i++) {
    uint8_t *data;
    size_t len;
    if (!arg_bytes_at(env, argv[0], i, &data, &len)) {
      free(buf);
      gro_free(&g);
      return NULL;
    }
    if (len > 65535) continue;
    /* As the datapath does with decrypted packets: written at the slot first, if there is one. */
    uint8_t *slot = gro_slot(&g);
    if (slot) {
      if (len) memcpy(slot, data, len);
      if (gro_take(&g, slot, len, collect, &c)) continue;
      gro_unslot(&g);
    }
    if (len) memcpy(buf + VNET_HDR_LEN, data, len);
    gro_add(&g, buf + VNET_HDR_LEN, len, collect, &c);
  }
  gro_flush(&g, collect, &c);
  free(buf);
  gro_free(&g);
  if (c.failed) return throw_last(env);
  return c.arr;
}

static double mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* usoCoalesce(packets, forwarded): the frames (vnet header + packet) the datapath writes for these
 * group ESP-in-UDP packets (forwarded: UDP datagrams it forwards, e.g. decrypted ones), in order:
 * UDP GSO super-packets for runs, plain frames for the rest. Each packet is first written at the
 * run's slot, as the executor's output is (uso.h), then handed over elsewhere if refused. For the
 * tests. */
static void uso_collect_single(void *ctx, uint8_t *pkt, size_t len) {
  memset(pkt - VNET_HDR_LEN, 0, VNET_HDR_LEN);
  collect(ctx, pkt - VNET_HDR_LEN, len + VNET_HDR_LEN);
}

static napi_value uso_coalesce(napi_env env, napi_callback_info info) {
  ARGS(2);
  uint32_t n;
  bool forwarded;
  CHECK(napi_get_array_length(env, argv[0], &n));
  CHECK(napi_get_value_bool(env, argv[1], &forwarded));
  uso_batch b;
  if ((forwarded ? uso_init_forwarded(&b, 65536) : uso_init(&b, 65536)) != 0) return throw_msg(env, "out of memory");
  uint8_t *copy = malloc(VNET_HDR_LEN + 65536);
  if (!copy) {
    uso_free(&b);
    return throw_msg(env, "out of memory");
  }
  collector c;
  collector_init(&c, env);
  for (uint32_t i = 0; i < n; i++) {
    uint8_t *data;
    size_t len;
    if (!arg_bytes_at(env, argv[0], i, &data, &len)) {
      uso_free(&b);
      free(copy);
      return NULL;
    }
    /* Only what fits one frame. */
    if (len < 28 || len > 65535) continue;
    uint8_t *slot = uso_slot(&b, collect, uso_collect_single, &c);
    memcpy(slot, data, len);
    if (uso_take(&b, slot, len)) continue;
    memcpy(copy + VNET_HDR_LEN, data, len);
    uso_unslot(&b);
    uso_add(&b, copy + VNET_HDR_LEN, len, collect, uso_collect_single, &c);
  }
  free(copy);
  uso_flush(&b, collect, uso_collect_single, &c);
  uso_free(&b);
  if (c.failed) return throw_last(env);
  return c.arr;
}

/* espSplit(frame): the segments of a UDP GSO super-packet of group ESP, split in place as the
 * datapath does on the outside; null when it is not one. For the tests. */
static napi_value esp_split(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint8_t *data;
  size_t len, hlen;
  napi_value nul;
  vnet_hdr h;
  if (!arg_bytes(env, argv[0], &data, &len)) return NULL;
  napi_get_null(env, &nul);
  if (len < VNET_HDR_LEN || len > VNET_HDR_LEN + 65535) return nul;
  vnet_read(&h, data);
  uint8_t *frame = malloc(len);
  if (!frame) return throw_msg(env, "out of memory");
  memcpy(frame, data, len);
  uint8_t *pkt = frame + VNET_HDR_LEN;
  collector c;
  collector_init(&c, env);
  napi_value res = nul;
  if (gso_is_esp_in_udp(&h, pkt, len - VNET_HDR_LEN, &hlen))
    res = gso_split_esp_in_udp(&h, pkt, len - VNET_HDR_LEN, hlen, collect, &c) < 0 ? nul : c.arr;
  free(frame);
  if (c.failed) return throw_last(env);
  return res;
}

/* ---- executorThreads: the executor under several threads at once (a test and a benchmark) ---- */

/* The packets executorThreads sends, UDP with DF from THREADS_SRC to THREADS_DST (src/native/binding.ts). */
static const uint8_t THREADS_SRC[4] = {10, 77, 0, 1}, THREADS_DST[4] = {10, 77, 0, 2};

/* Where the threads of a phase wait until all exist, so that they run at once. */
typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int go; /* 0: wait; 1: run; -1: give up (a thread of the phase did not start) */
} threads_gate;

typedef struct {
  executor *ex;
  threads_gate *start;
  const uint8_t *tmpl; /* the plain packet */
  size_t plen, slot;   /* its length; bytes per sealed packet in `sealed` */
  uint32_t count;
  uint8_t *sealed; /* count packets of this thread (seal), or to open (open) */
  size_t *sealed_len;
  uint64_t *seqs;
  int open; /* 0: seal `count` copies of tmpl; 1: open `count` sealed packets */
  pthread_barrier_t *step; /* opening: the threads wait for one another every step_len packets */
  uint32_t step_len;
  uint32_t done, replays, other, mismatches;
} threads_job;

static void *threads_run(void *arg) {
  threads_job *j = arg;
  pthread_mutex_lock(&j->start->lock);
  while (!j->start->go) pthread_cond_wait(&j->start->cond, &j->start->lock);
  int go = j->start->go;
  pthread_mutex_unlock(&j->start->lock);
  if (go < 0) { /* a thread of the phase could not start */
    j->other = j->count;
    return NULL;
  }
  uint8_t *pkt = malloc(j->slot), *out = malloc(j->slot + 128);
  if (!pkt || !out) {
    j->other = j->count;
    /* The others wait at every step for this thread too. */
    if (j->step)
      for (uint32_t i = j->step_len; i < j->count; i += j->step_len) pthread_barrier_wait(j->step);
    free(pkt);
    free(out);
    return NULL;
  }
  for (uint32_t i = 0; i < j->count; i++) {
    if (j->step && i && i % j->step_len == 0) pthread_barrier_wait(j->step);
    exec_note note;
    uint8_t *in = j->sealed + (size_t)i * j->slot;
    size_t len = j->open ? j->sealed_len[i] : j->plen;
    memcpy(pkt, j->open ? in : j->tmpl, len); /* the executor may rewrite what it is given */
    int v = exec_process(j->ex, j->open ? SIDE_OUTSIDE : SIDE_INSIDE, pkt, len, 0, out, &note, 0);
    if (!j->open && v == V_FORWARD_ENCRYPT && note.out_len <= j->slot) {
      memcpy(in, note.out, note.out_len);
      j->sealed_len[i] = note.out_len;
      j->seqs[i] = note.seq;
      j->done++;
    } else if (j->open && v == V_FORWARD_DECRYPT) {
      j->done++;
      if (note.out_len != j->plen || memcmp((const uint8_t *)note.out + 20, j->tmpl + 20, j->plen - 20) != 0)
        j->mismatches++;
    } else if (v == C_DROP_REPLAY) {
      j->replays++;
    } else {
      j->other++;
    }
  }
  free(pkt);
  free(out);
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Runs the jobs in threads released together; the wall time in ns, or -1 if a thread did not start. */
static double threads_phase(threads_job *jobs, uint32_t n) {
  threads_gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  pthread_t tid[64];
  uint32_t started = 0;
  for (uint32_t k = 0; k < n; k++) jobs[k].start = &gate;
  for (; started < n; started++)
    if (pthread_create(&tid[started], NULL, threads_run, &jobs[started]) != 0) break;
  for (uint32_t k = started; k < n; k++) jobs[k].other = jobs[k].count;
  double t0 = mono_ns();
  pthread_mutex_lock(&gate.lock);
  gate.go = started < n ? -1 : 1; /* all or none: the opening threads wait for one another */
  pthread_cond_broadcast(&gate.cond);
  pthread_mutex_unlock(&gate.lock);
  for (uint32_t k = 0; k < started; k++) pthread_join(tid[k], NULL);
  double ns = mono_ns() - t0;
  pthread_cond_destroy(&gate.cond);
  pthread_mutex_destroy(&gate.lock);
  return started < n ? -1 : ns;
}

/* executorThreads(ex, threads, payloadBytes, count): `threads` threads each seal `count` UDP packets
 * of payloadBytes from 10.77.0.1 to 10.77.0.2 through the executor at once (the caller installed an
 * encrypt rule for that path, its VPN's sending SA, and a receiving SA of the same key for the way
 * back: an encrypt rule 10.77.0.2 -> 10.77.0.1 of the same peer); then as many threads open them all
 * at once, each packet once, in the order of their sequence numbers dealt round-robin, in steps that
 * keep them within the replay window; then once more (all replays). Returns {sealNs, openNs, sealed, duplicateSeqs, opened, replays, other, mismatches,
 * reopened}: what a multi-threaded datapath does to one SA, without the TUN devices. */
static napi_value executor_threads(napi_env env, napi_callback_info info) {
  ARGS(4);
  executor *ex;
  uint32_t n, size, count;
  if (!arg_executor(env, argv[0], &ex) || !arg_u32(env, argv[1], &n) || !arg_u32(env, argv[2], &size) ||
      !arg_u32(env, argv[3], &count))
    return NULL;
  size_t plen = 28 + (size_t)size, slot = plen + 128;
  if (n < 1 || n > 64 || size > 8000 || count < 1 || (uint64_t)n * count * slot > (256u << 20))
    return throw_msg(env, "executorThreads: 1..64 threads, up to 8000 bytes, up to 256 MiB of packets");
  uint64_t total = (uint64_t)n * count;
  uint8_t *tmpl = calloc(1, plen), *sealed = malloc(total * slot);
  size_t *lens = calloc(total, sizeof *lens);
  uint64_t *seqs = calloc(total, sizeof *seqs), *sorted = malloc(total * sizeof *sorted);
  size_t *order = malloc(total * sizeof *order);
  uint8_t *byseq = malloc(total * slot);
  size_t *byseq_len = malloc(total * sizeof *byseq_len);
  threads_job *jobs = calloc(n, sizeof *jobs);
  napi_value res = NULL;
  if (!tmpl || !sealed || !lens || !seqs || !sorted || !order || !byseq || !byseq_len || !jobs) {
    res = throw_msg(env, "out of memory");
    goto out;
  }
  /* Touched before the clock runs: page faults are not the executor's. */
  memset(sealed, 0, total * slot);
  memset(byseq, 0, total * slot);
  /* IPv4 (DF, TTL 64, UDP) with a counting payload. */
  tmpl[0] = 0x45;
  tmpl[2] = (uint8_t)(plen >> 8);
  tmpl[3] = (uint8_t)plen;
  tmpl[6] = 0x40;
  tmpl[8] = 64;
  tmpl[9] = 17;
  memcpy(tmpl + 12, THREADS_SRC, 4);
  memcpy(tmpl + 16, THREADS_DST, 4);
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += (uint32_t)tmpl[i] << 8 | tmpl[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  tmpl[10] = (uint8_t)(~sum >> 8);
  tmpl[11] = (uint8_t)~sum;
  tmpl[20] = 0x30, tmpl[21] = 0x39, tmpl[22] = 0x1b, tmpl[23] = 0x59;
  tmpl[24] = (uint8_t)((8 + size) >> 8), tmpl[25] = (uint8_t)(8 + size);
  for (size_t i = 28; i < plen; i++) tmpl[i] = (uint8_t)(i * 31);

  /* Seal: thread k fills its own range of `sealed`. */
  for (uint32_t k = 0; k < n; k++)
    jobs[k] = (threads_job){.ex = ex, .tmpl = tmpl, .plen = plen, .slot = slot, .count = count,
                            .sealed = sealed + (size_t)k * count * slot, .sealed_len = lens + (size_t)k * count,
                            .seqs = seqs + (size_t)k * count};
  double seal_ns = threads_phase(jobs, n);
  uint32_t sealed_ok = 0;
  for (uint32_t k = 0; k < n; k++) sealed_ok += jobs[k].done;
  /* Sequence numbers: every one taken once (a nonce is never reused under the key). */
  uint32_t dups = 0;
  memcpy(sorted, seqs, total * sizeof *sorted);
  qsort(sorted, total, sizeof *sorted, cmp_u64);
  for (uint64_t i = 1; i < total; i++) dups += sorted[i] == sorted[i - 1];
  /* The packets in the order of their numbers, dealt round-robin to the opening threads: they stay
   * near one another within the replay window, as packets of one SA read by several queues do. */
  uint64_t base = sorted[0];
  for (uint64_t i = 0; i < total; i++) order[i] = SIZE_MAX;
  for (uint64_t i = 0; i < total; i++)
    if (seqs[i] - base < total) order[seqs[i] - base] = i;
  uint64_t m = 0;
  for (uint64_t r = 0; r < total; r++) {
    if (order[r] == SIZE_MAX) continue;
    uint32_t k = (uint32_t)(m % n);
    uint64_t at = (uint64_t)k * count + m / n;
    memcpy(byseq + at * slot, sealed + order[r] * slot, lens[order[r]]);
    byseq_len[at] = lens[order[r]];
    m++;
  }
  double open_ns = -1;
  uint32_t opened = 0, replays = 0, other = 0, mismatches = 0, reopened = 0;
  /* In steps that keep the numbers in flight well within the replay window: no thread falls so
   * far behind that its packets are refused, as the packets of one SA arriving on several queues. */
  pthread_barrier_t step;
  uint32_t step_len = 512 / n ? 512 / n : 1;
  if (m == total && dups == 0 && pthread_barrier_init(&step, NULL, n) == 0) {
    for (int round = 0; round < 2; round++) {
      for (uint32_t k = 0; k < n; k++)
        jobs[k] = (threads_job){.ex = ex, .tmpl = tmpl, .plen = plen, .slot = slot, .count = count,
                                .sealed = byseq + (size_t)k * count * slot, .sealed_len = byseq_len + (size_t)k * count,
                                .open = 1, .step = &step, .step_len = step_len};
      double ns = threads_phase(jobs, n);
      for (uint32_t k = 0; k < n; k++) {
        if (round == 0) {
          opened += jobs[k].done;
          replays += jobs[k].replays;
          other += jobs[k].other;
          mismatches += jobs[k].mismatches;
        } else {
          reopened += jobs[k].done;
          other += jobs[k].other;
        }
      }
      if (round == 0) open_ns = ns;
    }
    pthread_barrier_destroy(&step);
  }
  napi_value o;
  if (napi_create_object(env, &o) != napi_ok) {
    res = throw_last(env);
    goto out;
  }
  napi_set_named_property(env, o, "sealNs", number(env, seal_ns));
  napi_set_named_property(env, o, "openNs", number(env, open_ns));
  napi_set_named_property(env, o, "sealed", number(env, sealed_ok));
  napi_set_named_property(env, o, "duplicateSeqs", number(env, dups));
  napi_set_named_property(env, o, "opened", number(env, opened));
  napi_set_named_property(env, o, "replays", number(env, replays));
  napi_set_named_property(env, o, "other", number(env, other));
  napi_set_named_property(env, o, "mismatches", number(env, mismatches));
  napi_set_named_property(env, o, "reopened", number(env, reopened));
  res = o;
out:
  free(tmpl);
  free(sealed);
  free(lens);
  free(seqs);
  free(sorted);
  free(order);
  free(byseq);
  free(byseq_len);
  free(jobs);
  return res;
}

/* espBench(payloadBytes, count): [seal ns/packet, open ns/packet] for ESP with one reused context
 * per direction, the packets processed in one native loop (a batch) through a ring of 64 buffers. */
static napi_value esp_bench(napi_env env, napi_callback_info info) {
  ARGS(2);
  uint32_t size, count;
  if (!arg_u32(env, argv[0], &size) || !arg_u32(env, argv[1], &count)) return NULL;
  if (size > 65000 || count == 0) return throw_msg(env, "bad size or count");
  uint8_t key[32], salt[4] = {1, 2, 3, 4};
  for (int i = 0; i < 32; i++) key[i] = (uint8_t)(i * 7 + 1);
  aead tx, rx;
  if (aead_init(&tx, key, salt, 1) || aead_init(&rx, key, salt, 0)) return throw_msg(env, "OpenSSL init failed");
  uint8_t *payload = calloc(1, size + 1), *esp = malloc(64 * esp_sealed_len(size)),
          *plain = malloc(size + 64);
  if (!payload || !esp || !plain) {
    free(payload);
    free(esp);
    free(plain);
    aead_free(&tx);
    aead_free(&rx);
    return throw_msg(env, "out of memory");
  }
  size_t elen = esp_sealed_len(size);
  double t0 = mono_ns();
  for (uint32_t i = 0; i < count; i++) esp_seal(&tx, 0x1000, (uint64_t)i + 1, ESP_AAD_ESN, payload, size, NULL, 0, 4, esp + (size_t)(i % 64) * elen);
  double t1 = mono_ns();
  int bad = 0;
  for (uint32_t i = 0; i < count; i++) {
    size_t plen;
    uint8_t nh;
    bad |= esp_open(&rx, esp + (size_t)(i % 64) * elen, elen, ESP_AAD_ESN, plain, &plen, &nh);
  }
  double t2 = mono_ns();
  free(payload);
  free(esp);
  free(plain);
  aead_free(&tx);
  aead_free(&rx);
  if (bad) return throw_msg(env, "espBench: a packet failed to open");
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, number(env, (t1 - t0) / count));
  napi_set_element(env, arr, 1, number(env, (t2 - t1) / count));
  return arr;
}

/* kernelPathMtu(addr (4 or 16 bytes)): the kernel's path MTU toward addr (the route's, lowered by
 * ICMP "fragmentation needed" or ICMPv6 Packet Too Big the kernel received about this host's own
 * packets there), or -errno. Read through a UDP socket connected to it (IP_MTU, IPV6_MTU): no
 * packet is sent. A pairwise peer's outside address may be of either family. */
static napi_value kernel_path_mtu(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint8_t *addr;
  int family;
  if (!arg_ip(env, argv[0], &family, &addr)) return NULL;
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return number(env, -errno);
  struct sockaddr_storage to;
  socklen_t tolen;
  memset(&to, 0, sizeof to);
  if (family == 6) {
    struct sockaddr_in6 *t6 = (struct sockaddr_in6 *)&to;
    t6->sin6_family = AF_INET6;
    t6->sin6_port = htons(4500);
    memcpy(&t6->sin6_addr, addr, 16);
    tolen = sizeof *t6;
  } else {
    struct sockaddr_in *t4 = (struct sockaddr_in *)&to;
    t4->sin_family = AF_INET;
    t4->sin_port = htons(4500);
    memcpy(&t4->sin_addr, addr, 4);
    tolen = sizeof *t4;
  }
  int mtu = 0;
  socklen_t len = sizeof mtu;
  int r = connect(fd, (struct sockaddr *)&to, tolen) == 0 &&
                  getsockopt(fd, family == 6 ? IPPROTO_IPV6 : IPPROTO_IP, family == 6 ? IPV6_MTU : IP_MTU, &mtu,
                             &len) == 0
              ? mtu
              : -errno;
  close(fd);
  return number(env, r);
}

/* nowMs(): the clock the datapath stamps last-used times with (CLOCK_REALTIME, as Date.now()). */
static napi_value now_ms_js(napi_env env, napi_callback_info info) {
  (void)info;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return number(env, (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000));
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"executorNew", NULL, executor_new, NULL, NULL, NULL, napi_enumerable, NULL},
      {"installPath", NULL, install_path, NULL, NULL, NULL, napi_enumerable, NULL},
      {"removePath", NULL, remove_path, NULL, NULL, NULL, napi_enumerable, NULL},
      {"installTxSa", NULL, install_tx, NULL, NULL, NULL, napi_enumerable, NULL},
      {"removeTxSa", NULL, remove_tx, NULL, NULL, NULL, napi_enumerable, NULL},
      {"installRxSa", NULL, install_rx, NULL, NULL, NULL, napi_enumerable, NULL},
      {"removeRxSa", NULL, remove_rx, NULL, NULL, NULL, napi_enumerable, NULL},
      {"process", NULL, process, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pathStats", NULL, path_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"allPathStats", NULL, all_path_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"counters", NULL, counters, NULL, NULL, NULL, napi_enumerable, NULL},
      {"txNextSeq", NULL, tx_next_seq, NULL, NULL, NULL, napi_enumerable, NULL},
      {"installTunnelTx", NULL, install_tunnel_tx, NULL, NULL, NULL, napi_enumerable, NULL},
      {"removeTunnelTx", NULL, remove_tunnel_tx, NULL, NULL, NULL, napi_enumerable, NULL},
      {"installTunnelRx", NULL, install_tunnel_rx, NULL, NULL, NULL, napi_enumerable, NULL},
      {"removeTunnelRx", NULL, remove_tunnel_rx, NULL, NULL, NULL, napi_enumerable, NULL},
      {"processUdp", NULL, process_udp, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunnelTxStats", NULL, tunnel_tx_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunnelRxStats", NULL, tunnel_rx_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"datapathOpen", NULL, datapath_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"datapathWrite", NULL, datapath_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"datapathSendLocal", NULL, datapath_send_local, NULL, NULL, NULL, napi_enumerable, NULL},
      {"datapathStats", NULL, datapath_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"datapathSendUdp", NULL, datapath_send_udp, NULL, NULL, NULL, napi_enumerable, NULL},
      {"datapathClose", NULL, datapath_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"datapathRef", NULL, datapath_ref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"vnetFrame", NULL, vnet_frame, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groCoalesce", NULL, gro_coalesce, NULL, NULL, NULL, napi_enumerable, NULL},
      {"espBench", NULL, esp_bench, NULL, NULL, NULL, napi_enumerable, NULL},
      {"executorThreads", NULL, executor_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"usoCoalesce", NULL, uso_coalesce, NULL, NULL, NULL, napi_enumerable, NULL},
      {"espSplit", NULL, esp_split, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ipv6Walk", NULL, ipv6_walk, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nowMs", NULL, now_ms_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"kernelPathMtu", NULL, kernel_path_mtu, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  napi_value v;
  napi_create_uint32(env, C_COUNT, &v);
  napi_set_named_property(env, exports, "counterCount", v);
  napi_create_uint32(env, DP_STAT_COUNT, &v);
  napi_set_named_property(env, exports, "datapathStatCount", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
