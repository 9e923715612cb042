package replay

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteTable writes the report for a person: the counts, the recorded
// revisions, the changes grouped by backend, tool, agent and subject (the
// values with the most changes), then every change, one a line.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	p("candidate revision\t%s\n", r.Candidate)
	if r.Baseline != "" {
		p("baseline revision\t%s\n", r.Baseline)
	}
	revs := slices.Sorted(maps.Keys(r.Recorded))
	parts := make([]string, 0, len(revs))
	for _, rev := range revs {
		name := rev
		if name == "" {
			name = "(none)"
		}
		parts = append(parts, fmt.Sprintf("%s (%d)", name, r.Recorded[rev]))
	}
	p("recorded revisions\t%s\n", strings.Join(parts, ", "))
	p("\nrecords\t%d\n", r.Records)
	p("unchanged\t%d\n", r.Counts.Unchanged)
	p("allow -> deny\t%d\n", r.Counts.AllowToDeny)
	p("deny -> allow\t%d\n", r.Counts.DenyToAllow)
	p("reasons changed\t%d\n", r.Counts.Reasons)
	p("masked input, decided differently (not trusted)\t%d\n", r.Counts.Masked)
	p("no input recorded (not replayed)\t%d\n", r.Counts.NoInput)
	for _, cause := range []string{CausePolicy, CauseState, CauseBoth} {
		if n := r.Causes[cause]; n > 0 {
			p("changes caused by %s\t%d\n", cause, n)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Changes) == 0 {
		_, err := fmt.Fprintln(w, "\nno decision changes.")
		return err
	}
	for _, dim := range Dimensions {
		fmt.Fprintf(w, "\nchanges by %s\n", dim)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  %s\tallow->deny\tdeny->allow\treasons\n", dim)
		for _, g := range r.Groups[dim] {
			v := g.Value
			if v == "" {
				v = "(none)"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\n", v, g.AllowToDeny, g.DenyToAllow, g.Reasons)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\nchanges")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range r.Changes {
		cause := ""
		if c.Cause != "" {
			cause = " (" + c.Cause + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\t%s\t%s\t%s\t%s\t%s\n", c.DecisionID, c.Kind, cause, c.Backend, c.Tool, c.Agent, c.Subject,
			strings.Join(c.After.Reasons, "; "))
	}
	return tw.Flush()
}
