// Package data turns text into the token streams trinity trains on and
// evaluates with: a byte-level tokenizer, text and llm.c token-shard
// loading, a generated default corpus with a known entropy, arithmetic
// tasks with checkable answers, the deterministic assignment of training
// pages to peers, and batchers that cut pages into (input, target) windows.
//
// # Contract
//
//   - Everything derived from a seed (the default corpus, arithmetic task
//     lists, page assignments, batches) is a pure function of its inputs,
//     computed with integer arithmetic and SHA-256 or a generator defined in
//     this package, so every peer on every machine gets the same bytes.
//   - Decoders of files (token shards, task files) refuse malformed,
//     truncated or out-of-range input with an error naming the problem.
//   - LoadText accepts any bytes: binary data is not refused, it simply
//     trains the byte-level model on those bytes.
//   - Batchers do not allocate per batch.
//
// # The default corpus
//
// DefaultCorpus generates text from a fixed stochastic source (Source), so
// that a network needs no data files and so that the best possible loss on
// its data is known exactly. The source emits independent lines. With
// probability 1/3 a line is an arithmetic problem such as "37+58=95\n",
// "64-18=46\n" or "7*8=56\n" (operation + with weight 2, - and * with
// weight 1; operands uniform over the training split of that operation's
// problems); otherwise it is a sentence from a small grammar of made-up
// words, e.g.
//
//	The silver snorp glows beside the quom.
//	Zorba shivers rarely, but every tavish sleeps often, and a velvet wimble glows.
//	A pale lurm hides her quom.
//
// Sentences come from a probabilistic deterministic automaton (grammar.go):
// each state is a slot of the sentence template (subject, verb, object,
// modifier, conjunction, ...) together with the previous content word; each
// arc emits a word with its following delimiter (" ", ", ", ".\n") with an
// integer weight, and the weights of a word depend on the previous content
// word (a per-word permutation of a Zipf-like table), so the text has
// word-level structure to learn. A clause is followed by ", and" (or
// "but", "so", "while") and another clause with probability 0.29, so
// sentences have no fixed maximum length.
//
// # Its entropy, exactly
//
// Within any state no arc label is a prefix of another (checked when the
// automaton is built), and every line ends with its only '\n', which
// arithmetic lines (starting with a digit) and sentences (starting with a
// capital letter) share with nothing else. The byte stream therefore
// determines the sequence of lines, each line's type, and each sentence's
// path through the automaton: no information is lost from the choices to
// the bytes. Hence, in nats,
//
//	H(line) = H(type) + (1/3) H(arith) + (2/3) H(sentence)
//	H(arith) = sum_op p(op) (-log p(op) + log n(op))    (the answer is a function of the question: no entropy)
//	H(sentence) = sum_s E[visits of s] H(arc choice at s)
//
// the last by the chain rule along the path. Expected visits are propagated
// forward from the start state, one arc per step; the series converges
// geometrically (each clause ends the sentence with probability 0.71) and
// is summed until the probability of an unfinished sentence is
// below 1e-18, beyond which float64 sums do not change. The mean line length
// E[len] is computed the same way. Lines being independent and identically
// distributed, the renewal reward theorem gives the entropy rate of the
// byte stream:
//
//	EntropyPerByte = H(line) / E[len]
//	               = 13.5532 nats / 24.6001 bytes = 0.55094 nats/byte (0.7948 bits/byte)
//
// (sentences: 14.894 nats over 32.60 bytes; arithmetic lines: 8.963 nats
// over 8.61 bytes). This is the expected loss per byte of a predictor that
// uses the source's own conditional probabilities, and by Gibbs' inequality
// no predictor does better on average. Tests check it against the exact log
// likelihood of a long generated sample (Source.LogProb).
//
// The automaton's state is always determined by the last three words and
// the current partial word (under 40 bytes; 10 for arithmetic lines), so a
// model with a context of T >= 40 bytes can reach this bound everywhere
// except at the first positions of a window that starts inside a line,
// which lack that context. The loss floor for training windows of T bytes
// is therefore a little above EntropyPerByte, by a margin that shrinks as
// T grows.
//
// # Arithmetic tasks
//
// The arithmetic problem space (a+b and a-b with a >= b for operands in
// [0, 99], a*b for operands in [0, 12]) is split once, by a hash of each
// prompt, into a training split, the only problems the corpus ever
// contains, and a held-out split of about 10% for measuring generalisation.
// ArithmeticTasks draws tasks from either; ExtractAnswer and Task.Check
// define how a completion is graded; ReadTasks loads user tasks from JSON
// Lines.
//
// # Datasets
//
// A Spec (for a network's genesis) names the default corpus, a text file or
// folder, or llm.c token shards, a validation fraction and optionally the
// hash of the token sequence; Load turns it into a Dataset, whose training
// split is cut into pages. AssignPages gives each peer its pages for a
// round from SHA-256 of (seed, peer ID, round); a Batcher turns pages into
// (input, target) batches, and NewValidationBatcher gives every peer the
// same validation windows.
package data
