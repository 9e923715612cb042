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
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/replay"
	"github.com/mcpgw/mcpgw/internal/store"
)

const policyReplayUsage = `usage: mcpgw policy replay --bundle CANDIDATE [--verification-key PUB.pem] [--baseline BASELINE]
         (--store DSN | --config FILE | --decisions FILE.jsonl)
         [--since 24h] [--until TIME] [--backend B] [--agent A] [--subject S] [--tool T]
         [--json] [--top N] [--fail-on allow-to-deny,deny-to-allow,reasons]

Re-evaluates recorded decisions with a candidate policy (a directory or an
opa build bundle) and reports which the candidate decides differently:
allow -> deny, deny -> allow, or the same allow with other reasons. Inputs come
from the audit trail (the gateway must run with audit.record_inputs: true),
from --store or the store of --config, or from OPA decision-log events
(--decisions, one JSON event a line). Nothing is contacted: the inputs are
replayed as recorded, including the tool catalog entries they carry.

--baseline re-evaluates with a second policy too (normally the deployed
one), so that each change says whether the policy change caused it (policy)
or the baseline already decides the recorded input differently (state).

A record whose input the recording's system.log.mask masked is replayed on
the masked input; when the candidate then decides it differently, the
difference is listed as masked (not trusted) and not counted as a change.

Exit status: 0 done, 1 error, 2 bad usage, 3 a change of a --fail-on kind.

`

// runPolicyReplay implements `mcpgw policy replay`.
func runPolicyReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mcpgw policy replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, policyReplayUsage)
		fs.PrintDefaults()
	}
	bundle := fs.String("bundle", "", "candidate policy: a directory or a bundle file built by opa build (required)")
	key := fs.String("verification-key", "", "public key (PEM file) signed bundles must verify against; without it signatures are not checked")
	keyID := fs.String("key-id", "", "key id of --verification-key (default \"default\")")
	baseline := fs.String("baseline", "", "baseline policy (directory or bundle) to tell policy changes from state changes")
	dsn := fs.String("store", "", "store DSN whose audit trail holds the recorded decisions (file:mcpgw.db, postgres://...)")
	configPath := fs.String("config", "", "read the store DSN from this configuration file")
	decisions := fs.String("decisions", "", "OPA decision-log file: one JSON event a line (- reads standard input)")
	since := fs.String("since", "24h", "replay decisions made since this long ago (a duration) or this RFC 3339 time; \"\" for all")
	until := fs.String("until", "", "replay decisions made before this RFC 3339 time or this long ago (a duration)")
	var f replay.Filter
	fs.StringVar(&f.Backend, "backend", "", "only decisions about this backend")
	fs.StringVar(&f.Agent, "agent", "", "only decisions made through this agent")
	fs.StringVar(&f.Subject, "subject", "", "only decisions about this subject (the token's sub)")
	fs.StringVar(&f.Tool, "tool", "", "only decisions naming this tool, prompt or resource")
	asJSON := fs.Bool("json", false, "print the report as JSON, with every change")
	top := fs.Int("top", 10, "values shown per grouping (backend, tool, agent, subject)")
	failOn := fs.String("fail-on", "", "exit 3 when a change of these kinds occurs: "+strings.Join(replay.ChangeKinds(), ","))
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mcpgw policy replay: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if *bundle == "" {
		return usageErr("--bundle is required")
	}
	sources := 0
	for _, s := range []string{*dsn, *configPath, *decisions} {
		if s != "" {
			sources++
		}
	}
	if sources != 1 {
		return usageErr("give exactly one of --store, --config and --decisions")
	}
	kinds, err := replay.ParseKinds(*failOn)
	if err != nil {
		return usageErr("--fail-on: %v", err)
	}
	if *top < 1 {
		return usageErr("--top: want at least 1")
	}
	now := time.Now()
	if f.Since, err = parseWhen(*since, now); err != nil {
		return usageErr("--since: %v", err)
	}
	if f.Until, err = parseWhen(*until, now); err != nil {
		return usageErr("--until: %v", err)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return usageErr("--since must be before --until")
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mcpgw policy replay: "+format+"\n", a...)
		return 1
	}

	var items []replay.Item
	switch {
	case *decisions != "":
		var in io.Reader = os.Stdin
		if *decisions != "-" {
			file, err := os.Open(*decisions)
			if err != nil {
				return fail("%v", err)
			}
			defer file.Close()
			in = file
		}
		var skipped int
		if items, skipped, err = replay.FromDecisionLog(in, f); err != nil {
			return fail("%s: %v", *decisions, err)
		}
		if skipped > 0 {
			fmt.Fprintf(stderr, "mcpgw policy replay: skipped %d lines that are not events of data.mcp.gateway.decision\n", skipped)
		}
	default:
		if *configPath != "" {
			cfg, err := config.Load(*configPath, os.Environ())
			if err != nil {
				return fail("%v", err)
			}
			*dsn = cfg.Store.DSN
		}
		st, err := store.Open(ctx, *dsn)
		if err != nil {
			return fail("%v", err)
		}
		defer st.Close()
		if items, err = replay.FromStore(ctx, st, f); err != nil {
			return fail("%v", err)
		}
	}

	load := func(source string) (*policy.Engine, error) {
		return replay.LoadPolicy(ctx, replay.PolicyOptions{Source: source, VerificationKey: *key, KeyID: *keyID, AllowUnsigned: *key == ""})
	}
	cand, err := load(*bundle)
	if err != nil {
		return fail("--bundle %s: %v", *bundle, err)
	}
	defer cand.Stop(context.WithoutCancel(ctx))
	o := replay.Options{Candidate: cand, Top: *top}
	if *baseline != "" {
		base, err := load(*baseline)
		if err != nil {
			return fail("--baseline %s: %v", *baseline, err)
		}
		defer base.Stop(context.WithoutCancel(ctx))
		o.Baseline = base
	}
	report := replay.Run(ctx, o, items)
	if err := ctx.Err(); err != nil {
		return fail("%v", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(report)
	} else {
		err = report.WriteTable(stdout)
	}
	if err != nil {
		return fail("write report: %v", err)
	}
	if report.Trips(kinds) {
		return 3
	}
	return 0
}

// parseWhen reads --since and --until: "" (no bound), a duration back from
// now (24h) or an RFC 3339 time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: want a positive duration", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want a duration (24h) or an RFC 3339 time", s)
	}
	return t, nil
}
