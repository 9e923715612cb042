package policy

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
)

// Folding data-only rules.
//
// OPA remembers a rule's value for one evaluation only, so a rule that
// derives an index from data (a role's inherited roles, a grant's patterns
// compiled into one glob, the literal methods of a scope) is worked out
// again by every decision. The policy is written with such rules because
// they are what a reader should see; the engine evaluates them once per
// activation and prepares its queries against a copy of the compiler in
// which they are constants.
//
// OPA's partial evaluator would fold them too, but it gives up on rules
// with `else`, and `opa build -O=1` / `-O=2` produced a recursion error and
// an always-empty visible_tools on this policy. This pass is deliberately
// narrow instead: it folds a rule only when it can show that the rule's
// value depends on nothing but data, and keeps the policy as it is when in
// doubt.
//
// The folded values are valid for as long as the store's data is: data
// changes only by activating a bundle, which always recompiles and so runs
// activate (and this pass) again.

// foldTimeout bounds the evaluation of all folded rules of one activation.
const foldTimeout = 5 * time.Second

// impureBuiltin reports the builtins that return something other than a
// function of their arguments (the time, the network, randomness, the
// runtime, the rule being evaluated) or act on the world (print, trace) and
// that OPA does not mark Nondeterministic.
func impureBuiltin(name string) bool {
	switch name {
	case "print", "internal.print", "trace", "internal.test_case",
		"rego.metadata.chain", "rego.metadata.rule",
		"io.jwt.decode_verify",
		"crypto.x509.parse_and_verify_certificates", "crypto.x509.parse_and_verify_certificates_with_options":
		return true
	}
	return false
}

// foldResult is a compiler for the prepared queries and what folding did.
type foldResult struct {
	compiler *ast.Compiler
	// folded names the rules replaced by their values.
	folded []string
	// skipped says why nothing was folded, when that is the case.
	skipped string
}

// foldDataRules returns a compiler in which the complete rules that the
// queries depend on and whose values depend only on data are constants. It
// returns compiler itself when there is nothing to fold or folding is not
// safe; an error means the folded policy did not compile, and the caller
// should use compiler.
func foldDataRules(ctx context.Context, compiler *ast.Compiler, store storage.Store, txn storage.Transaction, queries []string) (foldResult, error) {
	unchanged := foldResult{compiler: compiler}
	f := &folder{compiler: compiler, facts: map[*ast.Rule]*ruleFacts{}}
	var roots []*ast.Rule
	for _, q := range queries {
		body, err := ast.ParseBody(q)
		if err != nil {
			return unchanged, fmt.Errorf("parse query %s: %w", q, err)
		}
		roots = append(roots, f.dependencies(body)...)
	}
	reached := f.reach(roots)
	for _, r := range reached {
		if f.facts[r].with {
			// A `with` can evaluate a rule over other data or with a
			// replaced function, and a constant would ignore that.
			unchanged.skipped = fmt.Sprintf("rule %s uses with", r.Ref())
			return unchanged, nil
		}
	}

	ctx, cancel := context.WithTimeout(ctx, foldTimeout)
	defer cancel()
	values := map[*ast.Rule]*ast.Term{} // first rule of each folded path -> value
	var names []string
	seen := map[string]bool{}
	for _, r := range reached {
		path, ok := f.foldable(r)
		if !ok || seen[path.String()] {
			continue
		}
		seen[path.String()] = true
		rules := compiler.GetRulesExact(path)
		if trivial(rules) || !f.allPure(rules) {
			continue
		}
		v, ok := evalRule(ctx, compiler, store, txn, path)
		if !ok {
			continue
		}
		values[rules[0]] = v
		names = append(names, path.String())
	}
	if len(values) == 0 {
		unchanged.skipped = "no data-only rules"
		return unchanged, nil
	}

	folded, err := recompile(compiler, values)
	if err != nil {
		return unchanged, err
	}
	slices.Sort(names)
	return foldResult{compiler: folded, folded: names}, nil
}

// ruleFacts is what one rule (with its else chain) reads and calls.
type ruleFacts struct {
	input  bool // reads input
	impure bool // calls a builtin that is not a function of its arguments
	waits  bool // calls a builtin that may wait on the network
	with   bool // uses with
	deps   []*ast.Rule
	pure   *bool // memo: no input, no impure builtin, transitively
}

type folder struct {
	compiler *ast.Compiler
	facts    map[*ast.Rule]*ruleFacts
}

