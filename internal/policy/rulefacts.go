package policy

import (
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// What a rule reads and calls.
//
// The engine asks two questions of the policy at each activation: whether a
// decision may be remembered (decisioncache.go: the decision rule calls no
// builtin that reads the clock, the network or randomness) and whether a
// query's time is the CPU's or the wall clock's (waitingQuery). Both walk
// the rules a query may reach, collecting what each reads and calls.

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

// ruleFacts is what one rule (with its else chain) reads and calls.
type ruleFacts struct {
	impure bool // calls a builtin that is not a function of its arguments
	waits  bool // calls a builtin that may wait on the network
	goForm bool // calls a builtin that reads an operand's Go form (argsprobe.go)
	// readsInput: reads the input other than through input.<callerFields>
	// (callermemo.go); with: uses `with`.
	readsInput bool
	with       bool
	deps       []*ast.Rule
}

// folder walks the rules of compiler, remembering each rule's facts. (It
// once also folded rules that read only data into constants; measured
// against the decision cache, that was dropped: BENCHMARKS.md.)
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
		case *ast.Expr:
			if x.IsCall() {
				f.call(x.Operator(), facts)
			}
			if len(x.With) > 0 {
				facts.with = true
			}
		case ast.Ref:
			if !readsCallerOnly(x) {
				facts.readsInput = true
			}
		case ast.Call:
			if len(x) > 0 {
				if op, ok := x[0].Value.(ast.Ref); ok {
					f.call(op, facts)
				}
			}
		}
		return false
	}).Walk(node)
	facts.deps = append(facts.deps, f.dependencies(node)...)
}

// readsCallerOnly reports whether ref is no reference to the input, or one
// that starts with input.<one of callerFields>. The compiler writes a bare
// input as the one-element ref input, which is not.
func readsCallerOnly(ref ast.Ref) bool {
	if len(ref) == 0 || !ref[0].Equal(ast.InputRootDocument) {
		return true
	}
	if len(ref) < 2 {
		return false
	}
	field, ok := ref[1].Value.(ast.String)
	return ok && slices.Contains(callerFields, string(field))
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
	if !ok || goFormBuiltin(name) {
		facts.goForm = true
	}
}

// waitingBuiltin reports the builtins that may wait for something other
// than the CPU (the network): their time is part of the evaluation.
func waitingBuiltin(name string) bool {
	return name == "http.send" || name == "net.lookup_ip_addr"
}

// queryRules parses query and walks what it may reach: the folder, the
// query's own facts and the rules reachable from it.
func queryRules(compiler *ast.Compiler, query string) (*folder, *ruleFacts, []*ast.Rule, error) {
	body, err := ast.ParseBody(query)
	if err != nil {
		return nil, nil, nil, err
	}
	f := &folder{compiler: compiler, facts: map[*ast.Rule]*ruleFacts{}}
	own := &ruleFacts{}
	f.collect(body, own)
	return f, own, f.reach(own.deps), nil
}

// queryMay reports whether query, or a rule it may reach, has the fact
// has; a query that does not parse may.
func queryMay(compiler *ast.Compiler, query string, has func(*ruleFacts) bool) bool {
	f, own, rules, err := queryRules(compiler, query)
	if err != nil || has(own) {
		return true
	}
	for _, r := range rules {
		if has(f.inspect(r)) {
			return true
		}
	}
	return false
}

// waitingQuery reports whether evaluating query may call a builtin that
// waits on the network (or one this build does not know). Such a query's
// time is measured on the wall clock; any other's by the CPU it uses.
func waitingQuery(compiler *ast.Compiler, query string) bool {
	return queryMay(compiler, query, func(f *ruleFacts) bool { return f.waits })
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
