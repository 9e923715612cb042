package interop

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/testidp"
)

// TestDifferential proves, against real MCP servers, that the policy decides
// on exactly what the backend executes. Go's encoding/json reads JSON unlike
// JavaScript, Python or another Go SDK (keys matched case-insensitively with
// Unicode folding, the last duplicate kept, 1e400 refused), so a gateway that
// decides on its own reading and forwards the bytes it received can be told
// "echo" while the backend runs "get-env". Each hostile message is sent
// through the gateway to each backend, and then either
//
//   - refused: the gateway answered HTTP 4xx or a JSON-RPC error -32700,
//     -32600, -32602 or -32003, and the backend received nothing; or
//   - forwarded: every tool, resource or prompt the backend executed (by its
//     own record, as it read the message) is exactly, arguments included,
//     what an allowing decision of the policy saw.
//
// Never may the backend execute what the policy did not see or denied, and
// never may a hidden tool, resource or prompt reach the client in a list.
// Each case states the outcome it requires: refused, forwarded (with the
// exact executions), either of the two, or for a notification dropped.
// "Received nothing" is stricter than "executed nothing" on purpose: a
// backend that refuses what the gateway let through is luck, not the gateway.
func TestDifferential(t *testing.T) {
	p := findPeers(t)
	secret := "mcpgw-diff-secret-" + randomHex(t, 12)

	idp := startIdP(t)
	everythingURL, everythingRec := p.startEverythingTap(t, secret)
	gosdkURL, gosdkRec := startGoSDKBackend(t)
	mcpgoURL, mcpgoRec := startMCPGoBackend(t)
	rawBase, rawRec := p.startRawRecorder(t)

	backends := []*diffBackend{
		{
			name: "everything", rec: everythingRec, secretTool: toolGetEnv, batches: true,
			hiddenResource: everythingHiddenResource, hiddenPrompt: everythingHiddenPrompt,
			visibleTools: []string{toolEcho},
			hidden:       []string{toolGetEnv, "get-sum", longRunningTool, everythingHiddenPrompt, everythingHiddenResource},
		},
		diffContractBackend("gosdk", gosdkRec, true),
		// mcp-go refuses JSON-RPC arrays.
		diffContractBackend("mcpgo", mcpgoRec, false),
		diffContractBackend("raw", rawRec, true),
	}
	urls := map[string]string{"everything": everythingURL, "gosdk": gosdkURL, "mcpgo": mcpgoURL, "raw": rawBase + "/json"}
	// The same raw recorder behind other paths, framing its list results otherwise.
	framings := map[string]string{
		"framing-json-seq":   "/json-seq",
		"framing-rs-seq":     "/json-seq-rs",
		"framing-vnd-json":   "/vnd-json",
		"framing-sse-lf":     "/sse-lf",
		"framing-sse-crlf":   "/sse-crlf",
		"framing-sse-lonecr": "/sse-lonecr",
	}
	var framed []*diffBackend
	for name, path := range framings {
		urls[name] = rawBase + path
		b := diffContractBackend(name, rawRec, true)
		// RFC 7464 records (RS before each text) are not what MCP servers
		// send: refusing to relay them (-32010) is as safe as filtering them.
		b.listsMayBeRefused = name == "framing-rs-seq"
		framed = append(framed, b)
	}
	slices.SortFunc(framed, func(a, b *diffBackend) int { return strings.Compare(a.name, b.name) })

	// Once with every decision evaluated, once with the decision cache on:
	// remembered decisions are keyed by the arguments they read
	// (internal/policy/argsprobe.go), and a cached allow must never stand
	// in for a call whose read arguments differ.
	for _, mode := range []struct {
		name      string
		cacheSize int
	}{{"evaluated", -1}, {"remembered", 0}} {
		t.Run(mode.name, func(t *testing.T) {
			gw := startDiffGateway(t, idp.Issuer(), urls, mode.cacheSize)
			runDifferential(t, gw, idp, backends, framed, []recorder{everythingRec, gosdkRec, mcpgoRec, rawRec})
		})
	}
}

// runDifferential sends every case through gw.
func runDifferential(t *testing.T, gw *diffGateway, idp *testidp.Server, backends, framed []*diffBackend, recorders []recorder) {
	mint := func(sub string) string {
		tok, err := idp.MintUser(sub, []string{"mcp:read", "mcp:write"}, nil, map[string]any{"cid": diffClientID})
		if err != nil {
			t.Fatalf("mint token for %s: %v", sub, err)
		}
		return tok
	}
	alice := &diffCaller{gw: gw, subject: "alice", token: mint("alice")}
	mallory := &diffCaller{gw: gw, subject: "mallory", token: mint("mallory")}

	for i, b := range backends {
		other := backends[(i+1)%len(backends)]
		t.Run(b.name, func(t *testing.T) {
			// Lists first: a gateway that checks arguments against the
			// tool's inputSchema learns the schemas from them.
			for _, lc := range listCases(b) {
				t.Run(lc.name, func(t *testing.T) { runListCase(t, alice, b, lc) })
			}
			for _, tc := range messageCases(b) {
				t.Run(tc.name, func(t *testing.T) { runMessageCase(t, alice, b, tc) })
			}
			for _, pc := range pathCases(b, other) {
				t.Run(pc.name, func(t *testing.T) { runPathCase(t, alice, b, recorders, pc) })
			}
			runSessionCases(t, alice, mallory, b)
		})
	}
	for _, b := range framed {
		t.Run(b.name, func(t *testing.T) {
			for _, lc := range listCases(b) {
				t.Run(lc.name, func(t *testing.T) { runListCase(t, alice, b, lc) })
			}
		})
	}
}

