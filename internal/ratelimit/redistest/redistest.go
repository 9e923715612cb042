// Package redistest gives tests the machine's Redis server and a key
// prefix of their own, so tests running in parallel (or in several
// packages at once) never count against each other's budgets. Redis is
// required; when it is unreachable the test fails and says how to start it.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpgw/mcpgw/internal/testutil"
)

// DefaultRedis is the server the machines this project runs on start
// before every session and CI run.
const DefaultRedis = "redis://127.0.0.1:6379/0"

// StartHint says how to bring Redis up.
const StartHint = "start it with: redis-server --daemonize yes --bind 127.0.0.1" +
	" (or set TEST_REDIS=redis://... to use another server, or TEST_REDIS=off to skip Redis tests)"

var probe struct {
	once sync.Once
	err  error
}

// URL is the server tests use (TEST_REDIS, else DefaultRedis); ok is
// false when TEST_REDIS=off. It fails t when the server does not
// answer.
func URL(t testing.TB) (url string, ok bool) {
	t.Helper()
	url = os.Getenv("TEST_REDIS")
	if url == "off" {
		t.Log("TEST_REDIS=off: Redis is not tested")
		return "", false
	}
	if url == "" {
		url = DefaultRedis
	}
	probe.once.Do(func() {
		opts, err := redis.ParseURL(url)
		if err != nil {
			probe.err = err
			return
		}
		c := redis.NewClient(opts)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		probe.err = c.Ping(ctx).Err()
	})
	if probe.err != nil {
		testutil.Unreachable(t, "Redis", probe.err, StartHint)
		return "", false
	}
	return url, true
}

// Prefix is a key prefix of the test's own. Its keys are deleted when the
// test ends (they would expire anyway, within two windows).
func Prefix(t testing.TB, url string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	// Only characters that mean nothing in a SCAN pattern.
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '.'
	}, t.Name())
	prefix := "mcpgw-test:" + name + ":" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return
		}
		c := redis.NewClient(opts)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return prefix
}
