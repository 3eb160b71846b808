// Command carpoolsla is the carpool SLA platform's one binary. Each
// subcommand wires packages together; the logic lives in them.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/carpoolsla/carpoolsla/codegen"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// exitError carries an exit code without printing usage again.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		fmt.Fprintln(stderr, "carpoolsla:", err)
		return 2
	}
	return 0
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "carpoolsla",
		Short: "The carpool SLA platform: one SLA spec in, rules, alerts, dashboards and decisions out",
		Long: `carpoolsla turns one SLA spec (deploy/sla.yaml) into Prometheus recording and alerting rules
with their unit tests, Alertmanager routing to PagerDuty, Grafana dashboards and runbooks.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newValidate(stdout, stderr), newGenerate(stdout, stderr), newServices(stdout, stderr), newExporter(stdout, stderr),
		newLoadgen(stdout, stderr), newEngine(stdout, stderr), newDemo(stdout, stderr),
		newDrill(stdout, stderr), newFault(stdout, stderr))
	return root
}

const defaultSpec = "deploy/sla.yaml"

func newValidate(stdout, stderr io.Writer) *cobra.Command {
	var specFile string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check an SLA spec; exit 0 when valid, 1 with every problem found",
		Long: `validate reads an SLA spec strictly (unknown fields are errors), checks every field and the fields
against each other, and prints each problem as file:line:column: field: what to do.`,
		Example: "  carpoolsla validate --spec deploy/sla.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := spec.Load(specFile)
			if err != nil {
				fmt.Fprintln(stderr, err)
				return exitError{1}
			}
			slos := 0
			for _, svc := range s.Services {
				slos += len(svc.SLOs)
			}
			fmt.Fprintf(stdout, "%s: valid (%d regions, %d services, %d SLOs)\n", specFile, len(s.Regions), len(s.Services), slos)
			return nil
		},
	}
	cmd.Flags().StringVar(&specFile, "spec", defaultSpec, "path of the SLA spec (apiVersion carpoolsla/v1)")
	return cmd
}

func newGenerate(stdout, stderr io.Writer) *cobra.Command {
	var (
		specFile, out, root string
		check, quiet        bool
	)
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate rules, rule tests, Alertmanager config, dashboards and runbooks from the spec",
		Long: `generate validates the spec, then writes every generated artefact under --out (Prometheus rules and
their promtool tests, a PrometheusRule manifest, Alertmanager configuration and route tests, Grafana
dashboards and provisioning) and under docs/ (runbooks, the metrics reference), removing generated
files that are no longer produced. With --check it writes nothing and exits 1 when any committed
artefact differs from what the spec generates.`,
		Example: "  carpoolsla generate --spec deploy/sla.yaml\n  carpoolsla generate --check",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := spec.Load(specFile)
			if err != nil {
				fmt.Fprintln(stderr, err)
				return exitError{1}
			}
			// Name the spec relative to the root in generated headers, so the
			// output does not depend on where the command runs from.
			if rel, err := relTo(root, specFile); err == nil {
				s.File = rel
			}
			files, err := codegen.Generate(s, out)
			if err != nil {
				return err
			}
			if check {
				stale, err := codegen.Stale(root, out, files)
				if err != nil {
					return err
				}
				if len(stale) > 0 {
					fmt.Fprintf(stderr, "%d generated files are stale; run `make generate` and commit the result:\n", len(stale))
					for _, p := range stale {
						fmt.Fprintln(stderr, "  "+p)
					}
					return exitError{1}
				}
				fmt.Fprintf(stdout, "generated artefacts are up to date (%d files)\n", len(files))
				return nil
			}
			if err := codegen.Write(root, out, files); err != nil {
				return err
			}
			if quiet {
				return nil
			}
			sum, err := codegen.Summarize(s, files)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s is valid. Generated %d files:\n", specFile, len(files))
			for _, where := range []struct{ path, what string }{
				{filepath.Join(out, "prometheus"), "Prometheus rules and promtool tests"},
				{filepath.Join(out, "k8s"), "PrometheusRule for the Prometheus Operator"},
				{filepath.Join(out, "alertmanager"), "Alertmanager config and amtool route tests"},
				{filepath.Join(out, "grafana"), "Grafana dashboards and provisioning"},
				{"docs/runbooks", "one runbook per alert"},
				{codegen.DocsMetrics, "the metrics reference"},
			} {
				fmt.Fprintf(stdout, "  %-32s %s\n", where.path, where.what)
			}
			fmt.Fprintln(stdout)
			sum.Print(stdout)
			return nil
		},
	}
	cmd.Flags().StringVar(&specFile, "spec", defaultSpec, "path of the SLA spec (apiVersion carpoolsla/v1)")
	cmd.Flags().StringVar(&out, "out", codegen.DefaultOut, "output folder for generated artefacts, relative to --root")
	cmd.Flags().StringVar(&root, "root", ".", "repository root; docs/ is written under it")
	cmd.Flags().BoolVar(&check, "check", false, "write nothing; exit 1 when committed artefacts are stale")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing on success")
	return cmd
}

func relTo(root, file string) (string, error) {
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	absFile, err := filepath.Abs(file)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(absRoot, absFile)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("%s is outside %s", file, root)
	}
	return filepath.ToSlash(rel), nil
}
