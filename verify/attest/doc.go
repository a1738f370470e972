// Package attest checks a provider's claimed matrix-multiply throughput with
// a challenge it cannot fake, and carries the resulting figures in signed
// capacity records.
//
// # Protocol
//
//  1. Challenge (verifier -> prover, 213 bytes, signed by the verifier):
//     network, a fresh 32-byte nonce, a size n drawn uniformly from the
//     verifier's range (default [1024, 2048]), both keys, issue time and a
//     deadline of rtt + 2n^3 / (floor rate) (default 2 s + the time at
//     1 GFLOP/s), far above a round trip. Only the nonce travels: both sides
//     generate A and B (n x n, integers in [-7, 7]) from it, one ChaCha8
//     stream per row keyed by SHA-256(domain | nonce | n | matrix | row).
//  2. Commitment (prover -> verifier, 193 bytes, signed by the prover over
//     the challenge's hash): the Merkle root over the rows of C = A·B. The
//     verifier's clock runs from making the challenge to receiving this, and
//     the attested rate is 2n^3 / that time: the prover's generation, GEMM
//     and hashing plus one round trip, so it errs low, never high.
//  3. Openings. Full mode (default): the prover sends every row of C in
//     range chunks of at most 4 MiB, untimed; the verifier rebuilds the root
//     and runs Freivalds' check with secret vectors drawn after the
//     commitment, which never leave it. Spot mode (WithSpotRows(s)): the
//     verifier picks s distinct rows after the commitment; the prover sends
//     them with Merkle proofs, and the verifier recomputes each exactly.
//  4. Attestation (signed by the verifier): verdict, n, elapsed time,
//     claimed and attested GFLOP/s, soundness, expiry.
//
// # Why these choices
//
// Exactness. |C_ij| <= 49n < 2^24 for n <= 4096, so every partial sum of a
// float32 FMA chain is an exactly representable integer: any summation
// order, any SIMD width or a GPU gives the same C, and the check is exact,
// in integers, with no tolerance to exploit.
//
// Freivalds needs all of C. Checking C·r == A·(B·r) costs O(n^2) only when
// the verifier holds C. If the prover computed C·r itself after r were
// revealed, nothing would tie that vector to the committed rows except the
// rows the verifier happened to open: a prover could commit to garbage and
// answer with A·(B·r), which costs O(n^2). So r is never revealed, and in
// full mode the whole product moves after the commitment. The commitment
// binds it: opening rows that match a root fixed before the product was
// known requires having computed the product by then (or a SHA-256
// collision).
//
// Soundness, full mode: a C that differs from A·B anywhere, even in one
// entry, passes with probability at most 2^-min(b, 64-v) per vector (b bits
// per entry of r, v = floor(log2(98n)); see freivalds.go), which is 2^-47
// for n <= 2048 and 2^-46 for n <= 4096 with the default b = 64: one vector
// meets the 2^-40 target. With 0/1 vectors the bound is 1/2 per vector and
// 40 vectors are needed. Entries beyond ±49n are rejected first.
//
// Soundness, spot mode: a prover whose committed rows are wrong in a
// fraction f of rows escapes s distinct spot rows with probability at most
// (1-f)^s (sampling without replacement only lowers it): s = 64 catches
// f = 5% with probability 1 - 0.95^64 = 96%, f = 10% with 99.9%. One wrong
// entry in one row is caught only with probability s/n: use full mode when
// every entry must be right.
//
// Bytes moved per attestation (n = 2048): challenge 213, commitment 193;
// full mode: C as zigzag varints, measured 1.95 bytes per entry for honest
// products (8.2 MB against 16.8 MB as float32), in four openings sized
// for the worst case of 3 bytes per entry under 4 MiB each; spot mode with s = 64: about 64 x (4 KB row + 11 x 32 B proof) =
// 0.3 MB.
//
// Costs (n = 2048): the multiply is 17.2 GFLOP; Freivalds is 3n^2
// multiply-adds per vector; the verifier also generates A and B and hashes
// C (16.8 MB of SHA-256). See the benchmarks for measured times.
//
// Downgrade rule. Verdicts: Pass (attested >= claim/2), Overclaim
// (attested < claim/2), Wrong (product, opening or proof wrong, or
// committed but not opened), NoResponse (no valid commitment before the
// deadline). Book applies them: a Wrong marks the provider faulty
// (effective capacity 0) until that attestation expires; otherwise the
// median over attesters of their latest attested rate (NoResponse = 0) is
// compared with the current claim, and below claim/2 the provider is
// downgraded to the median (tokens/s scaled by the same ratio). The
// deadline follows the network's floor rate, not the claim, so an
// over-claimer is measured and downgraded, not merely timed out.
//
// What the figure measures: exact multiplication of small-integer
// matrices. The entries fit int8, so a prover may use integer units (x86
// VNNI or AMX, GPU int8 tensor cores) that outrun its float32 FMA rate; the
// attested rate then overstates its float32 training speed. The training
// tokens/s claim is not attested by this challenge: leased training steps
// are checked by replay (the gauntlet), inference by GRAIL.
//
// Limits of what is attested: "delivered at this endpoint" — a provider
// may relay a challenge to other machines; attestation rates the endpoint,
// and jobs it runs are verified on their own (GRAIL, the gauntlet).
// Re-challenges are unannounced (the verifier decides when), nonces are
// fresh and remembered by the prover, and nothing rests on secrecy of the
// code.
//
// Records. CapacityRecord {version, network, peer key, seq, hw.Profile,
// claimed GEMM GFLOP/s and training tokens/s with the model config hash,
// up to 16 attestations with their attesters' signatures, issued-at,
// expires-at (at most 24 h later)} is signed by the peer with Ed25519 and
// provided on the DHT under RecordKey. All messages have versioned,
// canonical binary encodings with strict decoders (fuzzed) and per-type
// signature domains.
package attest
