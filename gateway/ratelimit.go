package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/ratelimit"
)

// CodeRateLimited is the JSON-RPC error of a request refused for exceeding
// a rate limit (with HTTP 429 and Retry-After). It sits in JSON-RPC's
// implementation-defined server error range with the gateway's other
// codes (-32003 policy, -32010 backend, -32011 credential); 29 echoes 429.
const CodeRateLimited = -32029

// rateLimitObserver is the part of the Observer (telemetry.Metrics) that
// counts refusals; an Observer without it is not told.
type rateLimitObserver interface {
	RateLimited(limit string)
	RateLimitError()
}

// rateLimits applies ratelimit.requests_per_minute and sessions_per_minute
// to authenticated callers, keyed by issuer and subject: a caller's budget
// is the same whichever agent, backend or token it uses.
type rateLimits struct {
	limiter  ratelimit.Limiter
	owned    bool // made by New from the config: closed by Shutdown
	requests ratelimit.Limit
	sessions ratelimit.Limit
	failOpen bool
	redis    *ratelimit.Redis
	log      *slog.Logger
	logs     refusalLogLimiter
}

// newRateLimiter makes the limiter the config asks for: Redis when
// ratelimit.redis_url is set, else this replica's memory.
func newRateLimiter(c config.RateLimit) (ratelimit.Limiter, error) {
	if c.RedisURL == "" {
		return ratelimit.NewMemory(nil), nil
	}
	timeout := c.RedisTimeout
	if timeout <= 0 {
		timeout = config.DefaultRedisTimeout
	}
	return ratelimit.NewRedis(ratelimit.RedisOptions{URL: c.RedisURL, Prefix: c.RedisKeyPrefix, Timeout: timeout})
}

func newRateLimits(c config.RateLimit, limiter ratelimit.Limiter, log *slog.Logger) (*rateLimits, error) {
	rl := &rateLimits{
		requests: ratelimit.Limit{Name: "requests_per_minute", Max: c.RequestsPerMinute, Window: time.Minute},
		sessions: ratelimit.Limit{Name: "sessions_per_minute", Max: c.SessionsPerMinute, Window: time.Minute},
		failOpen: c.FailOpen,
		log:      log,
	}
	if rl.requests.Max <= 0 && rl.sessions.Max <= 0 && c.RedisURL == "" && limiter == nil {
		// Both budgets off and no Redis: only the policy's rate_limit
		// obligations count, in this replica's memory.
		rl.limiter, rl.owned = ratelimit.NewMemory(nil), true
		return rl, nil
	}
	if limiter == nil {
		var err error
		if limiter, err = newRateLimiter(c); err != nil {
			return nil, err
		}
		rl.owned = true
	}
	rl.limiter = limiter
	rl.redis, _ = limiter.(*ratelimit.Redis)
	return rl, nil
}

// close releases a limiter New made (a Redis connection pool).
// sharedLimiter counts what is not a per-caller budget (the policy's
// rate_limit obligations, OAuth registrations per address): the configured
// limiter, Redis when ratelimit.redis_url is set, else this replica's memory.
func (rl *rateLimits) sharedLimiter() ratelimit.Limiter { return rl.limiter }

func (rl *rateLimits) close() error {
	if rl == nil || !rl.owned || rl.limiter == nil {
		return nil
	}
	return rl.limiter.Close()
}

// ready fails while Redis does not answer and requests are refused for it
// (fail closed): the replica cannot serve MCP requests then.
func (rl *rateLimits) ready(ctx context.Context) error {
	if rl == nil || rl.redis == nil || rl.failOpen {
		return nil
	}
	return rl.redis.Ping(ctx)
}

// chargeRequest charges one request to the caller (every MCP HTTP request,
// before anything else is done for it).
func (g *Gateway) chargeRequest(c *fiber.Ctx, p *identity.Principal, requestID string) *rejection {
	return g.charge(c, p, requestID, nil, 1, 0)
}

// subRequestKey marks, as a fasthttp user value, a request the federated
// endpoint made in process to a backend's path (viaBackend). The client's
// request was charged once on the federated path, so its backend requests
// are not charged against the same caller-wide budgets again. A client
// cannot set a user value: no header or body reaches it.
type subRequestKey struct{}

func isSubRequest(c *fiber.Ctx) bool { return c.Context().UserValue(subRequestKey{}) != nil }

