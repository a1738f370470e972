package node

import (
	"fmt"
	"path/filepath"
)

// AddRollout adds and starts a rollout peer to an RL-stage testnet, with
// extra options (e.g. WithRolloutTamper for a dishonest one).
func (t *Testnet) AddRollout(opts ...Option) (Member, error) {
	if t.Genesis.stage() != StageRL {
		return Member{}, fmt.Errorf("node: testnet of stage %q has no rollout peers", t.Genesis.stage())
	}
	return t.addMember(RoleRollout, opts...)
}

// addMember adds and starts the next peer of a role (named role-i).
func (t *Testnet) addMember(role Role, opts ...Option) (Member, error) {
	t.mu.Lock()
	i := 0
	for _, m := range t.members {
		if m.role == role {
			i++
		}
	}
	name := fmt.Sprintf("%s-%d", role, i)
	m := &member{name: name, role: role, dir: filepath.Join(t.cfg.Dir, name), opts: opts}
	t.members = append(t.members, m)
	t.mu.Unlock()
	if err := t.start(m); err != nil {
		return Member{}, err
	}
	return t.member(m), nil
}
