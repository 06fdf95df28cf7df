package rpc

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
)

// yamuxLogger adapts yamux's *log.Logger output ("[ERR] yamux: ...") to
// slog, taking the level from the bracketed prefix.
func yamuxLogger(logger *slog.Logger) *log.Logger {
	return log.New(logWriter{logger}, "", 0)
}

type logWriter struct{ logger *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(p, []byte{'\n'}) {
		text := strings.TrimSpace(string(line))
		if text == "" {
			continue
		}
		level := slog.LevelInfo
		for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError} {
			if rest, ok := strings.CutPrefix(text, prefix); ok {
				level, text = l, strings.TrimSpace(rest)
				break
			}
		}
		text = strings.TrimPrefix(text, "yamux: ")
		w.logger.Log(context.Background(), level, "yamux", "detail", text)
	}
	return len(p), nil
}