// diffBackend is one backend as the gateway routes it ("/<name>") and what
// the policy lets a caller see of it.
type diffBackend struct {
	name       string
	rec        recorder
	secretTool string // a tool the policy neither allows nor shows
	// files: the backend has read_file, the file:/// resources and the
	// greeting prompt the policy allows.
	files   bool
	batches bool // it accepts JSON-RPC batches (protocol 2025-03-26)
	// hiddenResource and hiddenPrompt exist on the backend and are denied.
	hiddenResource, hiddenPrompt string
	visibleTools                 []string
	visibleResources             []string
	visiblePrompts               []string
	// hidden are names that must never reach the client unless it sent them.
	hidden []string
	// listsMayBeRefused: the gateway may answer this backend's list
	// replies with a backend error (-32010) instead of filtering them.
	listsMayBeRefused bool
}

// diffContractBackend is a backend with the diff contract's catalog: echo,
// read_file and get_secret; file:///public/readme and file:///private/secret;
// greeting and admin_prompt.
func diffContractBackend(name string, rec recorder, batches bool) *diffBackend {
	return &diffBackend{
		name: name, rec: rec, secretTool: toolGetSecret, files: true, batches: batches,
		hiddenResource: hiddenResource, hiddenPrompt: hiddenPrompt,
		visibleTools:     []string{toolEcho, toolReadFile},
		visibleResources: []string{publicResource},
		visiblePrompts:   []string{publicPrompt},
		hidden:           []string{toolGetSecret, hiddenResource, hiddenPrompt},
	}
}

// expectation is the outcome a case requires.
type expectation int

const (
	// mustRefuse: the gateway refuses (HTTP 4xx or a JSON-RPC refusal) and
	// forwards nothing at all to the backend.
	mustRefuse expectation = iota
	// mustForward: the backend executes exactly the case's want, each as an
	// allowing decision saw it.
	mustForward
	// eitherWay: refused as above, or forwarded with everything the backend
	// executed decided as it ran.
	eitherWay
	// mustDrop: a notification nobody answers; the gateway drops it (202)
	// or refuses it, and forwards nothing.
	mustDrop
)

func (e expectation) String() string {
	return [...]string{"refused", "forwarded", "refused or forwarded as decided", "dropped or refused"}[e]
}

// diffCaller is one subject calling through the gateway.
type diffCaller struct {
	gw      *diffGateway
	subject string
	token   string
}

const (
	modernVersion = "2025-06-18"
	batchVersion  = "2025-03-26" // the only revision with JSON-RPC batches
)

func (c *diffCaller) headers(session, version string) [][2]string {
	h := [][2]string{
		{"Content-Type", "application/json"},
		{"Accept", "application/json, text/event-stream"},
		{"Authorization", "Bearer " + c.token},
		{"X-Agent-ID", diffAgentID},
	}
	if session != "" {
		h = append(h, [2]string{"Mcp-Session-Id", session})
	}
	if version != "" {
		h = append(h, [2]string{"MCP-Protocol-Version", version})
	}
	return h
}

// open starts a session on backend b as a client does: initialize, then
// notifications/initialized. Each case gets its own, so that one case's
// damage to a session cannot decide the next case.
func (c *diffCaller) open(t *testing.T, b *diffBackend, version string) string {
	t.Helper()
	init := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":%q,"capabilities":{},"clientInfo":{"name":"mcpgw-differential","version":"1.0.0"}}}`, version)
	rep := c.gw.send(t, rawRequest{method: http.MethodPost, target: "/" + b.name, headers: c.headers("", ""), body: []byte(init)})
	session := rep.header.Get("Mcp-Session-Id")
	if rep.status != http.StatusOK || session == "" || len(rep.msgs) != 1 {
		t.Fatalf("initialize %s as %s: want 200 with a session and one result, got %s (session %q)", b.name, c.subject, rep, session)
	}
	if _, isErr := rpcError(rep.msgs[0]); isErr {
		t.Fatalf("initialize %s as %s failed: %s", b.name, c.subject, rep)
	}
	rep = c.gw.send(t, rawRequest{method: http.MethodPost, target: "/" + b.name, headers: c.headers(session, version),
		body: []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)})
	if rep.status != http.StatusAccepted {
		t.Fatalf("notifications/initialized on %s as %s: want 202, got %s", b.name, c.subject, rep)
	}
	return session
}

// observation is everything one request caused.
type observation struct {
	request   string
	reply     reply
	decisions []decision
	backend   backendRecord
}

// observe sends req and collects the decisions it caused and what rec
// received and executed meanwhile.
func observe(t *testing.T, gw *diffGateway, recs []recorder, req rawRequest) (observation, []backendRecord) {
	t.Helper()
	for _, r := range recs {
		r.quiesce(t)
	}
	marks := make([]recordMark, len(recs))
	for i, r := range recs {
		marks[i] = r.mark(t)
	}
	dm := gw.decisions.mark()
	rep := gw.send(t, req)
	got := make([]backendRecord, len(recs))
	for i, r := range recs {
		r.quiesce(t)
		got[i] = r.since(t, marks[i])
	}
	body := string(req.body)
	if len(body) > 400 {
		body = body[:400] + "…"
	}
	obs := observation{request: fmt.Sprintf("%s %s %q", req.method, req.target, body), reply: rep, decisions: gw.decisions.since(dm)}
	if len(got) > 0 {
		obs.backend = got[0]
	}
	return obs, got
}

