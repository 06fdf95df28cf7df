package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
)

// logWriter turns the lines that serf and memberlist print through a
// *log.Logger ("[INFO] serf: EventMemberJoin: ...") into slog records. The
// level comes from the bracketed prefix; memberlist's [DEBUG] and [INFO]
// chatter (stream connections, push/pull syncs) is demoted to debug.
type logWriter struct {
	logger *slog.Logger
}

// newStdLogger returns a *log.Logger that writes into logger.
func newStdLogger(logger *slog.Logger) *log.Logger {
	return log.New(&logWriter{logger: logger}, "", 0)
}

// Write implements io.Writer. log.Logger calls it once per line.
func (w *logWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(p, []byte{'\n'}) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		level, subsystem, text := parseLogLine(string(line))
		w.logger.Log(context.Background(), level, subsystem, "detail", text)
	}
	return len(p), nil
}

var logLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[TRACE]", slog.LevelDebug},
	{"[DEBUG]", slog.LevelDebug},
	{"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError},
	{"[ERROR]", slog.LevelError},
}

// parseLogLine splits "[WARN] memberlist: text" into its level, subsystem
// ("memberlist", "serf", or "gossip" when unnamed) and text.
func parseLogLine(line string) (slog.Level, string, string) {
	level := slog.LevelInfo
	line = strings.TrimSpace(line)
	for _, l := range logLevels {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			level = l.level
			line = strings.TrimSpace(rest)
			break
		}
	}
	subsystem := "gossip"
	for _, s := range []string{"memberlist", "serf"} {
		if rest, ok := strings.CutPrefix(line, s+":"); ok {
			subsystem = s
			line = strings.TrimSpace(rest)
			break
		}
	}
	if subsystem == "memberlist" && level == slog.LevelInfo {
		level = slog.LevelDebug
	}
	return level, subsystem, line
}
