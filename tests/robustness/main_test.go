package robustness

import (
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cairn-io/cairn/internal/testutil"
)

// Flags choose how many fault-injected runs to do and how long each is. The
// defaults give one short run in the default suite and 20 runs of 30 s with
// -tags robustness (see README.md).
var (
	flagRuns     = flag.Int("robustness.runs", defaultRuns, "number of fault-injected cluster runs")
	flagDuration = flag.Duration("robustness.duration", defaultDuration, "duration of the workload in each run")
	flagServers  = flag.Int("robustness.servers", 3, "servers in the cluster under test")
	flagClients  = flag.Int("robustness.clients", 2, "client agents in the cluster under test")
	flagRecheck  = flag.String("robustness.recheck", "", "path of a saved history.json to check again (TestRobustness_Recheck)")
	flagOut      = flag.String("robustness.out", "testdata/failures", "directory for the history and visualization of failing runs")
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	testutil.RemoveBuiltBinary()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// clusterReadyTimeout bounds how long a fresh cluster may take to elect a
// leader and see all its members.
const clusterReadyTimeout = 60 * time.Second
