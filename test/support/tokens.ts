// A token of the same shape as `token` with another secret: its last `n` characters replaced by
// "A"s, or by "B" and "A"s when it ended in those already (by chance, 1 in 2^(6n-2) for a secret of
// 32 bytes in base64url), so the result never equals the token.
export function tampered(token: string, n = 2): string {
  const as = 'A'.repeat(n);
  return token.slice(0, -n) + (token.endsWith(as) ? `B${as.slice(1)}` : as);
}