// problem formats one failure with all the evidence: the request, the
// gateway's answer, what the policy decided and what the backend did.
func (o observation) problem(b *diffBackend, problems []string) string {
	return fmt.Sprintf("%s\n  request:          %s\n  gateway answered: %s\n  policy decided:   %s\n  %s executed:  %s\n  %s received:  %s",
		strings.Join(problems, "\n  "), o.request, o.reply, describeList(o.decisions),
		b.name, describeList(o.backend.execs), b.name, describeList(o.backend.hits))
}

// leaks lists the hidden items that reached the client: in any list result
// it could parse, or anywhere in the reply's bytes when the request itself
// did not name them (a denial may quote what the client sent).
func (b *diffBackend) leaks(request []byte, rep reply) []string {
	var out []string
	for _, h := range b.hidden {
		if !strings.Contains(string(request), h) && strings.Contains(string(rep.body), h) {
			out = append(out, fmt.Sprintf("%q appears in the reply", h))
		}
	}
	for _, m := range rep.msgs {
		var msg struct {
			Result *struct {
				Tools     []struct{ Name string } `json:"tools"`
				Resources []struct{ URI string }  `json:"resources"`
				Prompts   []struct{ Name string } `json:"prompts"`
			} `json:"result"`
		}
		if json.Unmarshal(m, &msg) != nil || msg.Result == nil {
			continue
		}
		for _, it := range msg.Result.Tools {
			if !slices.Contains(b.visibleTools, it.Name) {
				out = append(out, fmt.Sprintf("tool %q listed", it.Name))
			}
		}
		for _, it := range msg.Result.Resources {
			if !slices.Contains(b.visibleResources, it.URI) {
				out = append(out, fmt.Sprintf("resource %q listed", it.URI))
			}
		}
		for _, it := range msg.Result.Prompts {
			if !slices.Contains(b.visiblePrompts, it.Name) {
				out = append(out, fmt.Sprintf("prompt %q listed", it.Name))
			}
		}
	}
	return out
}

// diffCase is one hostile (or control) POST body.
type diffCase struct {
	name  string
	body  string
	batch bool // sent on a 2025-03-26 session with MCP-Protocol-Version 2025-03-26
	// contentType replaces application/json.
	contentType string
	// header is one more request header (name, value).
	header [2]string
	expect expectation
	want   []execution // mustForward: exactly what the backend must execute
}

const caseID = 42

const clientTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func rpc(method, params string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, caseID, method, params)
}

func call(params string) string { return rpc("tools/call", params) }

func tool(name, args string) execution {
	return execution{Kind: "tool", Name: name, Arguments: json.RawMessage(args)}
}

