package p2p

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func TestIdentityCreatedOnceWithMode0600(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("identity mode %04o, want 0600", st.Mode().Perm())
	}
	k2, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("second start produced a different key")
	}
	if k1.Type() != crypto.Ed25519 {
		t.Fatalf("key type %v", k1.Type())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("data dir holds %d entries, want only the key (temp file left?)", len(ents))
	}
}

func TestIdentityRefusesBadFiles(t *testing.T) {
	rsa, _, err := crypto.GenerateECDSAKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	ecdsaBytes, err := crypto.MarshalPrivateKey(rsa)
	if err != nil {
		t.Fatal(err)
	}
	good, _, _ := crypto.GenerateEd25519Key(nil)
	goodBytes, _ := crypto.MarshalPrivateKey(good)
	cases := []struct {
		name    string
		data    []byte
		mode    os.FileMode
		wantErr string
	}{
		{"world readable", goodBytes, 0o644, "must not be accessible"},
		{"group readable", goodBytes, 0o640, "must not be accessible"},
		{"corrupt", []byte("not a key at all"), 0o600, "corrupt"},
		{"empty", nil, 0o600, "corrupt"},
		{"truncated", goodBytes[:len(goodBytes)-5], 0o600, "corrupt"},
		{"wrong key type", ecdsaBytes, 0o600, "want Ed25519"},
		{"too large", make([]byte, maxIdentityFileSize+1), 0o600, "too large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, IdentityFile)
			if err := os.WriteFile(p, tc.data, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateIdentity(dir)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want error containing %q", err, tc.wantErr)
			}
			// The bad file must be left for the operator, not replaced.
			b, _ := os.ReadFile(p)
			if len(b) != len(tc.data) {
				t.Fatal("bad identity file was modified")
			}
		})
	}
}
