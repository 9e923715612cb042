package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpgoserver "github.com/mark3labs/mcp-go/server"
	gosdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// The differential tests' backends: real MCP servers nobody here wrote, each
// made to keep its own record of what it executed, as it read the request.
//
//   - server-everything (TypeScript SDK): its record is read from the replies
//     it sends, by a tap between gateway and server: "Echo: <message>" says
//     which echo ran, the marker in its environment says get-env ran.
//   - the official Go SDK and mcp-go, with typed (struct) tool arguments, in
//     this process: their handlers record what the SDK decoded.
//   - raw-recorder.mjs: JSON.parse of each body, as a hand-written
//     JavaScript server would read it.

const rawRecorderScript = "raw-recorder.mjs"

// The diff backends' tools: one everybody may call, one with an argument
// the policy checks, and a secret one nobody may call or see.
const (
	toolEcho       = "echo"
	toolReadFile   = "read_file"
	toolGetSecret  = "get_secret"
	toolGetEnv     = "get-env" // server-everything's secret tool: it prints its environment
	publicResource = "file:///public/readme"
	hiddenResource = "file:///private/secret"
	publicPrompt   = "greeting"
	hiddenPrompt   = "admin_prompt"
	// server-everything's own resource and prompt, which the policy hides.
	everythingHiddenResource = "demo://resource/static/document/architecture.md"
	everythingHiddenPrompt   = "simple-prompt"
	everythingSimplePrompt   = "This is a simple prompt without arguments."
)

