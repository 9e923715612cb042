package telemetry

import (
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/mcpgw/mcpgw/internal/identity"
)

// Label values that stand in for ones the metrics will not record.
const (
	// labelOther replaces a value outside a known set or past a guard's limit.
	labelOther = "other"
	// labelNone replaces an empty value, which Prometheus treats as no label.
	labelNone = "none"
	// labelUnknown is a request's backend or MCP method when the gateway
	// answered before learning it (a 401 is answered before the body is read).
	labelUnknown = "unknown"
)

// Method labels of mcpgw_requests_total besides the MCP method names.
const (
	MethodBatch    = "batch"    // a JSON-RPC batch (2025-03-26)
	MethodResponse = "response" // a client's answer to a server's request
	MethodGET      = "GET"      // the session's server stream
	MethodDELETE   = "DELETE"   // the end of a session
)

// Outcomes of a request, the outcome label of mcpgw_requests_total and the
// request log's outcome field. Anything else is recorded as "other".
const (
	OutcomeOK                 = "ok"                   // relayed, the backend answered 2xx (streams included)
	OutcomeDenied             = "denied"               // the policy denied (JSON-RPC -32003 or HTTP 403)
	OutcomeUnauthenticated    = "unauthenticated"      // 401: no token or a bad one
	OutcomeForbidden          = "forbidden"            // 403 before the policy: Host, Origin, agent, backend_access, disabled
	OutcomeRateLimited        = "rate_limited"         // 429
	OutcomeInvalid            = "invalid"              // refused by the transport and message rules (400, 405, 406, 413, 415, -32602)
	OutcomeNotFound           = "not_found"            // 404: no backend serves the path, or an unknown session
	OutcomeUnavailable        = "unavailable"          // 503: the issuer's keys or the rate limiter are unavailable
	OutcomeCredentialError    = "credential_error"     // the backend's credential could not be obtained (-32011)
	OutcomeBackendRefused     = "backend_refused"      // the backend refused the gateway's credential (401/403)
	OutcomeBackendClientError = "backend_client_error" // the backend answered 4xx
	OutcomeBackendError       = "backend_error"        // the backend failed, timed out, answered 5xx or unreadably
	OutcomeError              = "error"                // the gateway failed (500)
)

func outcomeLabel(o string) string {
	switch o {
	case OutcomeOK, OutcomeDenied, OutcomeUnauthenticated, OutcomeForbidden, OutcomeRateLimited,
		OutcomeInvalid, OutcomeNotFound, OutcomeUnavailable, OutcomeCredentialError, OutcomeBackendRefused,
		OutcomeBackendClientError, OutcomeBackendError, OutcomeError:
		return o
	}
	return labelOther
}

// requestMethodLabel is the method label of mcpgw_requests_total: an MCP
// method name, one of the Method* shapes, "unknown" or "other".
func requestMethodLabel(m string) string {
	switch {
	case m == "":
		return labelUnknown
	case m == MethodBatch, m == MethodResponse, m == MethodGET, m == MethodDELETE, KnownMCPMethod(m):
		return m
	}
	return labelOther
}

// labelGuard bounds the distinct values one label may take. Backend names,
// issuers, exchange steps and outcomes come from configuration or code, yet
// the admin API adds backends at run time and a bug could pass request data:
// the first limit distinct well-formed values are kept, every later one is
// recorded as "other", so a scrape can never grow without bound.
type labelGuard struct {
	limit  int
	maxLen int

	mu   sync.RWMutex
	seen map[string]struct{}
}

func newLabelGuard(limit, maxLen int) *labelGuard {
	return &labelGuard{limit: limit, maxLen: maxLen, seen: make(map[string]struct{}, limit)}
}

func (g *labelGuard) value(v string) string {
	if v == "" {
		return labelNone
	}
	if len(v) > g.maxLen || !labelSafe(v) {
		return labelOther
	}
	g.mu.RLock()
	_, known := g.seen[v]
	full := len(g.seen) >= g.limit
	g.mu.RUnlock()
	if known {
		return v
	}
	if full {
		return labelOther
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, known := g.seen[v]; known {
		return v
	}
	if len(g.seen) >= g.limit {
		return labelOther
	}
	g.seen[v] = struct{}{}
	return v
}

// labelSafe accepts printable ASCII without spaces, quotes or backslashes:
// names, URLs and identifiers pass; free text and binary do not.
func labelSafe(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// methodLabel keeps HTTP methods and the MCP methods of the protocol
// revisions the gateway speaks; anything else is "other".
func methodLabel(m string) string {
	switch m {
	case "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS":
		return m
	case "":
		return labelNone
	}
	if KnownMCPMethod(m) {
		return m
	}
	return labelOther
}

// KnownMCPMethod reports whether m is a method of the MCP protocol
// revisions the gateway speaks: the set a method label may take. A switch
// rather than a lookup table keeps the set free of package state.
func KnownMCPMethod(m string) bool {
	switch m {
	case "initialize", "ping",
		"tools/list", "tools/call",
		"resources/list", "resources/templates/list", "resources/read",
		"resources/subscribe", "resources/unsubscribe",
		"prompts/list", "prompts/get",
		"completion/complete", "logging/setLevel",
		"sampling/createMessage", "elicitation/create", "roots/list",
		"tasks/get", "tasks/list", "tasks/result", "tasks/cancel",
		"server/discover", "subscriptions/listen",
		"notifications/initialized", "notifications/cancelled",
		"notifications/progress", "notifications/message",
		"notifications/roots/list_changed",
		"notifications/resources/list_changed", "notifications/resources/updated",
		"notifications/prompts/list_changed", "notifications/tools/list_changed",
		"notifications/elicitation/complete", "notifications/tasks/status",
		"notifications/subscriptions/acknowledged":
		return true
	}
	return false
}

// queryLabel keeps the rules the policy engine reports in Record.Query.
func queryLabel(q string) string {
	switch q {
	case "decision", "visible_tools", "visible_resources", "visible_prompts", "admin":
		return q
	}
	return labelOther
}

// jwtResultLabel keeps "ok" and identity's bounded failure reasons.
func jwtResultLabel(reason string) string {
	switch reason {
	case "ok",
		identity.ReasonMissing, identity.ReasonMalformed, identity.ReasonAlgorithm,
		identity.ReasonIssuer, identity.ReasonKeysUnavailable, identity.ReasonUnknownKey,
		identity.ReasonSignature, identity.ReasonExpired, identity.ReasonNotYetValid,
		identity.ReasonIssuedInFuture, identity.ReasonAudience, identity.ReasonMissingClaim,
		identity.ReasonClaimType, identity.ReasonTooLarge, identity.ReasonHeader, identity.ReasonTokenType:
		return reason
	}
	return labelOther
}

// revisionLabel makes a bundle revision (free text from its manifest) a
// valid label value: client_golang panics on invalid UTF-8.
func revisionLabel(rev string) string {
	if rev == "" {
		return labelNone
	}
	rev = strings.ToValidUTF8(rev, "\uFFFD")
	if len(rev) <= maxRevision {
		return rev
	}
	cut := maxRevision
	for cut > 0 && !utf8.RuneStart(rev[cut]) {
		cut--
	}
	return rev[:cut]
}

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func hitLabel(hit bool) string {
	if hit {
		return "hit"
	}
	return "miss"
}

func errLabel(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}
