package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/rpc"
)

// httpError is an error raised by the HTTP layer itself with the status and
// one-line message to send.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

// badRequest returns a 400 with a message naming what was wrong.
func badRequest(format string, args ...any) error {
	return &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// notFound returns a 404 with the given message.
func notFound(format string, args ...any) error {
	return &httpError{code: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

// tooLarge returns a 413 with the given message.
func tooLarge(format string, args ...any) error {
	return &httpError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf(format, args...)}
}

// errPermissionDenied is returned when the request's authorizer refuses the
// operation. It wraps rpc.ErrPermissionDenied so it maps like a server-side
// denial.
var errPermissionDenied = fmt.Errorf("%w", rpc.ErrPermissionDenied)

// errorStatus maps an error to its status code and response message. This is
// the only place where errors become status codes.
func errorStatus(err error) (int, string) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.code, he.msg
	case errors.Is(err, rpc.ErrPermissionDenied):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, acl.ErrTokenNotFound):
		return http.StatusForbidden, acl.ErrTokenNotFound.Error()
	case errors.Is(err, rpc.ErrBadRequest):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, rpc.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, rpc.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, rpc.ErrNoLeader):
		return http.StatusInternalServerError, "No cluster leader"
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this.
		return 499, "Request canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "Request timed out"
	default:
		return http.StatusInternalServerError, err.Error()
	}
}

// writeError sends err as a plain-text response with its mapped status.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := errorStatus(err)
	if code >= http.StatusInternalServerError {
		h.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", code, "error", err)
	} else {
		h.logger.Debug("request rejected", "method", r.Method, "path", r.URL.Path, "status", code, "error", err)
	}
	writeText(w, code, msg)
}

// writeText sends a one-line plain-text body.
func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = fmt.Fprint(w, msg)
}
