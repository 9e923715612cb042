package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpgw/mcpgw/internal/secrets"
)

// slidingWindow decides and counts in one step, atomically: Redis runs a
// script without interleaving other commands, so two replicas charging the
// same subject at once cannot both see room for the last unit. The clock is
// Redis's own (TIME), so replicas whose clocks differ still agree on the
// windows. One hash per subject and limit holds a field per fixed window
// index; only the current and previous window are ever read, the one
// before them is deleted, and the key expires two windows after its last
// use.
//
// KEYS[1] the subject's counter hash; ARGV max, window (ms), cost.
// Returns {allowed (0/1), prev, cur, elapsed ms}.
var slidingWindow = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[1])
local w = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local idx = math.floor(now / w)
local elapsed = now - idx * w
local cur = tonumber(redis.call('HGET', KEYS[1], tostring(idx)) or '0')
local prev = tonumber(redis.call('HGET', KEYS[1], tostring(idx - 1)) or '0')
if prev * (w - elapsed) / w + cur + cost > max then
  return {0, prev, cur, elapsed}
end
cur = redis.call('HINCRBY', KEYS[1], tostring(idx), cost)
redis.call('HDEL', KEYS[1], tostring(idx - 2))
redis.call('PEXPIRE', KEYS[1], 2 * w)
return {1, prev, cur, elapsed}
`)

// RedisOptions configures NewRedis.
type RedisOptions struct {
	// URL is redis://[user:password@]host:port[/db] or rediss:// for TLS.
	URL string
	// Prefix starts every key the limiter writes; replicas that share a
	// budget use the same one. Default "mcpgw:ratelimit:".
	Prefix string
	// Timeout bounds one decision, connection included (default 1s): a
	// request waits at most this long for Redis before the caller's
	// fail-open or fail-closed choice applies.
	Timeout time.Duration
}

// Redis is a Limiter whose counters live in Redis, shared by every replica
// with the same URL and prefix.
type Redis struct {
	client  *redis.Client
	prefix  string
	timeout time.Duration
	shown   string // the URL without credentials, for errors
}

// quietRedis silences go-redis's own logger, which prints every failed
// dial to stderr outside the gateway's structured log; each failure reaches
// the caller as an error instead, which the gateway logs (rate-limited).
var quietRedis sync.Once

type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

// NewRedis connects lazily: an unreachable server fails each Allow (with
// ErrUnavailable), not the start, so the gateway can start and say in
// /readyz and its log what is wrong.
func NewRedis(o RedisOptions) (*Redis, error) {
	quietRedis.Do(func() { redis.SetLogger(discardLogger{}) })
	opts, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: redis url %s: %w", secrets.URL(o.URL), err)
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Prefix == "" {
		o.Prefix = "mcpgw:ratelimit:"
	}
	// Every request waits on this client: fail fast rather than queue
	// behind a server that is not answering.
	opts.DialTimeout = o.Timeout
	opts.ReadTimeout = o.Timeout
	opts.WriteTimeout = o.Timeout
	opts.PoolTimeout = o.Timeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = 1
	opts.DisableIdentity = true
	return &Redis{client: redis.NewClient(opts), prefix: o.Prefix, timeout: o.Timeout, shown: secrets.URL(o.URL)}, nil
}

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, key string, l Limit, cost int) (Decision, error) {
	if err := l.check(); err != nil {
		return Decision{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	size := l.Window.Milliseconds()
	res, err := slidingWindow.Run(ctx, r.client, []string{counterKey(r.prefix, l, key)}, l.Max, size, cost).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("%w: redis %s: %w", ErrUnavailable, r.shown, err)
	}
	if len(res) != 4 {
		return Decision{}, fmt.Errorf("%w: redis %s: unexpected script answer %v", ErrUnavailable, r.shown, res)
	}
	if res[0] == 1 {
		return Decision{Allowed: true}, nil
	}
	w := window{prev: float64(res[1]), cur: float64(res[2]), elapsed: float64(res[3]), size: float64(size)}
	return Decision{RetryAfter: w.retryAfter(float64(cost), float64(l.Max))}, nil
}

// Ping checks that Redis answers, for readiness.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: redis %s: %w", ErrUnavailable, r.shown, err)
	}
	return nil
}

// Close implements Limiter.
func (r *Redis) Close() error {
	if err := r.client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return err
	}
	return nil
}
