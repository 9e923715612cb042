package policy

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/policy/policytest"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// A watched bundle file: each bad replacement is rejected with a status that
// says why while the last good revision keeps deciding; a good one is
// swapped in and announced.
func TestWatchedBundleFileRejectsBadReplacements(t *testing.T) {
	signingKey, publicKey := policytest.KeyPair(t)
	otherKey, _ := policytest.KeyPair(t)
	good := versioned("r1", "A", signingKey)
	path := writeBundle(t, good)
	var seen activations
	var rejections atomic.Int64
	e, _ := newEngine(t, Options{Source: path, VerificationKey: publicKey, PollInterval: 10 * time.Millisecond, OnActivate: seen.record,
		OnReject: func() { rejections.Add(1) }})
	testutil.Eventually(t, 2*time.Second, "r1 announced", func() bool { return seen.seen("r1") })

	noRevision := versioned("", "B", signingKey)
	wrongKey := versioned("r2", "B", otherKey)
	unsigned := versioned("r2", "B", "")
	broken := versioned("r2", "B", signingKey)
	broken.modules = map[string]string{"policy.rego": "package mcp.gateway\n\ndecision := {\"allow\": no_such_function(1)}\n"}
	tampered := policytest.EditFile(t, good.bytes(t), "data.json", func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"A"`), []byte(`"Z"`), 1)
	})

	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"tampered file", tampered, "digest mismatch"},
		{"wrong key", wrongKey.bytes(t), "failed to verify JWT signature"},
		{"unsigned", unsigned.bytes(t), "bundle missing .signatures.json"},
		{"manifest without revision", noRevision.bytes(t), ".manifest has no revision"},
		{"does not compile", broken.bytes(t), "undefined function no_such_function"},
		{"not a bundle", []byte("not gzip"), "load policy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, told := e.Status().LastRejectedAt, rejections.Load()
			writeAtomically(t, path, tc.body)
			testutil.Eventually(t, 5*time.Second, "rejection of "+tc.name, func() bool {
				return e.Status().LastRejectedAt.After(before)
			})
			testutil.Eventually(t, 5*time.Second, "OnReject told of "+tc.name, func() bool { return rejections.Load() > told })
			st := e.Status()
			if !strings.Contains(st.LastRejected, tc.want) {
				t.Fatalf("last_rejected %q, want it to mention %q", st.LastRejected, tc.want)
			}
			if !st.Ready || st.Revision != "r1" || !st.SignatureVerified {
				t.Fatalf("status after rejection: %+v", st)
			}
			if d := e.Decide(context.Background(), versionCall()); !decidedBy(d, map[string]string{"r1": "A"}) {
				t.Fatalf("decision after rejection: %+v", d)
			}
		})
	}

	writeAtomically(t, path, versioned("r2", "B", signingKey).bytes(t))
	testutil.Eventually(t, 5*time.Second, "r2 active", func() bool { return e.Revision() == "r2" })
	if d := e.Decide(context.Background(), versionCall()); !decidedBy(d, map[string]string{"r2": "B"}) {
		t.Fatalf("decision after swap: %+v", d)
	}
	testutil.Eventually(t, 2*time.Second, "r2 announced", func() bool { return seen.seen("r2") })
	if st := e.Status(); st.ActivatedAt.IsZero() || st.Revision != "r2" {
		t.Fatalf("status after swap: %+v", st)
	}
}

// Decisions made while revisions swap under load: none fails, and each is
// made wholly by one revision (its data version matches its revision).
func TestSwapUnderLoadDecidesWithOneRevision(t *testing.T) {
	signingKey, publicKey := policytest.KeyPair(t)
	path := writeBundle(t, versioned("r0", "v0", signingKey))
	// Three hundred callers on two shared cores queue for the CPU: the
	// timeout is generous so that only a swap could fail a decision.
	e, rec := newEngine(t, Options{Source: path, VerificationKey: publicKey, PollInterval: time.Hour, Timeout: 30 * time.Second})

	const swaps, callers = 12, 300
	versionOf := map[string]string{}
	bodies := make([][]byte, swaps+1)
	for i := range bodies {
		rev, version := fmt.Sprintf("r%d", i), fmt.Sprintf("v%d", i)
		versionOf[rev] = version
		bodies[i] = versioned(rev, version, signingKey).bytes(t)
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []Decision
	byRevision := map[string]int{}
	for range callers {
		wg.Go(func() {
			for !stop.Load() {
				d := e.Decide(context.Background(), versionCall())
				mu.Lock()
				byRevision[d.Revision]++
				if !decidedBy(d, versionOf) {
					bad = append(bad, d)
				}
				mu.Unlock()
			}
		})
	}
	for i := 1; i <= swaps; i++ {
		writeAtomically(t, path, bodies[i])
		if err := e.Reload(context.Background()); err != nil {
			t.Fatalf("swap to r%d: %v", i, err)
		}
		time.Sleep(15 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()

	if len(bad) > 0 {
		t.Fatalf("%d decisions failed or mixed revisions, first %+v", len(bad), bad[0])
	}
	if len(byRevision) < swaps/2 {
		t.Fatalf("decisions spread over %d revisions (%v): the swaps did not happen under load", len(byRevision), byRevision)
	}
	for _, r := range rec.all() {
		if _, ok := versionOf[r.Revision]; !ok {
			t.Fatalf("decision record with revision %q", r.Revision)
		}
	}
	if e.Revision() != fmt.Sprintf("r%d", swaps) {
		t.Fatalf("final revision %s", e.Revision())
	}
}

// A directory source (development) is re-read when a file changes; an
// unsigned policy is announced with a warning at every activation.
func TestWatchedDirectoryWarnsOnEveryUnsignedActivation(t *testing.T) {
	dir := policyDir(t, map[string]string{"policy.rego": versionRego, "data.json": `{"mcpgw": {"version": "A"}}`})
	var logs logBuffer
	var seen activations
	e, _ := newEngine(t, Options{Source: dir, AllowUnsigned: true, PollInterval: 10 * time.Millisecond, Logger: logs.logger(), OnActivate: seen.record})
	first := e.Revision()
	testutil.Eventually(t, 2*time.Second, "first activation announced", func() bool { return seen.seen(first) })

	writeAtomically(t, dir+"/data.json", []byte(`{"mcpgw": {"version": "B"}}`))
	testutil.Eventually(t, 5*time.Second, "directory change activated", func() bool { return e.Revision() != first })
	second := e.Revision()
	if d := e.Decide(context.Background(), versionCall()); !decidedBy(d, map[string]string{second: "B"}) {
		t.Fatalf("decision after change: %+v", d)
	}
	testutil.Eventually(t, 2*time.Second, "second activation announced", func() bool { return seen.seen(second) })
	if n := strings.Count(logs.String(), "WITHOUT a verified signature"); n != 2 {
		t.Fatalf("%d unsigned warnings for 2 activations:\n%s", n, logs.String())
	}
	if st := e.Status(); st.SignatureVerified || !st.Ready {
		t.Fatalf("status of an unsigned policy: %+v", st)
	}
}
