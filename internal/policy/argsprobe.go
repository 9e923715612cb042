package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Decisions cached by the arguments they read.
//
// Two tools/call messages from one caller to one tool mostly differ in
// their arguments alone, and most decisions look at few of them or none
// (the shipped policy reads an argument only where data.mcpgw.argument_rules
// names it, or all of them where a confirm obligation quotes them). Keyed by
// the whole input, the decision cache missed every such call; keyed by the
// input without the arguments the decision did not read, it answers them.
//
// The proof is the lazy input (input.go). OPA converts a field of a
// LazyObject the first time a rule reads it (Get, Find), and converts all
// of them when the object is compared, hashed, iterated or printed
// (force). A value that ast.InterfaceToValue has no case for is converted
// by a JSON round trip (util.RoundTrip), which calls its MarshalJSON. So
// each argument's value in input.mcp.arguments is an argumentProbe, and
// any conversion of it is a call to MarshalJSON, which records its name.
// What the arguments object gives without converting a value is its key
// set (Keys, Len, and a missing key's absence): the key set is part of
// every key.
//
// The one other way to reach a value is ast.ValueToInterface (ast.JSON)
// over the arguments (or input.mcp, or input), which hands out the lazy
// object's Go map itself, probes included. TestArgumentsProbeOPACallSites
// pins every call site in the OPA version this module builds with; each
// encodes the value with encoding/json (which calls MarshalJSON: a read),
// reads only keys, or never sees an input, except urlquery.encode_object,
// which switches on its values' Go types (a string argument encodes, a
// probe would not): a policy that may call it is not probed
// (probesArguments), and its decisions are keyed by every argument. An OPA
// upgrade that adds a call site fails that test until it is checked the
// same way.
//
// A decision is remembered under the names its evaluation read, and the
// values of those only, after a walk of the decision's value (which forces
// any lazy object the value holds). Evaluation is a function of what it
// reads: two inputs equal but for arguments the first evaluation did not
// read evaluate alike. Which arguments an evaluation reads may depend on
// their values (x read, and y only when x is "a"), so each caller and tool
// keeps the few read sets its decisions had (argumentShapes), and a lookup
// tries each.

// argumentReads is the set of arguments one evaluation converted.
type argumentReads struct {
	mu    sync.Mutex
	names map[string]bool
}

func (r *argumentReads) add(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names == nil {
		r.names = map[string]bool{}
	}
	r.names[name] = true
}

// sorted lists the names read, in order.
func (r *argumentReads) sorted() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.names))
	for n := range r.names {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// argumentProbe stands for one argument's value in the lazy input of a
// decision and records its name when the evaluation converts it. It is a
// value, not a pointer, with a value receiver: util.RoundTrip dereferences
// pointers before encoding, and encoding/json would then skip a pointer
// receiver's MarshalJSON and write {} (the first version did, and the
// decision cache tests caught it).
type argumentProbe struct {
	name string
	// value is the argument as the plain input holds it: a JSON-shaped Go
	// value or an ast.Value (anyObject).
	value any
	reads *argumentReads
}

// MarshalJSON is how OPA converts the probe: it encodes the value that the
// plain argument would have become (ast.InterfaceToValue of the same
// value), so the round trip gives the policy exactly that value: numbers
// keep their text, strings their bytes (the gateway's messages are valid
// UTF-8: ijson refuses anything else, and encoding/json would replace it).
func (p argumentProbe) MarshalJSON() ([]byte, error) {
	p.reads.add(p.name)
	v, err := ast.InterfaceToValue(p.value)
	if err != nil {
		return nil, fmt.Errorf("input mcp.arguments.%s: %w", p.name, err)
	}
	native, err := ast.JSON(v)
	if err != nil {
		return nil, fmt.Errorf("input mcp.arguments.%s: %w", p.name, err)
	}
	return json.Marshal(native)
}

// probedArguments puts a probe in place of each value of args (as
// anyObject returns them: a Go map or an ast.Object).
func probedArguments(args any, reads *argumentReads) (map[string]any, error) {
	out := map[string]any{}
	switch a := args.(type) {
	case map[string]any:
		for k, v := range a {
			out[k] = argumentProbe{name: k, value: v, reads: reads}
		}
	case ast.Object:
		err := a.Iter(func(k, v *ast.Term) error {
			name, ok := k.Value.(ast.String)
			if !ok {
				return fmt.Errorf("input mcp.arguments: key %v is not a string", k)
			}
			out[string(name)] = argumentProbe{name: string(name), value: v.Value, reads: reads}
			return nil
		})
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("input mcp.arguments: %T is not an object", args)
	}
	return out, nil
}

// forceAll walks v, converting every lazy object in it: a decision value
// that holds part of the input (an object rule returning input.mcp, say)
// must not be remembered with arguments it never looked at but will hand
// on to whoever reads the value later. OPA itself hashes a value it puts
// into an object, array or set, which converts it (measured with v1.22.3:
// TestArgumentsProbeDecisionHoldingInput passes without this walk); the
// walk keeps that from being an assumption.
func forceAll(v ast.Value) {
	switch x := v.(type) {
	case ast.Object:
		x.Foreach(func(k, e *ast.Term) {
			forceAll(k.Value)
			forceAll(e.Value)
		})
	case *ast.Array:
		x.Foreach(func(e *ast.Term) { forceAll(e.Value) })
	case ast.Set:
		x.Foreach(func(e *ast.Term) { forceAll(e.Value) })
	}
}

// goFormBuiltin reports the builtins that read an operand's Go form by
// type rather than by encoding it, and so would tell a probe from the
// value it stands for (TestArgumentsProbeOPACallSites).
func goFormBuiltin(name string) bool {
	return name == "urlquery.encode_object"
}

// probesArguments reports whether query's decisions may be keyed by the
// arguments they read: it may call no goFormBuiltin.
func probesArguments(compiler *ast.Compiler, query string) bool {
	return !queryMay(compiler, query, func(f *ruleFacts) bool { return f.goForm })
}

// maxArgumentShapes bounds the read sets kept per caller and tool: a
// policy whose reads vary more than that is looked up under the most
// recent ones.
const maxArgumentShapes = 8

// argumentShapes are the read sets remembered for one caller and tool,
// most recent first. A list is never changed once shared: adding one
// makes a new list.
type argumentShapes [][]string

// with returns the shapes with names first.
func (s argumentShapes) with(names []string) argumentShapes {
	out := argumentShapes{names}
	for _, old := range s {
		if len(out) == maxArgumentShapes {
			break
		}
		if !slices.Equal(old, names) {
			out = append(out, old)
		}
	}
	return out
}
