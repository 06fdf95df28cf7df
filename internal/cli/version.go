package cli

import (
	"encoding/json"
	"fmt"

	"github.com/cairn-io/cairn/internal/version"
)

// versionInfo is the JSON shape of `consul version -format=json`.
type versionInfo struct {
	Version    string
	Revision   string
	Prerelease string
	BuildDate  string
	RPC        struct{ Default, Min, Max int }
}

func runVersion(u *ui, args []string) error {
	fs := newFlagSet(u, "version")
	format := fs.String("format", "pretty", "Output format: pretty or json.")
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	info := versionInfo{
		Version:    version.Version,
		Revision:   version.GitCommit,
		Prerelease: version.VersionPrerelease,
		BuildDate:  version.BuildDate,
	}
	info.RPC.Default, info.RPC.Min, info.RPC.Max = 2, 2, 3
	switch *format {
	case "json":
		b, err := json.MarshalIndent(info, "", "    ")
		if err != nil {
			return err
		}
		u.Printf("%s\n", b)
	case "pretty":
		u.Printf("Cairn v%s\n", version.Human())
		if info.Revision != "" {
			u.Printf("Revision %s\n", info.Revision)
		}
		if info.BuildDate != "" {
			u.Printf("Build Date %s\n", info.BuildDate)
		}
		u.Printf("Protocol 2 spoken by default, understands 2 to 3 (agent will automatically use protocol >2 when speaking to compatible agents)\n")
	default:
		return fmt.Errorf("invalid format %q: must be one of pretty, json", *format)
	}
	return nil
}
