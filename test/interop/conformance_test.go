package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// activeServerScenarios is the `--suite active` server suite of
// @modelcontextprotocol/conformance 0.1.16, which the Go SDK's conformance server
// v1.8.0 passes in full (40 checks). Bumping either peer means reviewing this list.
func activeServerScenarios() []string {
	return []string{
		"completion-complete",
		"dns-rebinding-protection",
		"elicitation-sep1034-defaults",
		"elicitation-sep1330-enums",
		"logging-set-level",
		"ping",
		"prompts-get-embedded-resource",
		"prompts-get-simple",
		"prompts-get-with-args",
		"prompts-get-with-image",
		"prompts-list",
		"resources-list",
		"resources-read-binary",
		"resources-read-text",
		"resources-subscribe",
		"resources-templates-read",
		"resources-unsubscribe",
		"server-initialize",
		"server-sse-multiple-streams",
		"tools-call-audio",
		"tools-call-elicitation",
		"tools-call-embedded-resource",
		"tools-call-error",
		"tools-call-image",
		"tools-call-mixed-content",
		"tools-call-sampling",
		"tools-call-simple-text",
		"tools-call-with-logging",
		"tools-call-with-progress",
		"tools-list",
	}
}

// activeSuiteChecks is the number of checks in activeServerScenarios.
const activeSuiteChecks = 40

// scenarioResult is one scenario's line of the runner's summary.
type scenarioResult struct {
	Passed, Failed int
}

// conformanceReport is the outcome of one runner invocation.
type conformanceReport struct {
	Summary   string // the closing line, "Total: N passed, M failed"
	Passed    int
	Failed    int
	Scenarios map[string]scenarioResult
}

// passing lists the scenarios with at least one check passed and none failed.
func (r conformanceReport) passing() []string {
	var names []string
	for name, res := range r.Scenarios {
		if res.Failed == 0 && res.Passed > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

var (
	scenarioLine = regexp.MustCompile(`^[✓✗] (\S+): (\d+) passed, (\d+) failed(?:, \d+ warnings?)?$`)
	totalLine    = regexp.MustCompile(`^Total: (\d+) passed, (\d+) failed(?:, \d+ warnings?)?$`)
)

// parseConformanceOutput reads the runner's SUMMARY block from its stdout. The
// summary, not the output directory, is authoritative: a scenario that throws
// is reported there but writes no checks.json.
func parseConformanceOutput(stdout string) (conformanceReport, error) {
	report := conformanceReport{Scenarios: map[string]scenarioResult{}}
	inSummary := false
	for line := range strings.Lines(stdout) {
		line = strings.TrimSpace(line)
		switch {
		case line == "=== SUMMARY ===":
			inSummary = true
		case !inSummary:
		case scenarioLine.MatchString(line):
			m := scenarioLine.FindStringSubmatch(line)
			if _, dup := report.Scenarios[m[1]]; dup {
				return report, fmt.Errorf("conformance summary: scenario %q listed twice", m[1])
			}
			passed, _ := strconv.Atoi(m[2])
			failed, _ := strconv.Atoi(m[3])
			report.Scenarios[m[1]] = scenarioResult{Passed: passed, Failed: failed}
		case totalLine.MatchString(line):
			m := totalLine.FindStringSubmatch(line)
			report.Summary = line
			report.Passed, _ = strconv.Atoi(m[1])
			report.Failed, _ = strconv.Atoi(m[2])
		}
	}
	if !inSummary || report.Summary == "" {
		return report, errors.New("conformance output has no SUMMARY block ending in a Total line")
	}
	var passed, failed int
	for _, res := range report.Scenarios {
		passed += res.Passed
		failed += res.Failed
	}
	if passed != report.Passed || failed != report.Failed {
		return report, fmt.Errorf("conformance summary: scenarios add up to %d passed, %d failed but %q", passed, failed, report.Summary)
	}
	return report, nil
}

// conformanceCheck is one entry of a scenario's checks.json.
type conformanceCheck struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Status       string          `json:"status"`
	ErrorMessage string          `json:"errorMessage"`
	Details      json.RawMessage `json:"details"`
}

// resultDirName is the runner's per-scenario directory: server-<scenario>-<ISO time with : and . as ->.
var resultDirName = regexp.MustCompile(`^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$`)

// failedChecks reads every FAILURE check from the runner's output directory,
// keyed by scenario, to explain a failing scenario in the test log.
func failedChecks(dir string) (map[string][]conformanceCheck, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read conformance output dir: %w", err)
	}
	failed := map[string][]conformanceCheck{}
	for _, entry := range entries {
		m := resultDirName.FindStringSubmatch(entry.Name())
		if !entry.IsDir() || m == nil {
			continue
		}
		path := filepath.Join(dir, entry.Name(), "checks.json")
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		var checks []conformanceCheck
		if err := json.Unmarshal(raw, &checks); err != nil {
			return nil, fmt.Errorf("decode %s: %w", path, err)
		}
		for _, check := range checks {
			if check.Status == "FAILURE" {
				failed[m[1]] = append(failed[m[1]], check)
			}
		}
	}
	return failed, nil
}

