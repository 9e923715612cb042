package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long a server gets to exit after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// outputTailBytes bounds what is kept of a long-running server's output: only
// the end is useful when a test fails, and server-everything logs every request.
const outputTailBytes = 64 << 10

// tailBuffer keeps the last outputTailBytes written to it; it is the stdout and
// stderr of a server that runs for the whole test.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - outputTailBytes; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// server is a peer process started for one test. It runs in its own process
// group so that stopping it also stops anything it spawned.
type server struct {
	name   string
	cmd    *exec.Cmd
	output *tailBuffer
	exited chan struct{} // closed once the process has been waited for
	err    error         // exit status; read only after exited is closed
}

// startServer starts cmd in a new process group and registers a cleanup that
// stops the group (SIGTERM, then SIGKILL) even when the test fails. name labels
// logs and errors; it is used instead of the command line, which may hold a token.
func startServer(t *testing.T, name string, cmd *exec.Cmd) *server {
	t.Helper()
	s := &server{name: name, cmd: cmd, output: &tailBuffer{}, exited: make(chan struct{})}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = s.output
	cmd.Stderr = s.output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("output of %s (last %d bytes at most):\n%s", name, outputTailBytes, s.output.String())
		}
	})
	return s
}

// stop signals the process group only while its leader is still running: once
// the leader has been reaped its id may belong to someone else.
func (s *server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.exited:
		return
	case <-time.After(stopGrace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-s.exited
}

// waitReady polls probe until it succeeds, the server exits or ctx ends.
func (s *server) waitReady(ctx context.Context, probe func(context.Context) error) error {
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	var last error
	for {
		if last = probe(ctx); last == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited before it was ready (%v); last probe: %w", s.name, s.err, last)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w; last probe: %w", s.name, ctx.Err(), last)
		case <-ticker.C:
		}
	}
}

// tcpProbe succeeds once something accepts connections on addr.
func tcpProbe(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

// httpOKProbe succeeds once GET url answers 200.
func httpOKProbe(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
		}
		return nil
	}
}

// commandResult is what a run-to-completion command left behind.
type commandResult struct {
	stdout, stderr []byte
	err            error // non-nil on a non-zero exit, a failed start or a timeout
}

// command prepares a run-to-completion command in its own process group. When
// ctx ends the whole group is killed, not only the leader that exec.CommandContext
// would kill, so a CLI that spawns a child (inspector-cli does) leaves nothing behind.
func command(ctx context.Context, dir string, env []string, program string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = stopGrace
	return cmd
}

// run runs cmd to completion and collects its output. name labels errors; it is
// used instead of the command line, which may hold a token.
func run(ctx context.Context, name string, cmd *exec.Cmd) commandResult {
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%s: %w (%w)", name, ctxErr, err)
		} else {
			err = fmt.Errorf("%s: %w", name, err)
		}
	}
	return commandResult{stdout: stdout.Bytes(), stderr: stderr.Bytes(), err: err}
}

// freeLoopbackPort asks the kernel for a free port on 127.0.0.1. Another process
// could take it before the peer binds it; the peer then fails to start loudly.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free loopback port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// peerEnv is the whole environment of a peer process: PATH and HOME and the
// given pairs, nothing inherited, so no credential of the machine running the
// tests reaches a peer (server-everything's get-env tool prints its environment)
// and no MCPGW_* variable silently changes the gateway's configuration.
func peerEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + t.TempDir()}
	return append(env, extra...)
}

// lookPath finds a program the tests need on PATH or fails the test naming it.
func lookPath(t *testing.T, program string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err != nil {
		t.Fatalf("%s is needed on PATH for the interop tests: %v", program, err)
	}
	return path
}

// exitCode is the exit status in err, or -1 when the process did not exit on its own.
func exitCode(err error) int {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode()
	}
	return -1
}
