package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	tsFederatedScript = "ts-federated.mjs"
	// federatedRun bounds ts-federated.mjs: server-everything's simulated
	// log arrives at once when toggled, but on a loaded machine the whole
	// session (two sampling round trips, a long-running call) takes a while.
	federatedRun = 3 * time.Minute
)

// federatedEvent is one line ts-federated.mjs prints.
type federatedEvent struct {
	Event        string          `json:"event"`
	SessionID    *string         `json:"sessionId"`
	Capabilities map[string]any  `json:"capabilities"`
	Names        []string        `json:"names"`
	URIs         []string        `json:"uris"`
	URI          string          `json:"uri"`
	Name         string          `json:"name"`
	Text         *string         `json:"text"`
	Data         string          `json:"data"`
	Prompt       string          `json:"prompt"`
	Progress     json.RawMessage `json:"progress"`
}

// runTSFederated runs ts-federated.mjs against the federated endpoint url.
func (p peers) runTSFederated(t *testing.T, url string, headers map[string]string) []federatedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), federatedRun)
	defer cancel()
	args := append([]string{p.path(tsFederatedScript), url}, headerArgs(headers)...)
	res := run(ctx, tsFederatedScript, command(ctx, p.dir, peerEnv(t), p.node, args...))
	var events []federatedEvent
	scanner := bufio.NewScanner(bytes.NewReader(res.stdout))
	for scanner.Scan() {
		var ev federatedEvent
		if err := json.Unmarshal(scanner.Bytes(), &ev); err != nil {
			t.Fatalf("%s printed a line that is not a JSON event %q: %v", tsFederatedScript, scanner.Text(), err)
		}
		events = append(events, ev)
	}
	if res.err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", tsFederatedScript, res.err, res.stdout, res.stderr)
	}
	return events
}

// federatedProblems checks one ts-federated.mjs session through the
// federated endpoint in front of server-everything ("everything__") and the
// conformance server (unprefixed): it returns what is wrong.
func federatedProblems(events []federatedEvent) []string {
	var problems []string
	by := map[string][]federatedEvent{}
	for _, ev := range events {
		by[ev.Event] = append(by[ev.Event], ev)
	}
	one := func(name string) (federatedEvent, bool) {
		if len(by[name]) != 1 {
			problems = append(problems, fmt.Sprintf("%d %q events, want 1", len(by[name]), name))
			return federatedEvent{}, false
		}
		return by[name][0], true
	}
	if ev, ok := one("connected"); ok {
		if ev.SessionID == nil || *ev.SessionID == "" {
			problems = append(problems, "no Mcp-Session-Id from the federated endpoint")
		}
		for _, c := range []string{"tools", "prompts", "resources", "logging"} {
			if _, has := ev.Capabilities[c]; !has {
				problems = append(problems, fmt.Sprintf("server capabilities %v lack %q (both backends have it)", ev.Capabilities, c))
			}
		}
	}
	if ev, ok := one("tools"); ok {
		for _, want := range []string{"everything__echo", "everything__trigger-sampling-request", "test_simple_text", "test_sampling"} {
			if !slices.Contains(ev.Names, want) {
				problems = append(problems, fmt.Sprintf("tools/list lacks %q: %v", want, ev.Names))
			}
		}
		if slices.Contains(ev.Names, "echo") {
			problems = append(problems, "server-everything's echo listed without its prefix")
		}
	}
	if ev, ok := one("resources"); ok {
		if !slices.Contains(ev.URIs, "test://static-text") {
			problems = append(problems, fmt.Sprintf("the unprefixed backend's test://static-text is not listed as is: %v", ev.URIs))
		}
		if !slices.ContainsFunc(ev.URIs, func(u string) bool { return strings.HasPrefix(u, "mcpgw.everything+") }) {
			problems = append(problems, fmt.Sprintf("no server-everything resource listed as mcpgw.everything+<uri>: %v", ev.URIs))
		}
	}
	if ev, ok := one("read"); ok && (ev.URI != "test://static-text" || ev.Text == nil || *ev.Text == "") {
		problems = append(problems, fmt.Sprintf("resources/read of test://static-text: %+v", ev))
	}
	calls := map[string]string{}
	for _, ev := range by["call"] {
		if ev.Text != nil {
			calls[ev.Name] = *ev.Text
		}
	}
	wantCalls := []struct{ name, contains string }{
		{"everything__echo", "federated hello"},
		{"test_simple_text", ""},
		{"everything__trigger-long-running-operation", ""},
		{"test_tool_with_logging", "successfully"},
		{"everything__trigger-sampling-request", "sampled("},
		{"test_sampling", "sampled("},
		{"test_trigger_tool_change", ""},
	}
	for _, w := range wantCalls {
		text, ok := calls[w.name]
		if !ok || !strings.Contains(text, w.contains) {
			problems = append(problems, fmt.Sprintf("call %s answered %q (listed: %v), want text containing %q", w.name, text, ok, w.contains))
		}
	}
	if n := len(by["progress"]); n < 1 {
		problems = append(problems, "no progress notification from server-everything's long-running call")
	}
	var prompts []string
	for _, ev := range by["sampling"] {
		prompts = append(prompts, ev.Prompt)
	}
	for _, want := range []string{"from everything", "from conformance"} {
		if !slices.ContainsFunc(prompts, func(p string) bool { return strings.Contains(p, want) }) {
			problems = append(problems, fmt.Sprintf("no sampling request %q reached the client: %q", want, prompts))
		}
	}
	var logs []string
	for _, ev := range by["logging"] {
		logs = append(logs, ev.Data)
	}
	if !slices.Contains(logs, "Tool execution started") {
		problems = append(problems, fmt.Sprintf("the conformance server's call log did not reach the client: %q", logs))
	}
	if !slices.ContainsFunc(logs, func(d string) bool {
		return strings.Contains(d, "level message") || strings.Contains(d, "level-message")
	}) {
		problems = append(problems, fmt.Sprintf("server-everything's simulated log (GET stream) did not reach the client: %q", logs))
	}
	if len(by["tools_changed"]) < 1 {
		problems = append(problems, "the conformance server's tools/list_changed (GET stream) did not reach the client")
	}
	if _, ok := one("terminated"); !ok {
		problems = append(problems, "session not ended with DELETE")
	}
	return problems
}

// testFederatedTSClient: one TypeScript SDK session on the federated
// endpoint calls tools of both backends, answers sampling requests from
// both, and gets notifications from both on the call's stream and on the
// GET stream.
func testFederatedTSClient(t *testing.T, p peers, url string, headers map[string]string) {
	events := p.runTSFederated(t, url, headers)
	if problems := federatedProblems(events); len(problems) > 0 {
		var lines []string
		for _, ev := range events {
			b, _ := json.Marshal(ev)
			lines = append(lines, string(b))
		}
		t.Fatalf("TypeScript SDK session on the federated endpoint:\n  %s\nevents:\n%s", strings.Join(problems, "\n  "), strings.Join(lines, "\n"))
	}
}
