package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/internal/mcp"
)

// MCP 2026-07-28 (SEP-2243) mirrors parts of a message into headers —
// Mcp-Method, Mcp-Name and Mcp-Param-<x> — so that proxies, rate limiters
// and servers can route without reading bodies. Forwarded unchecked, such a
// header can tell the backend (or anything between) something else than the
// body the policy decided on, and a backend of any revision may read it. So,
// whatever MCP-Protocol-Version says:
//
//   - a client's hint headers are checked against the gateway's own reading
//     of the body; the request is refused (400, naming the header) when one
//     disagrees, is sent twice, or cannot describe the message: on a batch
//     (several messages), on a JSON-RPC response, Mcp-Name on a method that
//     carries no name, Mcp-Param-* on anything but tools/call or naming no
//     parameter of the tool's input schema. With 2026-07-28 they are also
//     required, as that revision requires them.
//   - the client's own hint headers are never forwarded. For 2026-07-28 the
//     backend gets the hints derived from the message it receives (what was
//     decided); for older revisions, which define none, it gets none.

// mcpParamPrefix is mcpgo.HeaderParamPrefix lower-cased, for matching
// header names whatever their case.
var mcpParamPrefix = strings.ToLower(mcpgo.HeaderParamPrefix)

// hintHeaders are the hint headers of one request, as sent.
type hintHeaders struct {
	method, name       string
	hasMethod, hasName bool
	// params holds each Mcp-Param-* value by lower-cased header name;
	// paramNames the name as sent, for error messages.
	params     map[string]string
	paramNames map[string]string
	// dup is the first hint header sent more than once.
	dup string
	// first is the first hint header seen and firstParam the first
	// Mcp-Param-* one, for error messages.
	first, firstParam string
}

func (h *hintHeaders) any() bool { return h.first != "" }

// readHints collects the hint headers. Every occurrence is visited, so a
// header sent twice (one value checked, the other read by the backend) is
// seen.
func readHints(c *fiber.Ctx) hintHeaders {
	var h hintHeaders
	c.Request().Header.VisitAll(func(k, v []byte) {
		// Most headers are none of these: tell without copying them.
		if !isHintName(k) {
			return
		}
		key := string(k)
		lower := strings.ToLower(key)
		if h.first == "" {
			h.first = key
		}
		value := string(v)
		switch {
		case lower == "mcp-method":
			if h.hasMethod && h.dup == "" {
				h.dup = key
			}
			h.method, h.hasMethod = value, true
		case lower == "mcp-name":
			if h.hasName && h.dup == "" {
				h.dup = key
			}
			h.name, h.hasName = value, true
		default:
			if h.params == nil {
				h.params, h.paramNames, h.firstParam = map[string]string{}, map[string]string{}, key
			}
			if _, seen := h.params[lower]; seen && h.dup == "" {
				h.dup = key
			}
			h.params[lower], h.paramNames[lower] = value, key
		}
	})
	return h
}

// isHintName reports whether k, in any case, is Mcp-Method, Mcp-Name or
// starts with Mcp-Param-, without copying k. bytes.EqualFold agrees with
// comparing strings.ToLower(string(k)) for these names: none has a letter
// that a non-ASCII rune folds or lower-cases to (k, s, i).
func isHintName(k []byte) bool {
	return bytes.EqualFold(k, hintMethod) || bytes.EqualFold(k, hintName) ||
		len(k) >= len(mcpParamPrefix) && bytes.EqualFold(k[:len(mcpParamPrefix)], hintParamPrefix)
}

var (
	hintMethod      = []byte("mcp-method")
	hintName        = []byte("mcp-name")
	hintParamPrefix = []byte(mcpParamPrefix)
)

