package upstream

import (
	"github.com/mcpgw/mcpgw/internal/testutil"

	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
)

// exchangingInjector stands for a token-exchange injector: one cached
// token per subject, obtained by an "exchange" (counted) when none is
// cached, dropped by Invalidate.
type exchangingInjector struct {
	mu        sync.Mutex
	cached    map[string]string
	exchanges int
}

func (in *exchangingInjector) Inject(_ context.Context, req *http.Request, c Caller) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	tok, ok := in.cached[c.Principal.Subject]
	if !ok {
		in.exchanges++
		tok = fmt.Sprintf("tok-%s-%d", c.Principal.Subject, in.exchanges)
		in.cached[c.Principal.Subject] = tok
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

func (in *exchangingInjector) Invalidate(_ context.Context, c Caller) {
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.cached, c.Principal.Subject)
}

func (in *exchangingInjector) CredentialKey(c Caller) (string, bool) {
	return c.Principal.Subject, true
}

func (in *exchangingInjector) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.exchanges
}

// refusingBackend answers every request with its current status and counts
// what reached it.
type refusingBackend struct {
	*httptest.Server
	status   atomic.Int64
	requests atomic.Int64
}

func startRefusingBackend(t *testing.T) *refusingBackend {
	t.Helper()
	b := &refusingBackend{}
	b.status.Store(http.StatusUnauthorized)
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.requests.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(int(b.status.Load()))
	}))
	t.Cleanup(b.Close)
	return b
}

func testClient(clock *testutil.Clock) *Client {
	c := NewClient()
	c.refused = newRefusals(clock.Now)
	return c
}

func callerFor(sub string, b config.Backend) Caller {
	return Caller{Principal: &identity.Principal{Subject: sub, Issuer: "https://idp.example"}, Token: "user-token-" + sub, Backend: b}
}

// send makes one call and says what came of it: the backend's status, or
// the backoff the call was refused with (retry > 0).
func send(t *testing.T, c *Client, inj Injector, caller Caller) (status int, retry time.Duration) {
	t.Helper()
	resp, err := c.Send(context.Background(), inj, caller, Request{Method: http.MethodPost, URL: caller.Backend.URL, Body: []byte(`{}`)})
	if err != nil {
		var ce *CredentialError
		var re *RefusedError
		if !errors.As(err, &ce) || !errors.As(err, &re) {
			t.Fatalf("send: %v (%T), want a status or a *CredentialError wrapping *RefusedError", err, err)
		}
		// The message reaches the MCP client as the -32011 error: it must
		// name the backend and say why nothing was sent.
		if ce.Backend != caller.Backend.Name || !strings.Contains(err.Error(), "backend "+caller.Backend.Name) ||
			!strings.Contains(err.Error(), "refused the gateway's credential (HTTP 401)") {
			t.Fatalf("refusal error %q does not name backend %s and the refusal", err, caller.Backend.Name)
		}
		return 0, re.RetryIn
	}
	drain(resp)
	return resp.StatusCode, 0
}

func TestSendBacksOffARefusedCredential(t *testing.T) {
	be := startRefusingBackend(t)
	clock := testutil.NewClockAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := testClient(clock)
	inj := &exchangingInjector{cached: map[string]string{}}
	hr := config.Backend{Name: "hr", URL: be.URL, AuthMethod: "token-exchange"}
	alice, bob := callerFor("alice", hr), callerFor("bob", hr)

	// res is one call's outcome: the backend's status, or refused (0) with
	// the backoff the error reports.
	type res struct {
		status int
		retry  time.Duration
	}
	refused := func(retry time.Duration, n int) []res {
		out := make([]res, n)
		for i := range out {
			out[i] = res{retry: retry}
		}
		return out
	}
	steps := []struct {
		name    string
		advance time.Duration
		status  int // the backend's answer from this step on
		caller  Caller
		want    []res // one per call
		// What the calls cost.
		wantRequests, wantExchanges int
	}{
		{name: "first refusal: one retry with a fresh credential, then a backoff", status: 401, caller: alice,
			want: []res{{status: 401}}, wantRequests: 2, wantExchanges: 2},
		{name: "during the backoff calls fail fast, without an exchange", status: 401, caller: alice,
			want: refused(5*time.Second, 20)},
		{name: "another caller's credential is not held back", status: 401, caller: bob,
			want: []res{{status: 401}}, wantRequests: 2, wantExchanges: 2},
		{name: "after 5 s one probe with a fresh credential, no retry", advance: 5 * time.Second, status: 401, caller: alice,
			want: []res{{status: 401}}, wantRequests: 1, wantExchanges: 1},
		{name: "a refused probe doubles the backoff to 10 s", advance: 9 * time.Second, status: 401, caller: alice,
			want: refused(time.Second, 3)},
		{name: "probe after 10 s", advance: time.Second, status: 401, caller: alice,
			want: []res{{status: 401}}, wantRequests: 1, wantExchanges: 1},
		{name: "probe after 20 s", advance: 20 * time.Second, status: 401, caller: alice,
			want: []res{{status: 401}}, wantRequests: 1, wantExchanges: 1},
		{name: "probe after 40 s", advance: 40 * time.Second, status: 401, caller: alice,
			want: []res{{status: 401}}, wantRequests: 1, wantExchanges: 1},
		{name: "the backoff is capped at 60 s", advance: time.Nanosecond, status: 401, caller: alice,
			want: refused(refusalMax-time.Nanosecond, 1)},
		{name: "and stays capped", advance: refusalMax, status: 401, caller: alice,
			want: []res{{status: 401}, {retry: refusalMax}}, wantRequests: 1, wantExchanges: 1},
		{name: "a backend that accepts again is used after the backoff", advance: refusalMax, status: 200, caller: alice,
			want: []res{{status: 200}}, wantRequests: 1, wantExchanges: 1},
		{name: "and the refusal is forgotten: the cached token serves", status: 200, caller: alice,
			want: []res{{status: 200}, {status: 200}, {status: 200}}, wantRequests: 3},
		{name: "a new refusal retries once and backs off 5 s", status: 401, caller: alice,
			want: []res{{status: 401}, {retry: 5 * time.Second}}, wantRequests: 2, wantExchanges: 1},
		{name: "a refusal long after the last backoff starts over: retry, then 5 s", advance: refusalMin + refusalMax, status: 401, caller: alice,
			want: []res{{status: 401}, {retry: 5 * time.Second}}, wantRequests: 2, wantExchanges: 2},
	}
	for _, st := range steps {
		clock.Advance(st.advance)
		be.status.Store(int64(st.status))
		requests, exchanges := be.requests.Load(), inj.count()
		for i, want := range st.want {
			if status, retry := send(t, c, inj, st.caller); status != want.status || retry != want.retry {
				t.Errorf("%s: call %d: status %d retry %v, want status %d retry %v", st.name, i, status, retry, want.status, want.retry)
			}
		}
		if got := be.requests.Load() - requests; got != int64(st.wantRequests) {
			t.Errorf("%s: backend saw %d requests, want %d", st.name, got, st.wantRequests)
		}
		if got := inj.count() - exchanges; got != st.wantExchanges {
			t.Errorf("%s: %d exchanges, want %d", st.name, got, st.wantExchanges)
		}
	}
}

