// Command dnsbench prepares the DNS benchmark of bench/dns/run.sh: the same
// deterministic catalog (N services x M instances, one node per instance) is
// registered into a Cairn agent over the HTTP API, written as an NSD zone,
// and written as dnsperf query files. "serve" runs the internal/dns server
// alone over that catalog held in memory, to measure the DNS layer before
// the agent wires it.
//
//	dnsbench register -http 127.0.0.1:8500 -services 1000 -instances 3
//	dnsbench zone -out DIR -services 1000 -instances 3
//	dnsbench serve -addr 127.0.0.1:8600 -services 1000 -instances 3
//	dnsbench percentiles FILE   (dnsperf -v output -> p50/p99 in ms)
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	cdns "github.com/cairn-io/cairn/internal/dns"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

const (
	domain     = "consul."
	datacenter = "dc1"
	port       = 8080
)

type instance struct {
	service, node, addr string
}

// catalog is the benchmark's data: service svc-<i> has instances on nodes
// n<i>-<j> with address 10.<i/256>.<i%256>.<j+1>.
func catalog(services, instances int) []instance {
	out := make([]instance, 0, services*instances)
	for i := range services {
		for j := range instances {
			out = append(out, instance{
				service: fmt.Sprintf("svc-%d", i),
				node:    fmt.Sprintf("n%d-%d", i, j),
				addr:    fmt.Sprintf("10.%d.%d.%d", i/256, i%256, j+1),
			})
		}
	}
	return out
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dnsbench register|zone|serve|percentiles [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "register":
		err = runRegister(args)
	case "zone":
		err = runZone(args)
	case "serve":
		err = runServe(args)
	case "percentiles":
		err = runPercentiles(args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench:", err)
		os.Exit(1)
	}
}

func sizeFlags(fs *flag.FlagSet) (*int, *int) {
	return fs.Int("services", 1000, "number of services"), fs.Int("instances", 3, "instances per service")
}

func runRegister(args []string) error {
	fs := flag.NewFlagSet("register", flag.ExitOnError)
	addr := fs.String("http", "127.0.0.1:8500", "agent HTTP address")
	workers := fs.Int("workers", 32, "concurrent requests")
	services, instances := sizeFlags(fs)
	_ = fs.Parse(args)

	all := catalog(*services, *instances)
	work := make(chan instance)
	errs := make(chan error, *workers)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for in := range work {
				if err := register(client, *addr, in); err != nil {
					errs <- err
					for range work { // drain so the producer ends
					}
					return
				}
			}
		}()
	}
	start := time.Now()
	for _, in := range all {
		work <- in
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Printf("registered %d instances in %s\n", len(all), time.Since(start).Round(time.Millisecond))
	return nil
}

func register(c *http.Client, addr string, in instance) error {
	body, _ := json.Marshal(map[string]any{
		"Node":    in.node,
		"Address": in.addr,
		"Service": map[string]any{"ID": in.service, "Service": in.service, "Port": port},
	})
	req, err := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/catalog/register", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("register %s on %s: %w", in.service, in.node, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("register %s on %s: HTTP %d", in.service, in.node, resp.StatusCode)
	}
	return nil
}

