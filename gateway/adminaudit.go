package gateway

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/audit"
)

// GET /admin/v1/audit: one page of the audit trail, filtered.

// auditParams are the query parameters of GET /admin/v1/audit.
var auditParams = []string{"kind", "subject", "agent", "backend", "decision", "since", "until", "limit", "cursor", "include"}

func (a *adminAPI) handleAudit(c *fiber.Ctx) error {
	p, ok := a.authenticate(c)
	if !ok {
		return nil
	}
	if _, ok := a.authorize(c, p, actionList, "audit", "", nil); !ok {
		return nil
	}
	q, problems := parseAuditQuery(c)
	if len(problems) > 0 {
		return invalid(c, problems)
	}
	// Recorded policy inputs are returned only when asked for, and asking
	// is its own decision (kind audit_input), so that a policy can keep
	// them from roles that may read the rest of the trail.
	if q.IncludeInput {
		if _, ok := a.authorize(c, p, actionList, "audit_input", "", nil); !ok {
			return nil
		}
	}
	recs, next, err := a.s.Store.QueryAudit(c.UserContext(), q)
	if errors.Is(err, audit.ErrInvalidQuery) {
		return invalid(c, []string{err.Error()})
	}
	if err != nil {
		return a.internal(c, "query audit", err)
	}
	if recs == nil {
		recs = []audit.Record{}
	}
	return adminJSON(c, fiber.StatusOK, fiber.Map{"records": recs, "next_cursor": next})
}

func parseAuditQuery(c *fiber.Ctx) (audit.Query, []string) {
	var q audit.Query
	problems := visitQuery(c, auditParams, func(key, val string) string {
		var err error
		switch key {
		case "kind":
			q.Kind = audit.Kind(val)
		case "subject":
			q.Subject = val
		case "agent":
			q.Agent = val
		case "backend":
			q.Backend = val
		case "decision":
			q.Decision = val
		case "cursor":
			q.Cursor = val
		case "include":
			if val != "input" {
				return fmt.Sprintf("query parameter include: want input, got %q", truncate(val, 32))
			}
			q.IncludeInput = true
		case "since":
			q.Since, err = time.Parse(time.RFC3339Nano, val)
		case "until":
			q.Until, err = time.Parse(time.RFC3339Nano, val)
		case "limit":
			// The store would cut a larger page or default a zero one; the
			// API says what it serves instead of silently serving less.
			if n, err := strconv.Atoi(val); err == nil && n >= 1 && n <= audit.MaxLimit {
				q.Limit = n
				return ""
			}
			return fmt.Sprintf("query parameter limit: want an integer from 1 to %d, got %q", audit.MaxLimit, truncate(val, 32))
		}
		if err != nil {
			return fmt.Sprintf("query parameter %s: want an RFC 3339 time such as 2026-01-02T15:04:05Z", key)
		}
		return ""
	})
	// Every bad parameter in one answer: the filters that parsed are
	// checked too, whatever else was wrong.
	if _, err := q.Normalize(); err != nil {
		for _, fe := range audit.FieldErrors(err) {
			problems = append(problems, "query parameter "+fe.Field+": "+fe.Problem)
		}
	}
	return q, problems
}

// visitQuery calls each with every query parameter of the request, in
// order, and returns the problems: a parameter not in allowed or given
// twice (a filter read once and ignored the second time would be a guess),
// and what each said of a value. Every problem is returned, not the first.
func visitQuery(c *fiber.Ctx, allowed []string, each func(key, val string) string) []string {
	var problems []string
	seen := map[string]bool{}
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		key, val := string(k), string(v)
		switch {
		case !slices.Contains(allowed, key):
			problems = append(problems, fmt.Sprintf("query parameter %q: unknown (want %s)", key, strings.Join(allowed, ", ")))
		case seen[key]:
			problems = append(problems, fmt.Sprintf("query parameter %s: given more than once", key))
		default:
			seen[key] = true
			if p := each(key, val); p != "" {
				problems = append(problems, p)
			}
		}
	})
	return problems
}
