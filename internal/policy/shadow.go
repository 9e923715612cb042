package policy

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// Defaults for the shadow policy's queue.
const (
	DefaultShadowQueue   = 1024
	DefaultShadowWorkers = 1
)

// ShadowDisagreement is a call on which the shadow policy decided otherwise
// than the enforced one: a different allow, or a different HTTP status for a
// denial. Reasons alone differing is not a disagreement.
type ShadowDisagreement struct {
	// DecisionID is the enforced decision's id, as in its decision record.
	DecisionID string
	Subject    string
	Issuer     string
	Agent      string
	Backend    string
	// Kind is the input's mcp.kind (request, notification, response,
	// stream or close; "" for an input that predates it).
	Kind   string
	Method string
	Tool   string
	// Enforced is what the active policy decided (and the gateway did);
	// Shadow is what the shadow policy would have decided.
	Enforced Decision
	Shadow   Decision
}

// ShadowStats counts the shadow policy's work since start.
type ShadowStats struct {
	// Evaluated calls were decided by both policies; Disagreements of them
	// differed.
	Evaluated     uint64 `json:"evaluated"`
	Disagreements uint64 `json:"disagreements"`
	// Dropped calls found the queue full; Skipped ones found the shadow
	// policy not ready (nothing activated yet).
	Dropped uint64 `json:"dropped"`
	Skipped uint64 `json:"skipped"`
}

// shadowRunner evaluates every decision again with the shadow policy, on
// its own workers behind a bounded queue, so that the shadow never delays or
// changes a response: when the queue is full the call is dropped and counted.
type shadowRunner struct {
	engine   *Engine
	logger   *slog.Logger
	disagree func(context.Context, ShadowDisagreement)
	queue    chan shadowJob
	stop     context.CancelFunc
	workers  sync.WaitGroup

	evaluated, disagreements, dropped, skipped atomic.Uint64
}

type shadowJob struct {
	in       Input
	enforced Decision
}

func startShadow(shadow *Engine, o Options, logger *slog.Logger) *shadowRunner {
	size := o.ShadowQueue
	if size <= 0 {
		size = DefaultShadowQueue
	}
	workers := o.ShadowWorkers
	if workers <= 0 {
		workers = DefaultShadowWorkers
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &shadowRunner{
		engine: shadow, logger: logger, disagree: o.OnShadowDisagreement,
		queue: make(chan shadowJob, size), stop: stop,
	}
	for range workers {
		s.workers.Go(func() { s.work(ctx) })
	}
	return s
}

// submit queues one enforced decision for the shadow. It never blocks.
func (s *shadowRunner) submit(in *Input, enforced Decision) {
	select {
	case s.queue <- shadowJob{in: detach(in), enforced: enforced}:
	default:
		s.dropped.Add(1)
	}
}

// detach copies the strings of an input that a caller may have borrowed
// from a request buffer reused after Decide returns (fasthttp's are). The
// maps and slices are shared: callers do not modify an input after Decide.
func detach(in *Input) Input {
	out := *in
	out.HTTP = HTTPInput{
		Method:     strings.Clone(in.HTTP.Method),
		Path:       strings.Clone(in.HTTP.Path),
		RemoteAddr: strings.Clone(in.HTTP.RemoteAddr),
	}
	out.MCP.Kind = strings.Clone(in.MCP.Kind)
	out.MCP.Method = strings.Clone(in.MCP.Method)
	out.MCP.Tool = strings.Clone(in.MCP.Tool)
	out.MCP.ProtocolVersion = strings.Clone(in.MCP.ProtocolVersion)
	return out
}

func (s *shadowRunner) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-s.queue:
			s.compare(ctx, job)
		}
	}
}

