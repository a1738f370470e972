package node

import "fmt"

// NamedStatus is a testnet peer's status source, by name.
type NamedStatus struct {
	Name   string
	Source StatusSource
}

// StatusSources are the status sources of the bootstrap node and of every
// member, in Members order. A member's source follows it across Stop and
// Restart (a stopped member reports only its name and role).
func (t *Testnet) StatusSources() []NamedStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []NamedStatus{{Name: "bootstrap", Source: testnetBootstrap{t}}}
	for _, m := range t.members {
		out = append(out, NamedStatus{Name: m.name, Source: testnetMember{t, m}})
	}
	return out
}

type testnetBootstrap struct{ t *Testnet }

func (b testnetBootstrap) Status() Status {
	id, _ := b.t.Genesis.ID()
	return bootstrapStatus(b.t.Bootstrap, id, b.t.Genesis)
}

type testnetMember struct {
	t *Testnet
	m *member
}

func (s testnetMember) Status() Status {
	s.t.mu.Lock()
	n := s.m.node
	s.t.mu.Unlock()
	if n == nil {
		return Status{Role: string(s.m.role), Phase: fmt.Sprintf("%s stopped", s.m.name)}
	}
	return n.Status()
}
