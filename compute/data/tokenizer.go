package data

import "unicode/utf8"

// Tokenizer maps text to token IDs in [0, Vocab()) and back.
type Tokenizer interface {
	Vocab() int
	Encode(s string) []int32
	Decode(tokens []int32) string
}

// ByteTokenizer is the default tokenizer: one token per byte, vocabulary
// 256. It needs no training data, round-trips any byte string exactly, and
// makes per-token losses directly comparable to entropies per byte.
type ByteTokenizer struct{}

var _ Tokenizer = ByteTokenizer{}

// Vocab is 256.
func (ByteTokenizer) Vocab() int { return 256 }

// Encode returns the bytes of s as tokens.
func (t ByteTokenizer) Encode(s string) []int32 {
	out := make([]int32, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = int32(s[i])
	}
	return out
}

// EncodeBytes returns the bytes of b as tokens.
func (ByteTokenizer) EncodeBytes(b []byte) []int32 {
	out := make([]int32, len(b))
	for i, c := range b {
		out[i] = int32(c)
	}
	return out
}

// Decode returns the bytes the tokens stand for. A token outside [0, 256)
// cannot come from this tokenizer; it decodes to U+FFFD so that printing a
// model's output never fails.
func (ByteTokenizer) Decode(tokens []int32) string {
	out := make([]byte, 0, len(tokens))
	for _, t := range tokens {
		if t < 0 || t > 255 {
			out = utf8.AppendRune(out, utf8.RuneError)
			continue
		}
		out = append(out, byte(t))
	}
	return string(out)
}
