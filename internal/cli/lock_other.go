//go:build !unix

package cli

import "os/exec"

// setChildProcessGroup is a no-op without POSIX process groups.
func setChildProcessGroup(*exec.Cmd) {}

// terminateChild kills the child: there is no SIGTERM to send.
func terminateChild(cmd *exec.Cmd) { _ = cmd.Process.Kill() }

// killChild kills the child.
func killChild(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
