// Package mcp frames MCP's JSON-RPC 2.0 messages as they cross the gateway.
// It reads a POST body once, strictly (internal/ijson), into messages whose
// members are matched exactly; the policy decides on that reading and the
// gateway forwards its canonical encoding, so a backend cannot execute
// anything the policy did not see. It also builds JSON-RPC errors with
// mcp-go's types, filters list results (a backend's list as it sent it,
// minus the hidden items' bytes: Message.Splice), and reads and writes
// Server-Sent Events.
package mcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/internal/ijson"
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

func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindNotification:
		return "notification"
	case KindResponse:
		return "response"
	}
	return "unknown"
}

// Codes the gateway uses besides JSON-RPC's own (mcp-go has those).
const (
	// CodeForbidden is a policy denial of one message.
	CodeForbidden = -32003
	// CodeBackend is a backend that failed, timed out or could not be reached.
	CodeBackend = -32010
	// CodeCredential is a failure to obtain the backend's credential.
	CodeCredential = -32011
)

// DefaultMaxBatch bounds the members of one batch when the caller sets no limit.
const DefaultMaxBatch = 100

// Message is one JSON-RPC message as the gateway read it. Everything the
// policy sees comes from here, and Encode is what the backend receives.
type Message struct {
	Kind Kind
	ID   mcpgo.RequestId
	// IDKey is the id's canonical JSON ("1" and 1 differ), for matching
	// responses to requests.
	IDKey  string
	Method string
	// Params is the params object; Kind is ijson.Null when absent.
	Params ijson.Value
	value  ijson.Value
	// src is the text ParseReply read the message from (value's span is in
	// it), for Lists and Splice; nil for a client's message and once
	// SetResult changed the message, so no span outlives its reading.
	src []byte
}

// Encode is the canonical encoding of the message: what is forwarded.
func (m *Message) Encode() []byte { return m.value.Encode() }

// ParamsJSON is the canonical encoding of params, or nil when absent.
func (m *Message) ParamsJSON() json.RawMessage {
	if m.Params.Kind != ijson.Object {
		return nil
	}
	return m.Params.Encode()
}

// Target is what a policy decides about besides the method: params.name of
// tools/call and prompts/get, params.uri of resources/read.
func (m *Message) Target() string {
	var v ijson.Value
	switch m.Method {
	case string(mcpgo.MethodToolsCall), string(mcpgo.MethodPromptsGet):
		v, _ = m.Params.Get("name")
	case string(mcpgo.MethodResourcesRead):
		v, _ = m.Params.Get("uri")
	default:
		return ""
	}
	return v.Str
}

// Arguments is params.arguments of tools/call and prompts/get, whole, with
// numbers as their exact literals (json.Number).
func (m *Message) Arguments() map[string]any {
	args, ok := m.ArgumentsValue()
	if !ok {
		return nil
	}
	return args.Any().(map[string]any)
}

// ArgumentsValue is params.arguments as read, when it is an object.
func (m *Message) ArgumentsValue() (ijson.Value, bool) {
	v, ok := m.Params.Get("arguments")
	if !ok || v.Kind != ijson.Object {
		return ijson.Value{}, false
	}
	return v, true
}

// ProtocolVersion is params.protocolVersion of initialize, else "".
func (m *Message) ProtocolVersion() string {
	if m.Method != string(mcpgo.MethodInitialize) {
		return ""
	}
	v, _ := m.Params.Get("protocolVersion")
	return v.Str
}

// DeclaresCapability reports whether an initialize request's
// params.capabilities names name (elicitation, sampling, roots) as an object.
func (m *Message) DeclaresCapability(name string) bool {
	if m.Method != string(mcpgo.MethodInitialize) {
		return false
	}
	caps, ok := m.Params.Get("capabilities")
	if !ok || caps.Kind != ijson.Object {
		return false
	}
	v, ok := caps.Get(name)
	return ok && v.Kind == ijson.Object
}

