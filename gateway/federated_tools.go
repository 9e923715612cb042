package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/mcp"
)

// relayRouted sends one request the federated endpoint routed (tools/call,
// prompts/get, resources/*, completion/complete; params already carry the
// backend's own name or URI) to backend's path, and answers the client with
// what that path answered: its status, the headers a client acts on, its
// JSON or SSE body (a denial's -32003 with its decision id, a rate limit's
// 429, the result redacted), an SSE answer relayed event by event
// (relayFromBackend). When out is set, the answer is read whole and the
// result of the response to m is passed through out first (resources/read
// shows its contents' URIs as the federated endpoint does); a result out
// cannot read is refused as the backend's error, never passed on
// unrewritten.
func (g *Gateway) relayRouted(c *fiber.Ctx, fc *fedCall, m *mcp.Message, backend string, params map[string]json.RawMessage, out func(map[string]json.RawMessage) error) error {
	if g.topo.Load().backends[backend] == nil {
		return sendJSON(c, fiber.StatusBadGateway, mcp.ErrorResponse(m.ID, mcp.CodeBackend, fmt.Sprintf("backend %s is no longer configured", backend), nil))
	}
	body := requestBody(m.ID, m.Method, params)
	if out == nil {
		return g.relayFromBackend(c, fc, backend, body, m)
	}
	a := g.viaBackend(fc, backend, http.MethodPost, body)
	if g.sessionLost(fc, &a) {
		return sendJSON(c, fiber.StatusOK, sessionLostError(m.ID, backend))
	}
	for _, h := range []string{fiber.HeaderWWWAuthenticate, fiber.HeaderRetryAfter} {
		if v := a.header.Get(h); v != "" {
			c.Set(h, v)
		}
	}
	if out != nil && a.status == fiber.StatusOK {
		body, err := rewriteAnswer(a, m.IDKey, out)
		if err != nil {
			g.log.Warn("federated "+m.Method+": backend answer not rewritable", "request_id", fc.requestID, "backend", backend, "err", err)
			return sendJSON(c, fiber.StatusBadGateway, mcp.ErrorResponse(m.ID, mcp.CodeBackend, fmt.Sprintf("backend %s sent a result the federated endpoint cannot show", backend), nil))
		}
		a.body, a.contentType = body, fiber.MIMEApplicationJSON
	}
	if a.contentType != "" {
		c.Set(fiber.HeaderContentType, a.contentType)
	}
	return c.Status(a.status).Send(a.body)
}

// rewriteAnswer is the backend's response to idKey with its result passed
// through out, as one JSON message. Other messages of an SSE answer
// (progress, log notifications) are dropped: the federated endpoint does
// not relay server notifications yet. An error response is kept as it is.
func rewriteAnswer(a subAnswer, idKey string, out func(map[string]json.RawMessage) error) ([]byte, error) {
	msgs, err := a.messages()
	if err != nil {
		return nil, err
	}
	for i := range msgs {
		if msgs[i].Kind != mcp.KindResponse || msgs[i].IDKey != idKey {
			continue
		}
		var reply map[string]json.RawMessage
		if err := json.Unmarshal(msgs[i].Encode(), &reply); err != nil {
			return nil, err
		}
		raw, ok := reply["result"]
		if !ok {
			return msgs[i].Encode(), nil
		}
		var res map[string]json.RawMessage
		if err := json.Unmarshal(raw, &res); err != nil {
			return nil, fmt.Errorf("result: %w", err)
		}
		if err := out(res); err != nil {
			return nil, err
		}
		if reply["result"], err = json.Marshal(res); err != nil {
			return nil, err
		}
		return json.Marshal(reply)
	}
	return nil, fmt.Errorf("no response to the request (%s)", excerpt(a.body))
}
