// Package testutil holds test doubles that goroutines under test share with
// the test reading them (a log buffer, a settable clock) and the checks
// whose failure must say what the test got (WantStatus).
package testutil

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// SyncBuffer collects output written by concurrent goroutines (a slog
// handler, a server's stdout) while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Clock is a settable clock for expiry and refresh timing. It starts at the
// real time because test servers (testidp) stamp tokens with the real time.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock set to the current time.
func NewClock() *Clock { return &Clock{now: time.Now()} }

// NewClockAt returns a Clock set to t.
func NewClockAt(t time.Time) *Clock { return &Clock{now: t} }

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock d forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Collector keeps what callbacks hand it, safe for concurrent use.
type Collector[T any] struct {
	mu    sync.Mutex
	items []T
}

// Add keeps v.
func (c *Collector[T]) Add(v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items = append(c.items, v)
}

// All is a copy of what was kept, in order.
func (c *Collector[T]) All() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]T(nil), c.items...)
}

// maxShownBody bounds the body WantStatus prints: enough for any error the
// gateway writes, not a whole streamed reply.
const maxShownBody = 8 << 10

// WantStatus fails the test unless resp has status want, printing the
// status, Content-Type and body it got: a bare "got 200, want 404" says
// nothing about which refusal (or success) the server chose. On success the
// body is left unread for the caller.
func WantStatus(t testing.TB, resp *http.Response, want int) {
	t.Helper()
	if resp.StatusCode == want {
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxShownBody))
	if err != nil {
		body = append(body, fmt.Sprintf(" [reading the body failed: %v]", err)...)
	}
	what := "response"
	if r := resp.Request; r != nil {
		what = r.Method + " " + r.URL.Path
	}
	t.Fatalf("%s: HTTP %d, want %d (Content-Type %q): %s", what, resp.StatusCode, want, resp.Header.Get("Content-Type"), body)
}

// MetricFamilies scrapes base+"/metrics" and parses the Prometheus text
// format, failing t when either step fails.
func MetricFamilies(t testing.TB, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	WantStatus(t, resp, http.StatusOK)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s/metrics: %v", base, err)
	}
	return families
}

// Unreachable ends a test whose service (PostgreSQL, Redis) does not
// answer: a failure in CI (the CI variable set, as .ci/run sets it), where
// the service always runs and its absence is a broken machine; a skip that
// says how to start it on a developer's machine, where it may simply not
// be running.
func Unreachable(t testing.TB, service string, err error, hint string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not reachable: %v\n%s", service, err, hint)
	}
	t.Skipf("%s is not reachable, so this test is skipped (in CI it fails): %v\n%s", service, err, hint)
}

// Eventually polls cond until it holds, and fails the test with what when
// within has passed first: for work that goroutines finish in the background
// (audit flushes, policy reloads, streams ending). within bounds a wait on a
// loaded machine; it is never a measure of speed.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
