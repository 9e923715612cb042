package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/mcp"
)

// The federated endpoint's lists and the requests routed by name or URI
// (issue 19). A federated page of a list is one page of each backend
// still listing, merged; nextCursor carries each backend's own cursor
// (federatedList).

// listKind is one of the lists the federated endpoint merges: its method,
// the result's array, and how an item is shown (false: left out).
type listKind struct {
	method string
	field  string
	show   func(fc *fedCall, backend string, item map[string]json.RawMessage) bool
}

var federatedLists = map[string]listKind{
	string(mcpgo.MethodToolsList):              {string(mcpgo.MethodToolsList), "tools", showName},
	string(mcpgo.MethodPromptsList):            {string(mcpgo.MethodPromptsList), "prompts", showName},
	string(mcpgo.MethodResourcesList):          {string(mcpgo.MethodResourcesList), "resources", showURI("uri")},
	string(mcpgo.MethodResourcesTemplatesList): {string(mcpgo.MethodResourcesTemplatesList), "resourceTemplates", showURI("uriTemplate")},
}

// showName rewrites item.name (tools, prompts) with nameOut.
func showName(fc *fedCall, backend string, item map[string]json.RawMessage) bool {
	return rewriteField(item, "name", func(s string) (string, bool) { return fc.nameOut(backend, s) })
}

// showURI rewrites item[field] (resources' uri, templates' uriTemplate)
// with uriOut.
func showURI(field string) func(*fedCall, string, map[string]json.RawMessage) bool {
	return func(fc *fedCall, backend string, item map[string]json.RawMessage) bool {
		return rewriteField(item, field, func(s string) (string, bool) { return fc.uriOut(backend, s) })
	}
}

// rewriteField replaces the string obj[field] with what rewrite makes of
// it; false when it is missing, not a string, or cannot be rewritten.
func rewriteField(obj map[string]json.RawMessage, field string, rewrite func(string) (string, bool)) bool {
	var s string
	if raw, ok := obj[field]; !ok || json.Unmarshal(raw, &s) != nil {
		return false
	}
	out, ok := rewrite(s)
	if !ok {
		return false
	}
	obj[field], _ = json.Marshal(out)
	return true
}

// federatedRequest serves a request of the session other than initialize
// and ping: a list, or a request routed to the backend it names.
func (g *Gateway) federatedRequest(c *fiber.Ctx, fc *fedCall, m *mcp.Message) error {
	fc.prefixes = g.federatedPrefixes(fc)
	if k, ok := federatedLists[m.Method]; ok {
		return g.federatedList(c, fc, m, k)
	}
	switch m.Method {
	case string(mcpgo.MethodToolsCall):
		return g.federatedByName(c, fc, m, "tool")
	case string(mcpgo.MethodPromptsGet):
		return g.federatedByName(c, fc, m, "prompt")
	case string(mcpgo.MethodResourcesRead), string(mcpgo.MethodResourcesSubscribe), string(mcpgo.MethodResourcesUnsubscribe):
		return g.federatedByURI(c, fc, m)
	case string(mcpgo.MethodCompletionComplete):
		return g.federatedCompletion(c, fc, m)
	case string(mcpgo.MethodSetLogLevel):
		return g.federatedSetLevel(c, fc, m)
	}
	return sendJSON(c, fiber.StatusOK, mcp.ErrorResponse(m.ID, mcpgo.METHOD_NOT_FOUND,
		fmt.Sprintf("method %q is not served by the federated endpoint: use the backend's own path", truncate(m.Method, maxLoggedName)), nil))
}

// federatedPrefixes reads the session backends' name prefixes from the
// topology now serving (a backend no longer configured keeps the default:
// its requests fail on its path anyway).
func (g *Gateway) federatedPrefixes(fc *fedCall) map[string]string {
	topo := g.topo.Load()
	out := make(map[string]string, len(fc.sessions))
	for b := range fc.sessions {
		if r, ok := topo.backends[b]; ok {
			be := r.backend
			be.Name = b
			out[b] = be.FederatedNamePrefix()
		}
	}
	return out
}

