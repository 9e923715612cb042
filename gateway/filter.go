package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/policy"
)

// filterJSON filters the list results in a JSON reply (one response or a
// batch) and appends the errors of batch members the policy denied.
func (g *Gateway) filterJSON(ctx context.Context, cl *call, payload []byte, methods map[string]string, denied [][]byte) []byte {
	var batch []json.RawMessage
	if len(payload) > 0 && payload[0] == '[' && json.Unmarshal(payload, &batch) == nil {
		for i, raw := range batch {
			batch[i], _ = g.filterMessage(ctx, cl, raw, methods)
		}
		for _, d := range denied {
			batch = append(batch, d)
		}
		out, err := json.Marshal(batch)
		if err != nil {
			return payload
		}
		return out
	}
	out, _ := g.filterMessage(ctx, cl, payload, methods)
	if len(denied) > 0 {
		// A single forwarded message plus denied ones only happens in a batch
		// whose backend answered with one object; keep every answer.
		all := append([]json.RawMessage{out}, toRaw(denied)...)
		if b, err := json.Marshal(all); err == nil {
			return b
		}
	}
	return out
}

func toRaw(parts [][]byte) []json.RawMessage {
	out := make([]json.RawMessage, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out
}

// filterMessage filters one message if it is the result of a list call. The
// list is recognised by the request's method, or by shape when the gateway
// did not see the request (a resumed stream), so no catalog slips through
// unfiltered. changed reports whether raw was rewritten.
func (g *Gateway) filterMessage(ctx context.Context, cl *call, raw []byte, methods map[string]string) (out []byte, changed bool) {
	resp, err := mcp.ParseResponse(raw)
	if err != nil || len(resp.Result) == 0 {
		return raw, false
	}
	method, known := methods[resp.ID.String()]
	key := mcp.ListKeyForMethod(method)
	if !known {
		key = mcp.DetectListKey(resp.Result)
	}
	if key == "" {
		return raw, false
	}
	items, err := mcp.ParseList(resp.Result, key)
	if err != nil {
		g.log.Warn("backend sent a malformed list", "request_id", cl.requestID, "backend", cl.route.backend.Name, "err", err)
		return mcp.ErrorResponse(resp.ID, mcp.CodeBackend, fmt.Sprintf("backend %s sent a malformed %s result", cl.route.backend.Name, key), nil), true
	}
	if key == mcp.ListTools {
		g.catalog.remember(cl.route.backend.Name, items)
	}
	visible := g.visible(ctx, cl, key, items)
	filtered, err := mcp.FilterList(resp.Result, key, func(it mcp.ListItem) bool { return visible[it.Key(key)] })
	if err != nil {
		return mcp.ErrorResponse(resp.ID, mcp.CodeBackend, fmt.Sprintf("backend %s sent a malformed %s result", cl.route.backend.Name, key), nil), true
	}
	out, err = resp.WithResult(filtered)
	if err != nil {
		return mcp.ErrorResponse(resp.ID, mcp.CodeBackend, "could not re-encode a filtered list", nil), true
	}
	return out, true
}

// visible asks the policy which items the caller may see; on any error it
// hides them all.
func (g *Gateway) visible(ctx context.Context, cl *call, key mcp.ListKey, items []mcp.ListItem) map[string]bool {
	in := cl.base
	in.MCP = policy.MCPInput{Method: listMethod(key)}
	cat, err := g.catalog.prepare(cl.route.backend.Name, key, items)
	if err == nil {
		var vis map[string]bool
		if vis, err = g.opts.Authorizer.VisibleCatalog(ctx, &in, cat); err == nil {
			return vis
		}
	}
	g.log.Warn("visibility decision failed; hiding the list", "request_id", cl.requestID, "backend", cl.route.backend.Name, "list", key, "err", err)
	return map[string]bool{}
}

func listMethod(key mcp.ListKey) string {
	switch key {
	case mcp.ListTools:
		return "tools/list"
	case mcp.ListResources:
		return "resources/list"
	case mcp.ListResourceTemplates:
		return "resources/templates/list"
	}
	return "prompts/list"
}

func readAllLimit(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("reply larger than %d bytes", limit)
	}
	return b, nil
}
