// Package cli implements the chartkind command line: one function per
// subcommand, writing to the streams it is given so tests can run it whole.
package cli

import (
	"fmt"
	"io"
)

// Version is set at link time (-X github.com/chartkind/chartkind/internal/cli.Version=…).
var Version = "dev"

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"generate", "write the CRDs for charts and ApplicationDefinitions, offline", runGenerate},
		{"operator", "run the operator: serve a kind per ApplicationDefinition, mirror objects to HelmReleases", runOperator},
		{"validate", "check application objects in YAML files against their charts, offline, as the cluster would", runValidate},
		{"version", "print the version", func(_ []string, stdout, _ io.Writer) int {
			fmt.Fprintln(stdout, Version)
			return 0
		}},
	}
}

// Main runs the subcommand named by args[0] and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "chartkind: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "chartkind turns Helm charts into Kubernetes kinds.")
	fmt.Fprintln(w, "\nUsage: chartkind COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `chartkind COMMAND -h` for a command's flags.")
}
