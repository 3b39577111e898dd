/* ESP with AES-256-GCM through node's own OpenSSL (see esp.h for why it is native). */
#include "esp.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "ip.h"

int aead_init(aead *a, const uint8_t key[32], const uint8_t salt[4], int encrypt) {
  return aead_init_key(a, key, 32, salt, encrypt);
}

int aead_init_key(aead *a, const uint8_t *key, size_t keylen, const uint8_t salt[4], int encrypt) {
  if (keylen != 16 && keylen != 32) return -2;
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  a->ctx = NULL;
  memset(a->per_thread, 0, sizeof a->per_thread);
  if (!c) return -1;
  /* Key schedule once per SA; per packet only the nonce is set. GCM's default IV length is 12. */
  if (EVP_CipherInit_ex(c, keylen == 32 ? EVP_aes_256_gcm() : EVP_aes_128_gcm(), NULL, key, NULL, encrypt ? 1 : 0) !=
      1) {
    EVP_CIPHER_CTX_free(c);
    return -1;
  }
  memcpy(a->salt, salt, 4);
  a->encrypt = encrypt;
  a->ctx = c;
  return 0;
}

void aead_free(aead *a) {
  for (int i = 0; i <= AEAD_THREADS; i++) {
    if (a->per_thread[i]) EVP_CIPHER_CTX_free((EVP_CIPHER_CTX *)a->per_thread[i]);
    a->per_thread[i] = NULL;
  }
  if (a->ctx) EVP_CIPHER_CTX_free((EVP_CIPHER_CTX *)a->ctx);
  a->ctx = NULL;
}

/* ---- thread slots: which of an SA's contexts a thread uses ---- */

static atomic_uint slots_taken; /* bit i: slot i held by a live thread */
static _Thread_local int my_slot = -1;
static pthread_key_t slot_key;
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;
/* Threads beyond AEAD_THREADS share the last context of every SA, one at a time. */
static pthread_mutex_t shared_slot = PTHREAD_MUTEX_INITIALIZER;

/* At thread exit: the slot is free for the next thread (the contexts it made stay with their SAs and
 * serve the next holder: they are copies of the same keys). */
static void slot_release(void *v) {
  int slot = (int)(intptr_t)v - 1;
  if (slot >= 0 && slot < AEAD_THREADS) atomic_fetch_and(&slots_taken, ~(1u << slot));
}

static void slot_key_make(void) { (void)pthread_key_create(&slot_key, slot_release); }

int aead_thread_slot(void) {
  if (my_slot >= 0) return my_slot;
  pthread_once(&slot_once, slot_key_make);
  unsigned taken = atomic_load(&slots_taken);
  for (;;) {
    unsigned free_bits = ~taken;
    if (!free_bits) return my_slot = AEAD_THREADS;
    int slot = __builtin_ctz(free_bits);
    if (atomic_compare_exchange_weak(&slots_taken, &taken, taken | (1u << slot))) {
      (void)pthread_setspecific(slot_key, (void *)(intptr_t)(slot + 1));
      return my_slot = slot;
    }
  }
}

/* The calling thread's context for `a`, made from the template on first use; NULL when out of memory.
 * For a thread without a slot of its own, shared_slot is held on return (cipher_done releases it). */
static EVP_CIPHER_CTX *cipher_of(aead *a) {
  int slot = aead_thread_slot();
  if (slot == AEAD_THREADS) pthread_mutex_lock(&shared_slot);
  EVP_CIPHER_CTX *c = a->per_thread[slot];
  if (!c && a->ctx) {
    /* Only this thread writes this slot of this SA; the template is only ever read. */
    c = EVP_CIPHER_CTX_new();
    if (c && EVP_CIPHER_CTX_copy(c, (const EVP_CIPHER_CTX *)a->ctx) != 1) {
      EVP_CIPHER_CTX_free(c);
      c = NULL;
    }
    a->per_thread[slot] = c;
  }
  if (!c && slot == AEAD_THREADS) pthread_mutex_unlock(&shared_slot);
  return c;
}

static void cipher_done(void) {
  if (my_slot == AEAD_THREADS) pthread_mutex_unlock(&shared_slot);
}

static void make_nonce(const aead *a, const uint8_t *iv, uint8_t nonce[12]) {
  memcpy(nonce, a->salt, 4);
  memcpy(nonce + 4, iv, 8);
}

/* The AAD: SPI || seq high || seq low (extended sequence numbers, the high half from the IV) or
 * SPI || seq (32 bits): the first 8 bytes of the header. Returns its length. */
static size_t make_aad(const uint8_t *hdr, int aad, uint8_t out[12]) {
  memcpy(out, hdr, 4);
  if (aad == ESP_AAD_SEQ32) {
    memcpy(out + 4, hdr + 4, 4);
    return 8;
  }
  memcpy(out + 4, hdr + 8, 8);
  return 12;
}

