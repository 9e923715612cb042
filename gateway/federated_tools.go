package gateway

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"

	"github.com/gofiber/fiber/v2"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/internal/mcp"
)

// federatedToolsList merges each session backend's tools/list, as the
// backend's path answers it to this caller (filtered there by the policy),
// names prefixed. A backend's nextCursor is followed here, up to
// maxFederatedPages pages; the merged list is one page. A backend that
// fails is left out, with a warning logged, not the list failed.
func (g *Gateway) federatedToolsList(c *fiber.Ctx, fc *fedCall, m *mcp.Message) error {
	var params struct {
		Cursor *string `json:"cursor"`
	}
	_ = json.Unmarshal(m.ParamsJSON(), &params)
	if params.Cursor != nil {
		return sendJSON(c, fiber.StatusOK, mcp.ErrorResponse(m.ID, mcpgo.INVALID_PARAMS, "invalid params: the federated tools/list answers with every tool in one page and takes no cursor", nil))
	}
	names := slices.Sorted(maps.Keys(fc.sessions))
	lists := make([][]json.RawMessage, len(names))
	var wg sync.WaitGroup
	for i, b := range names {
		wg.Go(func() {
			tools, err := g.backendTools(fc, b, m)
			if err != nil {
				g.log.Warn("federated tools/list: backend left out of the list", "request_id", fc.requestID, "backend", b, "err", err)
			}
			lists[i] = tools
		})
	}
	wg.Wait()
	merged := []json.RawMessage{}
	seen := map[string]bool{}
	for i, b := range names {
		for _, raw := range lists[i] {
			var tool map[string]json.RawMessage
			var name string
			if json.Unmarshal(raw, &tool) != nil || json.Unmarshal(tool["name"], &name) != nil {
				continue
			}
			prefixed := fc.nameOut(b, name)
			if seen[prefixed] {
				// Names with "_" can meet ("a" + "__" + "_x", "a_" + "__" + "x"):
				// only the first is listed, and calls route to the longest
				// backend name (nameIn).
				g.log.Warn("federated tools/list: duplicate prefixed name left out", "request_id", fc.requestID, "backend", b, "tool", prefixed)
				continue
			}
			seen[prefixed] = true
			tool["name"], _ = json.Marshal(prefixed)
			enc, err := json.Marshal(tool)
			if err != nil {
				continue
			}
			merged = append(merged, enc)
		}
	}
	return sendJSON(c, fiber.StatusOK, resultResponse(m, map[string]any{"tools": merged}))
}

// backendTools is backend b's tools/list through its own path, its pages
// followed up to maxFederatedPages.
func (g *Gateway) backendTools(fc *fedCall, b string, m *mcp.Message) ([]json.RawMessage, error) {
	var out []json.RawMessage
	var cursor string
	for range maxFederatedPages {
		params := map[string]any{}
		if cursor != "" {
			params["cursor"] = cursor
		}
		a := g.viaBackend(fc, b, http.MethodPost, requestBody(m.ID, m.Method, params))
		var res struct {
			Tools      []json.RawMessage `json:"tools"`
			NextCursor string            `json:"nextCursor"`
		}
		if err := a.result(m.IDKey, &res); err != nil {
			return out, err
		}
		out = append(out, res.Tools...)
		if res.NextCursor == "" {
			return out, nil
		}
		cursor = res.NextCursor
	}
	return out, fmt.Errorf("more than %d pages of tools: the rest are left out", maxFederatedPages)
}

// federatedToolsCall routes <backend>__<tool> to backend's path with the
// tool's own name, and answers with what that path answered: its status,
// its JSON or SSE body (a denial's -32003 with its decision id, a rate
// limit's 429, the result redacted), an SSE answer relayed event by event.
func (g *Gateway) federatedToolsCall(c *fiber.Ctx, fc *fedCall, m *mcp.Message) error {
	backend, tool, ok := fc.nameIn(m.Target())
	if !ok {
		return sendJSON(c, fiber.StatusOK, mcp.ErrorResponse(m.ID, mcpgo.INVALID_PARAMS,
			fmt.Sprintf("invalid params: tool %q names no backend of this session (<backend>%s<tool>)", truncate(m.Target(), maxLoggedName), federatedSeparator), nil))
	}
	if g.topo.Load().backends[backend] == nil {
		return sendJSON(c, fiber.StatusBadGateway, mcp.ErrorResponse(m.ID, mcp.CodeBackend, fmt.Sprintf("backend %s is no longer configured", backend), nil))
	}
	params := map[string]json.RawMessage{}
	if err := json.Unmarshal(m.ParamsJSON(), &params); err != nil {
		return sendJSON(c, fiber.StatusOK, mcp.ErrorResponse(m.ID, mcpgo.INVALID_PARAMS, "invalid params: "+err.Error(), nil))
	}
	params["name"], _ = json.Marshal(tool)
	return g.relayFromBackend(c, fc, backend, requestBody(m.ID, m.Method, params), m.ID)
}
