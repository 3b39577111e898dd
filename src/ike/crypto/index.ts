// IKEv2 cryptography: transforms, key schedule, DH, SK/SKF AEAD, AUTH, NAT-D and cookies.
// Pure and sans-I/O: randomness is injected, no clocks; wire parsing is src/ike/message's job.

export * from './transforms.js';
export * from './prf.js';
export * from './keys.js';
export * from './dh.js';
export * from './aead.js';
export * from './auth.js';
export * from './signature.js';
export * from './natd.js';
export * from './cookie.js';