// fedCursor is what a federated nextCursor carries, base64url-encoded: the
// list it pages and, for each backend with more to list, that backend's
// own cursor. It is opaque to the client and read back strictly: a cursor
// of another list, naming a backend not in the session, or altered, is
// refused rather than guessed at.
type fedCursor struct {
	Kind    string            `json:"k"`
	Cursors map[string]string `json:"c"`
}

func (k listKind) cursor(cursors map[string]string) string {
	b, _ := json.Marshal(fedCursor{Kind: k.method, Cursors: cursors})
	return base64.RawURLEncoding.EncodeToString(b)
}

// readCursor decodes a client's cursor for list k of this session.
func (k listKind) readCursor(fc *fedCall, s string) (fedCursor, error) {
	var cur fedCursor
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cur, fmt.Errorf("not a cursor this endpoint gave")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cur); err != nil || dec.More() || len(cur.Cursors) == 0 {
		return cur, fmt.Errorf("not a cursor this endpoint gave")
	}
	if cur.Kind != k.method {
		return cur, fmt.Errorf("a cursor of %s, not of %s", truncate(cur.Kind, maxLoggedName), k.method)
	}
	for b, c := range cur.Cursors {
		if _, ok := fc.sessions[b]; !ok {
			return cur, fmt.Errorf("names no backend of this session")
		}
		if c == "" {
			return cur, fmt.Errorf("not a cursor this endpoint gave")
		}
	}
	return cur, nil
}

// start is where a page of list k begins: each session backend's first
// page, or the backends and cursors the client's cursor names.
func (k listKind) start(fc *fedCall, params map[string]json.RawMessage) (map[string]string, error) {
	raw, ok := params["cursor"]
	if !ok {
		from := map[string]string{}
		for b := range fc.sessions {
			from[b] = ""
		}
		return from, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil, fmt.Errorf("must be a string")
	}
	cur, err := k.readCursor(fc, s)
	if err != nil {
		return nil, err
	}
	return cur.Cursors, nil
}

// federatedList answers one page of list k: the next page of every backend
// still listing (the first page of each, without a cursor), fetched at
// once, merged in backend name order, items shown through nameOut/uriOut.
// So a client that reads one page (most do) sees every backend that does
// not page, and a backend's own pagination is kept: nextCursor carries the
// cursor of each backend with more. A backend that fails is left out
// (logged and audited), the others listed.
func (g *Gateway) federatedList(c *fiber.Ctx, fc *fedCall, m *mcp.Message, k listKind) error {
	params, err := paramsOf(m)
	if err != nil {
		return invalidParams(c, m, err.Error())
	}
	from, err := k.start(fc, params)
	if err != nil {
		return invalidParams(c, m, "cursor: "+err.Error())
	}
	names := slices.Sorted(maps.Keys(from))
	type page struct {
		items []json.RawMessage
		more  string
		err   error
	}
	pages := make([]page, len(names))
	var wg sync.WaitGroup
	for i, b := range names {
		wg.Go(func() {
			items, more, err := g.backendPage(fc, m, k, b, params, from[b])
			pages[i] = page{items, more, err}
		})
	}
	wg.Wait()
	items := []json.RawMessage{}
	next := map[string]string{}
	for i, b := range names {
		if pages[i].err != nil {
			g.leftOut(fc, k.method, b, pages[i].err)
			continue
		}
		items = append(items, pages[i].items...)
		if pages[i].more != "" {
			next[b] = pages[i].more
		}
	}
	result := map[string]any{k.field: items}
	if len(next) > 0 {
		result["nextCursor"] = k.cursor(next)
	}
	return sendJSON(c, fiber.StatusOK, resultResponse(m, result))
}