// chargeMessages charges what a POST's body holds beyond the one request
// chargeRequest charged: the other members of a batch, and each initialize
// (a new session) against sessions_per_minute.
func (g *Gateway) chargeMessages(c *fiber.Ctx, cl *call, msgs []mcp.Message, batch bool) *rejection {
	sessions := 0
	for i := range msgs {
		if msgs[i].Kind == mcp.KindRequest && msgs[i].Method == string(mcpgo.MethodInitialize) {
			sessions++
		}
	}
	var id *mcpgo.RequestId
	if !batch && msgs[0].Kind == mcp.KindRequest {
		id = &msgs[0].ID
	}
	return g.charge(c, cl.principal, cl.requestID, id, len(msgs)-1, sessions)
}

func (g *Gateway) charge(c *fiber.Ctx, p *identity.Principal, requestID string, id *mcpgo.RequestId, requests, sessions int) *rejection {
	rl := g.rate
	if rl == nil || rl.limiter == nil || isSubRequest(c) {
		return nil
	}
	// The key is built only for a budget that is charged: a request with
	// nothing to charge (most calls to chargeMessages) costs nothing here.
	key := ""
	for _, step := range []struct {
		limit ratelimit.Limit
		cost  int
	}{{rl.requests, requests}, {rl.sessions, sessions}} {
		if step.limit.Max <= 0 || step.cost <= 0 {
			continue
		}
		if key == "" {
			key = ratelimit.SubjectKey(p.Issuer, p.Subject)
		}
		d, err := rl.limiter.Allow(c.UserContext(), key, step.limit, step.cost)
		if err != nil {
			if o, ok := g.opts.Observer.(rateLimitObserver); ok {
				o.RateLimitError()
			}
			if rl.logs.allowError() {
				g.log.Error("rate limiter unavailable", "request_id", requestID, "fail_open", rl.failOpen, "err", err)
			}
			if rl.failOpen {
				continue
			}
			r := rpcRefusal(fiber.StatusServiceUnavailable, id, mcpgo.INTERNAL_ERROR,
				"rate limiter unavailable: requests are refused until it answers (ratelimit.fail_open is off)")
			r.headers = map[string]string{fiber.HeaderRetryAfter: "1"}
			return r
		}
		if d.Allowed {
			continue
		}
		secs := int(math.Ceil(d.RetryAfter.Seconds()))
		if secs < 1 {
			secs = 1
		}
		if o, ok := g.opts.Observer.(rateLimitObserver); ok {
			o.RateLimited(step.limit.Name)
		}
		if n, ok := rl.logs.allowRefusal(key + step.limit.Name); ok {
			g.log.Warn("request over rate limit", "request_id", requestID, "subject", p.Subject, "issuer", p.Issuer,
				"limit", "ratelimit."+step.limit.Name, "max", step.limit.Max, "cost", step.cost, "retry_after_s", secs,
				"refusals_not_logged", n)
		}
		r := rpcRefusal(fiber.StatusTooManyRequests, id, CodeRateLimited,
			fmt.Sprintf("rate limit exceeded: ratelimit.%s is %d per caller; retry after %d s", step.limit.Name, step.limit.Max, secs))
		r.data = map[string]any{"limit": step.limit.Name, "max": step.limit.Max, "retry_after": secs}
		r.headers = map[string]string{fiber.HeaderRetryAfter: strconv.Itoa(secs)}
		return r
	}
	return nil
}

// refusalLogLimiter keeps a refusing gateway from flooding its own log: a
// caller over its limit is logged at its first refusal and then at most
// every refusalLogEvery, with the number of refusals not logged between.
type refusalLogLimiter struct {
	mu        sync.Mutex
	callers   map[string]*refusalLogState
	lastError time.Time
}

type refusalLogState struct {
	last       time.Time
	suppressed int
}

const (
	refusalLogEvery = 10 * time.Second
	// refusalLogCallers bounds the map: past it, entries that could not
	// suppress anything any more are dropped.
	refusalLogCallers = 10000
)

// allowRefusal says whether to log a refusal for key, and how many were
// not logged since the last line.
func (l *refusalLogLimiter) allowRefusal(key string) (int, bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.callers == nil {
		l.callers = map[string]*refusalLogState{}
	}
	if len(l.callers) >= refusalLogCallers {
		for k, s := range l.callers {
			if now.Sub(s.last) >= refusalLogEvery {
				delete(l.callers, k)
			}
		}
	}
	s := l.callers[key]
	if s == nil {
		l.callers[key] = &refusalLogState{last: now}
		return 0, true
	}
	if now.Sub(s.last) < refusalLogEvery {
		s.suppressed++
		return 0, false
	}
	n := s.suppressed
	s.last, s.suppressed = now, 0
	return n, true
}

// allowError says whether to log a limiter failure: at most one line per
// refusalLogEvery for the whole gateway (every request fails alike).
func (l *refusalLogLimiter) allowError() bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastError) < refusalLogEvery {
		return false
	}
	l.lastError = now
	return true
}
