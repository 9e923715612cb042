package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

func TestDemoServesPoliciesAndStopsCleanly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, logs testutil.SyncBuffer
	type world struct {
		url    string
		tokens map[string]string
	}
	ready := make(chan world, 1)
	done := make(chan error, 1)
	go func() {
		done <- demoMain(ctx, "127.0.0.1:0", "../../policies", &out, &logs, func(url string, tokens map[string]string, _ *demo.World) {
			ready <- world{url, tokens}
		})
	}()
	var w world
	select {
	case w = <-ready:
	case err := <-done:
		t.Fatalf("demo stopped early: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("demo not ready\n%s", logs.String())
	}
	printed := out.String()
	for _, want := range []string{"export ALICE=", "export BOB=", "export CAROL=", "curl -s " + w.url + "/employees", "mcp-inspector --cli " + w.url + "/notes"} {
		if !strings.Contains(printed, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}

	post := func(token, body string) map[string]any {
		req, _ := http.NewRequest(http.MethodPost, w.url+"/employees", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Agent-ID", "claude-code")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("reply %d %s: %v", resp.StatusCode, raw, err)
		}
		return m
	}
	// employees accepts only tokens of its own authorization server, so a
	// listing proves the whole Cross App Access chain ran: the user's token
	// became an ID-JAG at the IdP, then an HR access token.
	list := post(w.tokens["ALICE"], `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	tools := list["result"].(map[string]any)["tools"].([]any)
	if len(tools) != 3 {
		t.Fatalf("alice sees %d employees tools, want the 3 read tools: %v", len(tools), tools)
	}
	del := post(w.tokens["BOB"], `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_employee","arguments":{"id":"e1"}}}`)
	if e, _ := del["error"].(map[string]any); e == nil || e["code"] != float64(-32003) {
		t.Fatalf("bob's delete = %v, want -32003", del)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo stop: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not stop after cancel")
	}
}

// TestDemoOAuthLogin: what the demo prints for MCP clients works: a client
// given only the URL registers, alice logs in at the demo IdP's form and
// approves the consent page, and the gateway's token reaches both backends,
// the HR one through Cross App Access with her login's ID token.
func TestDemoOAuthLogin(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, logs testutil.SyncBuffer
	ready := make(chan string, 1)
	type ends struct{ idp string }
	idp := make(chan ends, 1)
	done := make(chan error, 1)
	go func() {
		done <- demoMain(ctx, "127.0.0.1:0", "../../policies", &out, &logs, func(url string, _ map[string]string, w *demo.World) {
			idp <- ends{w.IdP.Issuer()}
			ready <- url
		})
	}()
	var gw string
	select {
	case gw = <-ready:
	case err := <-done:
		t.Fatalf("demo stopped early: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("demo not ready\n%s", logs.String())
	}
	issuer := (<-idp).idp
	if !strings.Contains(out.String(), "add\n\n  "+gw+"/notes\n") || !strings.Contains(out.String(), "alice / alice") {
		t.Fatalf("the demo does not print the URL to add and the login:\n%s", out.String())
	}

	const redirect = "http://127.0.0.1:33418/callback"
	reg, err := http.Post(gw+"/oauth2/register", "application/json", strings.NewReader(`{"client_name":"Some MCP client","redirect_uris":["`+redirect+`"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var client struct {
		ClientID string `json:"client_id"`
	}
	_ = json.NewDecoder(reg.Body).Decode(&client)
	reg.Body.Close()
	testutil.WantStatus(t, reg, http.StatusCreated)

	verifier, challenge := testutil.PKCE()
	for _, backend := range []string{"notes", "employees"} {
		q := url.Values{"response_type": {"code"}, "client_id": {client.ClientID}, "redirect_uri": {redirect},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "resource": {gw + "/" + backend}}
		back := testutil.NewBrowser(t).GatewayLogin(gw, issuer, gw+"/oauth2/authorize?"+q.Encode(), "alice", "alice")
		resp, err := http.PostForm(gw+"/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
			"redirect_uri": {redirect}, "client_id": {client.ClientID}, "code_verifier": {verifier}})
		if err != nil {
			t.Fatal(err)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		testutil.WantStatus(t, resp, http.StatusOK)
		if err := listTools(ctx, gw+"/"+backend, tok.AccessToken); err != nil {
			t.Fatalf("tools/list on %s with the gateway's token: %v\n%s", backend, err, logs.String())
		}
	}
}
