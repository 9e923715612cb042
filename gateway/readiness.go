package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"

	"github.com/gofiber/fiber/v2"
)

// Readiness is answered twice. The main port, which every agent reaches,
// says only whether the gateway is ready: the checks' texts name the IdP,
// the store and the policy source, and the policy status names bundle
// revisions and rejection reasons (internal hosts). The detailed answer is
// on the metrics listener only (server.metrics_listen), with /metrics.

// readiness runs every check. body is the detailed answer: ready, each
// check's "ok" or error text, and the details (the active policy).
func (g *Gateway) readiness(ctx context.Context) (ready bool, body map[string]any) {
	names := make([]string, 0, len(g.opts.ReadyChecks))
	for name := range g.opts.ReadyChecks {
		names = append(names, name)
	}
	sort.Strings(names)
	checks := map[string]any{}
	ready = true
	for _, name := range names {
		if err := g.opts.ReadyChecks[name](ctx); err != nil {
			checks[name] = err.Error()
			ready = false
		} else {
			checks[name] = "ok"
		}
	}
	body = map[string]any{"ready": ready, "checks": checks}
	for name, detail := range g.opts.ReadyDetails {
		body[name] = detail()
	}
	return ready, body
}

func readyStatus(ready bool) int {
	if ready {
		return fiber.StatusOK
	}
	return fiber.StatusServiceUnavailable
}

// readyzMinimal is the main port's /readyz: {"ready": bool}, 200 or 503,
// enough for a load balancer and nothing for anyone else.
func (g *Gateway) readyzMinimal(c *fiber.Ctx) error {
	ready, _ := g.readiness(c.UserContext())
	return c.Status(readyStatus(ready)).JSON(fiber.Map{"ready": ready})
}

// notServedHere answers /metrics on the main port: the path is reserved
// (no backend may be routed there), and metrics are served on
// server.metrics_listen only.
func notServedHere(c *fiber.Ctx) error {
	return c.Status(fiber.StatusNotFound).JSON(fiber.Map{"error": "not_found"})
}

// ReadinessHandler is the detailed /readyz for the metrics listener: every
// check by name with its error text, and the policy status.
func (g *Gateway) ReadinessHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		ready, body := g.readiness(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(readyStatus(ready))
		_ = json.NewEncoder(w).Encode(body)
	})
}
