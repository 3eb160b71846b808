package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/carpoolsla/carpoolsla/loadgen/drill"
	"github.com/carpoolsla/carpoolsla/services/faults"
)

func newFault(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fault",
		Short: "Inject or clear a fault in one region through its fault admin API",
		Long: `fault injects a fault into one region of a running deployment, clears it, or shows the region's
faults, through the region's fault admin API (/admin/faults on its service entry or gateway, behind the
admin token). Kinds: latency (a duration added to a service, default 400ms on order), errors (a share of
a service's requests answered 503, default 0.05), down (the region drops every connection), stall (the
region stops applying replication), skew (the region's clock shifted, default 2s ahead).`,
		Example: `  carpoolsla fault inject --region sh-a --kind down --base-port 18100 --admin-token-file token
  carpoolsla fault inject --region sh-b --kind latency --value 500ms --faults sh-b=http://127.0.0.1:18110 --admin-token-file token
  carpoolsla fault clear --region sh-a --kind down --base-port 18100 --admin-token-file token
  carpoolsla fault clear --region sh-a --base-port 18100 --admin-token-file token      # every fault
  carpoolsla fault status --region sh-a --base-port 18100 --admin-token-file token`,
	}
	cmd.AddCommand(newFaultAction("inject", stdout, stderr), newFaultAction("clear", stdout, stderr), newFaultAction("status", stdout, stderr))
	return cmd
}

func newFaultAction(action string, stdout, stderr io.Writer) *cobra.Command {
	var (
		urls                    drillURLs
		regionName, kind, value string
		service                 string
		timeout                 time.Duration
	)
	short := map[string]string{
		"inject": "Add a fault to a region (the others it has stay)",
		"clear":  "Remove one kind of fault from a region, or with no --kind every fault",
		"status": "Show a region's current faults",
	}[action]
	cmd := &cobra.Command{
		Use:   action,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, token, targets, err := urls.resolve()
			if err != nil {
				fmt.Fprintln(stderr, err)
				return exitError{2}
			}
			if regionName == "" {
				fmt.Fprintf(stderr, "--region is required: one of %s\n", strings.Join(s.RegionNames(), ", "))
				return exitError{2}
			}
			rt, ok := targets[regionName]
			base := rt.Faults
			if base == "" {
				base = rt.API
			}
			if !ok || base == "" {
				fmt.Fprintf(stderr, "no fault admin URL for region %q: give --faults %s=URL (its service entry or gateway) or --base-port\n", regionName, regionName)
				return exitError{2}
			}
			if token == "" {
				fmt.Fprintln(stderr, "--admin-token-file is required: the fault admin API needs the deployment's admin token")
				return exitError{2}
			}
			f := drill.Fault{Kind: kind, Value: value, Service: service}
			switch {
			case action == "inject" && kind == "":
				fmt.Fprintf(stderr, "--kind is required: one of %s\n", strings.Join(drill.Kinds, ", "))
				return exitError{2}
			case action == "status" && kind != "":
				fmt.Fprintln(stderr, "status takes no --kind")
				return exitError{2}
			case kind != "":
				if action == "clear" {
					f.Value = "" // clearing needs no size
				}
				if err := f.Validate(); err != nil {
					fmt.Fprintf(stderr, "--kind/--value: %v\n", err)
					return exitError{2}
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			c := &drill.FaultsClient{BaseURL: base, Token: token}
			var st faults.State
			switch {
			case action == "inject":
				st, err = c.Inject(ctx, f)
			case action == "clear" && kind != "":
				st, err = c.Remove(ctx, f)
			case action == "clear":
				st, err = c.Clear(ctx)
			default:
				st, err = c.State(ctx)
			}
			if err != nil {
				fmt.Fprintln(stderr, err)
				return exitError{1}
			}
			switch action {
			case "inject":
				fmt.Fprintf(stdout, "injected %s in %s\n", f, regionName)
			case "clear":
				what := "every fault"
				if kind != "" {
					what = kind
				}
				fmt.Fprintf(stdout, "cleared %s in %s\n", what, regionName)
			}
			b, _ := json.MarshalIndent(st, "", "  ")
			fmt.Fprintf(stdout, "%s faults now: %s\n", regionName, b)
			return nil
		},
	}
	urls.register(cmd, false)
	fl := cmd.Flags()
	fl.StringVar(&regionName, "region", "", "the region (a region of the spec)")
	if action != "status" {
		fl.StringVar(&kind, "kind", "", "the fault: "+strings.Join(drill.Kinds, ", "))
		fl.StringVar(&service, "service", "", "latency and errors: the service they apply to, or * for all (default order)")
	}
	if action == "inject" {
		fl.StringVar(&value, "value", "", "the fault's size: latency a duration (400ms), errors a share (0.05) or percentage (5%), skew a duration (2s, -2s)")
	}
	fl.DurationVar(&timeout, "timeout", 10*time.Second, "bound on the admin API calls")
	return cmd
}
