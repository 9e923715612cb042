// Command bench is `make bench`'s harness: in one run it starts a fast
// backend, a plain reverse proxy and the gateway (each its own process, so
// each one's CPU per request is read from /proc), drives them with
// internal/load in interleaved rounds, and prints the medians and ratios.
//
//	go run ./bench [-rounds 3] [-d 3s] [-json out.json] [-profile dir]
//	go run ./bench backend -tools N   (a child: the fast backend)
//	go run ./bench proxy -target URL  (a child: the plain reverse proxy)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
)

func main() {
	var err error
	args := os.Args[1:]
	cmd := "run"
	if len(args) > 0 && (args[0] == "backend" || args[0] == "proxy") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "backend":
		err = runBackend(args, os.Stdout)
	case "proxy":
		err = runProxy(args, os.Stdout)
	default:
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		err = runHarness(ctx, args)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

type options struct {
	rounds   int
	duration time.Duration
	gateway  string
	policies string
	jsonOut  string
	profile  string
	conns    []int
	sessions int
	// subjects distinct callers (tokens) spread over the clients; extra
	// backends configured besides the measured ones (route table size).
	subjects, extraBackends int
	streams                 int
	huge                    int
}

func runHarness(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o options
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds (medians are reported)")
	fs.DurationVar(&o.duration, "d", 3*time.Second, "duration of each measurement")
	fs.StringVar(&o.gateway, "mcpgw", "bin/mcpgw", "gateway binary")
	fs.StringVar(&o.policies, "policies", "policies", "policy directory")
	fs.StringVar(&o.jsonOut, "json", "", "also write every measurement as JSON here")
	fs.StringVar(&o.profile, "profile", "", "write CPU and allocation profiles of the gateway under load into this directory")
	fs.IntVar(&o.sessions, "sessions", 10000, "idle sessions opened for the memory figure")
	fs.IntVar(&o.streams, "streams", 1000, "open GET streams for the memory figure")
	fs.IntVar(&o.subjects, "subjects", 8, "distinct subjects (tokens) the gateway clients use")
	fs.IntVar(&o.extraBackends, "extra-backends", 0, "backends configured besides the measured ones (cost of a larger route table)")
	fs.IntVar(&o.huge, "huge", 100000, "tools in the huge list (0: skip)")
	conns := fs.String("conns", "1,16,64", "connection counts of the tools/call runs")
	only := fs.String("only", "", "run only: calls, lists, memory, huge, profile (comma-separated; default all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, c := range strings.Split(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return fmt.Errorf("-conns %q: want positive numbers", *conns)
		}
		o.conns = append(o.conns, n)
	}
	env, err := startEnv(ctx, o)
	if err != nil {
		return err
	}
	defer env.close()
	return env.run(ctx, o, *only)
}
