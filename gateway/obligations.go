package gateway

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/ratelimit"
)

// obligedRateLimit counts a call against the budget its decision's
// rate_limit obligation names (policy.RateLimit): in this replica's memory,
// or in Redis shared by every replica when ratelimit.redis_url is set. Over
// it, or with the counter unreachable, the call is refused: the policy
// allowed it only within the budget.
func (g *Gateway) obligedRateLimit(ctx context.Context, cl *call, m *mcp.Message, d policy.Decision) *rejection {
	if d.Obligations == nil || d.Obligations.RateLimit == nil {
		return nil
	}
	ol := d.Obligations.RateLimit
	id := &m.ID
	limiter := g.rate.sharedLimiter()
	// The policy's key is its own namespace: it cannot spend or read the
	// gateway's per-caller budgets.
	res, err := limiter.Allow(ctx, "policy:"+ol.Key, ratelimit.Limit{Name: "policy", Max: ol.Limit, Window: ol.Window}, 1)
	if err != nil {
		g.log.Error("policy rate limit could not be counted; call refused", "request_id", cl.requestID, "key", ol.Key, "err", err)
		r := rpcRefusal(fiber.StatusServiceUnavailable, id, mcp.CodeBackend, "the policy's rate limit cannot be counted right now; try again shortly")
		r.headers = map[string]string{fiber.HeaderRetryAfter: "1"}
		return r
	}
	if res.Allowed {
		return nil
	}
	secs := max(int(math.Ceil(res.RetryAfter.Seconds())), 1)
	r := rpcRefusal(fiber.StatusTooManyRequests, id, CodeRateLimited,
		fmt.Sprintf("rate limit of the policy exceeded: %d calls per %s (%s); retry after %d s", ol.Limit, ol.Window, ol.Key, secs))
	r.data = map[string]any{"limit": "policy", "key": ol.Key, "max": ol.Limit, "window": ol.Window.String(), "retry_after": secs, "decision_id": d.ID}
	r.headers = map[string]string{fiber.HeaderRetryAfter: strconv.Itoa(secs)}
	return r
}