// check holds the hint headers against the body's messages; the error
// names the header at fault. Mcp-Param-* values are checked by
// checkParams, once the called tool's schema is known.
func (h *hintHeaders) check(version string, batch bool, m *mcp.Message) error {
	if !h.any() && !mcpgo.IsModernProtocol(version) {
		return nil
	}
	switch {
	case h.dup != "":
		return fmt.Errorf("%s: header sent more than once", h.dup)
	case batch && h.any():
		return fmt.Errorf("%s: Mcp-Method, Mcp-Name and Mcp-Param-* headers describe one message; a JSON-RPC batch cannot carry them", h.first)
	case batch:
		return nil
	case m.Kind == mcp.KindResponse && h.any():
		return fmt.Errorf("%s: a JSON-RPC response has no method or name for this header to describe", h.first)
	case m.Kind == mcp.KindResponse:
		return nil
	}
	modern := mcpgo.IsModernProtocol(version)
	if modern && !h.hasMethod {
		return fmt.Errorf("%s: missing required header (MCP-Protocol-Version %s)", mcpgo.HeaderMethod, version)
	}
	if h.hasMethod && h.method != m.Method {
		return fmt.Errorf("%s: header value %q does not match body value %q", mcpgo.HeaderMethod, h.method, m.Method)
	}
	method := mcpgo.MCPMethod(m.Method)
	named := mcpgo.MethodRequiresNameHeader(method)
	switch {
	case h.hasName && !named:
		return fmt.Errorf("%s: method %q carries no name for this header to mirror", mcpgo.HeaderName, m.Method)
	case modern && named && !h.hasName:
		return fmt.Errorf("%s: missing required header for method %q (MCP-Protocol-Version %s)", mcpgo.HeaderName, m.Method, version)
	case h.hasName:
		decoded, ok := mcpgo.DecodeHeaderValue(h.name)
		if !ok {
			return fmt.Errorf("%s: invalid Base64 encoding", mcpgo.HeaderName)
		}
		if decoded != m.Target() {
			return fmt.Errorf("%s: header value %q does not match body value %q", mcpgo.HeaderName, decoded, m.Target())
		}
	}
	if len(h.params) > 0 && method != mcpgo.MethodToolsCall {
		return fmt.Errorf("%s: Mcp-Param-* headers belong to tools/call only, not %q", h.firstParam, m.Method)
	}
	return nil
}

// hintTool is the called tool as mcp-go's header helpers read it: its input
// schema as the backend listed it.
func hintTool(m *mcp.Message, entry toolEntry) *mcpgo.Tool {
	return &mcpgo.Tool{Name: m.Target(), RawInputSchema: json.RawMessage(entry.schemaJSON())}
}

// checkParams holds the Mcp-Param-* headers of a tools/call against its
// arguments, by the tool's x-mcp-header annotations: each must name a
// bound parameter and carry its value. With 2026-07-28 a bound parameter's
// header is also required.
func (h *hintHeaders) checkParams(version string, m *mcp.Message, tool *mcpgo.Tool) error {
	if len(h.params) == 0 && !mcpgo.IsModernProtocol(version) {
		return nil
	}
	bound := map[string]bool{}
	for _, b := range mcpgo.ExtractParamHeaderBindings(tool) {
		bound[strings.ToLower(b.HeaderName())] = true
	}
	for lower, name := range h.paramNames {
		if !bound[lower] {
			return fmt.Errorf("%s: the input schema of tool %q binds no parameter to this header (x-mcp-header)", name, m.Target())
		}
	}
	lookup := func(name string) (string, bool) {
		v, ok := h.params[strings.ToLower(name)]
		return v, ok
	}
	if err := mcpgo.ValidateParamHeadersLookup(lookup, tool, m.ParamsJSON()); err != nil {
		// mcp-go's text starts "header mismatch:"; errors here start with
		// the header's name, like every other transport refusal.
		var mismatch mcpgo.HeaderMismatchError
		if errors.As(err, &mismatch) {
			return fmt.Errorf("%s: %s", mismatch.Header, mismatch.Reason)
		}
		return err
	}
	return nil
}

// derivedHints are the hint headers a 2026-07-28 backend gets: derived from
// the message it receives, never copied from the client. tool is nil
// except for tools/call.
func derivedHints(version string, m *mcp.Message, tool *mcpgo.Tool) http.Header {
	if !mcpgo.IsModernProtocol(version) || m.Kind == mcp.KindResponse {
		return nil
	}
	out := http.Header{}
	out.Set(mcpgo.HeaderMethod, m.Method)
	if mcpgo.MethodRequiresNameHeader(mcpgo.MCPMethod(m.Method)) {
		if v, ok := mcpgo.EncodeHeaderValue(m.Target()); ok {
			out.Set(mcpgo.HeaderName, v)
		}
	}
	if tool != nil {
		for name, v := range mcpgo.GenerateParamHeaders(tool, m.ParamsJSON()) {
			out.Set(name, v)
		}
	}
	return out
}
