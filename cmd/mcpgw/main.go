// Command mcpgw is the policy-as-code gateway for the Model Context Protocol.
//
//	mcpgw serve --config FILE      run the gateway
//	mcpgw config check             validate a configuration without starting
//	mcpgw demo                     gateway + demo IdP + demo backends + shipped policies
//	mcpgw policy eval --input F    evaluate the policy offline
//	mcpgw policy replay --bundle B re-decide recorded decisions with a candidate policy
//	mcpgw bundle verify FILE       check a signed policy bundle
//	mcpgw connect URL              stdio bridge for desktop clients
//	mcpgw version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

const usage = `usage: mcpgw <command> [flags]

commands:
  serve [--config FILE] [--env-file F] run the gateway (every key overridable by MCPGW_* env)
  config check [--config FILE] [--env-file F] [--print]
                                       report every problem a start would hit, starting nothing
  demo [--listen ADDR]                 run a self-contained demo (IdP, backends, policies)
  policy eval --input FILE [--policies DIR | --bundle FILE] [--explain[=MODE]]
                                       print the decision a policy makes for an input
                                       (--explain alone: MODE rules; or notes, fails, full)
  policy replay --bundle CANDIDATE (--store DSN | --config FILE | --decisions FILE.jsonl) [--since 24h] [--json] [--fail-on KINDS]
                                       which recorded decisions a candidate policy decides differently
  bundle verify FILE --key PUB.pem [--key-id ID]
                                       check a signed policy bundle (revision, roots, files, signer)
  connect [--print-config] [--no-browser] URL
                                       MCP over stdio for a desktop client, Streamable HTTP to the gateway
  version                              print the version
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "config":
		return runConfig(ctx, args[1:], stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "policy":
		if len(args) > 1 && args[1] == "eval" {
			return runPolicyEval(ctx, args[2:], stdout, stderr)
		}
		if len(args) > 1 && args[1] == "replay" {
			return runPolicyReplay(ctx, args[2:], stdout, stderr)
		}
		fmt.Fprint(stderr, "usage: mcpgw policy eval --input FILE [--policies DIR | --bundle FILE] [--explain[=MODE]] (see mcpgw policy eval -h)\n"+
			"       mcpgw policy replay --bundle CANDIDATE (--store DSN | --config FILE | --decisions FILE.jsonl) (see mcpgw policy replay -h)\n")
		return 2
	case "bundle":
		return runBundle(ctx, args[1:], stdout, stderr)
	case "connect":
		return runConnect(ctx, args[1:], os.Stdin, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "mcpgw", version())
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "mcpgw: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// buildVersion is set by builds without a .git to stamp from (the container
// image: -ldflags "-X main.buildVersion=$VERSION").
var buildVersion string

func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return s.Value[:12]
			}
		}
		if info.Main.Version != "" {
			return info.Main.Version
		}
	}
	return "dev"
}