// backendPage is one page of backend b's list k through its own path
// (filtered there for this caller), items shown as the federated endpoint
// shows them, and the backend's nextCursor.
func (g *Gateway) backendPage(fc *fedCall, m *mcp.Message, k listKind, b string, params map[string]json.RawMessage, cursor string) ([]json.RawMessage, string, error) {
	p := maps.Clone(params)
	delete(p, "cursor")
	if cursor != "" {
		p["cursor"], _ = json.Marshal(cursor)
	}
	a := g.viaBackend(fc, b, http.MethodPost, requestBody(m.ID, m.Method, p))
	var res map[string]json.RawMessage
	if err := a.result(m.IDKey, &res); err != nil {
		if rpcCode(a, m.IDKey) == mcpgo.METHOD_NOT_FOUND {
			// The backend has nothing of the kind (no such capability):
			// nothing is missing from the list.
			return nil, "", nil
		}
		return nil, "", err
	}
	var list []map[string]json.RawMessage
	if raw, ok := res[k.field]; ok {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, "", fmt.Errorf("%s: %w", k.field, err)
		}
	}
	var next string
	if raw, ok := res["nextCursor"]; ok && json.Unmarshal(raw, &next) != nil {
		return nil, "", fmt.Errorf("nextCursor is not a string")
	}
	out := make([]json.RawMessage, 0, len(list))
	for _, item := range list {
		if !k.show(fc, b, item) {
			g.log.Warn("federated "+k.method+": item left out: its name or URI would not route back to its backend",
				"request_id", fc.requestID, "backend", b, "item", excerpt(itemLabel(item)))
			continue
		}
		enc, err := json.Marshal(item)
		if err != nil {
			continue
		}
		out = append(out, enc)
	}
	return out, next, nil
}

// rpcCode is the JSON-RPC error code of the backend path's response to
// idKey, or 0.
func rpcCode(a subAnswer, idKey string) int {
	msgs, err := a.messages()
	if err != nil {
		return 0
	}
	for i := range msgs {
		if msgs[i].Kind != mcp.KindResponse || msgs[i].IDKey != idKey {
			continue
		}
		var reply struct {
			Error *struct {
				Code int `json:"code"`
			} `json:"error"`
		}
		if json.Unmarshal(msgs[i].Encode(), &reply) == nil && reply.Error != nil {
			return reply.Error.Code
		}
	}
	return 0
}

func itemLabel(item map[string]json.RawMessage) []byte {
	for _, f := range []string{"name", "uri", "uriTemplate"} {
		if v, ok := item[f]; ok {
			return v
		}
	}
	return nil
}

// leftOut says, in the log and in the audit trail, that backend b's items
// are missing from a federated list: the caller got a partial list, and an
// auditor must be able to tell it from a backend with nothing to list. The
// record is a decision record (the store keeps no other kind for a
// request) with allow false, outcome federated_partial.
func (g *Gateway) leftOut(fc *fedCall, method, b string, err error) {
	g.log.Warn("federated "+method+": backend left out of the list", "request_id", fc.requestID, "backend", b, "err", err)
	if g.opts.Audit == nil {
		return
	}
	g.opts.Audit(fc.from.ctx, audit.Record{
		Time: time.Now().UTC(), Kind: audit.KindDecision, DecisionID: uuid.NewString(), RequestID: fc.requestID,
		Subject: fc.principal.Subject, Issuer: fc.principal.Issuer, Agent: fc.agent.ID(), Backend: b, Method: method,
		Allow: false, Outcome: "federated_partial",
		Reasons: []string{fmt.Sprintf("backend %s left out of the federated list: %v", b, err)},
	})
}

// federatedByName routes tools/call and prompts/get by their shown
// params.name to the backend it names, with the backend's own name.
func (g *Gateway) federatedByName(c *fiber.Ctx, fc *fedCall, m *mcp.Message, what string) error {
	params, err := paramsOf(m)
	if err != nil {
		return invalidParams(c, m, err.Error())
	}
	backend, name, ok := fc.nameIn(m.Target())
	if !ok {
		return invalidParams(c, m, fmt.Sprintf("name: %s %q names no backend of this session", what, truncate(m.Target(), maxLoggedName)))
	}
	params["name"], _ = json.Marshal(name)
	return g.relayRouted(c, fc, m, backend, params, nil)
}

