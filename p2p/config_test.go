package p2p

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
)

func TestConfigValidateNamesField(t *testing.T) {
	cases := []struct {
		field string
		mod   func(*Config)
	}{
		{"NetworkID", func(c *Config) { c.NetworkID = NetworkID{} }},
		{"DataDir", func(c *Config) { c.DataDir = "" }},
		{"ListenAddrs", func(c *Config) { c.ListenAddrs = []string{"not a multiaddr"} }},
		{"ConnHigh", func(c *Config) { c.ConnLow, c.ConnHigh = 10, 5 }},
		{"Limits", func(c *Config) { c.Limits.MaxConns = -1 }},
		{"MaxMessageSize", func(c *Config) { c.MaxMessageSize = MaxEnvelopeSize + 1 }},
		{"ExtraTopics", func(c *Config) { c.ExtraTopics = []Topic{"Bad Topic"} }},
		{"MaxStoreBytes", func(c *Config) { c.MaxBlobSize, c.MaxStoreBytes = 10, 5 }},
		{"DHTMode", func(c *Config) { c.DHTMode = 9 }},
		{"ForceReachability", func(c *Config) { c.ForceReachability = 9 }},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			c := testConfig(t)
			tc.mod(&c)
			err := c.withDefaults().validate()
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("got %v, want an error naming %s", err, tc.field)
			}
		})
	}
	if err := testConfig(t).withDefaults().validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
}

func TestNewRefusesBadIdentity(t *testing.T) {
	cfg := testConfig(t)
	if err := os.WriteFile(filepath.Join(cfg.DataDir, IdentityFile), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := New(ctx, cfg, WithLogger(testLogger())); err == nil {
		_ = n.Close()
		t.Fatal("node started on a corrupt identity")
	}
}

func TestIdentityPersistsAcrossRestart(t *testing.T) {
	cfg := testConfig(t)
	a := newTestNode(t, cfg)
	id := a.ID()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := newTestNode(t, cfg)
	if b.ID() != id {
		t.Fatalf("restart changed the peer ID: %s -> %s", id, b.ID())
	}
}

func TestGetMissingBlobFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes := newCluster(t, 3, nil)
	waitRouting(ctx, t, nodes, 1)
	c := CIDOf([]byte("nobody has this"))
	_, err := nodes[2].Get(ctx, c, FromPeers(nodes[1].ID()))
	if !errors.Is(err, ErrNoProvider) {
		t.Fatalf("got %v, want ErrNoProvider", err)
	}
	if _, err := nodes[2].Get(ctx, cid.Undef); err == nil {
		t.Fatal("undefined CID accepted")
	}
}
