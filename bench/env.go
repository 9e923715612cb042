package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/mcpgw/mcpgw/internal/testidp"
)

// child is a process the harness started.
type child struct {
	name string
	cmd  *exec.Cmd
	url  string
	// exited is closed once the process ended.
	exited chan struct{}
}

// watch reaps cmd when it ends, started or not by us stopping it.
func watch(name string, cmd *exec.Cmd, url string) *child {
	c := &child{name: name, cmd: cmd, url: url, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(c.exited)
	}()
	return c
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(3 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// startSelf runs this binary in a child mode and reads the URL it prints.
func startSelf(name string, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(self, args...)
	// Backends log every client that left mid-reply when a run ends: noise.
	if args[0] != "backend" {
		cmd.Stderr = os.Stderr
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("start %s: no URL printed: %w", name, err)
	}
	return watch(name, cmd, strings.TrimSpace(line)), nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// env is everything a run measures: the identity provider (in this
// process), the backends, the plain proxy and the gateway.
type env struct {
	idp *testidp.Server
	// ras is the okta-cross-app backend's resource authorization server,
	// which takes the ID-JAGs e.idp issues.
	ras *testidp.Server
	// agentKeys[i] is benchAgents[i]'s private key (a JWK), with which it
	// authenticates its token exchanges at e.idp (private_key_jwt).
	agentKeys []string
	b50       *child
	b1000     *child
	huge      *child
	proxy     *child
	gw        *child
	metrics   string
	dir       string
	// tokens[i] is minted for agents[i%len(agents)]'s client.
	tokens []string
	agents []string
	// idleRSS is the gateway's RSS once started, before any request.
	idleRSS int64
}

// The subjects (options.subjects) alternate between a super-admin and a
// viewer, and between two agents, so decisions and visibility differ per
// caller.

var benchAgents = []struct{ id, client string }{{"agent-a", "bench-a"}, {"agent-b", "bench-b"}}

const psk = "bench-pre-shared-key"

// tokenTTL is the lifetime of the tokens the identity provider and the
// resource authorization server issue: longer than any run, so neither a
// subject token nor a cached backend token expires under load (the gateway
// reuses a backend token for at most exchange.DefaultCacheMaxTTL, an hour).
const tokenTTL = 6 * time.Hour

// xaaBackend is a route to the 50-tool backend with okta-cross-app
// credentials: Okta Cross App Access, the user's token exchanged at the
// identity provider for an ID-JAG, the ID-JAG at the resource
// authorization server for the backend's token. The backend does not check
// that token: what is measured is the gateway's cost of the method.
const xaaBackend = "b50xaa"

const (
	// xaaResourceClient is the agents' client at the resource authorization
	// server: the identity provider maps both agents' clients to it, as an
	// Okta managed connection does.
	xaaResourceClient = "bench-resource"
	xaaResourceSecret = "bench-resource-secret"
	// xaaScope is the scope the backend's tokens carry.
	xaaScope = "b50:call"
)

// Grant types whose requests the identity provider and the resource
// authorization server count: one of each per okta-cross-app exchange.
const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	grantJWTBearer     = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

func startEnv(ctx context.Context, o options) (e *env, err error) {
	e = &env{}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.dir, err = os.MkdirTemp("", "mcpgw-bench-"); err != nil {
		return nil, err
	}
	if e.idp, err = testidp.Start(ctx, testidp.Options{TokenTTL: tokenTTL}); err != nil {
		return nil, fmt.Errorf("start identity provider: %w", err)
	}
	if err := e.startResourceAS(ctx); err != nil {
		return nil, err
	}
	// One subject uses one agent; more take the agents in turn (a count
	// rounded up to a multiple of theirs, so client i's token is always
	// its agent's).
	agents := benchAgents[:min(max(o.subjects, 1), len(benchAgents))]
	n := (max(o.subjects, 1) + len(agents) - 1) / len(agents) * len(agents)
	for i := range n {
		a := agents[i%len(agents)]
		groups := []string{"mcp-super-admins"}
		if i%4 >= 2 {
			groups = []string{"mcp-viewers"}
		}
		tok, err := e.idp.MintUser(fmt.Sprintf("user%d", i), []string{"mcp:read", "mcp:write"}, groups, map[string]any{"cid": a.client})
		if err != nil {
			return nil, fmt.Errorf("mint: %w", err)
		}
		e.tokens = append(e.tokens, tok)
	}
	for _, a := range agents {
		e.agents = append(e.agents, a.id)
	}
	if e.b50, err = startSelf("backend-50", "backend", "-tools", "50"); err != nil {
		return nil, err
	}
	if e.b1000, err = startSelf("backend-1000", "backend", "-tools", "1000"); err != nil {
		return nil, err
	}
	if o.huge > 0 {
		if e.huge, err = startSelf("backend-huge", "backend", "-tools", strconv.Itoa(o.huge)); err != nil {
			return nil, err
		}
	}
	if e.proxy, err = startSelf("proxy", "proxy", "-target", e.b50.url); err != nil {
		return nil, err
	}
	return e, e.startGateway(ctx, o)
}

func (e *env) startGateway(ctx context.Context, o options) error {
	listen, err := freeAddr()
	if err != nil {
		return err
	}
	if e.metrics, err = freeAddr(); err != nil {
		return err
	}
	policies, err := benchPolicies(o.policies, filepath.Join(e.dir, "policies"))
	if err != nil {
		return err
	}
	var routes []route
	for _, r := range []struct {
		name string
		c    *child
	}{{"b50", e.b50}, {argsReadBackend, e.b50}, {"b1000", e.b1000}, {"huge", e.huge}} {
		if r.c != nil {
			routes = append(routes, route{r.name, r.c.url})
		}
	}
	text := gatewayConfig(gatewaySetup{
		listen: listen, metrics: e.metrics, issuer: e.idp.Issuer(), policies: policies,
		routes: routes, extraBackends: o.extraBackends, b50URL: e.b50.url,
		resourceAS: e.ras.Issuer(), agentKeys: e.agentKeys,
	})
	cfg := filepath.Join(e.dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(o.gateway, "serve", "-config", cfg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start gateway: %w", err)
	}
	e.gw = watch("gateway", cmd, "http://"+listen)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + e.metrics + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-e.gw.exited:
			return errors.New("gateway exited during start-up (its log is above)")
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.New("gateway not ready after 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Let start-up garbage settle before the idle figure.
	time.Sleep(time.Second)
	e.idleRSS, err = rss(e.gw.pid())
	return err
}

// startResourceAS starts xaaBackend's resource authorization server, which
// trusts e.idp's ID-JAGs, and registers at e.idp every bench agent's client
// with a fresh key (the agents authenticate their exchanges with
// private_key_jwt, the only method Okta accepts for them), mapped to
// xaaResourceClient at the new server.
func (e *env) startResourceAS(ctx context.Context) error {
	var err error
	e.ras, err = testidp.Start(ctx, testidp.Options{TokenTTL: tokenTTL, ResourceAS: &testidp.ResourceASOptions{TrustedIssuer: e.idp.Issuer()}})
	if err != nil {
		return fmt.Errorf("start resource AS: %w", err)
	}
	if err := e.ras.RegisterClient(testidp.Client{ID: xaaResourceClient, Secret: xaaResourceSecret, Scopes: []string{xaaScope}}); err != nil {
		return fmt.Errorf("register the resource client: %w", err)
	}
	for _, a := range benchAgents {
		private, public, err := newAgentKey()
		if err != nil {
			return fmt.Errorf("key of %s: %w", a.id, err)
		}
		c := testidp.Client{ID: a.client, PublicKey: public, ResourceClientIDs: map[string]string{e.ras.Issuer(): xaaResourceClient}}
		if err := e.idp.RegisterClient(c); err != nil {
			return fmt.Errorf("register %s at the identity provider: %w", a.client, err)
		}
		e.agentKeys = append(e.agentKeys, private)
	}
	return nil
}

// newAgentKey makes a P-256 key: the private half as the JWK an agent's
// private_key holds, the public half for the identity provider.
func newAgentKey() (string, jwk.Key, error) {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", nil, fmt.Errorf("generate agent key: %w", err)
	}
	key, err := jwk.Import(raw)
	if err != nil {
		return "", nil, fmt.Errorf("agent key as JWK: %w", err)
	}
	// The kid names the key in the client assertions' header.
	if err := jwk.AssignKeyID(key); err != nil {
		return "", nil, fmt.Errorf("agent key id: %w", err)
	}
	private, err := json.Marshal(key)
	if err != nil {
		return "", nil, fmt.Errorf("encode agent key: %w", err)
	}
	public, err := jwk.PublicKeyOf(key)
	if err != nil {
		return "", nil, fmt.Errorf("agent public key: %w", err)
	}
	return string(private), public, nil
}

// route is a backend the gateway reaches with the pre-shared key.
type route struct{ name, url string }

// gatewaySetup is what the gateway's configuration names.
type gatewaySetup struct {
	listen, metrics, issuer, policies string
	routes                            []route
	// extraBackends more routes to b50URL are configured, never called.
	extraBackends int
	b50URL        string
	// resourceAS is xaaBackend's authorization server.
	resourceAS string
	// agentKeys[i] is benchAgents[i]'s private JWK.
	agentKeys []string
}

// gatewayConfig is the gateway's configuration file: the routes,
// xaaBackend and the extra backends, and benchAgents, each allowed them all.
func gatewayConfig(s gatewaySetup) string {
	var b strings.Builder
	fmt.Fprintf(&b, `server:
  listen: %q
  public_url: "http://%s"
  metrics_listen: %q
  metrics_pprof: true
identity:
  issuers:
    - issuer: %q
      audiences: ["api://mcpgw"]
policy:
  bundle: %q
  allow_unsigned: true
store:
  dsn: ":memory:"
log:
  level: warn
# The limiter stays on (its cost is measured) with budgets load cannot reach.
ratelimit:
  requests_per_minute: 1000000000
  sessions_per_minute: 1000000000
backends:
`, s.listen, s.listen, s.metrics, s.issuer, s.policies)
	var access []string
	for _, r := range s.routes {
		access = append(access, r.name)
		fmt.Fprintf(&b, "  %s:\n    url: %q\n    paths: [/%s]\n    auth_method: pre-shared-key\n    auth_config: {api_key: %q}\n", r.name, r.url, r.name, psk)
	}
	b.WriteString(xaaBackendConfig(s.b50URL, s.issuer, s.resourceAS))
	access = append(access, xaaBackend)
	for i := range s.extraBackends {
		fmt.Fprintf(&b, "  extra%d:\n    url: %q\n    paths: [/extra%d]\n    auth_method: pre-shared-key\n    auth_config: {api_key: %q}\n", i, s.b50URL, i, psk)
		access = append(access, fmt.Sprintf("extra%d", i))
	}
	b.WriteString("agents:\n")
	for i, a := range benchAgents {
		fmt.Fprintf(&b, "  %s:\n    agent_id: %s\n    client_id: %s\n    private_key: %q\n    scopes: [mcp:read, mcp:write]\n    backend_access: [%s]\n",
			a.id, a.id, a.client, s.agentKeys[i], strings.Join(access, ", "))
	}
	return b.String()
}

// xaaBackendConfig configures xaaBackend: the backend at b50URL, reached
// with the token that resourceAS issues for the resource b50URL in
// exchange for the ID-JAG that the identity provider idp issues for the
// caller's token.
func xaaBackendConfig(b50URL, idp, resourceAS string) string {
	return fmt.Sprintf(`  %s:
    url: %q
    paths: [/%s]
    auth_method: okta-cross-app
    auth_config:
      target_authorization_server: %q
      target_audience: %q
      target_client_id: %q
      target_client_secret: %q
      idp_token_endpoint: %q
      scopes: [%s]
`, xaaBackend, b50URL, xaaBackend, resourceAS, b50URL, xaaResourceClient, xaaResourceSecret, idp+testidp.PathToken, xaaScope)
}

func (e *env) close() {
	for _, c := range []*child{e.gw, e.proxy, e.huge, e.b1000, e.b50} {
		if c != nil {
			c.stop()
		}
	}
	if e.ras != nil {
		_ = e.ras.Close()
	}
	if e.idp != nil {
		_ = e.idp.Close()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

// argsReadBackend is a second route to the 50-tool backend whose echo
// tool's message the bench policies read (an argument rule, as the shipped
// data has for delete_* and paths), so a fresh message is a fresh
// evaluation there; on /b50 the decision never reads the arguments and the
// decision cache answers fresh ones too (internal/policy/argsprobe.go).
const argsReadBackend = "b50args"

// benchArgumentRule refuses a wildcard in echo's message on argsReadBackend:
// no message the load sends has one, so every call is allowed, after the
// policy has read the argument.
var benchArgumentRule = map[string]any{
	"name": "bench-reads-echo-message", "backends": []any{argsReadBackend}, "tools": []any{"echo"},
	"arguments": []any{"message"}, "wildcards": []any{"*"},
}

// benchPolicies copies the policy directory src to dst with the shipped
// per-caller tool budget (data.mcpgw.obligations.tool_budget, 600 calls an
// hour) raised out of the load's reach, as the rate limiter's budgets are:
// the obligation is still decided and counted on every call, so its cost is
// measured, but no call is refused for it. It adds benchArgumentRule.
func benchPolicies(src, dst string) (string, error) {
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		return "", fmt.Errorf("copy policies %s: %w", src, err)
	}
	path := filepath.Join(dst, "data.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read policy data: %w", err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		return "", fmt.Errorf("read policy data %s: %w", path, err)
	}
	mcpgw, _ := data["mcpgw"].(map[string]any)
	obligations, _ := mcpgw["obligations"].(map[string]any)
	budget, ok := obligations["tool_budget"].(map[string]any)
	if !ok {
		return "", fmt.Errorf("%s has no mcpgw.obligations.tool_budget to raise", path)
	}
	budget["limit"] = 1_000_000_000
	rules, _ := mcpgw["argument_rules"].(map[string]any)
	wildcards, ok := rules["wildcard_targets"].([]any)
	if !ok {
		return "", fmt.Errorf("%s has no mcpgw.argument_rules.wildcard_targets to add the benchmark's rule to", path)
	}
	rules["wildcard_targets"] = append(wildcards, benchArgumentRule)
	out, err := json.Marshal(data)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return "", fmt.Errorf("write policy data: %w", err)
	}
	return dst, nil
}
