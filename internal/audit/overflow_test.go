package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func denial(i int) Record {
	return Record{Kind: KindDecision, Subject: fmt.Sprintf("user-%d", i), Allow: false}
}

func allowed(i int) Record {
	return Record{Kind: KindDecision, Subject: fmt.Sprintf("user-%d", i), Allow: true}
}

// loggedDrops sums one count over every "audit records dropped" line.
func loggedDrops(t *testing.T, logs, field string) int {
	t.Helper()
	total := 0
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil || line["msg"] != "audit records dropped" {
			continue
		}
		n, _ := line[field].(float64)
		total += int(n)
	}
	return total
}

// dropCounter records what OnDrop is told.
type dropCounter struct {
	mu  sync.Mutex
	got map[string]int
}

func (d *dropCounter) onDrop(reason string, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.got == nil {
		d.got = map[string]int{}
	}
	d.got[reason] += n
}

func (d *dropCounter) snapshot() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]int{}
	for k, v := range d.got {
		out[k] = v
	}
	return out
}

// stuckSink is a store sink whose store does not answer until released,
// with its queue (of size 2) full: the situation of a store that fell
// behind under a flood.
func stuckSink(t *testing.T, opts BatchOptions) (*BatchSink, *fakeAppender, func()) {
	t.Helper()
	app := &fakeAppender{entered: make(chan struct{}, 64), gate: make(chan struct{})}
	opts.Buffer, opts.MaxBatch, opts.FlushInterval = 2, 1, time.Millisecond
	s := NewStoreSink(app, opts)
	s.Write(context.Background(), denial(-1))
	<-app.entered // the worker holds that record, blocked in the store
	s.Write(context.Background(), denial(-2))
	s.Write(context.Background(), denial(-3))
	if len(s.queue) != cap(s.queue) {
		t.Fatalf("queue holds %d of %d", len(s.queue), cap(s.queue))
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			close(app.gate)
			go func() {
				for range app.entered {
				}
			}()
		})
	}
	t.Cleanup(func() {
		release()
		_ = s.Close(context.Background())
	})
	return s, app, release
}

// writeWithin runs Write and fails the test if it does not return within
// a bound far above any wait the sink is configured for.
func writeWithin(t *testing.T, s *BatchSink, ctx context.Context, r Record) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		s.Write(ctx, r)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("Write of %+v did not return", r)
	}
}

// Which records a full queue loses at once, and which wait for room first
// (and are lost only when the wait ends without room).
func TestOverflowModes(t *testing.T) {
	change := Record{Kind: KindChange, Action: ActionCreate, ObjectKind: ObjectAgent, ObjectName: "bot"}
	shadow := Record{Kind: KindShadow, Subject: "alice"}
	issued := Record{Kind: KindOAuth, Action: ActionToken, Allow: true, ObjectKind: ObjectOAuthClient, ObjectName: "c1"}
	refused := Record{Kind: KindOAuth, Action: ActionRefuse, Reasons: []string{"unknown client"}}
	for _, tc := range []struct {
		name   string
		mode   Overflow
		rec    Record
		reason string
	}{
		{"drop: a denial is dropped at once", OverflowDrop, denial(1), DropQueueFull},
		{"drop: a shadow disagreement is dropped at once", OverflowDrop, shadow, DropQueueFull},
		{"drop: an allowed call waits", OverflowDrop, allowed(1), DropWaitTimeout},
		{"drop: a configuration change waits", OverflowDrop, change, DropWaitTimeout},
		{"drop: an OAuth refusal is dropped at once", OverflowDrop, refused, DropQueueFull},
		{"drop: issued OAuth tokens wait", OverflowDrop, issued, DropWaitTimeout},
		{"block: a denial waits", OverflowBlock, denial(1), DropWaitTimeout},
		{"block: an allowed call waits", OverflowBlock, allowed(1), DropWaitTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var drops dropCounter
			// A dropped-at-once record must not wait: with an hour's
			// BlockTimeout a wait would fail writeWithin. A waiting one
			// ends by its context here (below).
			s, _, _ := stuckSink(t, BatchOptions{Overflow: tc.mode, BlockTimeout: time.Hour, OnDrop: drops.onDrop, Logger: quietLog()})
			ctx, cancel := context.WithCancel(context.Background())
			if tc.reason == DropWaitTimeout {
				// The caller's context bounds the wait: cancel it once the
				// Write is waiting (it cannot return before).
				go func() {
					waitForWaiter(s)
					cancel()
				}()
			}
			writeWithin(t, s, ctx, tc.rec)
			cancel()
			if got := drops.snapshot(); len(got) != 1 || got[tc.reason] != 1 {
				t.Fatalf("drops = %v, want one %s", got, tc.reason)
			}
			if s.Dropped() != 1 || s.LastDrop().IsZero() {
				t.Fatalf("Dropped %d, LastDrop %v", s.Dropped(), s.LastDrop())
			}
		})
	}
}

