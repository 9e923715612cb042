package policy

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// holdingHandler is a log sink that stalls, as a blocked stderr pipe or a
// slow log shipper does: once armed, the first record whose message
// contains match blocks until release is closed.
type holdingHandler struct {
	slog.Handler
	hold *hold
}

type hold struct {
	match   string
	armed   atomic.Bool
	held    chan struct{} // closed when a record is being held
	release chan struct{}
	once    sync.Once
}

func newHoldingHandler(match string) *holdingHandler {
	return &holdingHandler{
		Handler: slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelDebug}),
		hold:    &hold{match: match, held: make(chan struct{}), release: make(chan struct{})},
	}
}

func (h *holdingHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.hold.armed.Load() && strings.Contains(r.Message, h.hold.match) {
		h.hold.once.Do(func() { close(h.hold.held) })
		<-h.hold.release
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs and WithGroup keep the holding behaviour for derived loggers.
func (h *holdingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &holdingHandler{h.Handler.WithAttrs(attrs), h.hold}
}

func (h *holdingHandler) WithGroup(name string) slog.Handler {
	return &holdingHandler{h.Handler.WithGroup(name), h.hold}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// versionPolicyWithoutPrompts is versionRego without visible_prompts, so that each of its
// activations logs a warning while it is being prepared.
const versionPolicyWithoutPrompts = `package mcp.gateway

decision := {"allow": true, "reasons": [concat(" ", ["version", data.mcpgw.version])], "status": 0}

visible_tools contains t.name if some t in input.tools

visible_resources contains r.uri if some r in input.resources
`

// writeVersion writes rego and data version version into dir.
func writeVersion(t testing.TB, dir, rego, version string) {
	t.Helper()
	for name, body := range map[string]string{
		"policy.rego": rego,
		"data.json":   fmt.Sprintf(`{"mcpgw": {"version": %q}}`, version),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Preparing a new revision (compiling its queries,
// logging about it) happens before it is committed, off the decision path:
// while a swap is held up in preparation, decisions keep being made by the
// active revision. Today's engine prepared inside the store commit, so a
// stalled preparation (here: a log sink that blocks) stalled every decision.
func TestSwapPreparesOffTheDecisionPath(t *testing.T) {
	dir := t.TempDir()
	writeVersion(t, dir, versionRego, "A")
	logs := newHoldingHandler("is undefined: every prompt will be hidden")
	e, _ := newEngine(t, Options{
		Source: dir, AllowUnsigned: true, PollInterval: time.Hour, DecisionCacheSize: -1,
		Logger: slog.New(logs),
	})
	first := e.Revision()
	// However the test ends, the held swap is let go so that Stop returns.
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(logs.hold.release) }) }
	t.Cleanup(release)

	writeVersion(t, dir, versionPolicyWithoutPrompts, "B")
	logs.hold.armed.Store(true)
	reloaded := make(chan error, 1)
	go func() { reloaded <- e.Reload(context.Background()) }()
	select {
	case <-logs.hold.held:
	case err := <-reloaded:
		t.Fatalf("the swap finished (%v) without logging the warning the test holds it on", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the swap never logged the warning the test holds it on")
	}

	// The swap is held. Decisions must go on, made by the old revision.
	const calls = 50
	decided := make(chan Decision, calls)
	go func() {
		for range calls {
			decided <- e.Decide(context.Background(), versionCall())
		}
	}()
	// A generous bound: 50 decisions take milliseconds; only a stall
	// (decisions queued behind the swap) reaches it.
	deadline := time.After(20 * time.Second)
	for i := range calls {
		select {
		case d := <-decided:
			if !decidedBy(d, map[string]string{first: "A"}) {
				t.Fatalf("decision %d while the swap is held: %+v, want revision %s (version A)", i, d, first)
			}
		case <-deadline:
			t.Fatalf("only %d of %d decisions were made while a swap was being prepared: the swap stalls decisions", i, calls)
		}
	}

	release()
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	if e.Revision() == first {
		t.Fatal("the held swap never activated")
	}
	second := e.Revision()
	if d := e.Decide(context.Background(), versionCall()); !decidedBy(d, map[string]string{second: "B"}) {
		t.Fatalf("after the swap: %+v", d)
	}
}

// spin keeps n goroutines busy until the test ends, so that every decision
// competes for a CPU with them, as on a machine shared with busy tenants.
func spin(t *testing.T, n int) {
	t.Helper()
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

// Decisions made while policy revisions swap in a tight loop and every CPU
// is saturated by spinning goroutines never time out: the timeout bounds the
// evaluation's own work, not the time it waits for a CPU, a lock or a swap.
// A policy that does run long is still denied under the same conditions.
// This is a correctness assertion (a count of timeouts), not a timing one.
func TestNoTimeoutsUnderSwapsAndStarvation(t *testing.T) {
	const slowRego = "package mcp.gateway\n\nr := numbers.range(1, 2000)\n\n" +
		"decision := {\"allow\": true, \"reasons\": [], \"status\": 0} if {\n\tsome a in r\n\tsome b in r\n\tsome c in r\n\ta + b + c == -count(input.tools)\n}\n\n" +
		"visible_tools contains t.name if some t in input.tools\n"
	tests := []struct {
		name string
		rego string
		// calls per decision worker
		calls int
		// slow: every decision must be denied for exceeding the timeout.
		slow bool
	}{
		{name: "fast policy is never timed out", rego: versionRego, calls: 1500},
		{name: "slow policy is always timed out", rego: slowRego, calls: 3, slow: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The budget is the evaluation's own CPU time, which includes
			// the GC assists the runtime charges to its allocations: with
			// every CPU saturated and GC cycles dragging, a 5 ms budget was
			// once spent by a ~20 µs policy (1 of 6,000 decisions in a full
			// `make test` beside three other builds). 25 ms stays far below
			// what the slow policy needs.
			const timeout = 25 * time.Millisecond
			dir := t.TempDir()
			writeVersion(t, dir, tc.rego, "A")
			e, _ := newEngine(t, Options{
				Source: dir, AllowUnsigned: true, PollInterval: time.Hour, DecisionCacheSize: -1,
				Timeout: timeout,
			})
			procs := runtime.GOMAXPROCS(0)
			spin(t, 4*procs)

			// Swap A, B, A, … until the decisions are done.
			done := make(chan struct{})
			var swaps atomic.Int64
			var swapErr atomic.Value
			var swapper sync.WaitGroup
			swapper.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-done:
						return
					default:
					}
					writeVersion(t, dir, tc.rego, string(rune('A'+i%2)))
					if err := e.Reload(context.Background()); err != nil {
						swapErr.Store(err)
						return
					}
					swaps.Add(1)
				}
			})

			var mu sync.Mutex
			var timeouts, other []string
			versionOf := map[string]string{}
			var workers sync.WaitGroup
			for range 2 * procs {
				workers.Go(func() {
					for range tc.calls {
						d := e.Decide(context.Background(), versionCall())
						mu.Lock()
						switch {
						case len(d.Reasons) == 1 && strings.HasPrefix(d.Reasons[0], "policy engine error: evaluation exceeded"):
							timeouts = append(timeouts, d.Reasons[0])
						case tc.slow || !d.Allow || len(d.Reasons) != 1:
							other = append(other, fmt.Sprintf("%+v", d))
						default:
							// Each revision always decides with the same
							// version: no decision mixed two activations.
							v := strings.TrimPrefix(d.Reasons[0], "version ")
							if prev, ok := versionOf[d.Revision]; ok && prev != v {
								other = append(other, fmt.Sprintf("revision %s decided with versions %s and %s", d.Revision, prev, v))
							}
							versionOf[d.Revision] = v
						}
						mu.Unlock()
					}
				})
			}
			workers.Wait()
			close(done)
			swapper.Wait()
			if err, _ := swapErr.Load().(error); err != nil {
				t.Fatalf("swap: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(other) > 0 {
				t.Fatalf("%d unexpected decisions, first: %s", len(other), other[0])
			}
			total := 2 * procs * tc.calls
			if tc.slow {
				if len(timeouts) != total {
					t.Fatalf("%d of %d slow decisions timed out, want all", len(timeouts), total)
				}
				return
			}
			if len(timeouts) > 0 {
				t.Fatalf("%d of %d decisions timed out under swaps and CPU starvation (%d swaps), first: %s", len(timeouts), total, swaps.Load(), timeouts[0])
			}
			if swaps.Load() < 2 || len(versionOf) < 2 {
				t.Fatalf("%d swaps, decisions by %d revisions: the policy did not swap while deciding", swaps.Load(), len(versionOf))
			}
		})
	}
}