// federatedByURI routes resources/read, subscribe and unsubscribe by their
// shown params.uri; read's contents[].uri are shown back out.
func (g *Gateway) federatedByURI(c *fiber.Ctx, fc *fedCall, m *mcp.Message) error {
	params, err := paramsOf(m)
	if err != nil {
		return invalidParams(c, m, err.Error())
	}
	var shown string
	_ = json.Unmarshal(params["uri"], &shown)
	backend, uri, ok := fc.uriIn(shown)
	if !ok {
		return invalidParams(c, m, fmt.Sprintf("uri: %q names no backend of this session", truncate(shown, maxLoggedName)))
	}
	params["uri"], _ = json.Marshal(uri)
	var out func(map[string]json.RawMessage) error
	if m.Method == string(mcpgo.MethodResourcesRead) {
		out = func(res map[string]json.RawMessage) error { return g.showContents(fc, backend, res) }
	}
	return g.relayRouted(c, fc, m, backend, params, out)
}

// showContents rewrites a resources/read result's contents[].uri as the
// federated endpoint shows URIs; a content whose URI cannot be shown is
// left out (logged), as a list leaves out such a resource.
func (g *Gateway) showContents(fc *fedCall, backend string, res map[string]json.RawMessage) error {
	var contents []map[string]json.RawMessage
	if raw, ok := res["contents"]; ok {
		if err := json.Unmarshal(raw, &contents); err != nil {
			return fmt.Errorf("contents: %w", err)
		}
	}
	kept := make([]map[string]json.RawMessage, 0, len(contents))
	for _, ct := range contents {
		if _, has := ct["uri"]; has && !rewriteField(ct, "uri", func(s string) (string, bool) { return fc.uriOut(backend, s) }) {
			g.log.Warn("federated resources/read: content left out: its URI would not route back to its backend", "request_id", fc.requestID, "backend", backend)
			continue
		}
		kept = append(kept, ct)
	}
	var err error
	res["contents"], err = json.Marshal(kept)
	return err
}

// federatedCompletion routes completion/complete by params.ref: a prompt
// by its shown name, a resource template by its shown URI.
func (g *Gateway) federatedCompletion(c *fiber.Ctx, fc *fedCall, m *mcp.Message) error {
	params, err := paramsOf(m)
	if err != nil {
		return invalidParams(c, m, err.Error())
	}
	var ref map[string]json.RawMessage
	if json.Unmarshal(params["ref"], &ref) != nil || ref == nil {
		return invalidParams(c, m, "ref: must be an object")
	}
	var typ, backend string
	_ = json.Unmarshal(ref["type"], &typ)
	switch typ {
	case "ref/prompt":
		if !rewriteField(ref, "name", func(s string) (string, bool) {
			b, n, ok := fc.nameIn(s)
			backend = b
			return n, ok
		}) {
			return invalidParams(c, m, "ref.name: names no prompt of a backend of this session")
		}
	case "ref/resource":
		if !rewriteField(ref, "uri", func(s string) (string, bool) {
			b, u, ok := fc.uriIn(s)
			backend = b
			return u, ok
		}) {
			return invalidParams(c, m, "ref.uri: names no backend of this session")
		}
	default:
		return invalidParams(c, m, fmt.Sprintf("ref.type: %q: want ref/prompt or ref/resource", truncate(typ, maxLoggedName)))
	}
	params["ref"], _ = json.Marshal(ref)
	return g.relayRouted(c, fc, m, backend, params, nil)
}

