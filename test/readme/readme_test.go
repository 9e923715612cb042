// Package readme runs the README the way a newcomer would: every shell block
// marked runnable, in a fresh copy of the repository, then the demo and each
// command it prints. A README line that stops working fails the suite.
package readme

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runnableMarker precedes a fenced shell block that the test runs. Blocks
// run in README order in one directory, so a block may use what an earlier
// one made, as a reader following the README would.
const runnableMarker = "<!-- readme-test -->"

type block struct {
	line int // of the opening fence, for messages
	code string
}

func runnableBlocks(readme string) ([]block, error) {
	var blocks []block
	lines := strings.Split(readme, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != runnableMarker {
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```sh") {
			return nil, fmt.Errorf("README.md:%d: %s must be followed by a ```sh fence", i+1, runnableMarker)
		}
		start := i + 1
		var code []string
		closed := false
		for i = start + 1; i < len(lines); i++ {
			if strings.HasPrefix(lines[i], "```") {
				closed = true
				break
			}
			code = append(code, lines[i])
		}
		if !closed {
			return nil, fmt.Errorf("README.md:%d: shell block never closed", start+1)
		}
		blocks = append(blocks, block{line: start + 1, code: strings.Join(code, "\n")})
	}
	return blocks, nil
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "README.md")); err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return root
}

// freshCopy copies the files git would put in a clone (tracked and new,
// never ignored ones such as node_modules, bin or bundles) into a new
// repository with one commit, so `git describe` and `make` behave as in a
// clone while uncommitted work is still what gets tested.
func freshCopy(t *testing.T, root string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dir := t.TempDir()
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		info, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the work tree, not yet in the index
		}
		if err != nil {
			t.Fatal(err)
		}
		if !info.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q"},
		{"add", "-A"},
		{"-c", "user.name=readme-test", "-c", "user.email=readme-test@localhost", "commit", "-q", "-m", "fresh clone"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return dir
}

func bash(ctx context.Context, dir, script string, env []string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestReadmeRunnableBlocks(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := runnableBlocks(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) < 3 {
		t.Fatalf("README.md has %d blocks marked %s; the quick start, policy and bundle blocks should be", len(blocks), runnableMarker)
	}
	dir := freshCopy(t, root)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	for _, b := range blocks {
		out, err := bash(ctx, dir, b.code, nil)
		if err != nil {
			t.Fatalf("README.md:%d: %v\n--- block\n%s\n--- output\n%s", b.line, err, b.code, out)
		}
		t.Logf("README.md:%d ran:\n%s", b.line, out)
	}
}

func TestRunnableBlocksParse(t *testing.T) {
	tests := []struct {
		name    string
		readme  string
		want    []string
		wantErr string
	}{
		{name: "marked and unmarked", readme: "x\n```sh\nnot me\n```\n" + runnableMarker + "\n```sh\na\nb\n```\n", want: []string{"a\nb"}},
		{name: "marker without fence", readme: runnableMarker + "\ntext\n", wantErr: "must be followed"},
		{name: "unclosed", readme: runnableMarker + "\n```sh\na\n", wantErr: "never closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runnableBlocks(tt.readme)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d blocks, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i].code != tt.want[i] {
					t.Errorf("block %d = %q, want %q", i, got[i].code, tt.want[i])
				}
			}
		})
	}
}

// demoCommand is one command the demo prints under "Try:", with the comment
// above it.
type demoCommand struct {
	comment, script string
}

var exportLine = regexp.MustCompile(`^\s*export ([A-Z]+)=(\S+)$`)

// parseDemo reads the demo's banner: its exports and the commands to try.
func parseDemo(printed string) (env []string, cmds []demoCommand) {
	inTry := false
	var cur *demoCommand
	for _, line := range strings.Split(printed, "\n") {
		if m := exportLine.FindStringSubmatch(line); m != nil {
			env = append(env, m[1]+"="+m[2])
			continue
		}
		if strings.TrimSpace(line) == "Try:" {
			inTry = true
			continue
		}
		if !inTry {
			continue
		}
		text := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(text, "# "):
			cmds = append(cmds, demoCommand{comment: strings.TrimPrefix(text, "# ")})
			cur = &cmds[len(cmds)-1]
		case text == "":
			cur = nil
		case cur != nil:
			cur.script += text + "\n"
		}
	}
	return env, cmds
}

