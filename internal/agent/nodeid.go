package agent

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-io/cairn/internal/config"
)

// nodeIDFile is the file in DataDir that keeps a generated node ID.
const nodeIDFile = "node-id"

// loadNodeID returns the configured node ID, else the one persisted in
// DataDir, else a new random one (persisted unless -dev).
func loadNodeID(cfg *config.RuntimeConfig) (string, error) {
	if cfg.NodeID != "" {
		return strings.ToLower(cfg.NodeID), nil
	}
	if cfg.Dev || cfg.DataDir == "" {
		return newUUID()
	}
	path := filepath.Join(cfg.DataDir, nodeIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.ToLower(strings.TrimSpace(string(b)))
		if !isUUID(id) {
			return "", fmt.Errorf("agent: node ID in %s is not a UUID: %q", path, id)
		}
		return id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("agent: read node ID: %w", err)
	}
	id, err := newUUID()
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(path, []byte(id)); err != nil {
		return "", fmt.Errorf("agent: write node ID: %w", err)
	}
	return id, nil
}

func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("agent: generate node ID: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}