// federatedSetLevel sends logging/setLevel to every backend of the session
// (each decided on its own path): the level is the client's for the whole
// session. It succeeds when one backend took it, and names those that did
// not in the log; when none did, the error says why for each.
func (g *Gateway) federatedSetLevel(c *fiber.Ctx, fc *fedCall, m *mcp.Message) error {
	params, err := paramsOf(m)
	if err != nil {
		return invalidParams(c, m, err.Error())
	}
	body := requestBody(m.ID, m.Method, params)
	var failed []string
	accepted := 0
	for _, a := range g.fanOut(fc, slices.Sorted(maps.Keys(fc.sessions)), func(string) (string, []byte) { return http.MethodPost, body }) {
		var res json.RawMessage
		if err := a.result(m.IDKey, &res); err != nil {
			g.log.Warn("federated logging/setLevel: backend did not take the level", "request_id", fc.requestID, "backend", a.backend, "err", err)
			failed = append(failed, a.backend+": "+err.Error())
			continue
		}
		accepted++
	}
	if accepted == 0 {
		return sendJSON(c, fiber.StatusOK, mcp.ErrorResponse(m.ID, mcp.CodeBackend,
			"no backend of the session took logging/setLevel: "+truncate(strings.Join(failed, "; "), 1024), nil))
	}
	return sendJSON(c, fiber.StatusOK, resultResponse(m, struct{}{}))
}

// paramsOf is the request's params as an object (empty when absent).
func paramsOf(m *mcp.Message) (map[string]json.RawMessage, error) {
	params := map[string]json.RawMessage{}
	if raw := m.ParamsJSON(); raw != nil {
		if err := json.Unmarshal(raw, &params); err != nil {
			return nil, fmt.Errorf("params: %w", err)
		}
	}
	return params, nil
}

// invalidParams answers m with -32602; msg names the field.
func invalidParams(c *fiber.Ctx, m *mcp.Message, msg string) error {
	return sendJSON(c, fiber.StatusOK, mcp.ErrorResponse(m.ID, mcpgo.INVALID_PARAMS, "invalid params: "+msg, nil))
}

// fedCapabilities merges the server capabilities the backends answered
// initialize with: a capability is the federated endpoint's when one
// backend of the session has it, since its requests route there.
type fedCapabilities struct {
	tools, prompts, resources, subscribe, logging, completions bool
	// listChanged: the kinds (tools, prompts, resources) some backend
	// sends list_changed for; the federated GET stream carries them.
	listChanged map[string]bool
}

func (f *fedCapabilities) add(caps map[string]json.RawMessage) {
	_, tools := caps["tools"]
	_, prompts := caps["prompts"]
	_, logging := caps["logging"]
	_, completions := caps["completions"]
	f.tools = f.tools || tools
	f.prompts = f.prompts || prompts
	f.logging = f.logging || logging
	f.completions = f.completions || completions
	if raw, ok := caps["resources"]; ok {
		f.resources = true
		var r struct {
			Subscribe bool `json:"subscribe"`
		}
		_ = json.Unmarshal(raw, &r)
		f.subscribe = f.subscribe || r.Subscribe
	}
	for _, kind := range []string{"tools", "prompts", "resources"} {
		var c struct {
			ListChanged bool `json:"listChanged"`
		}
		if json.Unmarshal(caps[kind], &c) == nil && c.ListChanged {
			if f.listChanged == nil {
				f.listChanged = map[string]bool{}
			}
			f.listChanged[kind] = true
		}
	}
}

// merged is the capabilities object of the federated initialize answer:
// a capability any backend has, listChanged where any backend sends it.
func (f fedCapabilities) merged() map[string]any {
	caps := map[string]any{}
	for _, c := range []struct {
		on   bool
		name string
	}{{f.tools, "tools"}, {f.prompts, "prompts"}, {f.logging, "logging"}, {f.completions, "completions"}} {
		if c.on {
			caps[c.name] = map[string]any{}
		}
	}
	if f.resources {
		r := map[string]any{}
		if f.subscribe {
			r["subscribe"] = true
		}
		caps["resources"] = r
	}
	for kind := range f.listChanged {
		if c, ok := caps[kind].(map[string]any); ok {
			c["listChanged"] = true
		}
	}
	return caps
}
