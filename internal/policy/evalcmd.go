package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"
)

// Explain modes of `mcpgw policy eval --explain`.
const (
	ExplainNone  = ""
	ExplainRules = "rules" // the denial rules that fired, with their titles
	ExplainNotes = "notes" // trace() notes, as `opa eval --explain notes`
	ExplainFails = "fails" // failed expressions, as `opa eval --explain fails`
	ExplainFull  = "full"  // the whole trace, as `opa eval --explain full`
)

// ExplainModes lists the accepted --explain values.
func ExplainModes() []string { return []string{ExplainRules, ExplainNotes, ExplainFails, ExplainFull} }

// EvalOptions says what `mcpgw policy eval` evaluates.
type EvalOptions struct {
	// Source is a policy directory or a bundle file (default "policies").
	Source string
	// VerificationKey, if set, must verify a signed bundle; without it a
	// bundle's signature is not checked (this is a debugging tool).
	VerificationKey string
	KeyID           string
	// Explain is one of ExplainModes(), or ExplainNone.
	Explain string
}

// EvalResult is what `mcpgw policy eval` prints as JSON.
type EvalResult struct {
	Revision         string       `json:"revision"`
	Decision         EvalDecision `json:"decision"`
	VisibleTools     []string     `json:"visible_tools,omitempty"`
	VisibleResources []string     `json:"visible_resources,omitempty"`
	VisiblePrompts   []string     `json:"visible_prompts,omitempty"`
}

// EvalDecision is a Decision as `mcpgw policy eval` prints it: the
// evaluation time in whole microseconds under a key that names the unit,
// as the audit trail's eval_us does.
type EvalDecision struct {
	Decision
	ElapsedMicros int64 `json:"elapsed_us"`
}

// Evaluate evaluates the gateway policy over one input document, as the
// gateway would, and returns the result and, when one is asked for, the
// explanation as text (`mcpgw policy eval` prints both). It returns an
// error for a bad input or policy; a denial is a result, not an error.
func Evaluate(ctx context.Context, o EvalOptions, input io.Reader) (EvalResult, string, error) {
	if o.Explain != ExplainNone && !slices.Contains(ExplainModes(), o.Explain) {
		return EvalResult{}, "", fmt.Errorf("--explain %q: want one of %s", o.Explain, strings.Join(ExplainModes(), ", "))
	}
	in, err := decodeInput(input)
	if err != nil {
		return EvalResult{}, "", err
	}
	e, err := New(ctx, Options{
		Source:          o.Source,
		AllowUnsigned:   o.VerificationKey == "",
		VerificationKey: o.VerificationKey,
		KeyID:           o.KeyID,
		Logger:          slog.New(slog.DiscardHandler),
		DecisionLog:     func(context.Context, Record) {},
		// A person is waiting, not an agent: allow a slow policy to finish.
		Timeout:     defaultCLITimeout,
		ListTimeout: defaultCLITimeout,
	})
	if err != nil {
		return EvalResult{}, "", err
	}
	defer e.Stop(context.WithoutCancel(ctx))
	if err := e.Ready(); err != nil {
		return EvalResult{}, "", err
	}

	d := e.Decide(ctx, in)
	res := EvalResult{Revision: e.Revision(), Decision: EvalDecision{Decision: d, ElapsedMicros: d.Elapsed.Microseconds()}}
	lists := []struct {
		kind ListKind
		n    int
		out  *[]string
	}{
		{ListTools, len(in.Tools), &res.VisibleTools},
		{ListResources, len(in.Resources), &res.VisibleResources},
		{ListPrompts, len(in.Prompts), &res.VisiblePrompts},
	}
	for _, l := range lists {
		if l.n == 0 {
			continue
		}
		names, err := e.Visible(ctx, in, l.kind)
		if err != nil {
			return EvalResult{}, "", err
		}
		*l.out = sortedNames(names)
		if *l.out == nil {
			*l.out = []string{}
		}
	}

	if o.Explain == ExplainNone {
		return res, "", nil
	}
	text, err := e.explain(ctx, in, o.Explain)
	if err != nil {
		return EvalResult{}, "", err
	}
	return res, text, nil
}

