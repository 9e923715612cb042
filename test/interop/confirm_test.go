package interop

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/demo"
)

// TestConfirmThroughTypeScriptSDK: the shipped policy asks the person before
// a delete_*; the TypeScript SDK's elicitation handler answers. Accepted,
// the delete reaches the backend; declined, it does not; a client that
// declared no elicitation is refused without being asked.
func TestConfirmThroughTypeScriptSDK(t *testing.T) {
	p := findPeers(t)
	bin := p.buildGo(t, "./cmd/mcpgw", "mcpgw")
	idp := startIdP(t)
	employees, err := demo.StartEmployees(demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = employees.Close() })

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeLoopbackPort(t)))
	q := strconv.Quote
	cfg := `server: {listen: ` + q(addr) + `, public_url: ` + q("http://"+addr) + `}
identity: {issuers: [{issuer: ` + q(idp.Issuer()) + `, audiences: [` + q(gatewayAudience) + `]}]}
policy: {bundle: ` + q(filepath.Join(p.repoRoot(), "policies")) + `, allow_unsigned: true}
store: {dsn: ":memory:"}
backends:
  employees: {url: ` + q(employees.URL) + `, paths: [/employees], auth_method: none}
agents:
  interop: {agent_id: ` + q(gatewayAgentID) + `, client_id: ` + q(gatewayClientID) + `, scopes: [mcp:read, mcp:write], backend_access: [employees]}
`
	base := serveGateway(t, bin, addr, cfg)
	token, err := idp.MintUser("carol", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, map[string]any{"cid": gatewayClientID})
	if err != nil {
		t.Fatal(err)
	}
	headers := map[string]string{"Authorization": "Bearer " + token, "X-Agent-ID": gatewayAgentID}

	type outcome struct {
		Questions []string `json:"questions"`
		Result    *struct {
			IsError bool `json:"isError"`
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"result"`
		Error string `json:"error"`
	}
	callAs := func(headers map[string]string, answer, tool, args string) outcome {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
		defer cancel()
		argv := append([]string{p.path("ts-confirm.mjs"), base + "/employees", "--answer", answer, "--tool", tool, "--args", args}, headerArgs(headers)...)
		res := run(ctx, "ts-confirm.mjs", command(ctx, p.dir, peerEnv(t), p.node, argv...))
		var out outcome
		if err := json.Unmarshal(res.stdout, &out); err != nil {
			t.Fatalf("ts-confirm.mjs: %v\nstdout %s\nstderr %s", err, res.stdout, res.stderr)
		}
		return out
	}
	call := func(answer, tool, args string) outcome { return callAs(headers, answer, tool, args) }
	employeesListed := func() string {
		out := call("none", "list_employees", "{}")
		if out.Result == nil || len(out.Result.Content) == 0 {
			t.Fatalf("list_employees: %+v", out)
		}
		return out.Result.Content[0].Text
	}

	// A viewer's results come back with emails masked (the redact
	// obligation), the super-admin's whole.
	viewerToken, err := idp.MintUser("vera", []string{"mcp:read"}, []string{"mcp-viewers"}, map[string]any{"cid": gatewayClientID})
	if err != nil {
		t.Fatal(err)
	}
	viewed := callAs(map[string]string{"Authorization": "Bearer " + viewerToken, "X-Agent-ID": gatewayAgentID}, "none", "list_employees", "{}")
	if viewed.Result == nil || len(viewed.Result.Content) == 0 || strings.Contains(viewed.Result.Content[0].Text, "@example.com") ||
		!strings.Contains(viewed.Result.Content[0].Text, "<[REDACTED]>") {
		t.Fatalf("viewer's list: %+v", viewed)
	}
	if !strings.Contains(employeesListed(), "@example.com") {
		t.Fatal("the super-admin's list was masked")
	}

	declined := call("decline", "delete_employee", `{"id":"e1"}`)
	if len(declined.Questions) != 1 || !strings.Contains(declined.Questions[0], "delete_employee") || declined.Error == "" || !strings.Contains(declined.Error, "did not confirm") {
		t.Fatalf("declined: %+v", declined)
	}
	noAsk := call("none", "delete_employee", `{"id":"e1"}`)
	if len(noAsk.Questions) != 0 || !strings.Contains(noAsk.Error, "elicitation") {
		t.Fatalf("client without elicitation: %+v", noAsk)
	}
	if !strings.Contains(employeesListed(), "e1:") {
		t.Fatal("e1 was deleted without an accepted confirmation")
	}
	accepted := call("accept", "delete_employee", `{"id":"e1"}`)
	if len(accepted.Questions) != 1 || accepted.Error != "" || accepted.Result == nil || accepted.Result.IsError {
		t.Fatalf("accepted: %+v", accepted)
	}
	if strings.Contains(employeesListed(), "e1:") {
		t.Fatalf("e1 still listed after an accepted delete:\n%s", employeesListed())
	}
}
