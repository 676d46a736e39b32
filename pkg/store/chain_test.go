package store

import (
	"errors"
	"testing"
	"time"
)

// TestKillChainBounds checks the chains longer than MaxIncidentChain, too
// long to store in a test: read both ways, cut, they are one incident of
// the chain's oldest MaxIncidentKills kills, truncated.
func TestKillChainBounds(t *testing.T) {
	const gap = int64(time.Second)
	// chain is n kills of two limits, a nanosecond apart, newest first.
	chain := func(n int, from int64) []kill {
		out := make([]kill, n)
		for i := range out {
			id := from + int64(n-1-i)
			out[i] = kill{rowid: id, t: id, node: "n", boot: "b", kind: "limit", memcg: []string{"/a", "/b"}[id%2]}
		}
		return out
	}
	reversed := func(k []kill) []kill {
		out := make([]kill, len(k))
		for i := range k {
			out[len(k)-1-i] = k[i]
		}
		return out
	}
	for _, tc := range []struct {
		name          string
		before, after int
		full          bool
	}{
		{"short", 10, 10, false},
		{"long before", MaxIncidentChain + 7, 3, true},
		{"long after", 3, MaxIncidentChain + 7, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Kills 1 .. before are before at (at is before+1), then a
			// kill gap away that is no part of the chain.
			at := int64(tc.before + 1)
			c := &KillChain{at: cursor{t: at, id: at}, gap: gap}
			old := append(chain(tc.before, 1), kill{rowid: -1, t: 1 - 2*gap, node: "n", boot: "b", kind: "limit", memcg: "/a"})
			if err := c.ReadBefore(&killRows{kills: old}); err != nil {
				t.Fatal(err)
			}
			if !c.Full() {
				if err := c.ReadFrom(&killRows{kills: reversed(chain(tc.after, at))}); err != nil {
					t.Fatal(err)
				}
			}
			if c.Full() != tc.full {
				t.Fatalf("full %v, want %v", c.Full(), tc.full)
			}
			g, truncated, err := c.Group()
			if err != nil {
				t.Fatal(err)
			}
			ids := g.IDs()
			if !tc.full {
				// The limit of at: every other kill of the chain.
				if truncated || len(ids) != (tc.before+tc.after)/2 || ids[0]%2 != at%2 {
					t.Fatalf("truncated %v, %d kills from %d", truncated, len(ids), ids[0])
				}
				return
			}
			if !truncated || len(ids) != MaxIncidentKills || ids[len(ids)-1] != 1 || ids[0] != MaxIncidentKills {
				t.Fatalf("truncated %v, %d kills, %d .. %d", truncated, len(ids), ids[len(ids)-1], ids[0])
			}
		})
	}
	c := &KillChain{at: cursor{t: 5, id: 5}, gap: gap}
	if _, _, err := c.Group(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty chain: %v", err)
	}
}
