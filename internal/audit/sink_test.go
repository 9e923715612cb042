package audit

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lockedBuffer is an io.Writer safe for the sink's worker goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger() (*slog.Logger, *lockedBuffer) {
	var buf lockedBuffer
	return slog.New(slog.NewJSONHandler(&buf, nil)), &buf
}

// fakeAppender records batches; gate (when set) holds each call until it
// receives a value, and failures makes the first calls fail.
type fakeAppender struct {
	mu       sync.Mutex
	batches  [][]Record
	calls    atomic.Int32
	failures int32
	failWith error
	entered  chan struct{}
	gate     chan struct{}
}

func (f *fakeAppender) AppendAudit(ctx context.Context, recs ...Record) error {
	n := f.calls.Add(1)
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if n <= f.failures {
		return f.failWith
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, append([]Record(nil), recs...))
	return nil
}

func (f *fakeAppender) records() []Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Record
	for _, b := range f.batches {
		out = append(out, b...)
	}
	return out
}

func decision(i int) Record {
	return Record{Kind: KindDecision, Subject: fmt.Sprintf("user-%d", i), Allow: i%2 == 0}
}

func TestStoreSinkBatchesAndFlushesOnClose(t *testing.T) {
	app := &fakeAppender{}
	log, _ := testLogger()
	// A long interval: only size and Close can trigger delivery.
	s := NewStoreSink(app, BatchOptions{MaxBatch: 64, FlushInterval: time.Hour, Logger: log})
	const n = 300
	for i := range n {
		s.Write(context.Background(), decision(i))
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := app.records()
	if len(got) != n || s.Written() != n || s.Dropped() != 0 {
		t.Fatalf("delivered %d, Written %d, Dropped %d; want %d, %d, 0", len(got), s.Written(), s.Dropped(), n, n)
	}
	for i, r := range got {
		if r.Subject != fmt.Sprintf("user-%d", i) || r.ID == "" || r.Time.IsZero() {
			t.Fatalf("record %d = %+v: order or normalization lost", i, r)
		}
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	if len(app.batches) < n/64 {
		t.Errorf("%d batches, want at least %d", len(app.batches), n/64)
	}
	for _, b := range app.batches {
		if len(b) > 64 {
			t.Errorf("batch of %d exceeds MaxBatch 64", len(b))
		}
	}
}

func TestStoreSinkFlushesOnInterval(t *testing.T) {
	app := &fakeAppender{entered: make(chan struct{}, 10)}
	s := NewStoreSink(app, BatchOptions{MaxBatch: 1000, FlushInterval: 10 * time.Millisecond})
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	s.Write(context.Background(), decision(1))
	select {
	case <-app.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("a lone record was not delivered without Close")
	}
}

func TestStoreSinkOverflowIsCountedAndLogged(t *testing.T) {
	app := &fakeAppender{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	log, logs := testLogger()
	// Denials under OverflowDrop: the records a full queue may lose.
	s := NewStoreSink(app, BatchOptions{Buffer: 10, MaxBatch: 1, FlushInterval: time.Millisecond, DropLogInterval: time.Millisecond,
		Logger: log, Overflow: OverflowDrop})
	s.Write(context.Background(), denial(0))
	<-app.entered // the worker now holds record 0 and is blocked delivering it
	for i := 1; i < 100; i++ {
		s.Write(context.Background(), denial(i)) // 10 fit the queue, 89 do not
	}
	if got := s.Dropped(); got != 89 {
		t.Fatalf("Dropped = %d, want 89", got)
	}
	go func() {
		for range app.entered {
		}
	}()
	close(app.gate)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(app.entered)
	if s.Written() != 11 || s.Written()+s.Dropped() != 100 {
		t.Errorf("Written %d + Dropped %d, want 11 + 89", s.Written(), s.Dropped())
	}
	if n := loggedDrops(t, logs.String(), "queue_full"); n != 89 {
		t.Errorf("logs report %d records dropped for a full queue, want 89: %s", n, logs.String())
	}
	// Writing after Close is counted too.
	s.Write(context.Background(), denial(100))
	if s.Dropped() != 90 {
		t.Errorf("write after close: Dropped = %d, want 90", s.Dropped())
	}
	if !strings.Contains(logs.String(), "after sink closed") {
		t.Errorf("write after close not logged: %s", logs.String())
	}
}

func TestStoreSinkRetriesThenDelivers(t *testing.T) {
	app := &fakeAppender{failures: 2, failWith: errors.New("connection refused")}
	s := NewStoreSink(app, BatchOptions{FlushInterval: time.Hour})
	for i := range 5 {
		s.Write(context.Background(), decision(i))
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if app.calls.Load() != 3 || s.Written() != 5 || s.Dropped() != 0 {
		t.Errorf("calls %d, Written %d, Dropped %d; want 3, 5, 0", app.calls.Load(), s.Written(), s.Dropped())
	}
}

func TestStoreSinkGivesUp(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		retryFor  time.Duration
		wantCalls func(int32) bool
	}{
		{"invalid record is not retried", fmt.Errorf("store: %w", ErrInvalidRecord), time.Minute, func(n int32) bool { return n == 1 }},
		{"transient error retried until RetryFor", errors.New("db down"), 250 * time.Millisecond, func(n int32) bool { return n >= 2 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app := &fakeAppender{failures: 1 << 30, failWith: tc.err}
			log, logs := testLogger()
			s := NewStoreSink(app, BatchOptions{FlushInterval: time.Hour, RetryFor: tc.retryFor, Logger: log})
			for i := range 3 {
				s.Write(context.Background(), decision(i))
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !tc.wantCalls(app.calls.Load()) || s.Dropped() != 3 || s.Written() != 0 {
				t.Errorf("calls %d, Dropped %d, Written %d", app.calls.Load(), s.Dropped(), s.Written())
			}
			if out := logs.String(); !strings.Contains(out, `"delivery_failed":3`) || !strings.Contains(out, tc.err.Error()) {
				t.Errorf("failure not logged with count and cause: %s", out)
			}
		})
	}
}

func TestCloseDeadlineCountsTheRest(t *testing.T) {
	app := &fakeAppender{gate: make(chan struct{})} // never opens
	log, _ := testLogger()
	s := NewStoreSink(app, BatchOptions{MaxBatch: 2, FlushInterval: time.Hour, Logger: log})
	for i := range 7 {
		s.Write(context.Background(), decision(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "dropped") {
		t.Fatalf("Close = %v, want a deadline error counting drops", err)
	}
	if s.Dropped() != 7 || s.Written() != 0 {
		t.Errorf("Dropped %d, Written %d; want 7, 0", s.Dropped(), s.Written())
	}
}

func TestInvalidRecordDropped(t *testing.T) {
	app := &fakeAppender{}
	s := NewStoreSink(app, BatchOptions{})
	s.Write(context.Background(), Record{Kind: "nonsense"})
	s.Write(context.Background(), decision(1))
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Dropped() != 1 || s.Written() != 1 || len(app.records()) != 1 {
		t.Errorf("Dropped %d Written %d delivered %d; want 1 1 1", s.Dropped(), s.Written(), len(app.records()))
	}
}

func TestJSONLinesSink(t *testing.T) {
	var out lockedBuffer
	s := NewJSONLinesSink(&out, BatchOptions{})
	want := []Record{decision(1), {Kind: KindChange, Action: ActionDelete, ObjectKind: ObjectBackend, ObjectName: "hr", Before: json.RawMessage(`{"url":"https://x"}`)}}
	for _, r := range want {
		s.Write(context.Background(), r)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), out.String())
	}
	for i, l := range lines {
		var r Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %d is not a record: %v", i, err)
		}
		if r.ID == "" || r.Kind != want[i].Kind || r.ObjectName != want[i].ObjectName || string(r.Before) != string(want[i].Before) {
			t.Errorf("line %d = %+v", i, r)
		}
	}
}

type failingWriter struct{ calls atomic.Int32 }

func (w *failingWriter) Write([]byte) (int, error) { w.calls.Add(1); return 0, io.ErrClosedPipe }

func TestJSONLinesSinkDoesNotRetryWrites(t *testing.T) {
	w := &failingWriter{}
	log, _ := testLogger()
	s := NewJSONLinesSink(w, BatchOptions{Logger: log})
	s.Write(context.Background(), decision(1))
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w.calls.Load() != 1 || s.Dropped() != 1 {
		t.Errorf("writes %d, Dropped %d; want 1, 1", w.calls.Load(), s.Dropped())
	}
}

// collector is an HTTP audit collector answering with the given statuses in
// turn (then 204).
type collector struct {
	mu       sync.Mutex
	statuses []int
	received []Record
	requests int
	gzipped  int
	auth     []string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	c.auth = append(c.auth, r.Header.Get("Authorization"))
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if len(c.statuses) > 0 {
		code := c.statuses[0]
		c.statuses = c.statuses[1:]
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(code)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.gzipped++
		body = zr
	}
	var batch []Record
	if err := json.NewDecoder(body).Decode(&batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.received = append(c.received, batch...)
	w.WriteHeader(http.StatusNoContent)
}

func TestHTTPSink(t *testing.T) {
	tests := []struct {
		name         string
		statuses     []int
		gzip         bool
		wantWritten  uint64
		wantDropped  uint64
		wantRequests int
	}{
		{"plain", nil, false, 5, 0, 1},
		{"gzip", nil, true, 5, 0, 1},
		{"retries 503 then delivers", []int{503, 502}, false, 5, 0, 3},
		{"honours Retry-After on 429", []int{429}, true, 5, 0, 2},
		{"drops on 400 without retry", []int{400}, false, 0, 5, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			col := &collector{statuses: tc.statuses}
			srv := httptest.NewServer(col) // 127.0.0.1 on a free port
			t.Cleanup(srv.Close)
			log, logs := testLogger()
			s, err := NewHTTPSink(HTTPOptions{
				URL: srv.URL + "/logs?token=query-secret", Gzip: tc.gzip,
				Headers: map[string]string{"Authorization": "Bearer collector-secret"},
				Batch:   BatchOptions{FlushInterval: time.Hour, Logger: log},
			})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				s.Write(context.Background(), decision(i))
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			col.mu.Lock()
			defer col.mu.Unlock()
			if s.Written() != tc.wantWritten || s.Dropped() != tc.wantDropped || col.requests != tc.wantRequests {
				t.Errorf("Written %d Dropped %d requests %d; want %d %d %d", s.Written(), s.Dropped(), col.requests, tc.wantWritten, tc.wantDropped, tc.wantRequests)
			}
			if uint64(len(col.received)) != tc.wantWritten {
				t.Errorf("collector received %d records, want %d", len(col.received), tc.wantWritten)
			}
			if tc.gzip && tc.wantWritten > 0 && col.gzipped == 0 {
				t.Error("body was not gzipped")
			}
			for _, a := range col.auth {
				if a != "Bearer collector-secret" {
					t.Errorf("Authorization header = %q", a)
				}
			}
			for _, secret := range []string{"collector-secret", "query-secret"} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("log leaks %q: %s", secret, logs.String())
				}
			}
			if tc.wantDropped > 0 && !strings.Contains(logs.String(), "status 400") {
				t.Errorf("drop cause not logged: %s", logs.String())
			}
		})
	}
}

func TestHTTPSinkUnreachableScrubsURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	log, logs := testLogger()
	s, err := NewHTTPSink(HTTPOptions{URL: "http://user:pw-secret@" + strings.TrimPrefix(url, "http://") + "/logs?key=q-secret",
		Batch: BatchOptions{FlushInterval: time.Hour, RetryFor: 200 * time.Millisecond, Logger: log}})
	if err != nil {
		t.Fatal(err)
	}
	s.Write(context.Background(), decision(1))
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Dropped() != 1 {
		t.Errorf("Dropped = %d, want 1", s.Dropped())
	}
	out := logs.String()
	if !strings.Contains(out, "connection refused") {
		t.Errorf("cause not logged: %s", out)
	}
	if strings.Contains(out, "pw-secret") || strings.Contains(out, "q-secret") {
		t.Errorf("log leaks URL credentials: %s", out)
	}
}

func TestNewHTTPSinkRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x/logs", "/relative", "http://", "::bad"} {
		if s, err := NewHTTPSink(HTTPOptions{URL: u}); err == nil {
			_ = s.Close(context.Background())
			t.Errorf("NewHTTPSink(%q) accepted", u)
		}
	}
}

func TestMulti(t *testing.T) {
	a, b := &fakeAppender{}, &fakeAppender{}
	sa, sb := NewStoreSink(a, BatchOptions{}), NewStoreSink(b, BatchOptions{})
	m := Multi(sa, sb)
	m.Write(context.Background(), decision(1))
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ra, rb := a.records(), b.records()
	if len(ra) != 1 || len(rb) != 1 || ra[0].ID == "" || ra[0].ID != rb[0].ID || !ra[0].Time.Equal(rb[0].Time) {
		t.Fatalf("sinks saw %+v and %+v; want one record with one id and time", ra, rb)
	}
	// Close reports every sink's failure.
	stuck := &fakeAppender{gate: make(chan struct{})}
	m = Multi(NewStoreSink(stuck, BatchOptions{}), NewStoreSink(&fakeAppender{}, BatchOptions{}))
	m.Write(context.Background(), decision(2))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := m.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want the stuck sink's deadline error", err)
	}
}