const defaultCLITimeout = 10 * DefaultListTimeout

// decodeInput reads one input document strictly: an unknown field is most
// likely a typo that would otherwise silently read as absent.
func decodeInput(r io.Reader) (*Input, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var in Input
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("policy input: %w", err)
	}
	if dec.More() {
		return nil, errors.New("policy input: more than one JSON document")
	}
	return &in, nil
}

// explain evaluates the decision again with OPA's tracer and renders it.
func (e *Engine) explain(ctx context.Context, in *Input, mode string) (string, error) {
	snap := e.snap.Load()
	if snap == nil {
		return "", errNoPolicy
	}
	input, err := callInput(in)
	if err != nil {
		return "", err
	}
	tracer := topdown.NewBufferTracer()
	_, err = rego.New(
		rego.Query(decisionRule),
		rego.Compiler(snap.compiler),
		rego.Store(e.store),
		rego.ParsedInput(input),
		rego.QueryTracer(tracer),
	).Eval(ctx)
	if err != nil {
		return "", fmt.Errorf("explain: %w", err)
	}
	trace := *tracer

	var out bytes.Buffer
	switch mode {
	case ExplainRules:
		out.WriteString("\nDenial rules that fired:\n")
		fired := firedDenials(trace)
		if len(fired) == 0 {
			out.WriteString("  none: every check passed\n")
		}
		for _, f := range fired {
			fmt.Fprintf(&out, "  %s  %s\n      %s\n", f.location, f.title, f.reason)
		}
		if notes := lineage.Notes(trace); len(notes) > 0 {
			out.WriteString("\nNotes:\n")
			topdown.PrettyTraceWithLocation(&out, notes)
		}
	case ExplainNotes:
		out.WriteString("\nNotes:\n")
		topdown.PrettyTraceWithLocation(&out, lineage.Notes(trace))
	case ExplainFails:
		out.WriteString("\nFailed expressions:\n")
		topdown.PrettyTraceWithLocation(&out, lineage.Fails(trace))
	case ExplainFull:
		out.WriteString("\nFull trace:\n")
		topdown.PrettyTraceWithLocation(&out, lineage.Full(trace))
	}
	return out.String(), nil
}

type firedRule struct {
	location, title, reason string
}

// firedDenials finds the caller_denials and message_denials definitions
// that produced a denial, from the rule exits in the trace.
func firedDenials(trace []*topdown.Event) []firedRule {
	var out []firedRule
	seen := map[string]bool{}
	for _, ev := range trace {
		rule, ok := ev.Node.(*ast.Rule)
		if ev.Op != topdown.ExitOp || !ok || rule.Head.Key == nil {
			continue
		}
		name := rule.Head.Name.String()
		if len(rule.Head.Reference) > 0 {
			name = rule.Head.Reference[len(rule.Head.Reference)-1].String()
		}
		if name != "caller_denials" && name != "message_denials" {
			continue
		}
		key := ev.Plug(rule.Head.Key)
		if v, ok := key.Value.(ast.Var); ok && ev.Locals != nil {
			// The compiler moves the head's value into a local variable.
			if bound := ev.Locals.Get(v); bound != nil {
				key = ast.NewTerm(bound)
			}
		}
		reason := denialReason(key)
		f := firedRule{location: rule.Location.String(), title: ruleTitle(rule), reason: reason}
		if id := f.location + "\x00" + reason; !seen[id] {
			seen[id] = true
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b firedRule) int { return strings.Compare(a.reason, b.reason) })
	return out
}

func denialReason(t *ast.Term) string {
	if obj, ok := t.Value.(ast.Object); ok {
		if r := obj.Get(ast.InternedTerm("reason")); r != nil {
			if s, ok := r.Value.(ast.String); ok {
				return string(s)
			}
		}
	}
	return t.String()
}

func ruleTitle(rule *ast.Rule) string {
	for _, a := range rule.Annotations {
		if a.Title != "" {
			return a.Title
		}
	}
	return "(untitled rule " + rule.Head.Ref().String() + ")"
}