// Error is a message the gateway refuses before any backend sees it, with
// the JSON-RPC code and HTTP status the spec asks for. ID is set when the
// refused message's id could be read.
type Error struct {
	Code    int
	Message string
	Status  int
	ID      *mcpgo.RequestId
}

func (e *Error) Error() string { return e.Message }

func parseError(msg string) *Error {
	return &Error{Code: mcpgo.PARSE_ERROR, Message: "parse error: " + msg, Status: 400}
}

func invalidRequest(msg string) *Error {
	return &Error{Code: mcpgo.INVALID_REQUEST, Message: "invalid request: " + msg, Status: 400}
}

func invalidParams(msg string) *Error {
	return &Error{Code: mcpgo.INVALID_PARAMS, Message: "invalid params: " + msg, Status: 400}
}

// ParseBody reads a POST body: one message, or a 2025-03-26 batch of at most
// maxBatch (DefaultMaxBatch when <= 0) messages with distinct ids. batch
// reports a JSON array; which revisions allow one is the caller's call.
func ParseBody(body []byte, maxBatch int) (msgs []Message, batch bool, err *Error) {
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	v, perr := ijson.Parse(body)
	if perr != nil {
		return nil, len(body) > 0 && body[0] == '[', parseError(perr.Error())
	}
	if v.Kind != ijson.Array {
		m, err := parseMessage(v, true)
		if err != nil {
			return nil, false, err
		}
		return []Message{m}, false, nil
	}
	if len(v.Items) == 0 {
		return nil, true, invalidRequest("empty batch")
	}
	if len(v.Items) > maxBatch {
		return nil, true, invalidRequest(fmt.Sprintf("batch of %d messages exceeds the limit of %d (server.max_batch_messages)", len(v.Items), maxBatch))
	}
	msgs = make([]Message, 0, len(v.Items))
	ids := make(map[string]int, len(v.Items))
	for i, item := range v.Items {
		m, err := parseMessage(item, true)
		if err != nil {
			err.Message = fmt.Sprintf("batch[%d]: %s", i, err.Message)
			return nil, true, err
		}
		if m.IDKey != "" && m.Kind != KindNotification {
			// A reply is matched to its request by id alone: two members
			// with one id would let one's reply pass as the other's.
			if j, dup := ids[m.IDKey]; dup {
				return nil, true, invalidRequest(fmt.Sprintf("batch[%d] and batch[%d] share the id %s", j, i, m.IDKey))
			}
			ids[m.IDKey] = i
		}
		msgs = append(msgs, m)
	}
	return msgs, true, nil
}

// The members each kind of message may have, exactly: JSON-RPC 2.0 allows
// no others, and refusing them is what keeps "METHOD", "Params" or a
// request carrying "result" from being read one way here and another way
// by a backend.
var (
	requestMembers  = map[string]bool{"jsonrpc": true, "id": true, "method": true, "params": true}
	responseMembers = map[string]bool{"jsonrpc": true, "id": true, "result": true, "error": true}
)