// messageCases are the hostile messages for b, with controls that prove
// the harness: a plain allowed call must be forwarded, a plain denied one
// refused.
func messageCases(b *diffBackend) []diffCase {
	S := b.secretTool
	echo := `{"name":"echo","arguments":{"message":"plain"}}`
	cases := []diffCase{
		{name: "control/echo", body: call(echo), expect: mustForward, want: []execution{tool(toolEcho, `{"message":"plain"}`)}},
		{name: "control/secret tool", body: call(`{"name":"` + S + `","arguments":{}}`), expect: mustRefuse},
		{name: "control/JSON whitespace around the body", body: " \t\r\n" + call(echo) + "\r\n ", expect: mustForward, want: []execution{tool(toolEcho, `{"message":"plain"}`)}},
		// The gateway writes trace context into params._meta before deciding:
		// every real backend must still execute exactly the decided call.
		{name: "trace/traceparent header put into params._meta", body: call(echo), header: [2]string{"Traceparent", clientTraceparent},
			expect: mustForward, want: []execution{tool(toolEcho, `{"message":"plain"}`)}},
		{name: "trace/client _meta trace keys in another case replaced", header: [2]string{"Traceparent", clientTraceparent},
			body:   call(`{"name":"echo","arguments":{"message":"m"},"_meta":{"progressToken":7,"TraceParent":"00-11111111111111111111111111111111-2222222222222222-01"}}`),
			expect: mustForward, want: []execution{tool(toolEcho, `{"message":"m"}`)}},
		{name: "control/escaped member names", body: `{"jsonrpc":"2.0","id":42,"m\u0065thod":"tools/call","params":{"n\u0061me":"echo","\u0061rguments":{"m\u0065ssage":"escaped"}}}`,
			expect: mustForward, want: []execution{tool(toolEcho, `{"message":"escaped"}`)}},

		// params: which tool?
		{name: "params/name duplicated, secret last", body: call(`{"name":"echo","name":"` + S + `","arguments":{"message":"m"}}`), expect: mustRefuse},
		{name: "params/name duplicated, secret first", body: call(`{"name":"` + S + `","name":"echo","arguments":{"message":"m"}}`), expect: mustRefuse},
		{name: "params/NAME after name", body: call(`{"name":"` + S + `","NAME":"echo","arguments":{"message":"m"}}`), expect: mustRefuse},
		{name: "params/Name after name", body: call(`{"name":"` + S + `","Name":"echo","arguments":{"message":"m"}}`), expect: mustRefuse},
		{name: "params/nAme before name", body: call(`{"nAme":"echo","name":"` + S + `","arguments":{"message":"m"}}`), expect: mustRefuse},
		{name: "params/NAME alone", body: call(`{"NAME":"echo","arguments":{"message":"m"}}`), expect: mustRefuse},
		{name: "params/escaped name duplicates name", body: call(`{"name":"` + S + `","n\u0061me":"echo","arguments":{"message":"m"}}`), expect: mustRefuse},
		{name: "params/escaped NAME after name", body: call(`{"name":"` + S + `","\u004eAME":"echo","arguments":{"message":"m"}}`), expect: mustRefuse},

		// params: which arguments?
		{name: "params/ARGUMENTS after arguments", body: call(`{"name":"echo","arguments":{"message":"executed"},"ARGUMENTS":{"message":"decided"}}`), expect: mustRefuse},
		{name: "params/argumentſ (U+017F) after arguments", body: call(`{"name":"echo","arguments":{"message":"executed"},"argumentſ":{"message":"decided"}}`), expect: mustRefuse},
		{name: "params/arguments after argumentſ (U+017F)", body: call(`{"name":"echo","argumentſ":{"message":"other"},"arguments":{"message":"m"}}`), expect: mustRefuse},
		// Decided with no arguments; a backend that reads ARGUMENTS as
		// arguments must then not be handed them.
		{name: "params/ARGUMENTS alone", body: call(`{"name":"echo","ARGUMENTS":{"message":"m"}}`), expect: eitherWay},

		// the envelope
		{name: "envelope/METHOD after method", body: `{"jsonrpc":"2.0","id":42,"method":"tools/call","METHOD":"ping","params":{"name":"` + S + `","arguments":{}}}`, expect: mustRefuse},
		{name: "envelope/METHOD alone", body: `{"jsonrpc":"2.0","id":42,"METHOD":"tools/call","params":` + echo + `}`, expect: mustRefuse},
		{name: "envelope/method duplicated", body: `{"jsonrpc":"2.0","id":42,"method":"tools/call","method":"ping","params":{"name":"` + S + `","arguments":{}}}`, expect: mustRefuse},
		{name: "envelope/PARAMS after params", body: `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"` + S + `","arguments":{}},"PARAMS":` + echo + `}`, expect: mustRefuse},
		{name: "envelope/paramſ (U+017F) after params", body: `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"` + S + `","arguments":{}},"paramſ":` + echo + `}`, expect: mustRefuse},
		{name: "envelope/Jsonrpc", body: `{"Jsonrpc":"2.0","id":42,"method":"tools/call","params":` + echo + `}`, expect: mustRefuse},
		{name: "envelope/ID", body: `{"jsonrpc":"2.0","ID":42,"method":"tools/call","params":` + echo + `}`, expect: mustRefuse},
		{name: "envelope/id duplicated", body: `{"jsonrpc":"2.0","id":42,"id":43,"method":"tools/call","params":` + echo + `}`, expect: mustRefuse},
		{name: "envelope/Method null and result on a request", body: `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"` + S + `","arguments":{}},"Method":null,"result":{}}`, expect: mustRefuse},
		{name: "envelope/unknown member", body: `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":` + echo + `,"extra":true}`, expect: mustRefuse},
		{name: "envelope/params an array", body: `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":["` + S + `",{}]}`, expect: mustRefuse},
		{name: "envelope/params null", body: `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":null}`, expect: mustRefuse},
		{name: "envelope/id 1e400", body: `{"jsonrpc":"2.0","id":1e400,"method":"tools/call","params":` + echo + `}`, expect: mustRefuse},
		// JSON.parse makes "__proto__" an own member, not the prototype.
		{name: "envelope/__proto__ member", body: `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":` + echo + `,"__proto__":{"params":{"name":"` + S + `"}}}`, expect: mustRefuse},
		{name: "params/__proto__ member", body: call(`{"name":"echo","arguments":{"message":"m"},"__proto__":{"name":"` + S + `"}}`), expect: eitherWay},
		{name: "notification/secret tool", body: `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"` + S + `","arguments":{}}}`, expect: mustDrop},
		{name: "notification/NAME after name", body: `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"` + S + `","NAME":"echo","arguments":{"message":"m"}}}`, expect: mustDrop},
		{name: "notification/echo", body: `{"jsonrpc":"2.0","method":"tools/call","params":` + echo + `}`, expect: eitherWay},

		// arguments
		{name: "arguments/message duplicated", body: call(`{"name":"echo","arguments":{"message":"a","message":"b"}}`), expect: mustRefuse},
		{name: "arguments/MESSAGE after message", body: call(`{"name":"echo","arguments":{"message":"a","MESSAGE":"b"}}`), expect: mustRefuse},
		{name: "arguments/meſſage (U+017F) after message", body: call(`{"name":"echo","arguments":{"message":"a","meſſage":"b"}}`), expect: mustRefuse},
		{name: "arguments/nested keys folding together (Kelvin sign)", body: call(`{"name":"echo","arguments":{"message":"m","options":{"kind":"a","\u212aind":"b"}}}`), expect: mustRefuse},
		{name: "arguments/keys folding together inside an array", body: call(`{"name":"echo","arguments":{"message":"m","list":[{"mode":"a","MODE":"b"}]}}`), expect: mustRefuse},
		{name: "arguments/1e400 beside message", body: call(`{"name":"echo","arguments":{"message":"m","n":1e400}}`), expect: mustRefuse},
		{name: "arguments/-1e400 beside message", body: call(`{"name":"echo","arguments":{"message":"m","n":-1e400}}`), expect: mustRefuse},

		// bytes
		{name: "encoding/lone surrogate in a value", body: call(`{"name":"echo","arguments":{"message":"\ud800"}}`), expect: mustRefuse},
		{name: "encoding/lone surrogate in a key", body: call(`{"name":"echo","arguments":{"message":"m","\udc00":"x"}}`), expect: mustRefuse},
		{name: "encoding/invalid UTF-8", body: call(`{"name":"echo","arguments":{"message":"m` + "\xff\xfe" + `"}}`), expect: mustRefuse},
		{name: "encoding/UTF-8 BOM before the body", body: "\xef\xbb\xbf" + call(echo), expect: mustRefuse},
		{name: "encoding/trailing garbage", body: call(echo) + "garbage", expect: mustRefuse},
		{name: "encoding/two values back to back", body: call(echo) + call(`{"name":"`+S+`","arguments":{}}`), expect: mustRefuse},
		{name: "encoding/U+00A0 around the body", body: "\u00a0" + call(echo) + "\u00a0", expect: mustRefuse},
		// The TypeScript SDK decodes a body in the charset its Content-Type
		// names: the same bytes then spell another message.
		{name: "encoding/UTF-8 bytes declared ISO-8859-1", contentType: "application/json; charset=iso-8859-1",
			body: call(`{"name":"echo","arguments":{"message":"café"}}`), expect: eitherWay},
		{name: "encoding/UTF-16 body declared UTF-16", contentType: "application/json; charset=utf-16le",
			body: utf16le(call(echo)), expect: eitherWay},
		{name: "encoding/arguments a JSON string", body: call(`{"name":"echo","arguments":"{\"message\":\"m\"}"}`), expect: eitherWay},

		// batches
		{name: "batch/same id for tools/list and ping", batch: true, expect: eitherWay,
			body: `[{"jsonrpc":"2.0","id":7,"method":"tools/list"},{"jsonrpc":"2.0","id":7,"method":"ping"}]`},
		{name: "batch/same id for ping and tools/list", batch: true, expect: eitherWay,
			body: `[{"jsonrpc":"2.0","id":7,"method":"ping"},{"jsonrpc":"2.0","id":7,"method":"tools/list"}]`},
		{name: `batch/ids "7" and 7`, batch: true, expect: eitherWay,
			body: `[{"jsonrpc":"2.0","id":"7","method":"tools/list"},{"jsonrpc":"2.0","id":7,"method":"ping"}]`},
		{name: `batch/ids 7 and "7"`, batch: true, expect: eitherWay,
			body: `[{"jsonrpc":"2.0","id":7,"method":"tools/list"},{"jsonrpc":"2.0","id":"7","method":"ping"}]`},
		{name: "batch/same id for echo and the secret tool", batch: true, expect: eitherWay,
			body: `[{"jsonrpc":"2.0","id":7,"method":"tools/call","params":` + echo + `},{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + S + `","arguments":{}}}]`},
		{name: "batch/a member with name duplicated", batch: true, expect: eitherWay,
			body: `[{"jsonrpc":"2.0","id":7,"method":"tools/call","params":` + echo + `},{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"` + S + `","name":"echo","arguments":{"message":"m"}}}]`},
		// JavaScript reads both ids as 2^53: its replies would carry one id twice.
		{name: "batch/ids 2^53+1 and 2^53", batch: true, expect: eitherWay,
			body: `[{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/list"},{"jsonrpc":"2.0","id":9007199254740992,"method":"ping"}]`},
		{name: "batch/ids 7 and 7.0", batch: true, expect: eitherWay,
			body: `[{"jsonrpc":"2.0","id":7,"method":"tools/list"},{"jsonrpc":"2.0","id":7.0,"method":"ping"}]`},
		{name: "batch/ids 7 and 7e0", batch: true, expect: eitherWay,
			body: `[{"jsonrpc":"2.0","id":7e0,"method":"ping"},{"jsonrpc":"2.0","id":7,"method":"tools/list"}]`},
		{name: "batch/101 members", batch: true, expect: mustRefuse, body: echoBatch(101)},
		{name: "batch/empty", batch: true, expect: mustRefuse, body: `[]`},
		{name: "batch/nested batch", batch: true, expect: mustRefuse, body: "[" + echoBatch(1) + "]"},

		// resources and prompts
		{name: "resources/URI after uri", body: rpc("resources/read", `{"uri":"`+b.hiddenResource+`","URI":"`+publicResource+`"}`), expect: mustRefuse},
		{name: "resources/uri duplicated", body: rpc("resources/read", `{"uri":"`+b.hiddenResource+`","uri":"`+publicResource+`"}`), expect: mustRefuse},
		{name: "resources/URI alone", body: rpc("resources/read", `{"URI":"`+publicResource+`"}`), expect: mustRefuse},
		{name: "resources/hidden resource", body: rpc("resources/read", `{"uri":"`+b.hiddenResource+`"}`), expect: mustRefuse},
		{name: "prompts/Name after name", body: rpc("prompts/get", `{"name":"`+b.hiddenPrompt+`","Name":"`+publicPrompt+`"}`), expect: mustRefuse},
		{name: "prompts/name duplicated", body: rpc("prompts/get", `{"name":"`+b.hiddenPrompt+`","name":"`+publicPrompt+`"}`), expect: mustRefuse},
		{name: "prompts/hidden prompt", body: rpc("prompts/get", `{"name":"`+b.hiddenPrompt+`"}`), expect: mustRefuse},
	}
	if b.batches {
		cases = append(cases,
			diffCase{name: "control/batch of two echo calls", batch: true, body: echoBatch(2), expect: mustForward, want: echoExecutions(2)},
			diffCase{name: "control/batch of 100 members", batch: true, body: echoBatch(100), expect: mustForward, want: echoExecutions(100)},
		)
	}
	if b.files {
		readFile := func(args string) string { return call(`{"name":"read_file","arguments":` + args + `}`) }
		cases = append(cases,
			diffCase{name: "control/read_file under /public/", body: readFile(`{"path":"/public/a.txt"}`), expect: mustForward, want: []execution{tool(toolReadFile, `{"path":"/public/a.txt"}`)}},
			diffCase{name: "control/read_file elsewhere", body: readFile(`{"path":"/etc/passwd"}`), expect: mustRefuse},
			diffCase{name: "control/public resource", body: rpc("resources/read", `{"uri":"`+publicResource+`"}`), expect: mustForward, want: []execution{{Kind: "resource", URI: publicResource}}},
			diffCase{name: "control/greeting prompt", body: rpc("prompts/get", `{"name":"greeting","arguments":{"who":"bob"}}`), expect: mustForward,
				want: []execution{{Kind: "prompt", Name: publicPrompt, Arguments: json.RawMessage(`{"who":"bob"}`)}}},

			diffCase{name: "path/PATH after path", body: readFile(`{"path":"/public/a.txt","PATH":"/etc/passwd"}`), expect: mustRefuse},
			diffCase{name: "path/Path after path", body: readFile(`{"path":"/public/a.txt","Path":"/etc/passwd"}`), expect: mustRefuse},
			diffCase{name: "path/PATH alone", body: readFile(`{"PATH":"/etc/passwd"}`), expect: mustRefuse},
			diffCase{name: "path/pAth alone under /public/", body: readFile(`{"pAth":"/public/a.txt"}`), expect: mustRefuse},
			diffCase{name: "path/duplicated, private last", body: readFile(`{"path":"/public/a.txt","path":"/etc/passwd"}`), expect: mustRefuse},
			diffCase{name: "path/duplicated, public last", body: readFile(`{"path":"/etc/passwd","path":"/public/a.txt"}`), expect: mustRefuse},
			diffCase{name: "path/1e400 beside path", body: readFile(`{"path":"/public/a.txt","n":1e400}`), expect: mustRefuse},
			diffCase{name: "path/-1e400 beside a private path", body: readFile(`{"path":"/etc/passwd","n":-1e400}`), expect: mustRefuse},
			diffCase{name: "path/ARGUMENTS alone", body: call(`{"name":"read_file","ARGUMENTS":{"path":"/public/a.txt"}}`), expect: mustRefuse},
			diffCase{name: "path/arguments private, ARGUMENTS public", body: call(`{"name":"read_file","arguments":{"path":"/etc/passwd"},"ARGUMENTS":{"path":"/public/a.txt"}}`), expect: mustRefuse},
			diffCase{name: "path/arguments private, argumentſ (U+017F) public", body: call(`{"name":"read_file","arguments":{"path":"/etc/passwd"},"argumentſ":{"path":"/public/a.txt"}}`), expect: mustRefuse},
			diffCase{name: "prompts/ARGUMENTS after arguments", body: rpc("prompts/get", `{"name":"greeting","arguments":{"who":"a"},"ARGUMENTS":{"who":"b"}}`), expect: mustRefuse},
			diffCase{name: "path/arguments a JSON string", body: call(`{"name":"read_file","arguments":"{\"path\":\"/public/a.txt\"}"}`), expect: mustRefuse},
			diffCase{name: "path/escaped pa\\u0074h duplicates path", body: readFile(`{"path":"/etc/passwd","pa\u0074h":"/public/a.txt"}`), expect: mustRefuse},
		)
	}
	return cases
}

// utf16le encodes s (ASCII) as UTF-16LE, with no byte order mark.
func utf16le(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteByte(byte(r))
		b.WriteByte(byte(r >> 8))
	}
	return b.String()
}

