package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

// EnvMeasure enables measurements that take minutes (CAIRN_MEASURE=1).
const EnvMeasure = "CAIRN_MEASURE"

// TestMeasure_ThousandHTTPChecks measures one -dev agent running 1,000
// services, each with an HTTP check every 1 s against one local HTTP
// target this test runs: after 30 s of settling, the agent's CPU (utime +
// stime from /proc/PID/stat over 30 s, as % of one core) and VmRSS.
//
//	CAIRN_MEASURE=1 flock /tmp/cairn-bench.lock \
//	  go test ./tests/e2e/ -run TestMeasure_ThousandHTTPChecks -v -timeout 10m
func TestMeasure_ThousandHTTPChecks(t *testing.T) {
	if os.Getenv(EnvMeasure) != "1" {
		t.Skip("set " + EnvMeasure + "=1 to run (takes ~80 s)")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	const (
		services = 1000
		settle   = 30 * time.Second
		window   = 30 * time.Second
	)
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(target.Close)

	a := startDev(t, "-log-level", "warn")
	pid := a.Pid()
	ag := a.Client().Agent()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, services)
	sem := make(chan struct{}, 16)
	for i := range services {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			id := fmt.Sprintf("svc-%04d", i)
			if err := ag.ServiceRegister(&api.AgentServiceRegistration{
				ID: id, Name: "measure", Port: 10000 + i,
				Check: &api.AgentServiceCheck{HTTP: target.URL + "/" + id, Interval: "1s", Timeout: "1s"},
			}); err != nil {
				errs <- fmt.Errorf("register %s: %w", id, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("registered %d services with HTTP checks in %s", services, time.Since(start).Round(time.Millisecond))

	time.Sleep(settle) // a measurement window, not a wait for a condition
	passing, _, err := a.Client().Health().Service("measure", "", true, nil)
	require.NoError(t, err)

	ticks0, err := cpuTicks(pid)
	require.NoError(t, err)
	hits0, t0 := hits.Load(), time.Now()
	time.Sleep(window) // the measurement window
	ticks1, err := cpuTicks(pid)
	require.NoError(t, err)
	elapsed := time.Since(t0)
	hitRate := float64(hits.Load()-hits0) / elapsed.Seconds()
	rss, err := vmRSS(pid)
	require.NoError(t, err)

	cpu := float64(ticks1-ticks0) / float64(clockTicks()) / elapsed.Seconds() * 100
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("MEASURE 1000 HTTP checks every 1s on one -dev agent: CPU %.1f%% of one core (utime+stime over %s), VmRSS %.1f MiB, checks served %.0f/s, passing in catalog %d/%d, loadavg %s, host CPUs %d",
		cpu, elapsed.Round(time.Second), float64(rss)/1024, hitRate, len(passing), services, strings.TrimSpace(string(load)), runtime.NumCPU())
	require.Equal(t, services, len(passing), "every check passing")
	require.InDelta(t, float64(services), hitRate, services*0.2, "about one probe per check per second")
}

// cpuTicks returns utime+stime of a process in clock ticks.
func cpuTicks(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields start after its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc stat: %q", s)
	}
	f := strings.Fields(s[i+1:])
	// After ')': state(0) ... utime is field 14 of the line, index 11 here.
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat: %q", s)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc stat: %v %v", err1, err2)
	}
	return ut + st, nil
}

// clockTicks is the kernel's USER_HZ (getconf CLK_TCK; 100 on Linux).
func clockTicks() int {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return n
		}
	}
	return 100
}
