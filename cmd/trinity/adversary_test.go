package main

import (
	"slices"
	"testing"

	"github.com/trinity-net/trinity/node"
)

func TestParseAdversaries(t *testing.T) {
	tests := []struct {
		in   string
		want []node.Adversary
		bad  bool
	}{
		{"", nil, false},
		{"copier", []node.Adversary{node.AdversaryCopier}, false},
		{"copier, poisoner:2", []node.Adversary{node.AdversaryCopier, node.AdversaryPoisoner, node.AdversaryPoisoner}, false},
		{"dishonest-validator", []node.Adversary{node.AdversaryValidator}, false},
		{"nobody", nil, true},
		{"copier:0", nil, true},
		{"copier:x", nil, true},
		{"copier:65", nil, true},
	}
	for _, tc := range tests {
		got, err := parseAdversaries(tc.in)
		if (err != nil) != tc.bad || !slices.Equal(got, tc.want) {
			t.Errorf("parseAdversaries(%q) = %v, %v", tc.in, got, err)
		}
	}
	if n := trainerAdversaries([]node.Adversary{node.AdversaryCopier, node.AdversaryValidator}); n != 1 {
		t.Errorf("trainer adversaries: %d", n)
	}
}
