package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/internal/integrity"
	"github.com/mcpgw/mcpgw/internal/mcp"
	"github.com/mcpgw/mcpgw/internal/policy"
)

// filterReply reads a backend's non-streamed reply. A reply that is JSON is
// read strictly, its list results filtered and the errors of batch members
// the policy denied appended; what is sent on is the encoding of that
// reading. A reply that only looks like JSON to a lenient reader, or is
// labelled JSON but cannot be read, is refused (err): a client could read a
// list from it that the gateway did not filter. Anything else (a plain-text
// error page) is passed on as it is.
// requests are the forwarded requests of one exchange by their id's key
// (mcp.Message.IDKey): replies are matched to them.
type requests map[string]request

type request struct {
	method string
	id     mcpgo.RequestId
	// redact is the policy's redaction of this call's result, if any.
	redact *policy.Redaction
}

// errors are one JSON-RPC error response for each request, in a stable order.
func (r requests) errors(code int, msg string) [][]byte {
	keys := slices.Sorted(maps.Keys(r))
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = mcp.ErrorResponse(r[k].id, code, msg, nil)
	}
	return out
}

func (g *Gateway) filterReply(ctx context.Context, cl *call, payload []byte, contentType string, fw *forwarded) (out []byte, isJSON bool, err error) {
	pending, denied := fw.pending, fw.denied
	if len(bytes.TrimSpace(payload)) == 0 && len(denied) == 0 {
		return payload, false, nil
	}
	msgs, batch, err := mcp.ParseReply(payload)
	if err != nil {
		if len(bytes.TrimSpace(payload)) > 0 && (json.Valid(payload) || strings.Contains(strings.ToLower(contentType), "json")) {
			return nil, false, fmt.Errorf("unreadable JSON reply: %w", err)
		}
		if len(denied) > 0 {
			return nil, false, fmt.Errorf("non-JSON reply to a batch with denied members: %w", err)
		}
		return payload, false, nil
	}
	parts := make([][]byte, 0, len(msgs)+len(denied))
	for i := range msgs {
		parts = append(parts, g.filterMessage(ctx, cl, &msgs[i], pending))
	}
	parts = append(parts, denied...)
	// The reply to a batch is an array (JSON-RPC 2.0, section 6), even when
	// one member survived and went to the backend alone, as an object.
	return mcp.EncodeMessages(parts, batch || fw.batch || len(parts) > 1), true, nil
}

// filterEvent is filterReply for the data of one SSE event. answered lists
// the ids of the responses it carried.
func (g *Gateway) filterEvent(ctx context.Context, cl *call, data []byte, pending requests) (out []byte, answered []string, err error) {
	msgs, batch, err := mcp.ParseReply(data)
	if err != nil {
		return nil, nil, err
	}
	parts := make([][]byte, 0, len(msgs))
	for i := range msgs {
		if msgs[i].Kind == mcp.KindResponse {
			answered = append(answered, msgs[i].IDKey)
		}
		parts = append(parts, g.filterMessage(ctx, cl, &msgs[i], pending))
	}
	return mcp.EncodeMessages(parts, batch), answered, nil
}

// filterMessage filters the lists in one message's result and returns the
// message's encoding. The list is recognised by the request's method, and by
// shape whatever the method, so no catalog slips through unfiltered (a
// resumed stream, or a reply to one request shaped like another's).
func (g *Gateway) filterMessage(ctx context.Context, cl *call, m *mcp.Message, pending requests) []byte {
	if m.Kind == mcp.KindNotification && m.Method == string(mcpgo.MethodNotificationToolsListChanged) {
		// The backend says its tools changed: the next call of an enforcing
		// backend lists them again before it is decided.
		g.fetcher.invalidate(cl.route.backend.Name)
	}
	result, ok := m.Result()
	if !ok {
		return m.Encode()
	}
	if r := pending[m.IDKey].redact; r != nil && m.Kind == mcp.KindResponse {
		result = r.Apply(result)
		m.SetResult(result)
	}
	lists, err := m.Lists(pending[m.IDKey].method)
	if err != nil {
		g.log.Warn("backend sent a malformed list", "request_id", cl.requestID, "backend", cl.route.backend.Name, "err", err)
		return mcp.ErrorResponse(m.ID, mcp.CodeBackend, fmt.Sprintf("backend %s sent a malformed list result", cl.route.backend.Name), nil)
	}
	if len(lists) == 0 {
		return m.Encode()
	}
	visible := make(map[mcp.ListKey]map[string]bool, len(lists))
	for _, l := range lists {
		if l.Key == mcp.ListTools {
			g.catalog.remember(cl.route.backend.Name, l.Items)
		}
		visible[l.Key] = g.visible(ctx, cl, l.Key, l.Items, g.classify(ctx, cl, l.Key, l.Items))
	}
	keep := func(k mcp.ListKey, it mcp.ListItem) bool { return visible[k][it.Key(k)] }
	// The reply as received with the hidden items cut out, when nothing
	// else in it changed (Splice says why that is the same reading);
	// encoding the filtered tree was a quarter of a large list's cost and
	// lost the backend's bytes. A redacted result was changed: its tree is
	// encoded.
	if out, ok := m.Splice(lists, keep); ok {
		return out
	}
	m.SetResult(mcp.FilterLists(result, lists, keep))
	return m.Encode()
}

// visible asks the policy which items the caller may see, given their
// classification (nil when tool integrity is off); on any error it hides
// them all.
func (g *Gateway) visible(ctx context.Context, cl *call, key mcp.ListKey, items []mcp.ListItem, integ []integrity.Result) map[string]bool {
	in := cl.base
	in.MCP = policy.MCPInput{Kind: policy.KindRequest, Method: listMethod(key)}
	cat, err := g.catalog.prepare(cl.route.backend.Name, key, items, integ)
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

// readAllSized is readAllLimit for a reply that declares its size: read
// into one buffer of that size (plus one byte, to see the end without
// growing). A reply longer or shorter than declared is read all the same,
// up to limit.
func readAllSized(r io.Reader, limit int64, size int) ([]byte, error) {
	// io.ReadAll, starting from size+1 bytes rather than 512.
	r = io.LimitReader(r, limit+1)
	b := make([]byte, 0, size+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("reply larger than %d bytes", limit)
	}
	return b, nil
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
