package config

import (
	"errors"
	"fmt"
)

// Sentinel errors; every error returned by this package wraps one of them.
var (
	// ErrUnknownKey: a source used a key Consul's agent does not know.
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrType: a key's value has the wrong type (string where a number was expected, ...).
	ErrType = errors.New("config: wrong type")
	// ErrValue: a key's value has the right type but is not allowed (bad duration, port out of range, ...).
	ErrValue = errors.New("config: invalid value")
	// ErrParse: a source is not well-formed JSON or HCL.
	ErrParse = errors.New("config: parse error")
	// ErrInvalid: the merged configuration breaks a rule (data_dir missing, bootstrap and bootstrap_expect both set, ...).
	ErrInvalid = errors.New("config: invalid configuration")
)

// Error is a problem with one key (or one whole source) of one source.
type Error struct {
	Source string // file name, "-hcl snippet 1", "command-line flags"; may be empty
	Key    string // dotted key path, e.g. "ports.http"; may be empty
	Msg    string
	Err    error // one of the sentinel errors
}

func (e *Error) Error() string {
	prefix := "config: "
	if e.Source != "" {
		prefix += e.Source + ": "
	}
	if errors.Is(e.Err, ErrUnknownKey) {
		return fmt.Sprintf("%sunknown key %q", prefix, e.Key)
	}
	if e.Key != "" {
		return prefix + e.Key + ": " + e.Msg
	}
	return prefix + e.Msg
}

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }

func invalidf(format string, args ...any) error {
	return &Error{Msg: fmt.Sprintf(format, args...), Err: ErrInvalid}
}
