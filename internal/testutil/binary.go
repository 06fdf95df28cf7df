package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// EnvBinary names an already built cairn binary to use instead of building
// one. EnvBuildRace=1 builds the binary with -race.
const (
	EnvBinary    = "CAIRN_BIN"
	EnvBuildRace = "CAIRN_BUILD_RACE"
)

var (
	buildOnce sync.Once
	buildPath string
	buildDir  string
	buildErr  error
)

// Binary returns the path of the cairn binary under test: $CAIRN_BIN when
// set, otherwise ./cmd/cairn of this module built once per test binary into
// a temporary directory (remove it with RemoveBuiltBinary from TestMain).
func Binary() (string, error) {
	buildOnce.Do(func() {
		if p := os.Getenv(EnvBinary); p != "" {
			abs, err := filepath.Abs(p)
			if err != nil {
				buildErr = fmt.Errorf("testutil: %s=%q: %w", EnvBinary, p, err)
				return
			}
			if _, err := os.Stat(abs); err != nil {
				buildErr = fmt.Errorf("testutil: %s=%q: %w", EnvBinary, p, err)
				return
			}
			buildPath = abs
			return
		}
		buildPath, buildDir, buildErr = build()
	})
	return buildPath, buildErr
}

// BuildBinary is Binary for tests: it fails the test when the build fails.
func BuildBinary(tb testing.TB) string {
	tb.Helper()
	p, err := Binary()
	if err != nil {
		tb.Fatalf("%v", err)
	}
	return p
}

// RemoveBuiltBinary deletes the temporary directory Binary built into (no-op
// when $CAIRN_BIN was used or nothing was built).
func RemoveBuiltBinary() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// ModuleRoot returns the directory holding this module's go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("testutil: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("testutil: not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

func build() (path, dir string, err error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", "", err
	}
	dir, err = os.MkdirTemp("", "cairn-e2e-bin-")
	if err != nil {
		return "", "", fmt.Errorf("testutil: temp dir for binary: %w", err)
	}
	path = filepath.Join(dir, "cairn")
	args := []string{"build", "-o", path}
	if os.Getenv(EnvBuildRace) == "1" {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/cairn")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		_ = os.RemoveAll(dir)
		return "", "", fmt.Errorf("testutil: go %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return path, dir, nil
}
