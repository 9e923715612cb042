package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mcpgw/mcpgw/internal/policy"
)

const policyEvalUsage = `usage: mcpgw policy eval --input FILE [--policies DIR | --bundle FILE] [--explain[=MODE]]

Evaluates the gateway policy over one input document (the policy input
contract, see the README's policy guide) as the gateway would, and prints the
decision and, when the input lists tools, resources or prompts, what the
caller may see. The decision's evaluation time is elapsed_us, in
microseconds. A denial is a result: the exit status is 0 unless the input
or the policy cannot be read.

--explain alone is --explain=rules (the default mode): the denial rules that
fired, with their titles. Without --explain nothing is explained.

`

// runPolicyEval implements `mcpgw policy eval`; args are the arguments after
// "policy eval". Exit status: 0 done, 1 bad input or policy, 2 bad usage.
func runPolicyEval(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mcpgw policy eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, policyEvalUsage)
		fs.PrintDefaults()
	}
	inputPath := fs.String("input", "", "policy input document (JSON); - reads standard input")
	policies := fs.String("policies", "", "directory of Rego and data files (default "+policy.DefaultSource+")")
	bundleFile := fs.String("bundle", "", "bundle file built by opa build")
	key := fs.String("verification-key", "", "public key (PEM file) a signed bundle must verify against; without it signatures are not checked")
	keyID := fs.String("key-id", "", "key id of --verification-key (default \"default\")")
	explain := explainFlag{}
	fs.Var(&explain, "explain", "also explain the decision; MODE is "+strings.Join(policy.ExplainModes(), ", ")+" (--explain alone: "+policy.ExplainRules+", the default)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mcpgw policy eval: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *inputPath == "" {
		fmt.Fprintln(stderr, "mcpgw policy eval: --input is required")
		fs.Usage()
		return 2
	}
	if *policies != "" && *bundleFile != "" {
		fmt.Fprintln(stderr, "mcpgw policy eval: give --policies or --bundle, not both")
		return 2
	}

	var input io.Reader = os.Stdin
	if *inputPath != "-" {
		f, err := os.Open(*inputPath)
		if err != nil {
			fmt.Fprintf(stderr, "mcpgw policy eval: %v\n", err)
			return 1
		}
		defer f.Close()
		input = f
	}
	o := policy.EvalOptions{
		Source:          *policies + *bundleFile,
		VerificationKey: *key,
		KeyID:           *keyID,
		Explain:         explain.mode,
	}
	res, explanation, err := policy.Evaluate(ctx, o, input)
	if err != nil {
		fmt.Fprintf(stderr, "mcpgw policy eval: %v\n", err)
		return 1
	}
	// The result as indented JSON first (scripts read it), then the
	// explanation a person reads.
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		fmt.Fprintf(stderr, "mcpgw policy eval: write result: %v\n", err)
		return 1
	}
	if _, err := io.WriteString(stdout, explanation); err != nil {
		fmt.Fprintf(stderr, "mcpgw policy eval: %v\n", err)
		return 1
	}
	return 0
}

// explainFlag is --explain with an optional value: a bare --explain asks
// for the default explanation.
type explainFlag struct{ mode string }

func (f *explainFlag) String() string { return f.mode }

func (f *explainFlag) Set(v string) error {
	if v == "true" {
		v = policy.ExplainRules
	}
	if v == "false" {
		v = policy.ExplainNone
	}
	f.mode = v
	return nil
}

// IsBoolFlag lets --explain stand alone (the flag package then passes "true").
func (f *explainFlag) IsBoolFlag() bool { return true }
