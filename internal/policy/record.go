package policy

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"
)

// Record is what the engine reports about one policy evaluation. It names
// who asked and what was decided; it never holds a token, the token's raw
// claims or a tool's arguments, except in Input, which only
// Options.RecordInputs fills, masked by the policy's system.log.mask.
type Record struct {
	DecisionID string    `json:"decision_id"`
	Time       time.Time `json:"time"`
	// Query is the rule evaluated: "decision", "visible_tools",
	// "visible_resources", "visible_prompts" or "admin".
	Query   string `json:"query"`
	Subject string `json:"subject"`
	// Issuer is the token's iss: a subject names a user only within the
	// issuer that asserted it.
	Issuer  string `json:"issuer,omitempty"`
	Agent   string `json:"agent,omitempty"`
	Backend string `json:"backend,omitempty"`
	// Kind is the input's mcp.kind: request, notification, response,
	// stream or close ("" for admin queries and for inputs that predate
	// the field).
	Kind   string `json:"kind,omitempty"`
	Method string `json:"method,omitempty"`
	// Tool is the tool, prompt or resource a call names.
	Tool    string   `json:"tool,omitempty"`
	Allow   bool     `json:"allow"`
	Reasons []string `json:"reasons"`
	Status  int      `json:"status,omitempty"`
	// Listed and Visible count the catalog items of a visibility query.
	Listed   int           `json:"listed,omitempty"`
	Visible  int           `json:"visible,omitempty"`
	Revision string        `json:"revision"`
	Elapsed  time.Duration `json:"eval_ns"`
	// Latency and Outcome are the request's (its answer's time since the
	// request arrived, and telemetry's outcome label), filled by the
	// gateway when it records the decision after the relay; zero and ""
	// for records the engine sends itself.
	Latency time.Duration `json:"latency_ns,omitempty"`
	Outcome string        `json:"outcome,omitempty"`
	// Input is the call's policy input as OPA's decision log would show it
	// (masked by data.system.log.mask), for `mcpgw policy replay`: only
	// for Query "decision" and only with Options.RecordInputs. InputMasked
	// lists the JSON pointers (/input/...) the mask erased or replaced.
	Input       json.RawMessage `json:"input,omitempty"`
	InputMasked []string        `json:"input_masked,omitempty"`
}

// slogRecorder is the default DecisionLog: one JSON line per record when
// the logger has a JSON handler.
func slogRecorder(logger *slog.Logger) func(context.Context, Record) {
	return func(ctx context.Context, r Record) {
		attrs := []slog.Attr{
			slog.String("decision_id", r.DecisionID),
			slog.Time("decision_time", r.Time),
			slog.String("query", r.Query),
			slog.String("subject", r.Subject),
			slog.String("issuer", r.Issuer),
			slog.String("agent", r.Agent),
			slog.String("backend", r.Backend),
			slog.String("method", r.Method),
			slog.Bool("allow", r.Allow),
			slog.Any("reasons", r.Reasons),
			slog.String("revision", r.Revision),
			slog.Duration("eval", r.Elapsed),
		}
		if r.Kind != "" {
			attrs = append(attrs, slog.String("kind", r.Kind))
		}
		if r.Tool != "" {
			attrs = append(attrs, slog.String("tool", r.Tool))
		}
		if r.Status != 0 {
			attrs = append(attrs, slog.Int("status", r.Status))
		}
		if r.Listed != 0 {
			attrs = append(attrs, slog.Int("listed", r.Listed), slog.Int("visible", r.Visible))
		}
		logger.LogAttrs(ctx, slog.LevelInfo, "policy decision", attrs...)
	}
}
