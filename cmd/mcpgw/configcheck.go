package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/mcpgw/mcpgw/gateway"
	"github.com/mcpgw/mcpgw/internal/config"
)

const configUsage = "usage: mcpgw config check [--config FILE] [--env-file FILE] [--print]\n       mcpgw config schema\n"

// runConfig is "mcpgw config check": everything a start would refuse, found
// without starting anything (no listener, no database, no policy, no call
// to an identity provider), so that a migration can be tried safely. It
// prints every problem, each naming its key or variable, and exits 1 when
// there is one; --print shows the effective configuration with every
// secret masked.
func runConfig(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "schema" {
		return printConfigSchema(stdout, stderr)
	}
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprint(stderr, configUsage)
		return 2
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sources := addSourceFlags(fs)
	printCfg := fs.Bool("print", false, "print the effective configuration, secrets masked")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	src, environ, _, err := sources.find()
	if err != nil {
		fmt.Fprintf(stderr, "mcpgw: config check: %v\n", err)
		return 1
	}
	cfg, problems := config.Inspect(src, environ)
	if cfg != nil {
		// The routing table a start builds: credentials and agent keys.
		problems = append(problems, newProblems(problems, gateway.Check(cfg))...)
	}
	if *printCfg && cfg != nil {
		var out bytes.Buffer
		if err := json.Indent(&out, []byte(cfg.String()), "", "  "); err != nil {
			fmt.Fprintf(stderr, "mcpgw: config check: print: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, out.String())
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "mcpgw: config check: %s (from %s): %d problem(s):\n", src, src.From, len(problems))
		for _, line := range problemLines(problems) {
			fmt.Fprintf(stderr, "  %s\n", line)
		}
		return 1
	}
	fmt.Fprintf(stdout, "config %s (from %s) is valid: %d backends, %d agents, %d issuers\n",
		src, src.From, len(cfg.Backends), len(cfg.Agents), len(cfg.Identity.Issuers))
	return 0
}

// newProblems are the problems of more about keys known lacks: a key whose
// value the file check already refused (an unset ${VAR}, say) is not
// reported again for what that value then fails to be.
func newProblems(known, more []error) []error {
	seen := map[string]bool{}
	for _, e := range known {
		seen[keyOf(e)] = true
	}
	var out []error
	for _, e := range more {
		if !seen[keyOf(e)] {
			out = append(out, e)
		}
	}
	return out
}

// keyOf is the key path a problem starts with ("agents.x.private_key").
func keyOf(err error) string {
	key, _, _ := strings.Cut(err.Error(), ": ")
	return key
}

// problemLines is one line per problem, sorted, each once.
func problemLines(errs []error) []string {
	var lines []string
	for _, e := range errs {
		lines = append(lines, e.Error())
	}
	slices.Sort(lines)
	return slices.Compact(lines)
}

// printConfigSchema is "mcpgw config schema": the configuration file's JSON
// Schema, for editors (yaml-language-server) and CI linters.
func printConfigSchema(stdout, stderr io.Writer) int {
	schema, err := config.JSONSchema()
	if err != nil {
		fmt.Fprintf(stderr, "mcpgw: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, string(schema))
	return 0
}
