package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-io/cairn/internal/fsutil"
	"github.com/cairn-io/cairn/internal/local"
	"github.com/cairn-io/cairn/internal/state"
)

// Persisted registrations live in the data dir, one file per entry named
// by the SHA-256 of its ID (IDs may hold any character), as Consul lays
// them out:
//
//	<data_dir>/services/<sha>      a service registered over HTTP
//	<data_dir>/checks/<sha>        a check registered over HTTP
//	<data_dir>/checks/state/<sha>  the last status pushed to a TTL check
//
// Definitions from config files are not persisted (the files are their
// source). Nothing is persisted without a data dir (-dev).
const (
	servicesDir   = "services"
	checksDir     = "checks"
	checkStateDir = "checks/state"
)

// persistedService is the file content of a persisted service: its
// definition without checks (each check has its own file) and the token it
// was registered with.
type persistedService struct {
	Token   string `json:",omitempty"`
	Service *local.ServiceDefinition
}

// persistedCheck is the file content of a persisted check.
type persistedCheck struct {
	Token string `json:",omitempty"`
	Check *local.CheckDefinition
}

// persistedCheckState is the last status pushed to a TTL check, valid until
// Expires (Unix nanoseconds): a restart within the TTL keeps the status
// instead of starting critical.
type persistedCheckState struct {
	CheckID string
	Status  string
	Output  string
	Expires int64
}

// persistDir returns the data dir when registrations are persisted, else "".
func (a *Agent) persistDir() string {
	if a.cfg.Dev {
		return ""
	}
	return a.cfg.DataDir
}

func fileName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// writeFileAtomic creates path's directory if needed and replaces path
// atomically (fsutil.WriteFileAtomic). Mode 0600: the file may hold a token.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("agent: create %s: %w", dir, err)
	}
	if err := fsutil.WriteFileAtomic(path, data); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

func writeJSONFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("agent: encode %s: %w", path, err)
	}
	return writeFileAtomic(path, b)
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("agent: remove %s: %w", path, err)
	}
	return nil
}

// persistService writes a service registered over HTTP and its checks
// (given with their final IDs). Caller holds a.mu, which orders the file
// writes of one ID like the registrations.
func (a *Agent) persistService(def *local.ServiceDefinition, cdefs []*local.CheckDefinition, token string) error {
	dir := a.persistDir()
	if dir == "" {
		return nil
	}
	svc := *def
	svc.ID = serviceID(def)
	svc.Check, svc.Checks, svc.Token = nil, nil, ""
	if err := writeJSONFile(filepath.Join(dir, servicesDir, fileName(svc.ID)), persistedService{Token: token, Service: &svc}); err != nil {
		return err
	}
	for _, cd := range cdefs {
		if err := a.persistCheck(cd, token); err != nil {
			return err
		}
	}
	return nil
}

// persistCheck writes a check registered over HTTP. Caller holds a.mu.
func (a *Agent) persistCheck(def *local.CheckDefinition, token string) error {
	dir := a.persistDir()
	if dir == "" {
		return nil
	}
	chk := *def
	chk.ID, chk.CheckID, chk.Token = checkID(def), "", ""
	return writeJSONFile(filepath.Join(dir, checksDir, fileName(chk.ID)), persistedCheck{Token: token, Check: &chk})
}

// unpersistService removes a service's file. Caller holds a.mu.
func (a *Agent) unpersistService(id string) error {
	dir := a.persistDir()
	if dir == "" {
		return nil
	}
	return removeFile(filepath.Join(dir, servicesDir, fileName(id)))
}

// unpersistCheck removes a check's file and its saved TTL state. Caller
// holds a.mu.
func (a *Agent) unpersistCheck(id string) error {
	dir := a.persistDir()
	if dir == "" {
		return nil
	}
	return errors.Join(
		removeFile(filepath.Join(dir, checksDir, fileName(id))),
		removeFile(filepath.Join(dir, checkStateDir, fileName(id))),
	)
}

