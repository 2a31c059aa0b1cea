// Command chartkind turns Helm charts into Kubernetes kinds. See `chartkind help`.
package main

import (
	"os"

	"github.com/chartkind/chartkind/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