// A static credential (pre-shared key) is one for every caller: its refusal
// holds back all of them, and editing the backend's key tries at once.
func TestSendBacksOffAStaticCredentialPerBackendSettings(t *testing.T) {
	be := startRefusingBackend(t)
	clock := testutil.NewClockAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := testClient(clock)
	wiki := config.Backend{Name: "wiki", URL: be.URL, AuthMethod: "pre-shared-key", AuthConfig: map[string]any{"api_key": "old"}}
	edited := wiki
	edited.AuthConfig = map[string]any{"api_key": "new"}
	injector := func(b config.Backend) Injector {
		inj, err := BasicFactories()[b.AuthMethod](b)
		if err != nil {
			t.Fatal(err)
		}
		return inj
	}
	for _, tc := range []struct {
		name         string
		backend      config.Backend
		sub          string
		wantRequests int64
		wantStatus   int
		wantRetry    time.Duration
	}{
		{"refused, retried once", wiki, "alice", 2, 401, 0},
		{"the same key fails fast for alice", wiki, "alice", 0, 0, 5 * time.Second},
		{"and for bob, who would send the same key", wiki, "bob", 0, 0, 5 * time.Second},
		{"a new key is tried at once", edited, "bob", 2, 401, 0},
	} {
		before := be.requests.Load()
		status, retry := send(t, c, injector(tc.backend), callerFor(tc.sub, tc.backend))
		if status != tc.wantStatus || retry != tc.wantRetry {
			t.Errorf("%s: status %d retry %v, want %d %v", tc.name, status, retry, tc.wantStatus, tc.wantRetry)
		}
		if got := be.requests.Load() - before; got != tc.wantRequests {
			t.Errorf("%s: backend saw %d requests, want %d", tc.name, got, tc.wantRequests)
		}
	}
}

// However many callers are refused, the memory stays bounded.
func TestRefusalMemoryIsBounded(t *testing.T) {
	clock := testutil.NewClockAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r := newRefusals(clock.Now)
	for _, tc := range []struct {
		name    string
		advance time.Duration
		keys    int
		wantMax int
	}{
		{"fills up to the bound", 0, maxRefusals, maxRefusals},
		{"stays at the bound when more are refused", time.Millisecond, 100, maxRefusals},
		{"stale entries make room first", refusalMin + refusalMax, 1, 1},
	} {
		clock.Advance(tc.advance)
		for i := range tc.keys {
			r.record(fmt.Sprintf("%s-%d", tc.name, i))
		}
		r.mu.Lock()
		n := len(r.m)
		r.mu.Unlock()
		if n > tc.wantMax || r.n.Load() != int64(n) {
			t.Errorf("%s: %d entries (counter %d), want at most %d", tc.name, n, r.n.Load(), tc.wantMax)
		}
	}
	// The newest refusal is always kept: evicting it would let that caller
	// straight back to the backend.
	if wait, _ := r.check("stale entries make room first-0"); wait != refusalMin {
		t.Errorf("newest refusal: wait %v, want %v", wait, refusalMin)
	}
}
