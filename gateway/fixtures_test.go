package gateway

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/testidp"
)

// The one fixture set of the gateway tests. Every world (newHarness,
// newAdminWorld, newOAuthWorld, startReplica, startGateway, the ad-hoc
// ones) is built from these parts: an identity provider, demo backends, the
// base config with its users' issuer, backends and agents, token minting
// and a gateway run by Start. A world states only where it differs.

// testAudience is the audience every test token is minted for.
const testAudience = "api://mcpgw"

// The fixture agents' OAuth clients, which tokens name (cid).
const (
	claudeClient = "claude-client"
	cursorClient = "cursor-client"
	adminClient  = "admin-cli"
)

// worldContext is a context for what a world starts, cancelled after the
// test's other cleanups (a server's Close among them) have run.
func worldContext(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

// startIdP starts a real OAuth/OIDC provider issuing tokens for
// testAudience, closed by the test.
func startIdP(t testing.TB) *testidp.Server {
	t.Helper()
	idp, err := testidp.Start(worldContext(t), testidp.Options{Audience: testAudience})
	if err != nil {
		t.Fatalf("start testidp: %v", err)
	}
	t.Cleanup(func() { _ = idp.Close() })
	return idp
}

// startNotes starts the demo notes backend (echo, notes), closed by the test.
func startNotes(t testing.TB, o demo.Options) *demo.Backend {
	t.Helper()
	b, err := demo.StartNotes(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// startEmployees starts the demo employees backend, closed by the test.
func startEmployees(t testing.TB, o demo.Options) *demo.Backend {
	t.Helper()
	b, err := demo.StartEmployees(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// listenLoopback is a listener on a free loopback port for a gateway.
func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// baseConfig is the config every world starts from: a gateway on ln whose
// public URL is its address, trusting issuer's tokens for testAudience, with
// no backends and no agents yet (the fixture entries below add them).
func baseConfig(ln net.Listener, issuer string) *config.Config {
	addr := ln.Addr().String()
	return &config.Config{
		Server: config.Server{Listen: addr, PublicURL: "http://" + addr, MaxBodyBytes: 1 << 20,
			ReadTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second},
		Identity: config.Identity{
			Issuers:   []config.Issuer{{Issuer: issuer, Audiences: []string{testAudience}}},
			ClockSkew: 30 * time.Second, JWKSRefreshInterval: 15 * time.Minute, ClaimsCacheMaxCost: 1000,
		},
		Backends: map[string]config.Backend{},
		Agents:   map[string]config.Agent{},
	}
}

// notesBackend is the notes demo backend at url, routed at /notes.
func notesBackend(url string) config.Backend {
	return config.Backend{URL: url, Paths: []string{"/notes"}, AuthMethod: "none", TimeoutSeconds: 5}
}

// employeesBackend is the employees demo backend at url, routed at /employees.
func employeesBackend(url string) config.Backend {
	return config.Backend{URL: url, Paths: []string{"/employees"}, AuthMethod: "none", TimeoutSeconds: 5}
}

// claudeCodeAgent is claude-code, bound to claudeClient, with scopes and
// access to backends.
func claudeCodeAgent(scopes []string, backends ...string) config.Agent {
	return config.Agent{AgentID: "claude-code", ClientID: claudeClient, Scopes: scopes, BackendAccess: backends}
}

// cursorAgent is cursor, bound to cursorClient, reading notes.
func cursorAgent() config.Agent {
	return config.Agent{AgentID: "cursor", ClientID: cursorClient, Scopes: []string{"mcp:read"}, BackendAccess: []string{"notes"}}
}

// adminConsoleAgent is the admins' own OAuth client, so admin changes name
// an agent.
func adminConsoleAgent() config.Agent {
	return config.Agent{ClientID: adminClient, Scopes: []string{"mcp:read"}}
}

// policyConfig runs bundle (a directory) unsigned. The timeout is generous:
// the machine's two cores are shared, and a slow evaluation must not turn
// into a flaky denial.
func policyConfig(bundle string) config.Policy {
	return config.Policy{Bundle: bundle, AllowUnsigned: true, Timeout: 5 * time.Second}
}

// shippedPolicy and allowAllPolicy are the bundles tests run.
const (
	shippedPolicy  = "../policies"
	allowAllPolicy = "../testdata/policy/allow-all"
)

// storeConfig is a store at dsn (":memory:": SQLite in memory) polled every
// poll; an hour means whatever changes sooner was applied by the admin API
// itself.
func storeConfig(dsn string, poll time.Duration) config.Store {
	return config.Store{DSN: dsn, PollInterval: poll}
}

// startServer runs cfg with Start on so.Listener, closed by the test
// within closeWithin.
func startServer(t testing.TB, cfg *config.Config, so StartOptions, closeWithin time.Duration) *Server {
	t.Helper()
	if so.Logger == nil {
		so.Logger = quietLogger()
	}
	srv, err := Start(worldContext(t), cfg, so)
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeWithin)
		defer cancel()
		_ = srv.Close(ctx)
	})
	return srv
}

// mintToken mints a user token at idp for testAudience naming clientID as
// its client (the cid claim).
func mintToken(t testing.TB, idp *testidp.Server, sub string, scopes, groups []string, clientID string) string {
	t.Helper()
	tok, err := idp.MintUser(sub, scopes, groups, map[string]any{"cid": clientID})
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}
