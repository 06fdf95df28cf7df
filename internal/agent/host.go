package agent

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Host returns the body of /v1/agent/host: memory, CPUs, host and disk
// facts read from /proc and statfs, in gopsutil's JSON shapes (what
// Consul's endpoint returns). Facts that cannot be read are listed in
// "Errors" instead of failing the request.
func (a *Agent) Host() map[string]any {
	var errs []string
	hostname, err := os.Hostname()
	if err != nil {
		errs = append(errs, "hostname: "+err.Error())
	}
	mem, err := readMeminfo()
	if err != nil {
		errs = append(errs, "memory: "+err.Error())
	}
	cpus, err := readCPUInfo()
	if err != nil {
		errs = append(errs, "cpu: "+err.Error())
	}
	uptime, bootTime := readUptime()
	kernel := readFirstLine("/proc/sys/kernel/osrelease")
	platform, platformVersion := readOSRelease()
	diskPath := a.cfg.DataDir
	if diskPath == "" {
		diskPath = "/"
	}
	disk, err := statDisk(diskPath)
	if err != nil {
		errs = append(errs, "disk: "+err.Error())
	}
	return map[string]any{
		"Memory": mem,
		"CPU":    cpus,
		"Host": map[string]any{
			"hostname":        hostname,
			"uptime":          uptime,
			"bootTime":        bootTime,
			"procs":           countProcs(),
			"os":              runtime.GOOS,
			"platform":        platform,
			"platformFamily":  "",
			"platformVersion": platformVersion,
			"kernelVersion":   kernel,
			"kernelArch":      runtime.GOARCH,
			"hostid":          strings.TrimSpace(readFirstLine("/etc/machine-id")),
			"agentUptime":     uint64(a.uptime().Seconds()),
		},
		"Disk":           disk,
		"CollectionTime": time.Now().UnixNano(),
		"Errors":         errs,
	}
}

func readFirstLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

func readMeminfo() (map[string]any, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return map[string]any{}, err
	}
	defer func() { _ = f.Close() }()
	kv := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 1 && fields[1] == "kB" {
			v *= 1024
		}
		kv[name] = v
	}
	total, free, avail := kv["MemTotal"], kv["MemFree"], kv["MemAvailable"]
	used := total - free - kv["Buffers"] - kv["Cached"]
	if used > total {
		used = total - free
	}
	pct := 0.0
	if total > 0 {
		pct = float64(used) / float64(total) * 100
	}
	return map[string]any{
		"total":       total,
		"available":   avail,
		"used":        used,
		"usedPercent": pct,
		"free":        free,
		"buffers":     kv["Buffers"],
		"cached":      kv["Cached"],
		"swapTotal":   kv["SwapTotal"],
		"swapFree":    kv["SwapFree"],
	}, sc.Err()
}

func readCPUInfo() ([]map[string]any, error) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return []map[string]any{}, err
	}
	defer func() { _ = f.Close() }()
	var cpus []map[string]any
	var cur map[string]any
	flush := func() {
		if cur != nil {
			cpus = append(cpus, cur)
			cur = nil
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if cur == nil {
			cur = map[string]any{"cores": 1}
		}
		switch k {
		case "processor":
			n, _ := strconv.Atoi(v)
			cur["cpu"] = n
		case "vendor_id":
			cur["vendorId"] = v
		case "cpu family":
			cur["family"] = v
		case "model":
			cur["model"] = v
		case "model name":
			cur["modelName"] = v
		case "stepping":
			n, _ := strconv.Atoi(v)
			cur["stepping"] = n
		case "cpu MHz":
			mhz, _ := strconv.ParseFloat(v, 64)
			cur["mhz"] = mhz
		case "cache size":
			n, _ := strconv.Atoi(strings.TrimSuffix(v, " KB"))
			cur["cacheSize"] = n
		case "microcode":
			cur["microcode"] = v
		}
	}
	flush()
	if cpus == nil {
		cpus = []map[string]any{}
	}
	return cpus, sc.Err()
}

func readUptime() (uint64, uint64) {
	fields := strings.Fields(readFirstLine("/proc/uptime"))
	if len(fields) == 0 {
		return 0, 0
	}
	up, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0, 0
	}
	boot := time.Now().Add(-time.Duration(up * float64(time.Second))).Unix()
	return uint64(up), uint64(boot)
}

func readOSRelease() (string, string) {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "", ""
	}
	var id, ver string
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"`)
		switch k {
		case "ID":
			id = v
		case "VERSION_ID":
			ver = v
		}
	}
	return id, ver
}

func countProcs() uint64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var n uint64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
			n++
		}
	}
	return n
}

func statDisk(path string) (map[string]any, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return map[string]any{"path": path}, err
	}
	bsize := uint64(st.Bsize) //nolint:gosec // block size is positive
	total := st.Blocks * bsize
	free := st.Bavail * bsize
	used := (st.Blocks - st.Bfree) * bsize
	pct := 0.0
	if used+free > 0 {
		pct = float64(used) / float64(used+free) * 100
	}
	return map[string]any{
		"path":              path,
		"fstype":            "",
		"total":             total,
		"free":              free,
		"used":              used,
		"usedPercent":       pct,
		"inodesTotal":       st.Files,
		"inodesFree":        st.Ffree,
		"inodesUsed":        st.Files - st.Ffree,
		"inodesUsedPercent": inodePct(st.Files, st.Ffree),
	}, nil
}

func inodePct(total, free uint64) float64 {
	if total == 0 {
		return 0
	}
	return float64(total-free) / float64(total) * 100
}
