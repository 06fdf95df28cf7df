// Command cairn is the single Cairn binary: agent, CLI and tools.
package main

import (
	"os"

	"github.com/cairn-io/cairn/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
