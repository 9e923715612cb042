package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The conformance suite's authorization server checks exist only in the
// 0.2.0 alpha line (`conformance authorization`, two scenarios:
// authorization-server-metadata-endpoint and authorization-code-grant);
// 0.1.16, which the MCP server tests pin, has auth scenarios for clients
// only. package.json installs the alpha under an alias beside 0.1.16.
const (
	conformanceAuthorizationEntry = "node_modules/conformance-authorization/dist/index.js"
	approveLoginScript            = "oauth/approve-login.mjs"
)

// authorizationScenarios are every scenario `conformance authorization`
// 0.2.0-alpha.12 runs when none is named; the gateway passes them all.
var authorizationScenarios = []string{"authorization-server-metadata-endpoint", "authorization-code-grant"}

// approveLogin is what oauth/approve-login.mjs prints.
type approveLogin struct {
	ConsentShown bool   `json:"consentShown"`
	LoginError   string `json:"loginError"`
	Redirect     struct {
		Code  bool   `json:"code"`
		State string `json:"state"`
		Iss   string `json:"iss"`
		Error string `json:"error"`
	} `json:"redirect"`
	Fatal *struct {
		Message string `json:"message"`
		PageURL string `json:"pageURL"`
	} `json:"fatal"`
}

// TestOAuthConformanceAuthorizationServer runs the official conformance
// suite's authorization server scenarios against the gateway: its metadata,
// then a whole authorization code grant with PKCE and an RFC 8707 resource
// for a public client the test registered, in which the runner prints the
// authorization URL and waits on its own loopback callback while alice
// approves and logs in through Chromium.
func TestOAuthConformanceAuthorizationServer(t *testing.T) {
	p := findPeers(t)
	entry := p.path(conformanceAuthorizationEntry)
	if _, err := os.Stat(entry); err != nil {
		t.Fatalf("the conformance alpha is not installed (run `npm ci` in %s): %v", p.dir, err)
	}
	w := startOAuthWorld(t, oauthWorldOptions{})
	port := freeLoopbackPort(t)
	redirectURI := "http://127.0.0.1:" + strconv.Itoa(port) + "/callback"
	clientID := registerPublicClient(t, w.url, oauthClientPrefix+" conformance runner", redirectURI)

	ctx, cancel := context.WithTimeout(t.Context(), conformanceRunTimeout+oauthBrowserRun)
	defer cancel()
	outDir := t.TempDir()
	cmd := command(ctx, t.TempDir(), peerEnv(t), p.node22, entry, "authorization", "--url", w.url,
		"--client-id", clientID, "--resource", w.url+"/"+oauthBackend, "--port", strconv.Itoa(port), "--output-dir", outDir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the conformance runner: %v", err)
	}
	// The runner prints the authorization URL, then waits for its callback.
	var (
		mu     sync.Mutex
		stdout strings.Builder
	)
	authorizeURL := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		scanner := bufio.NewScanner(pipe)
		scanner.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for scanner.Scan() {
			line := scanner.Text()
			mu.Lock()
			stdout.WriteString(line + "\n")
			mu.Unlock()
			if strings.HasPrefix(line, w.url+"/oauth2/authorize?") {
				select {
				case authorizeURL <- line:
				default:
				}
			}
		}
	}()
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return stdout.String()
	}

	var login approveLogin
	select {
	case u := <-authorizeURL:
		runBrowserScript(t, p, approveLoginScript, &login, "--url", u, "--redirect-prefix", redirectURI,
			"--username", oauthUser, "--password", oauthPassword)
	case <-readDone:
		t.Errorf("the runner printed no authorization URL")
	case <-ctx.Done():
		t.Errorf("no authorization URL from the runner: %v", ctx.Err())
	}
	select {
	case <-readDone:
	case <-ctx.Done():
	}
	runErr := cmd.Wait()
	out := output()
	t.Logf("conformance authorization (0.2.0-alpha.12) output:\n%s", out)
	if login.Fatal != nil {
		t.Errorf("the browser did not get through: %s (at %s)", login.Fatal.Message, login.Fatal.PageURL)
	}
	if !login.ConsentShown || login.LoginError != "" || !login.Redirect.Code || login.Redirect.Iss != w.url {
		t.Errorf("browser: %+v, want the consent page, a login and a code with iss %s for the runner", login, w.url)
	}

	report, err := parseConformanceOutput(out)
	if err != nil {
		t.Fatalf("%v (runner: %v)\nstderr:\n%s", err, runErr, stderr.String())
	}
	for _, c := range authorizationChecks(t, outDir) {
		t.Logf("check %s: %s %s", c.ID, c.Status, c.ErrorMessage)
		if c.Status != "SUCCESS" {
			// The only WARNING the suite has here is client_id_metadata_document_supported
			// missing, which the gateway advertises: anything but SUCCESS is a finding.
			t.Errorf("check %s: %s: %s", c.ID, c.Status, c.ErrorMessage)
		}
	}
	for _, name := range authorizationScenarios {
		res, ok := report.Scenarios[name]
		if !ok || res.Failed != 0 || res.Passed == 0 {
			t.Errorf("scenario %s: %+v (present %v), want passed", name, res, ok)
		}
	}
	if len(report.Scenarios) != len(authorizationScenarios) {
		t.Errorf("the runner ran %d scenarios, want %v: a new runner version needs this list reviewed", len(report.Scenarios), authorizationScenarios)
	}
	if runErr != nil || report.Failed != 0 {
		t.Errorf("runner: %v, %s\nstderr:\n%s", runErr, report.Summary, stderr.String())
	}
}

// authorizationChecks reads every checks.json the runner wrote below dir.
func authorizationChecks(t *testing.T, dir string) []conformanceCheck {
	t.Helper()
	var all []conformanceCheck
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "checks.json" {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var checks []conformanceCheck
		if err := json.Unmarshal(raw, &checks); err != nil {
			return err
		}
		all = append(all, checks...)
		return nil
	})
	if err != nil {
		t.Errorf("read the runner's checks: %v", err)
	}
	return all
}
