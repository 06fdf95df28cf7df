package cli

import (
	"errors"
	"fmt"

	"github.com/cairn-io/cairn/internal/config"
)

func runValidate(u *ui, args []string) error {
	fs := newFlagSet(u, "validate")
	format := fs.String("config-format", "", "Config file format (json or hcl) for files without a known extension.")
	quiet := fs.Bool("quiet", false, "Print nothing on success.")
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("must specify at least one config file or directory")
	}
	warnings, err := config.ValidateFiles(fs.Args(), *format)
	for _, w := range warnings {
		fmt.Fprintf(u.err, "Warning: %s\n", w)
	}
	if err != nil {
		return fmt.Errorf("config validation failed: %w", err)
	}
	if !*quiet {
		u.Printf("Configuration is valid!\n")
	}
	return nil
}
