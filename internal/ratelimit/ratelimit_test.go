package ratelimit

import (
	"github.com/mcpgw/mcpgw/internal/testutil"

	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/ratelimit/redistest"
)

// A window boundary, so the steps below say exactly where in a window each
// request falls.
var epochMinute = time.Unix(1_800_000_000-1_800_000_000%60, 0)

func TestMemorySlidingWindow(t *testing.T) {
	perMinute := Limit{Name: "requests_per_minute", Max: 10, Window: time.Minute}
	type step struct {
		after     time.Duration // clock moves this much before the call
		cost      int
		allowed   bool
		retryFrom time.Duration // a refusal's Retry-After, at least ...
		retryTo   time.Duration // ... and at most
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"the budget, then a refusal", []step{
			{cost: 10, allowed: true},
			// The next window, once 10*(60-e)/60 + 1 <= 10: e = 6s.
			{cost: 1, retryFrom: 66 * time.Second, retryTo: 66 * time.Second},
		}},
		{"a refused request is not counted", []step{
			{cost: 10, allowed: true},
			{cost: 1}, {cost: 1}, {cost: 1},
			// 54s into the next window, 10% of the 10 remain: 1 fits.
			{after: 114 * time.Second, cost: 1, allowed: true},
		}},
		{"no double budget across a window boundary", []step{
			{after: 50 * time.Second, cost: 10, allowed: true},
			// 15s into the next window: 10*(45/60) = 7.5 still count.
			// 3 fit once 10*(60-e)/60 <= 7: e = 18s, 3s from now.
			{after: 25 * time.Second, cost: 3, retryFrom: 3 * time.Second, retryTo: 3 * time.Second},
			{cost: 2, allowed: true},
		}},
		{"two windows of silence forget everything", []step{
			{cost: 10, allowed: true},
			{after: 2 * time.Minute, cost: 10, allowed: true},
		}},
		{"a cost above the limit never fits", []step{
			{cost: 11, retryFrom: time.Minute, retryTo: time.Minute},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := testutil.NewClockAt(epochMinute)
			m := NewMemory(clock.Now)
			for i, s := range tc.steps {
				clock.Advance(s.after)
				d, err := m.Allow(context.Background(), "alice", perMinute, s.cost)
				if err != nil {
					t.Fatal(err)
				}
				if d.Allowed != s.allowed {
					t.Fatalf("step %d: allowed = %v, want %v", i, d.Allowed, s.allowed)
				}
				if !s.allowed && s.retryTo > 0 && (d.RetryAfter < s.retryFrom || d.RetryAfter > s.retryTo) {
					t.Fatalf("step %d: retry after %v, want between %v and %v", i, d.RetryAfter, s.retryFrom, s.retryTo)
				}
			}
		})
	}
}

// Subjects and limits are counted apart: one caller's use and one limit's
// budget are nobody else's.
func TestMemoryKeysAndLimitsAreSeparate(t *testing.T) {
	clock := testutil.NewClockAt(epochMinute)
	m := NewMemory(clock.Now)
	requests := Limit{Name: "requests_per_minute", Max: 2, Window: time.Minute}
	sessions := Limit{Name: "sessions_per_minute", Max: 2, Window: time.Minute}
	for _, c := range []struct {
		key   string
		limit Limit
	}{{"alice", requests}, {"bob", requests}, {"alice", sessions}} {
		if d, _ := m.Allow(context.Background(), c.key, c.limit, 2); !d.Allowed {
			t.Fatalf("%s under %s refused: another key's or limit's use was counted", c.key, c.limit.Name)
		}
	}
	if d, _ := m.Allow(context.Background(), "alice", requests, 1); d.Allowed {
		t.Fatal("alice's third request allowed")
	}
}

func TestSubjectKeySeparatesIssuers(t *testing.T) {
	if SubjectKey("https://a", "alice") == SubjectKey("https://b", "alice") {
		t.Fatal("the same subject at two issuers shares a budget")
	}
	if SubjectKey("https://a", "b:c") == SubjectKey("https://a:b", "c") || SubjectKey("https://a", "b\x00c") == SubjectKey("https://a\x00b", "c") {
		t.Fatal("issuer and subject run together")
	}
}

func newRedis(t *testing.T) (*Redis, string, string) {
	t.Helper()
	url, ok := redistest.URL(t)
	if !ok {
		t.SkipNow()
	}
	prefix := redistest.Prefix(t, url)
	r, err := NewRedis(RedisOptions{URL: url, Prefix: prefix, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, url, prefix
}

// Two limiters on one Redis server and prefix (two replicas) share one
// budget, even when they charge it at the same moment.
func TestRedisSharedBudget(t *testing.T) {
	one, url, prefix := newRedis(t)
	two, err := NewRedis(RedisOptions{URL: url, Prefix: prefix, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = two.Close() })
	// An hour: the test cannot straddle enough of a window for the
	// estimate to move.
	limit := Limit{Name: "requests_per_minute", Max: 40, Window: time.Hour}
	var allowed, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := one
			if i%2 == 1 {
				l = two
			}
			d, err := l.Allow(context.Background(), "alice", limit, 1)
			switch {
			case err != nil:
				t.Error(err)
			case d.Allowed:
				allowed.Add(1)
			default:
				refused.Add(1)
				if d.RetryAfter <= 0 || d.RetryAfter > 2*time.Hour {
					t.Errorf("retry after %v", d.RetryAfter)
				}
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 40 || refused.Load() != 60 {
		t.Fatalf("allowed %d, refused %d; want 40 and 60 from one shared budget", allowed.Load(), refused.Load())
	}
	// Another subject, and the same subject under another prefix (another
	// deployment), have budgets of their own.
	if d, err := one.Allow(context.Background(), "bob", limit, 40); err != nil || !d.Allowed {
		t.Fatalf("bob: %+v %v", d, err)
	}
	other, err := NewRedis(RedisOptions{URL: url, Prefix: prefix + "other:", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if d, err := other.Allow(context.Background(), "alice", limit, 1); err != nil || !d.Allowed {
		t.Fatalf("alice under another prefix: %+v %v", d, err)
	}
}

// The counter keys expire: an idle subject leaves nothing behind in Redis.
func TestRedisKeysExpire(t *testing.T) {
	r, _, prefix := newRedis(t)
	limit := Limit{Name: "sessions_per_minute", Max: 5, Window: time.Minute}
	if _, err := r.Allow(context.Background(), "alice", limit, 1); err != nil {
		t.Fatal(err)
	}
	ttl, err := r.client.PTTL(context.Background(), prefix+"sessions_per_minute:alice").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > 2*time.Minute {
		t.Fatalf("counter TTL %v, want within two windows", ttl)
	}
}

// An unreachable server is an error the caller can tell apart (to fail
// open or closed), and it comes within the timeout.
func TestRedisUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r, err := NewRedis(RedisOptions{URL: "redis://:hunter2@" + addr + "/0", Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.Allow(context.Background(), "alice", Limit{Name: "requests_per_minute", Max: 1, Window: time.Minute}, 1)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if want := addr; !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v: want the address and no password", err)
	}
	if err := r.Ping(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ping = %v", err)
	}
}

func TestNewRedisRefusesBadURL(t *testing.T) {
	if _, err := NewRedis(RedisOptions{URL: "http://:secret@127.0.0.1:6379"}); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("err = %v, want a refusal without the password", err)
	}
}
