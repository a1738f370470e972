// Package grail proves and verifies that a peer generated text with a given
// model (GRAIL-style verifiable inference).
//
// # What a proof shows
//
// A Proof binds a model state hash, the public randomness (beacon), the
// prover's ed25519 key, the sampling parameters, the prompt, the generated
// tokens and one hidden-state sketch per generated token, and is signed by
// the prover. Verify accepts it when (1) the signature, model hash, beacon
// and any pinned peer, prompt or sampling match; (2) at k challenged
// positions the sketch of the verifier's own hidden state is within
// tolerance of the committed one; (3) at every position the committed token
// is the one the sampler draws from the verifier's logits with the committed
// draw u_t (up to a logit tolerance, see below). Together: the tokens are
// the model's own output under randomness the prover did not choose, and the
// hidden states behind them are the model's (not a cheaper or different
// model's).
//
// # Protocol
//
//   - seed = SHA-256("trinity/grail/v1/seed" || header || prompt), where the
//     header holds the model and config hashes, beacon, peer key, vocabulary,
//     sampling parameters and lengths: everything the prover declares before
//     generating.
//   - For generated token j (sequence position P-1+j, whose logits it was
//     drawn from): r_j in [-127,127]^C and u_j in [0,1) from SHA-256 in
//     counter mode under the seed (fixed forever by this package, unlike
//     math/rand). Each position has its own r_j, so positions are independent
//     checks.
//   - Hidden state: the output of the last transformer block (residual
//     stream before ln_f, model.GPT.Hidden and Session.Step's hidden), as in
//     GRAIL: it depends on every block's weights and every earlier token. The
//     final LayerNorm and the tied head are covered by the token check.
//   - Sketch s_j = round(2^16 * <h_j, r_j>) mod 2^24, the dot product in
//     float64 in index order (every product is exact). Three bytes.
//   - Token j = inverse-CDF draw with u_j from softmax(logits/T) over the
//     top-k (index order; greedy when T = 0).
//   - Commitment = SHA-256 of the proof body (tokens and sketches included).
//     Challenged positions: k = 32 distinct positions from SHA-256(challenge
//     randomness || commitment), where the challenge randomness is a beacon
//     published after the proof was committed (Expect.Challenge) or, when the
//     network has none, the proof's own beacon (non-interactive).
//   - Signature: ed25519 over the body; Encode writes a fixed 153-byte header,
//     the tokens (1 byte each at vocabulary <= 256, 2 or 3 bytes above), 3
//     bytes per sketch and the 64-byte signature: 4 bytes per generated token
//     plus 217 bytes and the prompt. Decode is strict (exact length, no
//     trailing bytes, every field range-checked before allocating) and
//     canonical (Encode(Decode(b)) == b; fuzzed).
//
// # Tolerances and why
//
// trinity's engine gives the same bits on every thread count, kernel path,
// batch composition, and in KV-cache decoding versus a full Forward; the
// experiment measured zero differing bits over 1.4 million compared hidden
// and logit values and zero sketch distance over 9,000 verifications of
// 1,000 honest proofs. The sketch tolerance is therefore near-exact, sized
// only to absorb rounding noise of a backend that reorders float32 sums:
//
//	tol_j = 64 + ceil(2^-20 * 2^16 * sum_i |r_ji h_ji|)   (sketch units)
//
// i.e. 2^-20 (about 1e-6) of the L1 mass of the projection plus 2^-10 in
// <h, r> units (about 70-250 units on the experiment's model). Multiplying
// every weight by (1 + 1e-7 N(0,1)), about one float32 ulp of noise, moves
// sketches by at most 1.6% of the tolerance, and 1e-6 by at most 9% (an 11x
// margin), while relative weight noise of 3e-5 already fails two thirds of
// the positions and every proof (Experiment, 50 trials: 1e-5 is caught in
// 46 of 50, 3e-6 and below pass as numerically the same model).
//
// The token check accepts a token if some logits within
// DefaultLogitTolerance (1e-3, max norm) of the verifier's would make the
// sampler draw it with u_j. If the verifier's own replay draws another
// token (which needs u_j within about 1e-3 of a CDF boundary), the token
// must also have probability at least DefaultFloor (1e-9), which bounds
// honest false rejections on a non-bit-identical backend by Vocab*1e-9 per
// token. The token check alone misses small weight perturbations (it caught
// 0.3% of tokens at relative noise 1e-3): the sketches are what binds the
// exact weights.
//
// # Soundness
//
// Fix a forged hidden state h' = h + d at position j, chosen without
// knowledge of r_j. Conditioning on all r_ji but the coordinate i with the
// largest |d_i|, the sketch difference passes only when r_ji d_i falls into
// a window of width (2 tol + 2)/2^16 (mod 2^24/2^16), so
//
//	Pr[pass at one position] <= ((2 tol + 2)/(2^16 |d_i|) + 1)/255 * (number of windows hit)
//
// (PositionBound; checked against simulation in the tests). With tol = 244
// units, the largest of the honest sweep: |d|_inf = 1e-2 gives 0.0069 per
// position and 6e-70 for k = 32 independent positions; 1e-3 gives 0.033 and
// 5e-48; 1e-4 gives 0.30 and 1e-17. A sketch guessed at random passes with
// (2 tol + 1)/2^24 = 2.9e-5 per position, 7e-146 for k = 32. A substituted
// or edited token is caught by the token check, which runs at every
// position; a wrong model is caught at every position, so challenging a
// subset loses nothing against it.
//
// # What a cheater can grind
//
//   - The beacon is public and fixed by the network, so the prover cannot
//     choose r_j or u_j; it can vary only what the seed also hashes (prompt,
//     sampling parameters, length) when it picks them itself. Each variation
//     is a fresh independent trial against the bound above, so 2^40 trials
//     against 3e-20 still fail. Verifiers that assign prompts or sampling pin
//     them with Expect.
//   - The prover knows r_j when it commits (it must, to compute s_j). The
//     bound holds for forgeries fixed independently of r_j; a forgery that
//     adapts to r_j needs <h_j, r_j> for the true h_j, which is the true
//     model's computation. Computing the true output some other way (e.g. a
//     cheap draft model checked by one batched Forward of the true model) is
//     allowed: the output is then exactly the model's.
//   - Without a later challenge beacon the prover can compute the challenged
//     positions itself and re-grind its commitment until they miss the
//     positions it forged; that helps only a forgery that is honest at most
//     positions, and such local edits are caught by the all-position token
//     check. Networks should still pass a beacon published after the upload
//     deadline as Expect.Challenge, as GRAIL does.
//   - Replaying an old proof under new randomness changes seed, r_j and u_j:
//     committed sketches fail; re-deriving them from cached hidden states
//     passes the sketch check but the tokens no longer match the new draws
//     (greedy outputs do not depend on draws: a greedy replay with re-derived
//     sketches is a correct proof of the same, correct output).
//
// # Cost
//
// Per generated token the prover derives r_j (a few SHA-256 blocks), u_j and
// a C-long dot product: 5.75 us at C = 256, 0.18% of proving time on the
// reference model (1.5-3.6 ms per decoded token on this busy 2-core
// machine). The verifier runs one teacher-forced Forward over the sequence
// (GEMM-shaped, far cheaper than token-by-token decoding) plus O(V log V)
// per token for the token check: 33-39 ms for 256 tokens, 4-8% of the
// generation time. A proof is 4 bytes per generated token plus 217 bytes
// and the prompt (4.85 bytes per token at 256 tokens).
package grail
