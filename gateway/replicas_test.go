package gateway

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/store/storetest"
	"github.com/mcpgw/mcpgw/internal/testidp"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// Two gateway processes on one PostgreSQL database: an agent created
// through one replica's admin API is served by the other within
// store.poll_interval, and sessions move between them (same key).
func TestReplicasShareAdminChangesThroughPostgres(t *testing.T) {
	dsn, idp, notes, ok := replicaWorld(t)
	if !ok {
		return
	}
	one, two := startReplica(t, dsn, idp, notes.URL), startReplica(t, dsn, idp, notes.URL)
	h1 := &harness{t: t, idp: idp, url: one.URL}
	h2 := &harness{t: t, idp: idp, url: two.URL}
	root := h1.token("root", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, adminClient)
	user := h1.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "bot-client")

	// Unknown on both replicas at first.
	checkResponse(t, h2.do(rawRequest{path: "/notes", token: user, agent: "bot", body: initBody}), 403, "unknown agent", nil)
	resp := h1.do(rawRequest{method: "PUT", path: "/admin/v1/agents/bot", token: root, headers: map[string]string{"Content-Type": "application/json"},
		body: `{"client_id":"bot-client","scopes":["mcp:read","mcp:write"],"backend_access":["notes"]}`})
	testutil.WantStatus(t, resp, http.StatusCreated)
	// Replica two serves the new agent within its poll interval.
	var sid string
	testutil.Eventually(t, 5*time.Second, "replica two serves the agent made on replica one", func() bool {
		r := h2.do(rawRequest{path: "/notes", token: user, agent: "bot", body: initBody})
		sid = r.Header.Get("Mcp-Session-Id")
		return r.StatusCode == 200 && sid != ""
	})
	// The session opened on replica two works on replica one.
	msgs := rpcMessages(t, h1.do(rawRequest{path: "/notes", token: user, agent: "bot", session: sid,
		headers: map[string]string{"Mcp-Protocol-Version": "2025-06-18"},
		body:    `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"both"}}}`}))
	if len(msgs) != 1 || msgs[0]["result"] == nil {
		t.Fatalf("session from replica two on replica one: %v", msgs)
	}
}

// replicaWorld is what replicas share in a test: a PostgreSQL schema of
// its own, an identity provider and a demo notes backend, all stopped by
// the test; ok is false when PostgreSQL is not tested.
func replicaWorld(t *testing.T) (dsn string, idp *testidp.Server, notes *demo.Backend, ok bool) {
	t.Helper()
	base, ok := storetest.PostgresBase(t)
	if !ok {
		return "", nil, nil, false
	}
	dsn = storetest.SchemaDSN(t, base)
	idp, notes = startIdP(t), startNotes(t, demo.Options{})
	return dsn, idp, notes, true
}

// startReplica runs one gateway on the shared database dsn, with the session
// key every replica of a deployment shares; mutate changes its config.
func startReplica(t *testing.T, dsn string, idp *testidp.Server, notesURL string, mutate ...func(*config.Config)) *Server {
	t.Helper()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	ln := listenLoopback(t)
	cfg := baseConfig(ln, idp.Issuer())
	cfg.Server.SessionKey = string(key)
	cfg.Backends["notes"] = notesBackend(notesURL)
	cfg.Agents["admin-console"] = adminConsoleAgent()
	cfg.Policy = policyConfig(shippedPolicy)
	cfg.Store = storeConfig(dsn, 100*time.Millisecond)
	for _, m := range mutate {
		m(cfg)
	}
	return startServer(t, cfg, StartOptions{Listener: ln}, 3*time.Second)
}

// Admin writes on two replicas at once never store a topology that does
// not build: granting a backend on one replica while deleting it on the
// other ends with one of the two refused.
func TestReplicaAdminWritesAreSerialized(t *testing.T) {
	base, ok := storetest.PostgresBase(t)
	if !ok {
		return
	}
	dsn := storetest.SchemaDSN(t, base)
	idp := startIdP(t)
	one, two := startReplica(t, dsn, idp, "http://127.0.0.1:9/mcp"), startReplica(t, dsn, idp, "http://127.0.0.1:9/mcp")
	h1, h2 := &harness{t: t, idp: idp, url: one.URL}, &harness{t: t, idp: idp, url: two.URL}
	root := h1.token("root", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, adminClient)
	jsonHeader := map[string]string{"Content-Type": "application/json"}
	for round := range 15 {
		backend := fmt.Sprintf("extra%d", round)
		if r := h1.do(rawRequest{method: "PUT", path: "/admin/v1/backends/" + backend, token: root, headers: jsonHeader,
			body: `{"url":"http://127.0.0.1:9/mcp","auth_method":"none"}`}); r.StatusCode != 201 {
			t.Fatalf("create %s: %d %s", backend, r.StatusCode, readAll(t, r))
		}
		var wg sync.WaitGroup
		var grant, remove int
		wg.Add(2)
		go func() {
			defer wg.Done()
			r := h1.do(rawRequest{method: "PUT", path: "/admin/v1/agents/bot" + backend, token: root, headers: jsonHeader,
				body: `{"client_id":"c-` + backend + `","scopes":["mcp:read"],"backend_access":["` + backend + `"]}`})
			grant = r.StatusCode
		}()
		go func() {
			defer wg.Done()
			r := h2.do(rawRequest{method: "DELETE", path: "/admin/v1/backends/" + backend, token: root})
			remove = r.StatusCode
		}()
		wg.Wait()
		granted, removed := grant == 201, remove == 204
		if granted == removed {
			t.Fatalf("round %d: grant %d and delete %d: exactly one must win", round, grant, remove)
		}
	}
	// Both replicas still build their topology from the store.
	for _, s := range []*Server{one, two} {
		backends, agents, err := loadTopology(t.Context(), s.Store)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := buildTopology(backends, agents, s.Gateway.opts.Injectors); err != nil {
			t.Fatalf("the store holds a topology that does not build: %v", err)
		}
	}
}
