package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Decisions: one evaluation of data.mcp.gateway.decision per message (or
// of data.mcp.admin.allow per admin call), within its time budget, and
// the record of each.

// Decide evaluates data.mcp.gateway.decision for one request to a backend
// (in.MCP.Kind says which: a JSON-RPC message, a GET stream, a DELETE).
// Every failure is a deny whose reason starts with "policy engine error".
func (e *Engine) Decide(ctx context.Context, in *Input) Decision {
	start := time.Now()
	d := Decision{ID: uuid.NewString()}
	if in == nil {
		d.Reasons = []string{"policy engine error: no input"}
		d.Elapsed = time.Since(start)
		e.emit(ctx, "decision", &Input{}, d, 0, 0)
		return d
	}
	dec, snap, err := e.evalCall(ctx, in)
	if snap != nil {
		d.Revision = snap.revision
	}
	applyDecided(&d, dec, err)
	v := dec.value
	d.Elapsed = time.Since(start)
	if e != nil && e.record != nil {
		rec := e.newRecord("decision", in, d, 0, 0)
		if e.opts.RecordInputs {
			rec.Input, rec.InputMasked = e.recordedInput(ctx, in, v, d)
		}
		if e.opts.CallerRecordsDecisions {
			d.Record = &rec
		} else {
			e.record(ctx, rec)
		}
	}
	e.afterDecide(ctx, in, v, d)
	return d
}

// evalCall returns the decision of in, read (readDecided), from the cache
// or evaluated.
func (e *Engine) evalCall(ctx context.Context, in *Input) (decided, *snapshot, error) {
	cached, look, ok := e.cachedDecision(in)
	if ok {
		return cached, look.snap, nil
	}
	var input ast.Value
	var caller map[string]any
	var reads *argumentReads
	var err error
	if look.snap != nil && look.snap.decisions.probe {
		input, caller, reads, err = probedCallInput(in)
	} else {
		// Nothing will be remembered, or remembered under every argument:
		// no need to know which were read.
		input, caller, err = plainCallInput(in)
	}
	if err != nil {
		return decided{}, nil, err
	}
	rs, snap, err := e.evalDecision(ctx, look, input, caller)
	if reads != nil && snap != look.snap {
		// A new policy became active between the lookup and the
		// evaluation. Probes are sound only for a policy that calls no
		// goFormBuiltin, and nothing will be remembered: decide again over
		// the plain input.
		if input, err = callInput(in); err != nil {
			return decided{}, nil, err
		}
		rs, snap, err = e.evaluate(ctx, func(s *snapshot) preparedQuery { return s.decision }, input)
	}
	if err != nil {
		return decided{}, snap, err
	}
	v, err := resultValue(rs)
	if errors.Is(err, errUndefined) {
		return decided{}, snap, errors.New(decisionRule + " is undefined")
	}
	if err != nil {
		return decided{}, snap, err
	}
	dec := readDecided(v, e.compiledPatterns())
	snap.rememberDecision(look, in, dec, reads)
	return dec, snap, nil
}

// DecideAdmin evaluates data.mcp.admin.allow for one admin API call. A
// denial carries status 403.
func (e *Engine) DecideAdmin(ctx context.Context, in *AdminInput) Decision {
	start := time.Now()
	d := Decision{ID: uuid.NewString(), Status: 403, Reasons: []string{}}
	err := errors.New("no input")
	var snap *snapshot
	if in != nil {
		var input ast.Value
		if input, err = adminInput(in); err == nil {
			var rs rego.ResultSet
			rs, snap, err = e.evaluate(ctx, func(s *snapshot) preparedQuery { return s.admin }, input)
			if err == nil {
				err = parseAdmin(rs, &d)
			}
		}
	}
	if snap != nil {
		d.Revision = snap.revision
	}
	if err != nil {
		d.Allow, d.Status = false, 403
		d.Reasons = []string{"policy engine error: " + err.Error()}
	}
	if d.Allow {
		d.Status = 0
	}
	d.Elapsed = time.Since(start)
	rec := &Input{}
	if in != nil {
		rec = &Input{Token: TokenInput{Sub: in.Token.Sub, Iss: in.Token.Iss}, HTTP: in.HTTP, MCP: MCPInput{Method: in.Admin.Action, Tool: adminTarget(in.Admin)}}
	}
	e.emit(ctx, "admin", rec, d, 0, 0)
	return d
}

func parseAdmin(rs rego.ResultSet, d *Decision) error {
	if len(rs) != 1 {
		return errors.New(adminRule + " is undefined")
	}
	allow, ok := rs[0].Bindings["allow"].(ast.Value)
	if !ok {
		return errors.New(adminRule + " is undefined")
	}
	b, ok := allow.(ast.Boolean)
	if !ok {
		return fmt.Errorf("malformed %s: %s, not a boolean", adminRule, ast.ValueName(allow))
	}
	d.Allow = bool(b)
	if r, ok := rs[0].Bindings["reasons"].(ast.Value); ok {
		reasons, err := stringList(r)
		if err != nil {
			return fmt.Errorf("malformed data.mcp.admin.reasons: %w", err)
		}
		slices.Sort(reasons)
		d.Reasons = reasons
	}
	return nil
}

func adminTarget(a AdminRequest) string {
	if a.Name == "" {
		return a.Kind
	}
	return a.Kind + "/" + a.Name
}

// usable reports why the engine cannot evaluate at all.
func (e *Engine) usable() error {
	switch {
	case e == nil:
		return errNotStarted
	case e.stopped.Load():
		return errStopped
	}
	return nil
}

// evaluate runs one prepared query under the engine's timeout. It opens the
// read transaction before it loads the snapshot, so the query and the data
// it reads belong to the same activation (activate runs inside the commit).
func (e *Engine) evaluate(ctx context.Context, pick func(*snapshot) preparedQuery, input ast.Value) (rego.ResultSet, *snapshot, error) {
	if err := e.usable(); err != nil {
		return nil, nil, err
	}
	return e.evaluateWithin(ctx, e.timeout, pick, input)
}

// evaluateWithin runs one prepared query. The timeout starts when the
// evaluation does, after the transaction is open (which may wait for a
// commit) and the snapshot loaded, and it counts the evaluation's own CPU
// time, not its waits (see evalclock.go).
func (e *Engine) evaluateWithin(ctx context.Context, timeout time.Duration, pick func(*snapshot) preparedQuery, input ast.Value) (rego.ResultSet, *snapshot, error) {
	return e.evaluateOver(ctx, timeout, func(s *snapshot) (preparedQuery, ast.Value) { return pick(s), input })
}

// evaluateOver is evaluateWithin with the input chosen with the query, by
// the snapshot that evaluates (the caller memo's queries take their own).
func (e *Engine) evaluateOver(ctx context.Context, timeout time.Duration, pick func(*snapshot) (preparedQuery, ast.Value)) (rs rego.ResultSet, snap *snapshot, err error) {
	// OPA does not promise never to panic; a gateway must not crash, and a
	// panic is one more failure that denies.
	defer func() {
		if r := recover(); r != nil {
			rs, err = nil, fmt.Errorf("evaluation panicked: %v", r)
		}
	}()
	if err := e.usable(); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("evaluation cancelled: %w", err)
	}
	txn, err := e.store.NewTransaction(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("open policy store: %w", err)
	}
	defer e.store.Abort(ctx, txn)
	snap = e.snap.Load()
	if snap == nil || snap.revision == "" {
		return nil, nil, errNoBundle
	}
	if snap.broken != nil {
		return nil, snap, snap.broken
	}

	// One cancel for both the deadline and the caller's context, without
	// the goroutine rego would otherwise start per evaluation.
	query, input := pick(snap)
	var timedOut string
	func() {
		clock := startClock(timeout, query.wall)
		// Stopped even if OPA panics: the clock holds the thread.
		defer func() { timedOut = clock.stop() }()
		defer context.AfterFunc(ctx, clock.Cancel)()
		rs, err = query.Eval(ctx,
			rego.EvalParsedInput(input),
			rego.EvalTransaction(txn),
			rego.EvalExternalCancel(clock),
			rego.EvalMetrics(metrics.NoOp()),
			rego.EvalInterQueryBuiltinCache(e.iqCache),
			rego.EvalInterQueryBuiltinValueCache(e.iqvCache),
			rego.EvalGenerateJSON(astValues),
		)
	}()
	if err != nil {
		switch {
		case ctx.Err() != nil:
			err = fmt.Errorf("evaluation cancelled: %w", ctx.Err())
		case timedOut != "":
			err = errors.New(timedOut)
		default:
			err = fmt.Errorf("evaluation failed: %w", err)
		}
	}
	return rs, snap, err
}

