package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"
)

func TestNthAddr(t *testing.T) {
	for _, tc := range []struct {
		base string
		i    int
		want string
		ok   bool
	}{
		{"127.0.0.1:0", 3, "127.0.0.1:0", true},
		{"127.0.0.1:18900", 0, "127.0.0.1:18900", true},
		{"127.0.0.1:18900", 6, "127.0.0.1:18906", true},
		{"[::1]:7000", 1, "[::1]:7001", true},
		{"127.0.0.1:65535", 1, "", false},
		{"127.0.0.1", 0, "", false},
		{"127.0.0.1:http", 0, "", false},
	} {
		got, err := nthAddr(tc.base, tc.i)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("nthAddr(%q, %d) = %q, %v; want %q ok %v", tc.base, tc.i, got, err, tc.want, tc.ok)
		}
	}
}

// TestTestnetPrintsDashboards: `trinity testnet` prints a dashboard URL per
// node (bootstrap, validator, trainer), and each serves the page while the
// net runs.
func TestTestnetPrintsDashboards(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a testnet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pr, pw := io.Pipe()
	var out bytes.Buffer
	done := make(chan int, 1)
	go func() {
		code := run(ctx, []string{"testnet", "--trainers", "1", "--rounds", "1", "--round-ms", "6000"}, pw, io.Discard)
		pw.Close()
		done <- code
	}()
	re := regexp.MustCompile(`(?m)^(\S+)\s+dashboard (http://127\.0\.0\.1:\d+/) `)
	buf := make([]byte, 4096)
	checked := map[string]bool{}
	for len(checked) < 3 {
		n, err := pr.Read(buf)
		out.Write(buf[:n])
		for _, m := range re.FindAllStringSubmatch(out.String(), -1) {
			if checked[m[1]] {
				continue
			}
			checked[m[1]] = true
			resp, err := http.Get(m[2])
			if err != nil {
				t.Fatalf("%s: %v", m[1], err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Contains(b, []byte("/static/app.js")) {
				t.Errorf("%s: GET %s: %s", m[1], m[2], resp.Status)
			}
		}
		if err != nil {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if code := <-done; code != 0 {
		t.Fatalf("testnet exited %d:\n%s", code, out.String())
	}
	for _, name := range []string{"bootstrap", "validator-0", "trainer-0"} {
		if !checked[name] {
			t.Errorf("no dashboard URL printed for %s:\n%s", name, out.String())
		}
	}
}
