package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/trinity-net/trinity/node"
)

// adversaryNames lists the adversary modes of role (all when role is "").
func adversaryNames(role ...node.Role) string {
	r := node.Role("")
	if len(role) > 0 {
		r = role[0]
	}
	var names []string
	for _, a := range node.AdversaryKinds(r) {
		names = append(names, string(a))
	}
	return strings.Join(names, ", ")
}

// parseAdversaries reads MODE[:N],... into one entry per adversarial peer.
func parseAdversaries(s string) ([]node.Adversary, error) {
	var out []node.Adversary
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		name, count, _ := strings.Cut(f, ":")
		a, err := node.ParseAdversary(name)
		if err != nil {
			return nil, err
		}
		k := 1
		if count != "" {
			if k, err = strconv.Atoi(count); err != nil || k < 1 || k > 64 {
				return nil, fmt.Errorf("--adversaries %q: count must be 1-64", f)
			}
		}
		for range k {
			out = append(out, a)
		}
	}
	return out, nil
}
