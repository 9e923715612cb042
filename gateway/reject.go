package gateway

import (
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// rejection is every way the request path refuses a request before the
// backend is involved. Steps return one; reject is the one place that turns
// it into an answer, in the shape the refusal belongs to (as Caddy's
// statusError): an OAuth error body, a Bearer challenge, an
// insufficient_scope challenge, or a JSON-RPC error.
type rejection struct {
	form   rejectForm
	status int
	// code is the OAuth error code (formOAuth); rpc the JSON-RPC code and id
	// the request's id (formRPC; nil: null).
	code string
	rpc  int
	id   *mcpgo.RequestId
	msg  string
	// scope and decisionID go into insufficient_scope challenges and OAuth
	// bodies when the policy made the refusal.
	scope, decisionID string
	// meta is the resource metadata a Bearer challenge names.
	meta string
	// data is the JSON-RPC error's data (formRPC).
	data any
	// headers are set on the answer as they are (Allow, Retry-After).
	headers map[string]string
}

type rejectForm int

const (
	formOAuth     rejectForm = iota // {"error", "error_description"}
	formChallenge                   // 401, WWW-Authenticate: Bearer error="invalid_token" (RFC 6750, RFC 9728)
	formNoToken                     // 401, WWW-Authenticate: Bearer resource_metadata (no token at all)
	formScope                       // 403, WWW-Authenticate: Bearer error="insufficient_scope"
	formRPC                         // a JSON-RPC error
)

func oauthRefusal(status int, code, msg string) *rejection {
	return &rejection{form: formOAuth, status: status, code: code, msg: msg}
}

func rpcRefusal(status int, id *mcpgo.RequestId, code int, msg string) *rejection {
	return &rejection{form: formRPC, status: status, id: id, rpc: code, msg: msg}
}

func challengeRefusal(meta, msg string) *rejection {
	return &rejection{form: formChallenge, status: fiber.StatusUnauthorized, code: "invalid_token", msg: msg, meta: meta}
}

func scopeRefusal(scope, msg, decisionID string) *rejection {
	return &rejection{form: formScope, status: fiber.StatusForbidden, code: "insufficient_scope", msg: msg, scope: scope, decisionID: decisionID}
}

// reject answers r.
func (g *Gateway) reject(c *fiber.Ctx, r *rejection) error {
	for k, v := range r.headers {
		c.Set(k, v)
	}
	switch r.form {
	case formRPC:
		return writeRPCError(c, r.status, r.id, r.rpc, r.msg, r.data)
	case formNoToken:
		c.Set(fiber.HeaderWWWAuthenticate, fmt.Sprintf(`Bearer resource_metadata=%q`, r.meta))
	case formChallenge:
		c.Set(fiber.HeaderWWWAuthenticate, fmt.Sprintf(`Bearer error="invalid_token", error_description=%q, resource_metadata=%q`, sanitizeQuoted(r.msg), r.meta))
	case formScope:
		parts := []string{`error="insufficient_scope"`}
		if r.scope != "" {
			parts = append(parts, fmt.Sprintf("scope=%q", sanitizeQuoted(r.scope)))
		}
		parts = append(parts, fmt.Sprintf("error_description=%q", sanitizeQuoted(r.msg)),
			fmt.Sprintf("resource_metadata=%q", g.resourceMetadataURL(c.Path())))
		c.Set(fiber.HeaderWWWAuthenticate, "Bearer "+strings.Join(parts, ", "))
	}
	return writeOAuthError(c, r.status, r.code, r.msg, r.decisionID)
}