// demoExpectations say what each printed command must show; a command the
// demo prints without an entry here fails the test, so none goes untried.
var demoExpectations = []struct {
	comment          string
	want, wantAbsent []string
}{
	{comment: "alice lists employees tools", want: []string{`"get_employee"`, `"list_employees"`}, wantAbsent: []string{`"delete_employee"`, `"update_employee"`}},
	{comment: "bob tries to delete an employee", want: []string{`-32003`, `decision_id`}},
	{comment: "the MCP Inspector's CLI", want: []string{`"tools"`, `"echo"`}},
	{comment: "one endpoint for every backend", want: []string{`"employees__get_employee"`, `"notes__echo"`}, wantAbsent: []string{`"employees__delete_employee"`}},
	{comment: "tool integrity: the notes backend changes its echo tool", want: []string{`changed the echo tool's description`}},
	{comment: "carol lists notes tools in a session", want: []string{`"name":"add"`}, wantAbsent: []string{`"name":"echo"`}},
	{comment: "carol reviews the change", want: []string{`"changed":["description"]`, `trimmed of surrounding spaces`}},
	{comment: "carol approves it", want: []string{`"approved":[`, `"status":"approved"`}},
	{comment: "the gateway's authorization server", want: []string{`"registration_endpoint":"http://`, `"client_id_metadata_document_supported":true`}},
	{comment: "no token", want: []string{`resource_metadata="http://`}},
}

func TestDemoPrintedCommandsWork(t *testing.T) {
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "mcpgw")
	build := exec.Command("go", "build", "-o", bin, "./cmd/mcpgw")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	demo := exec.CommandContext(ctx, bin, "demo", "--listen", "127.0.0.1:0", "--policies", filepath.Join(root, "policies"))
	demo.Dir = t.TempDir()
	stdout, err := demo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	demo.Stderr = &logs
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = demo.Process.Signal(os.Interrupt)
		_ = demo.Wait()
	})

	// The banner ends with the last command; read until the "no token" line
	// and the blank line after it.
	var printed strings.Builder
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	sawLast := false
	for sc.Scan() {
		printed.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "www-authenticate") {
			sawLast = true
			break
		}
	}
	if !sawLast {
		t.Fatalf("demo banner ended early:\n%s\nlogs:\n%s", printed.String(), logs.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	env, cmds := parseDemo(printed.String())
	if len(env) != 3 {
		t.Fatalf("demo printed %d token exports, want 3:\n%s", len(env), printed.String())
	}
	seen := map[string]bool{}
	for _, c := range cmds {
		found := false
		for _, e := range demoExpectations {
			if !strings.HasPrefix(c.comment, e.comment) {
				continue
			}
			found, seen[e.comment] = true, true
			out, err := bash(ctx, t.TempDir(), c.script, env)
			if err != nil {
				t.Errorf("%q: %v\n--- command\n%s--- output\n%s", c.comment, err, c.script, out)
				continue
			}
			for _, w := range e.want {
				if !strings.Contains(out, w) {
					t.Errorf("%q: output lacks %s\n--- command\n%s--- output\n%s", c.comment, w, c.script, out)
				}
			}
			for _, w := range e.wantAbsent {
				if strings.Contains(out, w) {
					t.Errorf("%q: output shows %s\n--- output\n%s", c.comment, w, out)
				}
			}
		}
		if !found {
			t.Errorf("the demo prints %q, which this test does not try: add it to demoExpectations", c.comment)
		}
	}
	for _, e := range demoExpectations {
		if !seen[e.comment] {
			t.Errorf("the demo no longer prints %q", e.comment)
		}
	}
}