// waitForWaiter returns once a Write is blocked waiting for room: the
// write lock cannot be taken while a Write holds the read lock, and the
// queue stays full, so a TryLock failure with a full queue means one is
// waiting (or just about to enqueue, which cannot happen while full).
func waitForWaiter(s *BatchSink) {
	for {
		if !s.mu.TryLock() {
			return
		}
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

// BlockTimeout alone bounds a wait when the caller's context never ends
// (the policy engine's records come with the request's, which fasthttp
// does not cancel).
func TestOverflowBlockTimeout(t *testing.T) {
	var drops dropCounter
	s, _, _ := stuckSink(t, BatchOptions{BlockTimeout: 50 * time.Millisecond, OnDrop: drops.onDrop, Logger: quietLog()})
	writeWithin(t, s, context.Background(), allowed(1))
	if got := drops.snapshot(); got[DropWaitTimeout] != 1 {
		t.Fatalf("drops = %v, want one wait_timeout", got)
	}
}

// A record that waits is delivered once the store catches up: under the
// default mode nothing is lost to a slow store, only delayed.
func TestOverflowBlockDeliversOnceRoomAppears(t *testing.T) {
	for _, mode := range []Overflow{OverflowBlock, OverflowDrop} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			var drops dropCounter
			s, app, release := stuckSink(t, BatchOptions{Overflow: mode, BlockTimeout: time.Hour, OnDrop: drops.onDrop, Logger: quietLog()})
			const n = 50
			var issued atomic.Int32
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := range n {
					issued.Add(1)
					s.Write(context.Background(), allowed(i))
				}
			}()
			// The first Write finds the queue full and waits.
			waitForWaiter(s)
			if issued.Load() != 1 {
				t.Fatalf("%d writes issued while the queue was full", issued.Load())
			}
			release()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the waiting writes did not finish once the store answered")
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if s.Dropped() != 0 || len(drops.snapshot()) != 0 {
				t.Fatalf("Dropped %d (%v), want none", s.Dropped(), drops.snapshot())
			}
			allowedSeen := 0
			for _, r := range app.records() {
				if r.Allow {
					allowedSeen++
				}
			}
			if allowedSeen != n {
				t.Fatalf("delivered %d allowed records, want %d", allowedSeen, n)
			}
		})
	}
}

// Close ends the waits of Writes blocked on a full queue instead of
// waiting for them (they hold the read lock Close needs).
func TestCloseEndsWaitingWrites(t *testing.T) {
	var drops dropCounter
	s, _, release := stuckSink(t, BatchOptions{BlockTimeout: time.Hour, OnDrop: drops.onDrop, Logger: quietLog()})
	done := make(chan struct{})
	go func() {
		s.Write(context.Background(), allowed(1))
		close(done)
	}()
	waitForWaiter(s)
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		closed <- s.Close(ctx)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not end the waiting Write")
	}
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if got := drops.snapshot(); got[DropClosed] != 1 {
		t.Fatalf("drops = %v, want the waiting record counted as closed", got)
	}
}

// Drops are logged when they happen, not only when the stuck worker gets
// around to it, and at most once per DropLogInterval.
func TestDropLogIsRateLimited(t *testing.T) {
	log, logs := testLogger()
	s, _, release := stuckSink(t, BatchOptions{Overflow: OverflowDrop, DropLogInterval: time.Hour, Logger: log})
	for i := range 500 {
		writeWithin(t, s, context.Background(), denial(i))
	}
	// One line at once, for the first drop, although the worker is stuck.
	if n := strings.Count(logs.String(), `"msg":"audit records dropped"`); n != 1 {
		t.Fatalf("%d drop reports while the store is stuck, want 1: %s", n, logs.String())
	}
	release()
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Close reports the rest: the sum is every drop.
	if n := loggedDrops(t, logs.String(), "queue_full"); n != 500 {
		t.Fatalf("logs report %d dropped, want 500: %s", n, logs.String())
	}
}

// Multi reports the losses of the sinks under it.
func TestMultiReportsDrops(t *testing.T) {
	s, _, _ := stuckSink(t, BatchOptions{Overflow: OverflowDrop, Logger: quietLog()})
	m := Multi(&recorder{}, s)
	dr, ok := m.(DropReporter)
	if !ok {
		t.Fatal("Multi is not a DropReporter")
	}
	if dr.Dropped() != 0 || !dr.LastDrop().IsZero() {
		t.Fatalf("before any loss: %d %v", dr.Dropped(), dr.LastDrop())
	}
	writeWithin2 := func(r Record) {
		done := make(chan struct{})
		go func() { m.Write(context.Background(), r); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Multi.Write did not return")
		}
	}
	writeWithin2(denial(1))
	if dr.Dropped() != 1 || dr.LastDrop().IsZero() {
		t.Fatalf("after a loss: %d %v", dr.Dropped(), dr.LastDrop())
	}
}

type recorder struct{}

func (*recorder) Write(context.Context, Record) {}
func (*recorder) Close(context.Context) error   { return nil }

func quietLog() *slog.Logger {
	l, _ := testLogger()
	return l
}
