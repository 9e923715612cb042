package gateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/policy"
)

// Policy revisions swap while a few hundred calls run through the gateway:
// none fails, and every decision was made by exactly one of the revisions.
// It holds with every core kept busy by spinning goroutines, as on a machine
// shared with busy tenants: a call is never denied because its evaluation
// waited for a CPU or for a swap (the policy timeout counts the evaluation's
// own CPU time).
func TestPolicySwapUnderLoad(t *testing.T) {
	tests := []struct {
		name     string
		spinners int
	}{
		{"idle machine", 0},
		{"every core kept busy", 2 * runtime.GOMAXPROCS(0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spin(t, tc.spinners)
			policySwapUnderLoad(t)
		})
	}
}

// spin keeps n goroutines busy until the test ends.
func spin(t *testing.T, n int) {
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for !stop.Load() {
			}
		})
	}
	t.Cleanup(func() { stop.Store(true); wg.Wait() })
}

func policySwapUnderLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(generation int) {
		rego := fmt.Sprintf("package mcp.gateway\n\ngeneration := %d\n\ndecision := {\"allow\": true, \"reasons\": [], \"status\": 0}\n\nvisible_tools contains tool.name if some tool in input.tools\n", generation)
		if err := os.WriteFile(filepath.Join(dir, "policy.rego"), []byte(rego), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	var mu sync.Mutex
	revisions := map[string]int{}
	engine, err := policy.New(context.Background(), policy.Options{Source: dir, AllowUnsigned: true, Logger: quietLogger(),
		// A tight timeout: a decision takes well under a millisecond of CPU,
		// but on busy cores it waits far longer than this for one.
		PollInterval: 20 * time.Millisecond, DecisionCacheSize: -1, Timeout: 10 * time.Millisecond,
		DecisionLog: func(_ context.Context, r policy.Record) {
			mu.Lock()
			revisions[r.Revision]++
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Stop(context.Background()) })
	h := newHarness(t, harnessOptions{authorizer: engine})
	tok := h.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")

	const workers, minCalls = 6, 300
	var wg sync.WaitGroup
	var calls sync.Map
	failures := make(chan string, 64)
	swapped := make(chan struct{})
	sessions := make([]string, workers)
	for w := range sessions {
		sessions[w] = h.openSession("/notes", tok, "claude-code")
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Call until every swap is done (and at least minCalls in all).
			for i := 0; ; i++ {
				select {
				case <-swapped:
					if i*workers >= minCalls {
						calls.Store(w, i)
						return
					}
				default:
				}
				body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"message":"w%d"}}}`, i, w)
				status, _, reply, err := mcpPost(h.url, "/notes", tok, "claude-code", sessions[w], body)
				if err != nil || status != 200 || !containsResult(reply) {
					select {
					case failures <- fmt.Sprintf("worker %d call %d: %d %v %s", w, i, status, err, reply):
					default:
					}
				}
			}
		}()
	}
	go func() {
		defer close(swapped)
		for g := 1; g <= 5; g++ {
			time.Sleep(60 * time.Millisecond)
			write(g)
		}
	}()
	wg.Wait()
	<-swapped
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(revisions) < 2 {
		t.Fatalf("decisions named %d revision(s) %v: the policy never swapped under load", len(revisions), revisions)
	}
	total := 0
	for rev, n := range revisions {
		if rev == "" {
			t.Errorf("%d decisions named no revision", n)
		}
		total += n
	}
	made := 0
	calls.Range(func(_, n any) bool { made += n.(int); return true })
	if total < made {
		t.Fatalf("%d decision records for %d calls", total, made)
	}
}

func containsResult(reply string) bool { return strings.Contains(reply, `"result"`) }