// runZone writes consul.zone (NSD), queries-a.txt and queries-srv.txt.
func runZone(args []string) error {
	fs := flag.NewFlagSet("zone", flag.ExitOnError)
	out := fs.String("out", ".", "output directory")
	services, instances := sizeFlags(fs)
	_ = fs.Parse(args)

	var z strings.Builder
	fmt.Fprintf(&z, "$ORIGIN %s\n$TTL 0\n", domain)
	fmt.Fprintf(&z, "@ IN SOA ns.%s hostmaster.%s 1 3600 600 86400 0\n", domain, domain)
	fmt.Fprintf(&z, "@ IN NS ns.%s\nns IN A 127.0.0.1\n", domain)
	var qa, qsrv strings.Builder
	seen := map[string]bool{}
	for _, in := range catalog(*services, *instances) {
		name := in.service + ".service." + domain
		target := in.node + ".node." + datacenter + "." + domain
		fmt.Fprintf(&z, "%s IN A %s\n", name, in.addr)
		fmt.Fprintf(&z, "%s IN SRV 1 1 %d %s\n", name, port, target)
		fmt.Fprintf(&z, "%s IN A %s\n", target, in.addr)
		if !seen[name] {
			seen[name] = true
			fmt.Fprintf(&qa, "%s A\n", name)
			fmt.Fprintf(&qsrv, "%s SRV\n", name)
		}
	}
	for file, data := range map[string]string{"consul.zone": z.String(), "queries-a.txt": qa.String(), "queries-srv.txt": qsrv.String()} {
		if err := os.WriteFile(filepath.Join(*out, file), []byte(data), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", file, err)
		}
	}
	return nil
}

// memCatalog is an rpc.Caller over the benchmark catalog held in memory.
type memCatalog struct {
	byService map[string][]*state.CheckServiceNode
	byNode    map[string]*state.Node
}

func newMemCatalog(services, instances int) *memCatalog {
	m := &memCatalog{byService: map[string][]*state.CheckServiceNode{}, byNode: map[string]*state.Node{}}
	for _, in := range catalog(services, instances) {
		n := &state.Node{Node: in.node, Address: in.addr, Datacenter: datacenter}
		m.byNode[in.node] = n
		m.byService[in.service] = append(m.byService[in.service], &state.CheckServiceNode{
			Node:    n,
			Service: &state.NodeService{ID: in.service, Service: in.service, Port: port},
			Checks:  []*state.HealthCheck{{Node: in.node, CheckID: state.SerfCheckID, Status: state.HealthPassing}},
		})
	}
	return m
}

func (m *memCatalog) RPC(_ context.Context, method string, args, reply any) error {
	switch method {
	case rpc.MethodHealthServiceNodes:
		a, r := args.(*rpc.ServiceSpecificRequest), reply.(*rpc.IndexedCheckServiceNodes)
		src := m.byService[strings.ToLower(a.ServiceName)]
		r.Nodes = append([]*state.CheckServiceNode(nil), src...) // a copy, as an RPC returns
		r.QueryMeta = rpc.QueryMeta{Index: 1, KnownLeader: true}
	case rpc.MethodCatalogNodeServices:
		a, r := args.(*rpc.NodeSpecificRequest), reply.(*rpc.IndexedNodeServices)
		r.NodeServices = nil
		if n, ok := m.byNode[strings.ToLower(a.Node)]; ok {
			r.NodeServices = &state.NodeServices{Node: n}
		}
	default:
		return fmt.Errorf("%w: %s", rpc.ErrUnknownMethod, method)
	}
	return nil
}

func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8600", "UDP and TCP address")
	services, instances := sizeFlags(fs)
	_ = fs.Parse(args)

	cfg := cdns.DefaultConfig()
	cfg.Caller = newMemCatalog(*services, *instances)
	cfg.Datacenter = datacenter
	cfg.NodeName = "bench"
	s, err := cdns.New(cfg)
	if err != nil {
		return err
	}
	if err := s.ListenAndServe(*addr, *addr); err != nil {
		return err
	}
	fmt.Printf("serving on %s\n", s.UDPAddr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// runPercentiles reads dnsperf -v output ("> NOERROR name type 0.000123")
// and prints "p50_ms p99_ms count".
func runPercentiles(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: dnsbench percentiles FILE")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	var lat []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "> ") {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			continue
		}
		lat = append(lat, v)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(lat) == 0 {
		return errors.New("no latency lines found (was dnsperf run with -v?)")
	}
	sort.Float64s(lat)
	pct := func(p float64) float64 { return lat[int(p*float64(len(lat)-1))] * 1000 }
	fmt.Printf("%.3f %.3f %d\n", pct(0.50), pct(0.99), len(lat))
	return nil
}
