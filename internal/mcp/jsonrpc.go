// Package mcp frames MCP's JSON-RPC 2.0 messages as they cross the gateway:
// it parses a POST body into messages (one, or a 2025-03-26 batch), classifies
// them, builds JSON-RPC errors with mcp-go's types, and reads and rewrites
// Server-Sent Events. Messages are forwarded as they came; the gateway only
// rewrites list results it must filter.
package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// Kind is what a JSON-RPC message is.
type Kind int

const (
	KindRequest Kind = iota + 1
	KindNotification
	// KindResponse is a result or error, e.g. a client answering a server's
	// sampling or elicitation request.
	KindResponse
)

// Codes the gateway uses besides JSON-RPC's own (mcp-go has those).
const (
	// CodeForbidden is a policy denial of one message.
	CodeForbidden = -32003
	// CodeBackend is a backend that failed, timed out or could not be reached.
	CodeBackend = -32010
	// CodeCredential is a failure to obtain the backend's credential.
	CodeCredential = -32011
)

// Message is one JSON-RPC message of a request body.
type Message struct {
	Raw    json.RawMessage
	Kind   Kind
	ID     mcpgo.RequestId
	Method string
	Params json.RawMessage
}

// ToolName is params.name of tools/call and prompts/get, params.uri of
// resources/read: the thing a policy decides about.
func (m *Message) ToolName() string {
	name, _ := mcpgo.ExtractHeaderName(mcpgo.MCPMethod(m.Method), m.Params)
	return name
}

// Arguments is params.arguments of tools/call and prompts/get.
func (m *Message) Arguments() map[string]any {
	if len(m.Params) == 0 {
		return nil
	}
	var p struct {
		Arguments map[string]any `json:"arguments"`
	}
	if json.Unmarshal(m.Params, &p) != nil {
		return nil
	}
	return p.Arguments
}

// ProtocolVersion is params.protocolVersion of initialize, else "".
func (m *Message) ProtocolVersion() string {
	if m.Method != string(mcpgo.MethodInitialize) {
		return ""
	}
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	_ = json.Unmarshal(m.Params, &p)
	return p.ProtocolVersion
}

// Error is a request the gateway refuses before any backend sees it, with
// the JSON-RPC code and HTTP status the spec asks for.
type Error struct {
	Code    int
	Message string
	Status  int
}

func (e *Error) Error() string { return e.Message }

// envelope is the union of JSON-RPC request, notification and response
// members; presence is checked with RawMessage so that "id": null and a
// missing id stay distinct.
type envelope struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  *string         `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

// ParseBody splits a POST body into messages. batch reports a JSON array,
// which only protocol revision 2025-03-26 allows; the caller decides.
func ParseBody(body []byte) (msgs []Message, batch bool, err *Error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, false, &Error{Code: mcpgo.PARSE_ERROR, Message: "parse error: empty body", Status: 400}
	}
	if trimmed[0] == '[' {
		var raws []json.RawMessage
		if e := json.Unmarshal(trimmed, &raws); e != nil {
			return nil, true, &Error{Code: mcpgo.PARSE_ERROR, Message: "parse error: " + e.Error(), Status: 400}
		}
		if len(raws) == 0 {
			return nil, true, &Error{Code: mcpgo.INVALID_REQUEST, Message: "invalid request: empty batch", Status: 400}
		}
		msgs = make([]Message, 0, len(raws))
		for i, raw := range raws {
			m, perr := parseOne(raw)
			if perr != nil {
				perr.Message = fmt.Sprintf("batch[%d]: %s", i, perr.Message)
				return nil, true, perr
			}
			msgs = append(msgs, m)
		}
		return msgs, true, nil
	}
	if !json.Valid(trimmed) {
		return nil, false, &Error{Code: mcpgo.PARSE_ERROR, Message: "parse error: body is not valid JSON", Status: 400}
	}
	m, perr := parseOne(trimmed)
	if perr != nil {
		return nil, false, perr
	}
	return []Message{m}, false, nil
}

func parseOne(raw json.RawMessage) (Message, *Error) {
	invalid := func(msg string) (Message, *Error) {
		return Message{}, &Error{Code: mcpgo.INVALID_REQUEST, Message: "invalid request: " + msg, Status: 400}
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return invalid("not a JSON-RPC object")
	}
	if env.JSONRPC != mcpgo.JSONRPC_VERSION {
		return invalid(`"jsonrpc" must be "2.0"`)
	}
	m := Message{Raw: raw, Params: env.Params}
	hasID := len(env.ID) > 0
	if hasID {
		if err := json.Unmarshal(env.ID, &m.ID); err != nil || !validID(env.ID) {
			return invalid(`"id" must be a string or an integer`)
		}
	}
	switch {
	case env.Method != nil:
		if *env.Method == "" {
			return invalid(`"method" must not be empty`)
		}
		if len(env.Params) > 0 && env.Params[0] != '{' && env.Params[0] != '[' {
			return invalid(`"params" must be an object`)
		}
		m.Method = *env.Method
		if hasID {
			m.Kind = KindRequest
		} else {
			m.Kind = KindNotification
		}
	case len(env.Result) > 0 || len(env.Error) > 0:
		if !hasID {
			return invalid(`a response needs an "id"`)
		}
		m.Kind = KindResponse
	default:
		return invalid(`needs "method" (request or notification) or "result"/"error" (response)`)
	}
	return m, nil
}

// validID accepts what MCP allows for ids: strings and integers, not null.
func validID(raw json.RawMessage) bool {
	switch raw[0] {
	case '"':
		return true
	case 'n', '{', '[', 't', 'f':
		return false
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil {
		return false
	}
	return f == float64(int64(f))
}

// ErrorResponse encodes a JSON-RPC error response for id.
func ErrorResponse(id mcpgo.RequestId, code int, message string, data any) []byte {
	b, err := json.Marshal(mcpgo.JSONRPCError{
		JSONRPC: mcpgo.JSONRPC_VERSION,
		ID:      id,
		Error:   mcpgo.JSONRPCErrorDetails{Code: code, Message: message, Data: data},
	})
	if err != nil {
		// data came from the gateway itself; failing to encode it is a bug,
		// and the caller still deserves a well-formed error.
		b, _ = json.Marshal(mcpgo.JSONRPCError{
			JSONRPC: mcpgo.JSONRPC_VERSION,
			ID:      id,
			Error:   mcpgo.JSONRPCErrorDetails{Code: code, Message: message},
		})
	}
	return b
}

// ErrNotResponse is returned by ParseResponse for anything but a response.
var ErrNotResponse = errors.New("not a JSON-RPC response")

// Response is a JSON-RPC response as the gateway reads it from a backend.
type Response struct {
	ID     mcpgo.RequestId
	Result json.RawMessage
	// rest keeps every other member so a rewritten response loses nothing.
	rest map[string]json.RawMessage
}

// ParseResponse reads a backend's JSON-RPC response.
func ParseResponse(raw []byte) (*Response, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	id, hasID := fields["id"]
	if !hasID || fields["method"] != nil {
		return nil, ErrNotResponse
	}
	r := &Response{Result: fields["result"], rest: fields}
	if err := json.Unmarshal(id, &r.ID); err != nil {
		return nil, fmt.Errorf("decode response id: %w", err)
	}
	return r, nil
}

// WithResult re-encodes the response around a new result.
func (r *Response) WithResult(result json.RawMessage) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(r.rest))
	for k, v := range r.rest {
		out[k] = v
	}
	out["result"] = result
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	return b, nil
}