// runConformance runs the official conformance suite (server mode, active suite)
// against url with the pinned Node 22, logs and prints its closing line, and
// logs the details of every failed check.
func (p peers) runConformance(t *testing.T, label, url string) conformanceReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), conformanceRunTimeout)
	defer cancel()
	outDir := t.TempDir()
	cmd := command(ctx, t.TempDir(), peerEnv(t), p.node22, p.path(conformanceEntry),
		"server", "--url", url, "--suite", "active", "-o", outDir)
	res := run(ctx, "conformance runner ("+label+")", cmd)
	// The runner exits 1 whenever a check fails; its summary says which.
	report, err := parseConformanceOutput(string(res.stdout))
	if err != nil {
		t.Fatalf("conformance %s: %v (runner: %v)\nstdout:\n%s\nstderr:\n%s", label, err, res.err, res.stdout, res.stderr)
	}
	if res.err != nil && report.Failed == 0 {
		t.Fatalf("conformance %s: runner failed with no failed check: %v\nstderr:\n%s", label, res.err, res.stderr)
	}
	t.Logf("conformance %s: %s", label, report.Summary)
	fmt.Printf("conformance %s (%s): %s\n", label, url, report.Summary)

	if report.Failed > 0 {
		failed, err := failedChecks(outDir)
		if err != nil {
			t.Errorf("conformance %s: %v", label, err)
		}
		for _, scenario := range slices.Sorted(maps.Keys(failed)) {
			for _, check := range failed[scenario] {
				details := ""
				if len(check.Details) > 0 {
					details = "\n    details: " + string(check.Details)
				}
				t.Logf("conformance %s: %s / %s failed: %s%s", label, scenario, check.ID, check.ErrorMessage, details)
			}
		}
	}
	return report
}

func TestParseConformanceOutput(t *testing.T) {
	tests := []struct {
		name    string
		stdout  string
		want    conformanceReport
		wantErr string
	}{
		{
			name: "all pass",
			stdout: "Running active suite (2 scenarios) against http://127.0.0.1:1/mcp\n\n" +
				"=== Running scenario: ping ===\nResults saved to /tmp/x/server-ping-2026-01-01T00-00-00-000Z\n\n" +
				"=== SUMMARY ===\n✓ ping: 1 passed, 0 failed\n✓ dns-rebinding-protection: 2 passed, 0 failed\n\nTotal: 3 passed, 0 failed\n",
			want: conformanceReport{Summary: "Total: 3 passed, 0 failed", Passed: 3, Scenarios: map[string]scenarioResult{
				"ping": {Passed: 1}, "dns-rebinding-protection": {Passed: 2},
			}},
		},
		{
			name: "a failure",
			stdout: "=== SUMMARY ===\n✓ ping: 1 passed, 0 failed\n✗ dns-rebinding-protection: 1 passed, 1 failed\n\n" +
				"Total: 2 passed, 1 failed\n",
			want: conformanceReport{Summary: "Total: 2 passed, 1 failed", Passed: 2, Failed: 1, Scenarios: map[string]scenarioResult{
				"ping": {Passed: 1}, "dns-rebinding-protection": {Passed: 1, Failed: 1},
			}},
		},
		{
			name:    "scenario lines before the summary are ignored",
			stdout:  "✓ ping: 1 passed, 0 failed\n=== SUMMARY ===\n✓ ping: 1 passed, 0 failed\nTotal: 1 passed, 0 failed\n",
			want:    conformanceReport{Summary: "Total: 1 passed, 0 failed", Passed: 1, Scenarios: map[string]scenarioResult{"ping": {Passed: 1}}},
			wantErr: "",
		},
		{name: "no summary", stdout: "Failed to run scenario ping\n", wantErr: "no SUMMARY"},
		{name: "summary without total", stdout: "=== SUMMARY ===\n✓ ping: 1 passed, 0 failed\n", wantErr: "no SUMMARY"},
		{
			name:    "total disagrees with scenarios",
			stdout:  "=== SUMMARY ===\n✓ ping: 1 passed, 0 failed\nTotal: 40 passed, 0 failed\n",
			wantErr: "add up to 1 passed",
		},
		{
			name:    "duplicate scenario",
			stdout:  "=== SUMMARY ===\n✓ ping: 1 passed, 0 failed\n✓ ping: 1 passed, 0 failed\nTotal: 2 passed, 0 failed\n",
			wantErr: "listed twice",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConformanceOutput(tt.stdout)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Summary != tt.want.Summary || got.Passed != tt.want.Passed || got.Failed != tt.want.Failed ||
				len(got.Scenarios) != len(tt.want.Scenarios) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for name, res := range tt.want.Scenarios {
				if got.Scenarios[name] != res {
					t.Errorf("scenario %s = %+v, want %+v", name, got.Scenarios[name], res)
				}
			}
		})
	}
}

func TestFailedChecks(t *testing.T) {
	dir := t.TempDir()
	write := func(sub, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, sub, "checks.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("server-dns-rebinding-protection-2026-11-25T15-35-19-560Z",
		`[{"id":"localhost-host-rebinding-rejected","status":"FAILURE","errorMessage":"Expected HTTP 4xx","details":{"statusCode":200}},
		  {"id":"localhost-host-valid-accepted","status":"SUCCESS"}]`)
	write("server-ping-2026-11-25T15-35-18-660Z", `[{"id":"ping","status":"SUCCESS"}]`)
	if err := os.MkdirAll(filepath.Join(dir, "not-a-result-dir"), 0o755); err != nil {
		t.Fatal(err)
	}

	got, err := failedChecks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got["dns-rebinding-protection"]) != 1 ||
		got["dns-rebinding-protection"][0].ID != "localhost-host-rebinding-rejected" ||
		got["dns-rebinding-protection"][0].ErrorMessage != "Expected HTTP 4xx" {
		t.Fatalf("failedChecks = %+v", got)
	}

	write("server-ping-2026-11-25T15-35-18-661Z", `not json`)
	if _, err := failedChecks(dir); err == nil || !strings.Contains(err.Error(), "decode") {
		t.Fatalf("failedChecks on a corrupt checks.json: err = %v", err)
	}
}
