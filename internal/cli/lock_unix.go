//go:build unix

package cli

import (
	"os/exec"
	"syscall"
)

// setChildProcessGroup puts the child in its own process group so that
// stopping it also stops what it started (a shell's children).
func setChildProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// terminateChild sends SIGTERM to the child's process group.
func terminateChild(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
}

// killChild sends SIGKILL to the child's process group.
func killChild(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