func echoBatch(n int) string {
	members := make([]string, n)
	for i := range members {
		members[i] = fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"message":"member %d"}}}`, i+1, i+1)
	}
	return "[" + strings.Join(members, ",") + "]"
}

func echoExecutions(n int) []execution {
	out := make([]execution, n)
	for i := range out {
		out[i] = tool(toolEcho, fmt.Sprintf(`{"message":"member %d"}`, i+1))
	}
	return out
}

func runMessageCase(t *testing.T, c *diffCaller, b *diffBackend, tc diffCase) {
	version := modernVersion
	if tc.batch {
		version = batchVersion
	}
	session := c.open(t, b, version)
	req := rawRequest{method: http.MethodPost, target: "/" + b.name, headers: c.headers(session, version), body: []byte(tc.body)}
	if tc.contentType != "" {
		req.headers[0][1] = tc.contentType
	}
	if tc.header[0] != "" {
		req.headers = append(req.headers, tc.header)
	}
	obs, _ := observe(t, c.gw, []recorder{b.rec}, req)

	var problems []string
	if un := undecided(obs.backend.execs, obs.decisions); len(un) > 0 {
		problems = append(problems, fmt.Sprintf("the backend executed %s, which no allowing decision saw", describeList(un)))
	}
	if leaks := b.leaks(req.body, obs.reply); len(leaks) > 0 {
		problems = append(problems, "hidden items reached the client: "+strings.Join(leaks, ", "))
	}
	forwarded := posts(obs.backend.hits) > 0
	if forwarded && len(obs.decisions) == 0 {
		problems = append(problems, "the gateway forwarded a message without deciding it")
	}
	switch tc.expect {
	case mustRefuse:
		if !obs.reply.refused() || forwarded || len(obs.backend.execs) > 0 {
			problems = append(problems, fmt.Sprintf("want refused by the gateway (HTTP 4xx or JSON-RPC error %v) with nothing forwarded", refusalCodes))
		}
	case mustForward:
		if !sameExecutions(obs.backend.execs, tc.want) {
			problems = append(problems, "want the backend to execute exactly "+describeList(tc.want))
		}
	case eitherWay:
		if !forwarded && !obs.reply.refused() {
			problems = append(problems, "neither forwarded nor refused")
		}
	case mustDrop:
		if forwarded || (obs.reply.status != http.StatusAccepted && !obs.reply.refused()) {
			problems = append(problems, "want dropped (HTTP 202) or refused by the gateway, with nothing forwarded")
		}
	}
	if len(problems) > 0 {
		t.Errorf("%s on %s (want %s): %s", tc.name, b.name, tc.expect, obs.problem(b, problems))
	}
}

// listCase is one list method whose result the gateway must filter.
type listCase struct {
	name, method, key string
	want              []string
}

func listCases(b *diffBackend) []listCase {
	return []listCase{
		{name: "list/tools", method: "tools/list", key: "tools", want: b.visibleTools},
		{name: "list/resources", method: "resources/list", key: "resources", want: b.visibleResources},
		{name: "list/prompts", method: "prompts/list", key: "prompts", want: b.visiblePrompts},
	}
}

// runListCase lists through the gateway: the reply must hold exactly the
// visible items, in whatever framing the backend chose, and no hidden
// name may appear anywhere in its bytes.
func runListCase(t *testing.T, c *diffCaller, b *diffBackend, lc listCase) {
	session := c.open(t, b, modernVersion)
	req := rawRequest{method: http.MethodPost, target: "/" + b.name, headers: c.headers(session, modernVersion),
		body: []byte(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q}`, caseID, lc.method))}
	obs, _ := observe(t, c.gw, []recorder{b.rec}, req)
	var problems []string
	if leaks := b.leaks(req.body, obs.reply); len(leaks) > 0 {
		problems = append(problems, "hidden items reached the client: "+strings.Join(leaks, ", "))
	}
	var listed []string
	results := 0
	for _, m := range obs.reply.msgs {
		var msg struct {
			Result map[string]json.RawMessage `json:"result"`
		}
		if json.Unmarshal(m, &msg) != nil || msg.Result == nil {
			continue
		}
		var items []struct {
			Name string `json:"name"`
			URI  string `json:"uri"`
		}
		if raw, ok := msg.Result[lc.key]; !ok || json.Unmarshal(raw, &items) != nil {
			continue
		}
		results++
		for _, it := range items {
			if lc.key == "resources" {
				listed = append(listed, it.URI)
			} else {
				listed = append(listed, it.Name)
			}
		}
	}
	slices.Sort(listed)
	want := slices.Sorted(slices.Values(lc.want))
	refusedAsBackendError := false
	if len(obs.reply.msgs) == 1 {
		code, isErr := rpcError(obs.reply.msgs[0])
		refusedAsBackendError = isErr && code == -32010
	}
	switch {
	case b.listsMayBeRefused && refusedAsBackendError:
	case obs.reply.status != http.StatusOK || results != 1 || !slices.Equal(listed, want):
		problems = append(problems, fmt.Sprintf("want HTTP 200 with one %s result listing exactly %q, got %d result(s) listing %q", lc.method, want, results, listed))
	}
	if len(problems) > 0 {
		t.Errorf("%s on %s: %s", lc.name, b.name, obs.problem(b, problems))
	}
}

