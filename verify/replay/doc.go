// Package replay is proof of training work: a trainer commits to its full
// training state after every inner step of a round, and validators replay a
// step chosen by randomness the trainer could not predict, bit for bit.
//
// The gauntlet (package verify) judges a contribution by its effect on the
// loss; it cannot tell a trainer that did its H assigned steps from one that
// did something cheaper with a similar effect (TestLazyTrainerPassesGauntletNotReplay:
// half the steps at double the learning rate passes the gauntlet in every
// round and fails replay at every step). Replay checks the work itself. It
// rests on the engine's determinism contract (compute/tensor): forward,
// backward and AdamW give the same bits on every ISA path, thread count and
// GOAMD64 level, which TestPathsAgree and TestBuildVariantsAgree check.
//
// # Contract
//
//   - StateHash, Digests.Carry, the Merkle tree, Derive and every encoding are
//     pure functions of their inputs, the same on every machine (SHA-256 over
//     little-endian fields with a domain tag per kind of hash).
//   - Decoders of untrusted bytes (DecodeSnapshot, Checker.Check's response,
//     Commitment.UnmarshalBinary) are strict: every size is checked against
//     what the caller expects, never trusted, so hostile input gives an error
//     wrapping ErrMalformed, never a panic or an allocation it sized. A
//     validator reads at most MaxResponseSize(n) bytes (ReadResponse) and
//     holds one Checker (a model, an AdamW, a compressor and a few vectors).
//   - Check returns nil (pass), a *Failure (wrapping ErrFailed: penalise the
//     trainer) or another error (the validator's own problem: do not).
//   - An honest trainer, recording with Recorder and answering with Respond,
//     always passes (TestHonestNeverFlagged: every step of many rounds).
//
// # Protocol
//
// Round r, trainer P, H inner steps. State_j = (params, AdamW m and v, AdamW
// step, error-feedback buffer ef) after j steps; state_0's params are the
// global theta_r, its other parts what P carried out of its last round.
//
//  1. Train (Recorder). Begin(r, P, state_0); after each optimizer.InnerStep
//     on batch StepBatch(data, P, r, j), Record the state. Compress
//     theta_r - params_H with SparseLoCo as usual, then Commit(ef after
//     compression) gives Commitment{Root, Steps, Carry}: Root over leaves
//     StateHash(state_0) ... StateHash(state_H), Carry = the digests of
//     (m_H, v_H, step_H, ef after compression). The commitment (68 bytes,
//     MarshalBinary) goes into the signed announcement with the blob's CID.
//  2. Challenge (Derive). Once every commitment of the round is out, a public
//     beacon fixes randomness (the hash of the round's manifest or published
//     scores: anything no trainer knew when committing). Each validator V
//     challenges P with probability Policy.Rate, from SHA-256(round, beacon,
//     V, P), at Policy.Checks steps j, each uniform in [0, H) from a hash
//     that also covers P's commitment. Validators choose independently.
//  3. Respond. P sends one Response (format in response.go): state j in full
//     with its Merkle proof, the proof of leaf j+1, the digests of state 0
//     and the params of state H with their proofs.
//  4. Check (Checker.Check), cheapest first: the response decodes for this
//     model and answers the challenge; states j, 0 and H open the root at
//     their leaves; state 0's params are theta_r and, when the validator
//     knows P's previous commitment, state 0's carry is that commitment's
//     Carry (or the reset state: zero m, v, ef and step 0); AdamW steps count
//     up by one per step and ef is the same in every opened state; replaying
//     step j from state j gives committed state j+1; compressing theta_r -
//     params_H with ef is, byte for byte, the published blob; and the end
//     state's carry is the committed Carry.
//
// The carry links rounds: the start of every round must be the verified end
// of the previous one, so a trainer cannot slip an error-feedback buffer of
// its choosing (which would let it publish any contribution it likes while
// stepping honestly) into a round. Node integration must keep that true for
// honest trainers: a round whose work is not announced must not be carried
// forward (restore the pre-round trainer state, or reset).
//
// # What is caught
//
// A trainer that skips a step, uses another learning rate, trains on pages
// not assigned to it, perturbs a step by as little as one ulp, or commits to
// a state it did not reach fails every challenge of a step it faked
// (StepMismatch). A blob that is not the compression of the committed end
// state fails every challenge (BlobMismatch), as do an injected error-feedback
// buffer (WrongStart) and a false carry (WrongCarry). TestAttacksCaught checks
// each, step by step.
//
// # Soundness and the chosen policy
//
// A trainer that faked a fraction f of its steps escapes a challenge of s
// independent uniform checks with probability (1-f)^s (Escape;
// TestCatchRate measures Derive against it). Faults outside the steps (blob,
// carry, start) are caught by every challenge. DefaultPolicy is Rate 0.25,
// s = 1 per validator and round. With V validators a trainer faking fraction
// f every round is caught in a given round with probability
// 1-(1-Rate*f)^V: for V = 4, 68% when f = 1 (a lazy trainer, wrong pages, a
// larger learning rate, a forged blob), 3.3% when it fakes one step of
// H = 30; over 30 rounds the latter is caught with probability 63%, over 100
// rounds 96%.
//
// Why so low a rate suffices: faking a fraction f saves at most f of a
// round's compute, while a caught trainer loses its reward for the round and
// the next ExcludeRounds (DefaultPenalty: 1 + 4 rounds, doubling on repeat).
// The expected reward lost per round is about f*s*Rate*V*(1+ExcludeRounds)
// rounds' worth, which exceeds the saving f for every f as soon as
// s*Rate*V*(1+ExcludeRounds) >= 1: 5 with the defaults and V = 4, 1.25 with a
// single validator. A network wanting faster detection of rare single-step
// faults raises s (cost: one replayed step and one state transfer each).
//
// # Consequences (Ledger)
//
// Every validator applies the same rule: a failed or unanswered challenge
// (NoResponse, from the node's deadline) zeroes the trainer's score for the
// round and keeps its blob out of the manifest (Ledger.Excluded), for that
// round and the next Penalty.ExcludeRounds (doubling for a repeat within
// WatchRounds); and for Penalty.WatchRounds rounds every validator challenges
// the trainer at rate 1 (Ledger.PolicyFor). Every Failure reason carries the
// same penalty: a malformed response is as bad as a wrong one.
//
// # Storage (Recorder)
//
// The trainer keeps state_0 in full and (params, m, v) of every k-th state
// and of state H on disk, written atomically (temp file, fsync, rename) in
// the background while the next steps run, at most one write in flight. It
// answers a challenge from the nearest kept state at or before j,
// recomputing at most k-1 steps, and checks the state it is about to send
// against its log, so a corrupt file is never sent. Rounds beyond
// WithRetainRounds (default 3) are deleted at Begin, and Cleanup deletes
// rounds whose challenge window has closed, so disk use is bounded by
// retain x one round's files.
//
// Measured on the reference model (3.24M parameters, batch 4 x 64, H = 8;
// BenchmarkTrainerRound, BenchmarkChallenge; the machine was shared, so
// figures are CPU-time ratios against interleaved plain runs):
//
//	k     disk/round  recording CPU overhead  Respond (worst j)
//	1     363 MB      +97%                    3.1 steps of CPU
//	4     130 MB      +52%                    up to 3 recomputed steps more
//	H=8    91 MB      +54%                    7.7 steps of CPU
//
// At k = 1 every step also writes 39 MB (copy, write, fsync), which costs
// as much again as the hashing; from k = 4 on the writes hide behind
// training and what remains is hashing. The default is k = 4: a third of
// k = 1's disk, no measurable write cost, and a challenge answered within
// about four steps' time. (The commitment does not depend on k.)
//
// # Costs
//
// The trainer hashes 12n bytes per step (params, m, v) with SHA-256, about
// 1.4 GB per CPU-second with SHA-NI (BLAKE3 in Go measured no faster). The
// step itself costs about 6n*B*T flops, so hashing adds roughly 80/(B*T) of
// a step: a third at the reference batch of 256 tokens (the +52% above also
// counts the start state's hashing and the background writes), 8% at 1024
// tokens per step, 2% at 4096. Networks that want replay cheaply use larger
// batches per inner step.
//
// Per challenge the validator receives 20n bytes plus under 3 KB (state j
// in full, params_H), 65 MB for the reference model, against the trainer's
// 67 KB blob: one state transfer (a full state is 16n bytes). zstd saves
// nothing at its fast levels and 8% at SpeedBetterCompression
// (BenchmarkResponseZstd), so the format is not compressed. The validator's
// CPU per challenge is 2.7 steps (one replayed step, hashing about 30n
// bytes, one SparseLoCo compression and encoding), 0.34 of the trainer's
// 8-step round here; for H = 30 that is about 2.7/30 = 9% of the round, on
// top of which every validator challenges only Policy.Rate of the trainers.
//
// # On the network
//
// Package node wires this in when the genesis sets params.replay
// (node/replay_*.go, docs/verification.md): trainers draw batches with
// DataSpec.RoundBatcher, record, commit and put the commitment and the
// round they carry from into the signed announcement, roll back the
// optimizer and error-feedback state of any round they do not announce, and
// answer challenges as content-addressed blobs; validators take the hash of
// the round's manifest envelope as the beacon, Derive with Ledger.PolicyFor,
// fetch responses with the MaxResponseSize bound, Check in the round's
// slack, and share failures as signed verdicts that every validator records
// in its Ledger. Check's Prev is the latest commitment the validator saw
// from the trainer in [the round it names, this round), ResetCommitment when
// it names none, nil when the validator saw none.
package replay