// parseMessage reads one message. A client's message (fromClient) is
// checked for everything a backend could read differently; a backend's only
// for its envelope, since the gateway reads no more of it than list results
// (FindLists checks those).
func parseMessage(v ijson.Value, fromClient bool) (Message, *Error) {
	if v.Kind != ijson.Object {
		return Message{}, invalidRequest("not a JSON-RPC object")
	}
	m := Message{value: v, Params: ijson.Value{Kind: ijson.Null}}
	_, hasMethod := v.Get("method")
	allowed := responseMembers
	if hasMethod {
		allowed = requestMembers
	}
	for _, mem := range v.Members {
		if !allowed[mem.Name] {
			if hasMethod && responseMembers[mem.Name] {
				return Message{}, invalidRequest(fmt.Sprintf("a message with \"method\" must not have %q: it cannot be both request and response", mem.Name))
			}
			return Message{}, invalidRequest(fmt.Sprintf("unknown member %q (JSON-RPC 2.0 members are matched exactly)", mem.Name))
		}
	}
	if ver, _ := v.Get("jsonrpc"); ver.Kind != ijson.String || ver.Str != mcpgo.JSONRPC_VERSION {
		return Message{}, invalidRequest(`"jsonrpc" must be "2.0"`)
	}
	if idv, hasID := v.Get("id"); hasID {
		id, key, ok := readID(idv)
		switch {
		case ok:
			m.ID, m.IDKey = id, key
		case !fromClient && idv.Kind == ijson.Null && !hasMethod && hasMember(v, "error"):
			// A server's error for a request it could not read has a null
			// id (JSON-RPC 2.0 §5); it answers none of the gateway's ids.
			m.ID, m.IDKey = mcpgo.NewRequestId(nil), "null"
		default:
			return Message{}, invalidRequest(`"id" must be a string or an integer`)
		}
	}
	id := m.ID
	withID := func(e *Error) (Message, *Error) {
		if m.IDKey != "" {
			e.ID = &id
		}
		return Message{}, e
	}
	if hasMethod {
		method, _ := v.Get("method")
		if method.Kind != ijson.String || method.Str == "" {
			return withID(invalidRequest(`"method" must be a non-empty string`))
		}
		m.Method = method.Str
		m.Kind = KindNotification
		if m.IDKey != "" {
			m.Kind = KindRequest
		}
		if p, ok := v.Get("params"); ok {
			if p.Kind != ijson.Object {
				return withID(invalidRequest(`"params" must be an object`))
			}
			m.Params = p
		}
		if fromClient {
			if err := checkParams(&m); err != nil {
				return withID(err)
			}
		}
		return m, nil
	}
	result, hasResult := v.Get("result")
	errv, hasError := v.Get("error")
	switch {
	case !hasResult && !hasError:
		return withID(invalidRequest(`needs "method" (request or notification) or "result"/"error" (response)`))
	case hasResult && hasError:
		return withID(invalidRequest(`a response has "result" or "error", not both`))
	case m.IDKey == "":
		return Message{}, invalidRequest(`a response needs an "id"`)
	case hasResult && result.Kind != ijson.Object:
		return withID(invalidRequest(`"result" must be an object`))
	case hasError && errv.Kind != ijson.Object:
		return withID(invalidRequest(`"error" must be an object`))
	}
	if fromClient {
		if path, a, b, found := v.FoldCollision(); found {
			return withID(invalidRequest(foldMessage(path, a, b)))
		}
	}
	m.Kind = KindResponse
	return m, nil
}

func hasMember(v ijson.Value, name string) bool {
	_, ok := v.Get(name)
	return ok
}

// readID accepts what MCP allows for ids: strings and integers (no
// fraction or exponent, within int64), not null.
func readID(v ijson.Value) (mcpgo.RequestId, string, bool) {
	switch v.Kind {
	case ijson.String:
		return mcpgo.NewRequestId(v.Str), string(v.Encode()), true
	case ijson.Number:
		n, err := strconv.ParseInt(v.Str, 10, 64)
		if err != nil {
			return mcpgo.RequestId{}, "", false
		}
		return mcpgo.NewRequestId(n), strconv.FormatInt(n, 10), true
	}
	return mcpgo.RequestId{}, "", false
}