// pathCase is one request target the gateway must refuse before routing.
type pathCase struct {
	name, target string
	forward      bool // a control: the plain path, which must reach the backend
}

func pathCases(b, other *diffBackend) []pathCase {
	n, o := b.name, other.name
	return []pathCase{
		{name: "route/control: the backend's own path", target: "/" + n, forward: true},
		{name: "route/dot-dot segment", target: "/" + n + "/../" + o},
		{name: "route/%2e%2e segment", target: "/" + n + "/%2e%2e/" + o},
		{name: "route/%2E%2E segment", target: "/" + n + "/%2E%2E/" + o},
		{name: "route/.%2e segment", target: "/" + n + "/.%2e/" + o},
		{name: "route/dot segment", target: "/" + n + "/./"},
		{name: "route/encoded slash", target: "/" + n + "%2f..%2f" + o},
		{name: "route/encoded slash after dot-dot", target: "/" + n + "/..%2f" + o},
		{name: "route/backslashes", target: "/" + n + `\..\` + o},
		{name: "route/encoded backslashes", target: "/" + n + "%5c..%5c" + o},
		{name: "route/unconfigured sub-path", target: "/" + n + "/sub"},
	}
}

// runPathCase sends an allowed echo call to a hostile path: nothing may
// reach any backend, whichever the path might be read to name.
func runPathCase(t *testing.T, c *diffCaller, b *diffBackend, all []recorder, pc pathCase) {
	session := c.open(t, b, modernVersion)
	req := rawRequest{method: http.MethodPost, target: pc.target, headers: c.headers(session, modernVersion),
		body: []byte(call(`{"name":"echo","arguments":{"message":"routed"}}`))}
	recs := append([]recorder{b.rec}, all...)
	obs, got := observe(t, c.gw, recs, req)
	reached := map[string]bool{}
	var hits []httpHit
	for _, r := range got[1:] {
		for _, h := range r.hits {
			key := h.String()
			if !reached[key] {
				reached[key] = true
				hits = append(hits, h)
			}
		}
	}
	var problems []string
	if pc.forward {
		if want := []execution{tool(toolEcho, `{"message":"routed"}`)}; !sameExecutions(obs.backend.execs, want) {
			problems = append(problems, "want the backend to execute exactly "+describeList(want))
		}
	} else if obs.reply.status < 400 || obs.reply.status > 499 || len(hits) > 0 {
		problems = append(problems, fmt.Sprintf("want HTTP 4xx with nothing reaching any backend; backends received: %s", describeList(hits)))
	}
	if len(problems) > 0 {
		t.Errorf("%s %q on %s: %s", pc.name, pc.target, b.name, obs.problem(b, problems))
	}
}

// runSessionCases checks what is not a call: a GET stream, a DELETE and a
// client's response are decided too, so a subject the policy denies them
// gets 403 and the backend sees nothing; controls show that the same
// requests from an allowed subject do reach it (so the record would show them).
func runSessionCases(t *testing.T, alice, mallory *diffCaller, b *diffBackend) {
	stream := func(c *diffCaller, session string) rawRequest {
		return rawRequest{method: http.MethodGet, target: "/" + b.name, headersOnly: true, headers: [][2]string{
			{"Accept", "text/event-stream"}, {"Authorization", "Bearer " + c.token}, {"X-Agent-ID", diffAgentID},
			{"Mcp-Session-Id", session}, {"MCP-Protocol-Version", modernVersion},
		}}
	}
	end := func(c *diffCaller, session string) rawRequest {
		return rawRequest{method: http.MethodDelete, target: "/" + b.name, headers: [][2]string{
			{"Authorization", "Bearer " + c.token}, {"X-Agent-ID", diffAgentID},
			{"Mcp-Session-Id", session}, {"MCP-Protocol-Version", modernVersion},
		}}
	}
	answer := func(c *diffCaller, session string) rawRequest {
		return rawRequest{method: http.MethodPost, target: "/" + b.name, headers: c.headers(session, modernVersion),
			body: []byte(`{"jsonrpc":"2.0","id":"mcpgw-diff-server-request","result":{}}`)}
	}
	sawMethod := func(hits []httpHit, method string) bool {
		return slices.ContainsFunc(hits, func(h httpHit) bool { return h.Method == method })
	}
	denied := []struct {
		name   string
		method string
		req    func(*diffCaller, string) rawRequest
	}{
		{"session/GET stream by a denied subject", http.MethodGet, stream},
		{"session/DELETE by a denied subject", http.MethodDelete, end},
		{"session/client response by a denied subject", http.MethodPost, answer},
	}
	t.Run("session/another subject's session", func(t *testing.T) {
		session := alice.open(t, b, modernVersion)
		req := rawRequest{method: http.MethodPost, target: "/" + b.name, headers: mallory.headers(session, modernVersion),
			body: []byte(call(`{"name":"echo","arguments":{"message":"stolen session"}}`))}
		obs, _ := observe(t, mallory.gw, []recorder{b.rec}, req)
		if obs.reply.status < 400 || obs.reply.status > 499 || len(obs.backend.hits) > 0 {
			t.Errorf("%s's session used by %s on %s: %s", alice.subject, mallory.subject, b.name, obs.problem(b, []string{"want HTTP 4xx with nothing reaching the backend"}))
		}
	})
	for _, d := range denied {
		t.Run(d.name, func(t *testing.T) {
			session := mallory.open(t, b, modernVersion)
			obs, _ := observe(t, mallory.gw, []recorder{b.rec}, d.req(mallory, session))
			if obs.reply.status != http.StatusForbidden || sawMethod(obs.backend.hits, d.method) {
				t.Errorf("%s on %s: %s", d.name, b.name, obs.problem(b, []string{
					fmt.Sprintf("want HTTP 403 (the policy denies %s) with no %s reaching the backend", mallory.subject, d.method)}))
			}
		})
	}
	t.Run("session/control: GET, response and DELETE by an allowed subject", func(t *testing.T) {
		session := alice.open(t, b, modernVersion)
		for _, r := range []rawRequest{stream(alice, session), answer(alice, session), end(alice, session)} {
			obs, _ := observe(t, alice.gw, []recorder{b.rec}, r)
			var problems []string
			if !sawMethod(obs.backend.hits, r.method) {
				problems = append(problems, fmt.Sprintf("want the %s to reach the backend", r.method))
			}
			if len(obs.decisions) == 0 {
				problems = append(problems, fmt.Sprintf("want the %s decided (and audited)", r.method))
			}
			if len(problems) > 0 {
				t.Errorf("%s by %s on %s: %s", r.method, alice.subject, b.name, obs.problem(b, problems))
			}
		}
	})
}