// Record sends a decision's record, completed by the caller, to the
// decision log (Options.CallerRecordsDecisions).
func (e *Engine) Record(ctx context.Context, r Record) {
	if e != nil && e.record != nil {
		e.record(ctx, r)
	}
}

// emit sends the record of one evaluation to the decision log.
func (e *Engine) emit(ctx context.Context, query string, in *Input, d Decision, listed, visible int) {
	if e == nil || e.record == nil {
		return
	}
	e.record(ctx, e.newRecord(query, in, d, listed, visible))
}

// newRecord is the decision log's record of one evaluation.
func (e *Engine) newRecord(query string, in *Input, d Decision, listed, visible int) Record {
	return Record{
		DecisionID: d.ID,
		Time:       time.Now().UTC(),
		Query:      query,
		Subject:    in.Token.Sub,
		Issuer:     in.Token.Iss,
		Agent:      in.Agent.ID,
		Backend:    in.Backend.Name,
		Kind:       in.MCP.Kind,
		Method:     in.MCP.Method,
		Tool:       in.MCP.Tool,
		Allow:      d.Allow,
		Reasons:    d.Reasons,
		Status:     d.Status,
		Listed:     listed,
		Visible:    visible,
		Revision:   d.Revision,
		Elapsed:    d.Elapsed,
	}
}