// dependencies lists the rules a node may refer to, over-approximated
// where a reference is not ground.
func (f *folder) dependencies(node any) []*ast.Rule {
	var deps []*ast.Rule
	ast.WalkRefs(node, func(ref ast.Ref) bool {
		if ref.HasPrefix(ast.DefaultRootRef) {
			deps = append(deps, f.compiler.GetRulesDynamicWithOpts(ref, ast.RulesOptions{})...)
		}
		return false
	})
	return deps
}

// inspect collects the facts of one rule.
func (f *folder) inspect(r *ast.Rule) *ruleFacts {
	if facts, ok := f.facts[r]; ok {
		return facts
	}
	facts := &ruleFacts{}
	f.facts[r] = facts
	for rr := r; rr != nil; rr = rr.Else {
		for _, node := range []any{rr.Head, rr.Body} {
			f.collect(node, facts)
		}
	}
	return facts
}

// collect adds what node reads and calls to facts.
func (f *folder) collect(node any, facts *ruleFacts) {
	ast.NewGenericVisitor(func(x any) bool {
		switch x := x.(type) {
		case *ast.With:
			facts.with = true
		case *ast.Expr:
			if x.IsCall() {
				f.call(x.Operator(), facts)
			}
		case ast.Call:
			if len(x) > 0 {
				if op, ok := x[0].Value.(ast.Ref); ok {
					f.call(op, facts)
				}
			}
		case ast.Ref:
			if x.HasPrefix(ast.InputRootRef) {
				facts.input = true
			}
		}
		return false
	}).Walk(node)
	facts.deps = append(facts.deps, f.dependencies(node)...)
}

// call records a call: user functions are dependencies (found by
// dependencies), builtins are judged here. An unknown builtin is taken to
// be impure.
func (f *folder) call(op ast.Ref, facts *ruleFacts) {
	if op.HasPrefix(ast.DefaultRootRef) {
		return
	}
	name := op.String()
	b, ok := ast.BuiltinMap[name]
	if !ok || b.Nondeterministic || impureBuiltin(name) {
		facts.impure = true
	}
	if !ok || waitingBuiltin(name) {
		facts.waits = true
	}
}

// waitingBuiltin reports the builtins that may wait for something other
// than the CPU (the network): their time is part of the evaluation.
func waitingBuiltin(name string) bool {
	return name == "http.send" || name == "net.lookup_ip_addr"
}

// waitingQuery reports whether evaluating query may call a builtin that
// waits on the network (or one this build does not know). Such a query's
// time is measured on the wall clock; any other's by the CPU it uses.
func waitingQuery(compiler *ast.Compiler, query string) bool {
	body, err := ast.ParseBody(query)
	if err != nil {
		return true
	}
	f := &folder{compiler: compiler, facts: map[*ast.Rule]*ruleFacts{}}
	own := &ruleFacts{}
	f.collect(body, own)
	if own.waits {
		return true
	}
	for _, r := range f.reach(own.deps) {
		if f.inspect(r).waits {
			return true
		}
	}
	return false
}

// reach lists the rules reachable from roots, each once, in a stable order.
func (f *folder) reach(roots []*ast.Rule) []*ast.Rule {
	var out []*ast.Rule
	seen := map[*ast.Rule]bool{}
	var visit func(*ast.Rule)
	visit = func(r *ast.Rule) {
		if seen[r] {
			return
		}
		seen[r] = true
		out = append(out, r)
		for _, d := range f.inspect(r).deps {
			visit(d)
		}
	}
	for _, r := range roots {
		visit(r)
	}
	return out
}

// pure reports whether a rule's value depends only on data. Recursion is
// not valid Rego, but a dependency found again while it is being judged is
// taken to be impure, so that an over-approximated reference cannot make
// this loop.
func (f *folder) pure(r *ast.Rule, judging map[*ast.Rule]bool) bool {
	facts := f.inspect(r)
	if facts.pure != nil {
		return *facts.pure
	}
	if judging[r] {
		return false
	}
	judging[r] = true
	defer delete(judging, r)
	ok := !facts.input && !facts.impure && !facts.with
	for _, d := range facts.deps {
		if !ok {
			break
		}
		ok = f.pure(d, judging)
	}
	facts.pure = &ok
	return ok
}

func (f *folder) allPure(rules []*ast.Rule) bool {
	for _, r := range rules {
		if !f.pure(r, map[*ast.Rule]bool{}) {
			return false
		}
	}
	return len(rules) > 0
}

// foldable returns the path of a rule that could be replaced by one
// constant: not a function, and named by a ground reference (a complete
// rule or a partial set, not a partial object).
func (f *folder) foldable(r *ast.Rule) (ast.Ref, bool) {
	if len(r.Head.Args) > 0 || r.Module == nil || !r.Head.Ref().IsGround() {
		return nil, false
	}
	return r.Ref(), true
}

