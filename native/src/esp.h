/* ESP (RFC 4303) with AES-256-GCM (RFC 4106) through OpenSSL's EVP API, using the symbols the node
 * binary exports (no separate libcrypto). Native because node:crypto cannot re-IV a GCM cipher:
 * every packet pays object creation and a key schedule (~4.4 us at 64 B here) while one reused
 * EVP_CIPHER_CTX per SA costs ~0.38 us (dataplane.md). */
#ifndef KASANE_ESP_H
#define KASANE_ESP_H

#include <stddef.h>
#include <stdint.h>

#define ESP_HDR_LEN 16 /* SPI (4) | seq low 32 (4) | IV = full 64-bit seq (8) */
#define ESP_ICV_LEN 16
#define ESP_OVERHEAD_MAX 37 /* header + ICV + pad length + next header + up to 3 padding bytes */

/* Threads that seal or open with one SA at the same time, each with a cipher context of its own
 * (an EVP_CIPHER_CTX is not thread-safe); threads beyond them share one more context, in turns. */
#define AEAD_THREADS 32

typedef struct {
  void *ctx; /* EVP_CIPHER_CTX *, keyed once: the template the threads' contexts are copied from */
  void *per_thread[AEAD_THREADS + 1]; /* made on a thread's first packet; only the IV changes per packet */
  uint8_t salt[4];
  int encrypt;
} aead;

/* The calling thread's slot, 0..AEAD_THREADS - 1 (held until the thread ends), or AEAD_THREADS when
 * every slot is taken (such threads take turns on one shared context). */
int aead_thread_slot(void);

/* 0 on success, -1 if OpenSSL refused. */
int aead_init(aead *a, const uint8_t key[32], const uint8_t salt[4], int encrypt);
/* The same for a 16-byte (AES-128-GCM) or 32-byte (AES-256-GCM) key; -2 for another length. */
int aead_init_key(aead *a, const uint8_t *key, size_t keylen, const uint8_t salt[4], int encrypt);
void aead_free(aead *a);

/* ESP length for an IP payload of plen bytes: header, ciphertext (payload, padding to a multiple of 4
 * with the two trailer bytes), ICV. */
static inline size_t esp_sealed_len(size_t plen) {
  size_t pad = (4 - (plen + 2) % 4) % 4;
  return ESP_HDR_LEN + plen + pad + 2 + ESP_ICV_LEN;
}

/* The AAD of RFC 4106 section 5: group SAs use extended sequence numbers (SPI || seq high || seq
 * low, the whole number carried in the IV); IKE Child SAs (tunnel mode) 32-bit ones (SPI || seq). */
enum { ESP_AAD_ESN = 0, ESP_AAD_SEQ32 = 1 };

/* esp_seal and esp_open may run in several threads at once on one aead (each with its own context),
 * not while aead_free runs. */

/* Writes the ESP packet for a payload in two parts (p1 then p2, e.g. an IP header and data; l2 may
 * be 0), next header nh, at out (esp_sealed_len(l1 + l2) bytes). The IV is seq as a 64-bit counter.
 * Neither part may overlap out. Returns the length, or 0 if OpenSSL failed. */
size_t esp_seal(aead *a, uint32_t spi, uint64_t seq, int aad_form, const uint8_t *p1, size_t l1, const uint8_t *p2,
                size_t l2, uint8_t nh, uint8_t *out);

/* Header checks that need no key. Returns 0 and sets spi/seq, or -1 when malformed: shorter than
 * header + 4 bytes of ciphertext + ICV, ciphertext not a multiple of 4, sequence 0, or the IV's low
 * 32 bits differing from the header's sequence number. */
int esp_parse(const uint8_t *esp, size_t len, uint32_t *spi, uint64_t *seq);

/* Verifies and decrypts an ESP packet of at least ESP_HDR_LEN + 4 + ESP_ICV_LEN bytes whose
 * ciphertext is a multiple of 4 (esp_parse checks this for group ESP). Writes the inner payload at
 * out (at most len - ESP_HDR_LEN - ESP_ICV_LEN bytes), sets *plen and *nh. Returns 0, or -1 when the
 * ICV does not verify or the padding is wrong. */
int esp_open(aead *a, const uint8_t *esp, size_t len, int aad_form, uint8_t *out, size_t *plen, uint8_t *nh);

/* The smallest tunnel ESP packet: header, 4 bytes of ciphertext, ICV. */
#define ESP_TUNNEL_MIN (ESP_HDR_LEN + 4 + ESP_ICV_LEN)

#endif