// persistCheckState saves the status just pushed to a TTL check, valid for
// its TTL.
func (a *Agent) persistCheckState(id, status, output string, ttl time.Duration) error {
	dir := a.persistDir()
	if dir == "" || ttl <= 0 {
		return nil
	}
	return writeJSONFile(filepath.Join(dir, checkStateDir, fileName(id)), persistedCheckState{
		CheckID: id, Status: status, Output: output, Expires: time.Now().Add(ttl).UnixNano(),
	})
}

// loadCheckState returns a TTL check's saved status when it has not expired
// yet; an expired or unreadable state file is removed.
func (a *Agent) loadCheckState(id string) (persistedCheckState, bool) {
	dir := a.persistDir()
	if dir == "" {
		return persistedCheckState{}, false
	}
	path := filepath.Join(dir, checkStateDir, fileName(id))
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.logger.Warn("read check state failed", "check_id", id, "error", err)
		}
		return persistedCheckState{}, false
	}
	var st persistedCheckState
	if err := json.Unmarshal(b, &st); err != nil || st.CheckID != id || !local.ValidStatus(st.Status) {
		a.logger.Warn("discarding bad check state file", "check_id", id, "path", path, "error", err)
		_ = removeFile(path)
		return persistedCheckState{}, false
	}
	if time.Now().UnixNano() >= st.Expires {
		_ = removeFile(path)
		return persistedCheckState{}, false
	}
	return st, true
}

// restoreTTLState gives a TTL check that is new to this process the status
// saved before a restart, while that status has not expired.
func (a *Agent) restoreTTLState(hc *state.HealthCheck) {
	if hc.Type != local.KindTTL {
		return
	}
	if st, ok := a.loadCheckState(hc.CheckID); ok {
		hc.Status, hc.Output = st.Status, st.Output
	}
}

// loadPersisted registers the services and checks persisted by an earlier
// run. Entries that a config file defines now are skipped and their files
// removed (the config file wins). A file that cannot be read or applied is
// logged and kept, so an operator can inspect it; it does not stop the
// agent.
func (a *Agent) loadPersisted() error {
	dir := a.persistDir()
	if dir == "" {
		return nil
	}
	svcFiles, err := readDirFiles(filepath.Join(dir, servicesDir))
	if err != nil {
		return err
	}
	for _, path := range svcFiles {
		var p persistedService
		if err := readJSONFile(path, &p); err != nil || p.Service == nil {
			a.logger.Warn("skipping unreadable persisted service", "path", path, "error", err)
			continue
		}
		id := serviceID(p.Service)
		a.mu.Lock()
		fromConfig := a.configServices[id]
		a.mu.Unlock()
		if fromConfig {
			a.logger.Info("service defined in config, dropping persisted copy", "service_id", id)
			_ = removeFile(path)
			continue
		}
		if err := a.addService(p.Service, p.Token, false); err != nil {
			a.logger.Warn("restoring persisted service failed", "service_id", id, "path", path, "error", err)
			continue
		}
		a.logger.Debug("restored persisted service", "service_id", id)
	}
	chkFiles, err := readDirFiles(filepath.Join(dir, checksDir))
	if err != nil {
		return err
	}
	for _, path := range chkFiles {
		var p persistedCheck
		if err := readJSONFile(path, &p); err != nil || p.Check == nil {
			a.logger.Warn("skipping unreadable persisted check", "path", path, "error", err)
			continue
		}
		id := checkID(p.Check)
		a.mu.Lock()
		fromConfig := a.configChecks[id]
		a.mu.Unlock()
		if fromConfig {
			a.logger.Info("check defined in config, dropping persisted copy", "check_id", id)
			_ = removeFile(path)
			continue
		}
		if err := a.addCheck(p.Check, p.Token, false); err != nil {
			a.logger.Warn("restoring persisted check failed", "check_id", id, "path", path, "error", err)
			continue
		}
		a.logger.Debug("restored persisted check", "check_id", id)
	}
	return nil
}

// readDirFiles lists the regular files of dir (none when it does not
// exist), skipping temporary files of interrupted writes.
func readDirFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: read %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name()[0] == '.' {
			continue
		}
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out, nil
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
