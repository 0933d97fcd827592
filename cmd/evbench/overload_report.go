package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// writeTable prints the overload workload: the steps, where the work of
// EventVault's steps went, and the check of the acknowledgements.
func (o *overloadReport) writeTable(w io.Writer) error {
	b := o.Bounds
	fmt.Fprintf(w, "\nOverload (issue 16): single-event appends over %d streams, open loop at a constant offered rate, %s per step;\n", o.Streams, time.Duration(o.Seconds*float64(time.Second)))
	fmt.Fprintf(w, "1× is each side's closed-loop capacity with %d clients; bounds of EventVault and of the raw baseline's server: %d appends per node, %d per tenant, queue %d, wait %s\n",
		o.ProbeClients, b.Appends.Node, b.Appends.Tenant, b.Appends.Queue, b.QueueWait)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\tload\toffered/s\tanswered/s\tof peak\toffered/peak\trefused 429\trefused 503\tfailed\tdropped\tp50 ms\tp99 ms\trefusal p99 ms\tsend lag p99 ms\tgenerator µs/req\t")
	peak := map[string]float64{}
	for _, s := range o.Steps {
		peak[s.Side] = max(peak[s.Side], s.AnsweredPerSec)
	}
	for _, s := range o.Steps {
		fmt.Fprintf(tw, "%s\t%.1f×\t%.0f\t%.0f\t%.2f\t%.1f×\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f\t\n", s.Side, s.Factor, s.OfferedPerSec, s.AnsweredPerSec,
			ratio(s.AnsweredPerSec, peak[s.Side]), ratio(s.OfferedPerSec, peak[s.Side]), s.Refused429, s.Refused503, s.Failed, s.Dropped, s.P50Ms, s.P99Ms, s.RefusalP99Ms, s.LagP99Ms, s.GenCPUUs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nAnother tenant appending at %.0f%% of capacity meanwhile (does the flood starve it?):\n", 100*quietShare)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side	load	offered/s	ok	refused	failed	p50 ms	p99 ms	")
	for _, side := range []string{sideOverloadEV, sideOverloadNoAdm} {
		if q, ok := o.QuietAlone[side]; ok {
			fmt.Fprintf(tw, "%s	alone	%.0f	%d	%d	%d	%.1f	%.1f	\n", side, q.OfferedPerSec, q.OK, q.Refused, q.Failed, q.P50Ms, q.P99Ms)
		}
	}
	for _, s := range o.Steps {
		if q := s.Quiet; q != nil {
			fmt.Fprintf(tw, "%s	%.1f×	%.0f	%d	%d	%d	%.1f	%.1f	\n", s.Side, s.Factor, q.OfferedPerSec, q.OK, q.Refused, q.Failed, q.P50Ms, q.P99Ms)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nThe same steps as the EventVault server saw them (from a request's headers read to its answer written: without the generator's\nand the client connection's delays), and admission's queue:\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\tload\tadmitted p50 ms\tadmitted p99 ms\trefusal p99 ms\tquiet tenant p99 ms\tqueued, admitted\tmean queue wait ms\tqueued, refused\t")
	for _, s := range o.Steps {
		if v := s.Server; v != nil {
			fmt.Fprintf(tw, "%s\t%.1f×\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f\t%.1f\t%.0f\t\n", s.Side, s.Factor, v.AdmittedP50Ms, v.AdmittedP99Ms, v.RefusalP99Ms, v.QuietP99Ms, v.Queued, v.QueueWaitMs, v.QueuedRefused)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nWhere EventVault's work went in each step (busy PostgreSQL sessions and their waits; pool acquires that waited and their mean wait;\nappends group commits carried and wrote, the rest retried on the locking path; store errors; this process's CPU per answered append,\nthe server's and not the load generator's unless -overload-in-process):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range o.Steps {
		d := s.Diag
		if d == nil {
			continue
		}
		fmt.Fprintf(tw, "%s %.1f×\tbusy %.1f\t%s\tpool waited %.0f%% (%.1f ms)\tgroups %.0f/%.0f written\terrors %.0f\tCPU %.0f µs\t\n", s.Side, s.Factor, d.BusySessions,
			formatWaits(d.Waits), 100*d.PoolWaited, d.PoolWaitMs, d.GroupWritten, d.GroupAppends, d.StoreErrors, d.CPUPerOKUs)
		for _, st := range d.Statements {
			fmt.Fprintf(tw, "\t\t%d calls, %.2f ms mean, %.0f ms total\t%s\t\t\t\t\n", st.Calls, st.MeanMs, st.TotalMs, strings.TrimSpace(st.Query))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if o.StatementsNote != "" {
		fmt.Fprintf(w, "(no statement statistics: %s)\n", o.StatementsNote)
	}
	fmt.Fprintln(w, "\nAcknowledgements checked afterwards:")
	for _, c := range o.Checks {
		verdict := "ok"
		if !c.OK {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "  %s: %s: %d acknowledged, %d lost, %d moved, %d duplicated, %d refused but written; %d of unknown outcome (%d written)\n",
			c.Side, verdict, c.Acked, c.Lost, c.Moved, c.Duplicated, c.RefusedWritten, c.Unknown, c.UnknownWritten)
	}
	return nil
}