// checkParams reads the params members a decision uses exactly and refuses
// what two servers could read differently.
func checkParams(m *Message) *Error {
	if path, a, b, found := m.Params.FoldCollision(); found {
		// A Go server binds either name to one struct field (the last one
		// wins); a JavaScript or Python server keeps both.
		return invalidParams(foldMessage("/params"+trimRoot(path), a, b))
	}
	for _, mem := range m.Params.Members {
		if known, ok := paramNames[ijson.Fold(mem.Name)]; ok && known != mem.Name {
			// Alone, "ARGUMENTS" is no collision, but a Go server binds it
			// as the arguments the policy did not see.
			return invalidParams(fmt.Sprintf("params member %q is not %q, which case-insensitive servers read it as", mem.Name, known))
		}
	}
	str := func(name string) *Error {
		v, ok := m.Params.Get(name)
		if !ok || v.Kind != ijson.String {
			return invalidParams(fmt.Sprintf("%s needs params.%s as a string", m.Method, name))
		}
		return nil
	}
	switch m.Method {
	case string(mcpgo.MethodToolsCall), string(mcpgo.MethodPromptsGet):
		if err := str("name"); err != nil {
			return err
		}
		if args, ok := m.Params.Get("arguments"); ok && args.Kind != ijson.Object && args.Kind != ijson.Null {
			return invalidParams(fmt.Sprintf("%s params.arguments must be an object", m.Method))
		}
	case string(mcpgo.MethodResourcesRead), "resources/subscribe", "resources/unsubscribe":
		return str("uri")
	case string(mcpgo.MethodInitialize):
		if v, ok := m.Params.Get("protocolVersion"); ok && v.Kind != ijson.String {
			return invalidParams("initialize params.protocolVersion must be a string")
		}
	}
	return nil
}

// paramNames are the params members of MCP's client requests and
// notifications (2025-03-26 to 2026-07-28), by their folded form: a member
// that folds onto one of them must be exactly it.
var paramNames = func() map[string]string {
	names := []string{"name", "uri", "arguments", "argument", "ref", "context", "cursor", "_meta",
		"protocolVersion", "capabilities", "clientInfo", "level", "task", "taskId", "requestId",
		"reason", "progressToken", "progress", "total", "message", "roots"}
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[ijson.Fold(n)] = n
	}
	return m
}()

func trimRoot(path string) string {
	if path == "/" {
		return ""
	}
	return path
}

func foldMessage(path, a, b string) string {
	return fmt.Sprintf("%s has both %q and %q, names that case-insensitive servers read as one", path, a, b)
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

// ParseReply reads what a backend sent (a JSON body or one SSE event's
// data) as strictly as a client's body: one message or a batch. What it
// cannot read is refused rather than relayed, because a client might read
// it as something the gateway did not filter.
func ParseReply(data []byte) (msgs []Message, batch bool, err error) {
	v, err := ijson.Parse(data)
	if err != nil {
		return nil, false, err
	}
	items := []ijson.Value{v}
	if v.Kind == ijson.Array {
		items, batch = v.Items, true
	}
	msgs = make([]Message, 0, len(items))
	for i, item := range items {
		m, perr := parseMessage(item, false)
		if perr != nil {
			if batch {
				return nil, true, fmt.Errorf("message %d: %s", i, perr.Message)
			}
			return nil, false, errors.New(perr.Message)
		}
		m.src = data
		msgs = append(msgs, m)
	}
	return msgs, batch, nil
}

// Result is a response's result object.
func (m *Message) Result() (ijson.Value, bool) {
	if m.Kind != KindResponse {
		return ijson.Value{}, false
	}
	return m.value.Get("result")
}

// SetResult replaces a response's result.
func (m *Message) SetResult(result ijson.Value) {
	v := m.value
	v.Members = append([]ijson.Member(nil), v.Members...)
	for i := range v.Members {
		if v.Members[i].Name == "result" {
			v.Members[i].Value = result
		}
	}
	m.value = v
	m.src = nil
}

// EncodeMessages encodes messages as one message, or as a JSON array when
// batch is set or there are several.
func EncodeMessages(msgs [][]byte, batch bool) []byte {
	if !batch && len(msgs) == 1 {
		return msgs[0]
	}
	n := 2
	for _, m := range msgs {
		n += len(m) + 1
	}
	out := make([]byte, 0, n)
	out = append(out, '[')
	for i, m := range msgs {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, m...)
	}
	return append(out, ']')
}