// decided is a decision rule's value and what it says, read once: a
// remembered decision is not read again at every call.
type decided struct {
	value ast.Value
	vd    verdict
	// malformed is why value is not a well-formed decision.
	malformed error
}

func readDecided(v ast.Value, pc *patternCache) decided {
	vd, err := parseVerdict(v, pc)
	if err != nil {
		return decided{value: v, malformed: fmt.Errorf("malformed decision: %w", err)}
	}
	return decided{value: v, vd: vd}
}

// applyVerdict fills d from the decision rule's value v, or from err.
func applyVerdict(d *Decision, v ast.Value, err error, pc *patternCache) {
	var dec decided
	if err == nil {
		dec = readDecided(v, pc)
	}
	applyDecided(d, dec, err)
}

// applyDecided fills d from dec, or from err: every failure (evaluation, a
// malformed value) is a deny whose reason starts with "policy engine
// error", and a deny always says why. d gets its own reasons slice; the
// obligations are shared with every decision dec answers and read only.
func applyDecided(d *Decision, dec decided, err error) {
	if err == nil {
		err = dec.malformed
	}
	if err == nil {
		vd := dec.vd
		d.Allow, d.Reasons, d.Status, d.Scope, d.Obligations = vd.allow, slices.Clone(vd.reasons), vd.status, vd.scope, vd.obligations
		if !d.Allow && len(d.Reasons) == 0 {
			d.Reasons = []string{"denied by policy (no reason given)"}
		}
	}
	if err != nil {
		d.Allow, d.Status, d.Scope, d.Obligations = false, 0, "", nil
		d.Reasons = []string{engineErrorPrefix + err.Error()}
	}
	if d.Reasons == nil {
		d.Reasons = []string{}
	}
}

// compiledPatterns is e's pattern cache; a nil engine (which denies
// everything) has none.
func (e *Engine) compiledPatterns() *patternCache {
	if e == nil {
		return nil
	}
	return e.patterns
}