func (s *shadowRunner) compare(ctx context.Context, job shadowJob) {
	if s.engine.Ready() != nil {
		s.skipped.Add(1)
		return
	}
	shadow := s.engine.Decide(ctx, &job.in)
	if ctx.Err() != nil {
		// Stopping: a cancelled evaluation is not a decision.
		return
	}
	s.evaluated.Add(1)
	if shadow.Allow == job.enforced.Allow && shadow.Status == job.enforced.Status {
		return
	}
	s.disagreements.Add(1)
	d := ShadowDisagreement{
		DecisionID: job.enforced.ID,
		Subject:    job.in.Token.Sub, Issuer: job.in.Token.Iss, Agent: job.in.Agent.ID, Backend: job.in.Backend.Name,
		Kind: job.in.MCP.Kind, Method: job.in.MCP.Method, Tool: job.in.MCP.Tool,
		Enforced: job.enforced, Shadow: shadow,
	}
	s.logger.LogAttrs(ctx, slog.LevelWarn, "policy shadow disagreement",
		slog.String("decision_id", d.DecisionID),
		slog.String("subject", d.Subject), slog.String("agent", d.Agent),
		slog.String("backend", d.Backend), slog.String("kind", d.Kind), slog.String("method", d.Method), slog.String("tool", d.Tool),
		slog.Group("enforced", slog.String("revision", d.Enforced.Revision), slog.Bool("allow", d.Enforced.Allow),
			slog.Int("status", d.Enforced.Status), slog.Any("reasons", d.Enforced.Reasons)),
		slog.Group("shadow", slog.String("revision", d.Shadow.Revision), slog.Bool("allow", d.Shadow.Allow),
			slog.Int("status", d.Shadow.Status), slog.Any("reasons", d.Shadow.Reasons)),
	)
	if s.disagree != nil {
		s.disagree(ctx, d)
	}
}

func (s *shadowRunner) stats() ShadowStats {
	return ShadowStats{
		Evaluated:     s.evaluated.Load(),
		Disagreements: s.disagreements.Load(),
		Dropped:       s.dropped.Load(),
		Skipped:       s.skipped.Load(),
	}
}

// close stops the workers (a comparison in progress finishes: it is bounded
// by the shadow's timeout) and then the shadow engine.
func (s *shadowRunner) close(ctx context.Context) {
	s.stop()
	s.workers.Wait()
	s.engine.Stop(ctx)
}

// ShadowStats reports the shadow policy's counters; zero without a shadow.
func (e *Engine) ShadowStats() ShadowStats {
	if e == nil || e.shadow == nil {
		return ShadowStats{}
	}
	return e.shadow.stats()
}

// newShadow starts the shadow policy: an engine of its own over o.Shadow,
// verified with the same keys, persisting apart from the enforced policy,
// whose decisions reach no decision log.
func newShadow(ctx context.Context, o Options, logger *slog.Logger) (*shadowRunner, error) {
	var opaConfig map[string]any
	if k, ok := o.OPAConfig["keys"]; ok {
		opaConfig = map[string]any{"keys": k}
	}
	logger = logger.With("policy", "shadow")
	engine, err := New(ctx, Options{
		Source:          o.Shadow,
		AllowUnsigned:   o.AllowUnsigned,
		VerificationKey: o.VerificationKey,
		VerificationAlg: o.VerificationAlg,
		KeyID:           o.KeyID,
		Timeout:         o.Timeout,
		ListTimeout:     o.ListTimeout,
		OPAConfig:       opaConfig,
		Logger:          logger,
		DecisionLog:     func(context.Context, Record) {},
		// The shadow answers no visibility query.
		VisibleCacheSize: 1 << 20,
		PollInterval:     o.PollInterval,
		PersistDir:       filepath.Join(cmp.Or(o.PersistDir, DefaultPersistDir), "shadow"),
		StartupWait:      o.StartupWait,
		BundleLimits:     o.BundleLimits,
	})
	if err != nil {
		return nil, fmt.Errorf("policy.shadow: %w", err)
	}
	return startShadow(engine, o, logger), nil
}