// execution is one thing a backend ran: a tool, a resource read or a prompt,
// with the arguments as the backend itself read them.
type execution struct {
	Kind      string          `json:"kind"` // tool, resource or prompt
	Name      string          `json:"name,omitempty"`
	URI       string          `json:"uri,omitempty"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
}

func (e execution) String() string {
	switch e.Kind {
	case "resource":
		return "resources/read " + e.URI
	case "prompt":
		return fmt.Sprintf("prompts/get %s %s", e.Name, compactJSON(e.Arguments))
	}
	return fmt.Sprintf("tools/call %s %s", e.Name, compactJSON(e.Arguments))
}

// httpHit is one HTTP request as it reached a backend: the request target
// exactly as it arrived.
type httpHit struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

// recordMark is a position in a backend's record.
type recordMark struct{ execs, hits int }

// backendRecord is what a backend did since a mark.
type backendRecord struct {
	execs []execution
	hits  []httpHit
}

// recorder is a backend's record of what it received and executed.
type recorder interface {
	mark(t *testing.T) recordMark
	since(t *testing.T, m recordMark) backendRecord
	// quiesce waits until no request (other than a GET stream) is still
	// being handled, so that since sees all of one request's effects.
	quiesce(t *testing.T)
}

// quiesceTimeout bounds the wait for a backend to finish a request: a
// generous upper bound, never a measurement.
const quiesceTimeout = 20 * time.Second

// memRecorder is the record of a backend served from this process.
type memRecorder struct {
	mu       sync.Mutex
	execs    []execution
	hits     []httpHit
	inFlight int
}

func (r *memRecorder) exec(e execution) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.execs = append(r.execs, e)
}

// wrap records every request that reaches h and counts those in flight.
// GET streams stay open as long as the client wants, so they are not counted.
func (r *memRecorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		counted := req.Method != http.MethodGet
		r.mu.Lock()
		r.hits = append(r.hits, httpHit{Method: req.Method, Path: req.RequestURI})
		if counted {
			r.inFlight++
		}
		r.mu.Unlock()
		if counted {
			defer func() {
				r.mu.Lock()
				r.inFlight--
				r.mu.Unlock()
			}()
		}
		h.ServeHTTP(w, req)
	})
}

func (r *memRecorder) mark(*testing.T) recordMark {
	r.mu.Lock()
	defer r.mu.Unlock()
	return recordMark{execs: len(r.execs), hits: len(r.hits)}
}

func (r *memRecorder) since(_ *testing.T, m recordMark) backendRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return backendRecord{
		execs: append([]execution(nil), r.execs[m.execs:]...),
		hits:  append([]httpHit(nil), r.hits[m.hits:]...),
	}
}

func (r *memRecorder) quiesce(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(quiesceTimeout)
	for {
		r.mu.Lock()
		busy := r.inFlight
		r.mu.Unlock()
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend still handling %d request(s) after %s", busy, quiesceTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recordArgs is the typed arguments as the SDK decoded them, re-encoded with
// the struct's own JSON names: what the handler really works with.
func recordArgs(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(strconv.Quote("unencodable: " + err.Error()))
	}
	return b
}

// Typed tool arguments. Pointers with omitempty tell an absent argument from
// an empty one, so the record holds exactly the keys the SDK bound.
type (
	echoArgs struct {
		Message *string `json:"message,omitempty"`
	}
	readFileArgs struct {
		Path *string `json:"path,omitempty"`
	}
	noArgs struct{}
)

func derefOr(s *string, fallback string) string {
	if s == nil {
		return fallback
	}
	return *s
}

// startGoSDKBackend serves the official Go SDK's streamable HTTP handler
// (stateful) on a free loopback port; its typed handlers record what ran.
func startGoSDKBackend(t *testing.T) (string, *memRecorder) {
	t.Helper()
	rec := &memRecorder{}
	srv := gosdk.NewServer(&gosdk.Implementation{Name: "gosdk-diff-backend", Version: "1.0.0"}, nil)
	gosdk.AddTool(srv, &gosdk.Tool{Name: toolEcho, Description: "Echoes the message"},
		func(_ context.Context, _ *gosdk.CallToolRequest, in echoArgs) (*gosdk.CallToolResult, any, error) {
			rec.exec(execution{Kind: "tool", Name: toolEcho, Arguments: recordArgs(in)})
			return &gosdk.CallToolResult{Content: []gosdk.Content{&gosdk.TextContent{Text: "Echo: " + derefOr(in.Message, "")}}}, nil, nil
		})
	gosdk.AddTool(srv, &gosdk.Tool{Name: toolReadFile, Description: "Reads a file"},
		func(_ context.Context, _ *gosdk.CallToolRequest, in readFileArgs) (*gosdk.CallToolResult, any, error) {
			rec.exec(execution{Kind: "tool", Name: toolReadFile, Arguments: recordArgs(in)})
			return &gosdk.CallToolResult{Content: []gosdk.Content{&gosdk.TextContent{Text: "contents of " + derefOr(in.Path, "")}}}, nil, nil
		})
	gosdk.AddTool(srv, &gosdk.Tool{Name: toolGetSecret, Description: "Returns the secret"},
		func(_ context.Context, _ *gosdk.CallToolRequest, in noArgs) (*gosdk.CallToolResult, any, error) {
			rec.exec(execution{Kind: "tool", Name: toolGetSecret, Arguments: recordArgs(in)})
			return &gosdk.CallToolResult{Content: []gosdk.Content{&gosdk.TextContent{Text: "the secret"}}}, nil, nil
		})
	for _, uri := range []string{publicResource, hiddenResource} {
		srv.AddResource(&gosdk.Resource{URI: uri, Name: filepath.Base(uri), MIMEType: "text/plain"},
			func(_ context.Context, req *gosdk.ReadResourceRequest) (*gosdk.ReadResourceResult, error) {
				rec.exec(execution{Kind: "resource", URI: req.Params.URI})
				return &gosdk.ReadResourceResult{Contents: []*gosdk.ResourceContents{{URI: req.Params.URI, MIMEType: "text/plain", Text: "contents of " + req.Params.URI}}}, nil
			})
	}
	for _, name := range []string{publicPrompt, hiddenPrompt} {
		srv.AddPrompt(&gosdk.Prompt{Name: name, Arguments: []*gosdk.PromptArgument{{Name: "who"}}},
			func(_ context.Context, req *gosdk.GetPromptRequest) (*gosdk.GetPromptResult, error) {
				rec.exec(execution{Kind: "prompt", Name: req.Params.Name, Arguments: recordArgs(req.Params.Arguments)})
				return &gosdk.GetPromptResult{Messages: []*gosdk.PromptMessage{{Role: "user", Content: &gosdk.TextContent{Text: "prompt " + req.Params.Name}}}}, nil
			})
	}
	handler := gosdk.NewStreamableHTTPHandler(func(*http.Request) *gosdk.Server { return srv }, &gosdk.StreamableHTTPOptions{})
	return serveLoopback(t, rec.wrap(handler)) + "/mcp", rec
}

// startMCPGoBackend serves mcp-go's stateful streamable HTTP server on a free
// loopback port. Its tools use NewTypedToolHandler: arguments are bound to Go
// structs with encoding/json, which matches keys case-insensitively.
func startMCPGoBackend(t *testing.T) (string, *memRecorder) {
	t.Helper()
	rec := &memRecorder{}
	srv := mcpgoserver.NewMCPServer("mcpgo-diff-backend", "1.0.0",
		mcpgoserver.WithToolCapabilities(false), mcpgoserver.WithResourceCapabilities(false, false), mcpgoserver.WithPromptCapabilities(false))
	srv.AddTool(mcpgo.NewTool(toolEcho, mcpgo.WithDescription("Echoes the message"), mcpgo.WithString("message")),
		mcpgo.NewTypedToolHandler(func(_ context.Context, _ mcpgo.CallToolRequest, in echoArgs) (*mcpgo.CallToolResult, error) {
			rec.exec(execution{Kind: "tool", Name: toolEcho, Arguments: recordArgs(in)})
			return mcpgo.NewToolResultText("Echo: " + derefOr(in.Message, "")), nil
		}))
	srv.AddTool(mcpgo.NewTool(toolReadFile, mcpgo.WithDescription("Reads a file"), mcpgo.WithString("path")),
		mcpgo.NewTypedToolHandler(func(_ context.Context, _ mcpgo.CallToolRequest, in readFileArgs) (*mcpgo.CallToolResult, error) {
			rec.exec(execution{Kind: "tool", Name: toolReadFile, Arguments: recordArgs(in)})
			return mcpgo.NewToolResultText("contents of " + derefOr(in.Path, "")), nil
		}))
	srv.AddTool(mcpgo.NewTool(toolGetSecret, mcpgo.WithDescription("Returns the secret")),
		mcpgo.NewTypedToolHandler(func(_ context.Context, _ mcpgo.CallToolRequest, in noArgs) (*mcpgo.CallToolResult, error) {
			rec.exec(execution{Kind: "tool", Name: toolGetSecret, Arguments: recordArgs(in)})
			return mcpgo.NewToolResultText("the secret"), nil
		}))
	for _, uri := range []string{publicResource, hiddenResource} {
		srv.AddResource(mcpgo.NewResource(uri, filepath.Base(uri), mcpgo.WithMIMEType("text/plain")),
			func(_ context.Context, req mcpgo.ReadResourceRequest) ([]mcpgo.ResourceContents, error) {
				rec.exec(execution{Kind: "resource", URI: req.Params.URI})
				return []mcpgo.ResourceContents{mcpgo.TextResourceContents{URI: req.Params.URI, MIMEType: "text/plain", Text: "contents of " + req.Params.URI}}, nil
			})
	}
	for _, name := range []string{publicPrompt, hiddenPrompt} {
		srv.AddPrompt(mcpgo.NewPrompt(name, mcpgo.WithArgument("who")),
			func(_ context.Context, req mcpgo.GetPromptRequest) (*mcpgo.GetPromptResult, error) {
				rec.exec(execution{Kind: "prompt", Name: req.Params.Name, Arguments: recordArgs(req.Params.Arguments)})
				return mcpgo.NewGetPromptResult(req.Params.Name, []mcpgo.PromptMessage{
					mcpgo.NewPromptMessage(mcpgo.RoleUser, mcpgo.NewTextContent("prompt "+req.Params.Name)),
				}), nil
			})
	}
	handler := mcpgoserver.NewStreamableHTTPServer(srv, mcpgoserver.WithEndpointPath("/mcp"), mcpgoserver.WithStateful(true))
	return serveLoopback(t, rec.wrap(handler)) + "/mcp", rec
}

// startEverythingTap starts server-everything with a secret marker in its
// environment and a recording reverse proxy in front of it. The tap changes
// nothing it relays; it keeps the request line of every request and reads
// what ran from each reply to a POST.
func (p peers) startEverythingTap(t *testing.T, secret string) (string, *memRecorder) {
	t.Helper()
	addr := p.startEverythingAt(t, "MCPGW_DIFF_SECRET="+secret)
	rec := &memRecorder{}
	target := &url.URL{Scheme: "http", Host: addr}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.URL.Path, r.Out.URL.RawPath = r.In.URL.Path, r.In.URL.RawPath
		},
		FlushInterval: -1,
		ErrorHandler:  proxyError,
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method == http.MethodPost {
				resp.Body = &teeBody{ReadCloser: resp.Body, done: func(body []byte) {
					for _, e := range everythingExecutions(resp.Header.Get("Content-Type"), body, secret) {
						rec.exec(e)
					}
				}}
			}
			return nil
		},
	}
	return serveLoopback(t, rec.wrap(fullDuplex(proxy))) + "/mcp", rec
}

// teeBody keeps what is read through it and hands it to done once, at the
// end of the body: before the proxy finishes its reply, so before the
// gateway can answer its client.
type teeBody struct {
	io.ReadCloser
	buf  bytes.Buffer
	once sync.Once
	done func([]byte)
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.buf.Write(p[:n])
	if err != nil {
		b.finish()
	}
	return n, err
}

func (b *teeBody) Close() error {
	b.finish()
	return b.ReadCloser.Close()
}

func (b *teeBody) finish() { b.once.Do(func() { b.done(b.buf.Bytes()) }) }

// everythingExecutions reads what server-everything ran from one reply.
// Only its own output can say so: an "Echo: " text is echo with that
// message, the secret marker is get-env, contents name the resource read,
// and the fixed text of simple-prompt names that prompt.
func everythingExecutions(contentType string, body []byte, secret string) []execution {
	var out []execution
	for _, raw := range jsonRPCMessages(contentType, body) {
		var msg struct {
			Result *struct {
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
				Contents []struct {
					URI string `json:"uri"`
				} `json:"contents"`
				Messages []struct {
					Content struct {
						Text string `json:"text"`
					} `json:"content"`
				} `json:"messages"`
			} `json:"result"`
		}
		if json.Unmarshal(markLoneSurrogates(raw), &msg) != nil || msg.Result == nil {
			continue
		}
		for _, c := range msg.Result.Content {
			switch {
			case strings.Contains(c.Text, secret):
				out = append(out, execution{Kind: "tool", Name: toolGetEnv, Arguments: json.RawMessage(`{}`)})
			case strings.HasPrefix(c.Text, "Echo: "):
				args, _ := json.Marshal(map[string]string{"message": strings.TrimPrefix(c.Text, "Echo: ")})
				out = append(out, execution{Kind: "tool", Name: toolEcho, Arguments: args})
			}
		}
		for _, c := range msg.Result.Contents {
			out = append(out, execution{Kind: "resource", URI: c.URI})
		}
		if len(msg.Result.Messages) > 0 {
			name := "(a prompt answering " + strconv.Quote(msg.Result.Messages[0].Content.Text) + ")"
			if msg.Result.Messages[0].Content.Text == everythingSimplePrompt {
				name = everythingHiddenPrompt
			}
			out = append(out, execution{Kind: "prompt", Name: name})
		}
	}
	return out
}

// fileRecorder reads raw-recorder.mjs's JSONL record.
type fileRecorder struct{ path string }

type rawRecordLine struct {
	Type  string `json:"type"`
	Phase string `json:"phase"`
	Seq   int    `json:"seq"`
	httpHit
	execution
}

// lines returns the complete lines of the record: the recorder may be
// writing the last one.
func (r *fileRecorder) lines(t *testing.T) [][]byte {
	t.Helper()
	b, err := os.ReadFile(r.path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("read raw recorder record: %v", err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1<<16), 64<<20)
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out
}

// mark counts lines: requests and executions share the one file.
func (r *fileRecorder) mark(t *testing.T) recordMark { return recordMark{hits: len(r.lines(t))} }

func (r *fileRecorder) since(t *testing.T, m recordMark) backendRecord {
	t.Helper()
	var out backendRecord
	for _, line := range r.lines(t)[m.hits:] {
		var l rawRecordLine
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatalf("raw recorder wrote a line that is not JSON %q: %v", line, err)
		}
		switch {
		case l.Type == "http" && l.Phase == "start":
			out.hits = append(out.hits, l.httpHit)
		case l.Type == "exec":
			e := l.execution
			e.Arguments = markLoneSurrogates(e.Arguments)
			out.execs = append(out.execs, e)
		}
	}
	return out
}

func (r *fileRecorder) quiesce(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(quiesceTimeout)
	for {
		open := map[int]bool{}
		for _, line := range r.lines(t) {
			var l rawRecordLine
			if json.Unmarshal(line, &l) != nil || l.Type != "http" {
				continue
			}
			if l.Phase == "start" {
				open[l.Seq] = true
			} else {
				delete(open, l.Seq)
			}
		}
		if len(open) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("raw recorder still handling %d request(s) after %s", len(open), quiesceTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startRawRecorder starts raw-recorder.mjs on a free loopback port and
// returns its base URL (the first path segment picks the list framing).
func (p peers) startRawRecorder(t *testing.T) (string, *fileRecorder) {
	t.Helper()
	port := freeLoopbackPort(t)
	record := filepath.Join(t.TempDir(), "raw-record.jsonl")
	cmd := exec.Command(p.node, p.path(rawRecorderScript))
	cmd.Dir = t.TempDir()
	cmd.Env = peerEnv(t, "PORT="+strconv.Itoa(port), "MCPGW_DIFF_RECORD="+record)
	srv := startServer(t, "raw-recorder.mjs", cmd)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	if err := srv.waitReady(ctx, tcpProbe(addr)); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr, &fileRecorder{path: record}
}

// markLoneSurrogates rewrites each \uD800-\uDFFF escape that is not half of a
// pair into an escaped backslash, so that it decodes to the visible text
// `\ud800` instead of U+FFFD: a backend that kept a lone surrogate (as
// JavaScript does) then differs from a policy that saw U+FFFD.
func markLoneSurrogates(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u`)) && !bytes.Contains(b, []byte(`\U`)) {
		return b
	}
	surrogate := func(i int) (rune, bool) {
		if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 32)
		if err != nil {
			return 0, false
		}
		return rune(v), true
	}
	var out []byte
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !inString {
			inString = c == '"'
			out = append(out, c)
			continue
		}
		switch c {
		case '"':
			inString = false
			out = append(out, c)
		case '\\':
			r, ok := surrogate(i)
			if !ok {
				if i+1 < len(b) {
					out = append(out, c, b[i+1])
					i++
				} else {
					out = append(out, c)
				}
				continue
			}
			if r >= 0xD800 && r <= 0xDBFF {
				if lo, ok := surrogate(i + 6); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					out = append(out, b[i:i+12]...)
					i += 11
					continue
				}
			}
			if r >= 0xD800 && r <= 0xDFFF {
				out = append(out, '\\', '\\')
				out = append(out, b[i+1:i+6]...)
			} else {
				out = append(out, b[i:i+6]...)
			}
			i += 5
		default:
			out = append(out, c)
		}
	}
	return out
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