static size_t seal(EVP_CIPHER_CTX *c, const aead *a, uint32_t spi, uint64_t seq, int aad_form, const uint8_t *p1,
                   size_t l1, const uint8_t *p2, size_t l2, uint8_t nh, uint8_t *out) {
  size_t plen = l1 + l2;
  size_t pad = (4 - (plen + 2) % 4) % 4;
  uint8_t trailer[5];
  uint8_t aad[12];
  uint8_t nonce[12];
  int n = 0;
  size_t ctlen = plen + pad + 2;
  if (plen > 0x7fff0000u) return 0;

  /* IV: the sequence number as a 64-bit counter, never repeated under the key. */
  wr32(out, spi);
  wr32(out + 4, (uint32_t)seq);
  wr64(out + 8, seq);
  for (size_t i = 0; i < pad; i++) trailer[i] = (uint8_t)(i + 1);
  trailer[pad] = (uint8_t)pad;
  trailer[pad + 1] = nh;
  size_t aadlen = make_aad(out, aad_form, aad);
  make_nonce(a, out + 8, nonce);

  uint8_t *ct = out + ESP_HDR_LEN;
  if (EVP_EncryptInit_ex(c, NULL, NULL, NULL, nonce) != 1) return 0;
  if (EVP_EncryptUpdate(c, NULL, &n, aad, (int)aadlen) != 1) return 0;
  if (l1 && EVP_EncryptUpdate(c, ct, &n, p1, (int)l1) != 1) return 0;
  if (l2 && EVP_EncryptUpdate(c, ct + l1, &n, p2, (int)l2) != 1) return 0;
  if (EVP_EncryptUpdate(c, ct + plen, &n, trailer, (int)(pad + 2)) != 1) return 0;
  if (EVP_EncryptFinal_ex(c, ct + ctlen, &n) != 1) return 0;
  if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, ESP_ICV_LEN, ct + ctlen) != 1) return 0;
  return ESP_HDR_LEN + ctlen + ESP_ICV_LEN;
}

size_t esp_seal(aead *a, uint32_t spi, uint64_t seq, int aad_form, const uint8_t *p1, size_t l1, const uint8_t *p2,
                size_t l2, uint8_t nh, uint8_t *out) {
  EVP_CIPHER_CTX *c = cipher_of(a);
  if (!c) return 0;
  size_t n = seal(c, a, spi, seq, aad_form, p1, l1, p2, l2, nh, out);
  cipher_done();
  return n;
}

int esp_parse(const uint8_t *esp, size_t len, uint32_t *spi, uint64_t *seq) {
  if (len < ESP_HDR_LEN + 4 + ESP_ICV_LEN) return -1;
  if ((len - ESP_HDR_LEN - ESP_ICV_LEN) % 4 != 0) return -1;
  uint64_t s = rd64(esp + 8);
  if (s == 0 || (uint32_t)s != rd32(esp + 4)) return -1;
  *spi = rd32(esp);
  *seq = s;
  return 0;
}

static int open_with(EVP_CIPHER_CTX *c, const aead *a, const uint8_t *esp, size_t len, int aad_form, uint8_t *out,
                     size_t *plen, uint8_t *nh) {
  size_t ctlen = len - ESP_HDR_LEN - ESP_ICV_LEN;
  uint8_t aad[12];
  uint8_t nonce[12];
  uint8_t tag[ESP_ICV_LEN];
  int n = 0;
  size_t aadlen = make_aad(esp, aad_form, aad);
  make_nonce(a, esp + 8, nonce); /* the IV as it came: peers derive it as they like */
  memcpy(tag, esp + ESP_HDR_LEN + ctlen, ESP_ICV_LEN);
  if (EVP_DecryptInit_ex(c, NULL, NULL, NULL, nonce) != 1) return -1;
  if (EVP_DecryptUpdate(c, NULL, &n, aad, (int)aadlen) != 1) return -1;
  if (EVP_DecryptUpdate(c, out, &n, esp + ESP_HDR_LEN, (int)ctlen) != 1) return -1;
  if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, ESP_ICV_LEN, tag) != 1) return -1;
  if (EVP_DecryptFinal_ex(c, out + ctlen, &n) != 1) return -1;
  /* Trailer: padding 1, 2, 3, ... then pad length and next header (RFC 4303 section 2.4). */
  size_t padlen = out[ctlen - 2];
  if (padlen + 2 > ctlen) return -1;
  size_t p = ctlen - 2 - padlen;
  for (size_t i = 0; i < padlen; i++)
    if (out[p + i] != (uint8_t)(i + 1)) return -1;
  *plen = p;
  *nh = out[ctlen - 1];
  return 0;
}

int esp_open(aead *a, const uint8_t *esp, size_t len, int aad_form, uint8_t *out, size_t *plen, uint8_t *nh) {
  EVP_CIPHER_CTX *c = cipher_of(a);
  if (!c) return -1;
  int r = open_with(c, a, esp, len, aad_form, out, plen, nh);
  cipher_done();
  return r;
}