// trivial reports whether rules already are one constant: folding them
// would change nothing.
func trivial(rules []*ast.Rule) bool {
	if len(rules) != 1 {
		return false
	}
	r := rules[0]
	return r.Else == nil && !r.Default && r.Head.Key == nil && r.Head.Value != nil &&
		ast.IsConstant(r.Head.Value.Value) && len(r.Body) == 1 && r.Body[0].Equal(ast.NewExpr(ast.BooleanTerm(true)))
}

// evalRule evaluates one data-only rule; an error or an undefined value
// leaves the rule unfolded, so that each decision meets it as before.
func evalRule(ctx context.Context, compiler *ast.Compiler, store storage.Store, txn storage.Transaction, path ast.Ref) (*ast.Term, bool) {
	pq, err := rego.New(
		rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(path)))),
		rego.Compiler(compiler),
		rego.Store(store),
		rego.Transaction(txn),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, false
	}
	rs, err := pq.Eval(ctx, rego.EvalTransaction(txn), rego.EvalGenerateJSON(astValues))
	if err != nil || len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, false
	}
	v, ok := rs[0].Expressions[0].Value.(ast.Value)
	if !ok {
		return nil, false
	}
	return ast.NewTerm(v), true
}

// recompile compiles a copy of compiler's modules in which the rules of
// each folded path are one constant rule: the first rule of the path keeps
// its place, location and metadata, and takes the value.
func recompile(compiler *ast.Compiler, values map[*ast.Rule]*ast.Term) (*ast.Compiler, error) {
	drop := map[*ast.Rule]bool{}
	keep := map[*ast.Rule]*ast.Term{}
	for first, v := range values {
		keep[first] = v
		for _, r := range compiler.GetRulesExact(first.Ref()) {
			if r != first {
				drop[r] = true
			}
		}
	}
	modules := make(map[string]*ast.Module, len(compiler.Modules))
	for name, mod := range compiler.Modules {
		touched := slices.ContainsFunc(mod.Rules, func(r *ast.Rule) bool { return drop[r] || keep[r] != nil })
		if !touched {
			modules[name] = mod
			continue
		}
		cpy := mod.Copy()
		var dropped []*ast.Location
		rules := cpy.Rules[:0]
		for i, r := range mod.Rules {
			switch {
			case drop[r]:
				for _, a := range r.Annotations {
					dropped = append(dropped, a.Location)
				}
				continue
			case keep[r] != nil:
				c := cpy.Rules[i]
				c.Default = false
				c.Else = nil
				c.Head.Key = nil
				c.Head.Value = keep[r]
				c.Head.Assign = true
				c.Body = ast.NewBody(ast.NewExpr(ast.BooleanTerm(true)))
			}
			rules = append(rules, cpy.Rules[i])
		}
		cpy.Rules = rules
		cpy.Annotations = slices.DeleteFunc(cpy.Annotations, func(a *ast.Annotations) bool {
			return slices.ContainsFunc(dropped, func(l *ast.Location) bool { return l != nil && a.Location != nil && l.Equal(a.Location) })
		})
		modules[name] = cpy
	}
	folded := ast.NewCompiler().
		WithCapabilities(compiler.Capabilities()).
		WithDefaultRegoVersion(compiler.DefaultRegoVersion()).
		// Print calls were kept or erased when the policy was compiled; keep
		// whatever is there.
		WithEnablePrintStatements(true)
	folded.Compile(modules)
	if folded.Failed() {
		return nil, fmt.Errorf("compile folded policy: %w", folded.Errors)
	}
	return folded, nil
}

// queryCompiler is the compiler the gateway's queries are prepared against:
// compiler with its data-only rules folded, or compiler itself when folding
// fails (which only costs speed).
func (e *Engine) queryCompiler(ctx context.Context, compiler *ast.Compiler, txn storage.Transaction, revision string) *ast.Compiler {
	queries := []string{decisionRule, adminQuery}
	for _, kind := range listKinds() {
		rule, _ := visibleRule(kind)
		queries = append(queries, rule)
	}
	res, err := foldDataRules(ctx, compiler, e.store, txn, queries)
	switch {
	case err != nil:
		e.logger.Warn("policy rules not folded: decisions evaluate them every time", "revision", revision, "error", err)
	case res.skipped != "":
		e.logger.Debug("policy rules not folded", "revision", revision, "reason", res.skipped)
	default:
		e.logger.Debug("policy data-only rules folded", "revision", revision, "rules", res.folded)
	}
	return res.compiler
}
