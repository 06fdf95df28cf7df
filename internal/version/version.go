// Package version holds Cairn's build version, set at link time with
// -ldflags "-X github.com/cairn-io/cairn/internal/version.GitCommit=...".
package version

// Version is the release version; VersionPrerelease marks development builds.
var (
	Version           = "0.1.0"
	VersionPrerelease = "dev"
	GitCommit         = ""
	BuildDate         = ""
)

// Human returns "0.1.0-dev" style version text.
func Human() string {
	if VersionPrerelease != "" {
		return Version + "-" + VersionPrerelease
	}
	return Version
}
