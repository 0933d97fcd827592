package vaulttest

import "syscall"

// procAttr puts the server in its own process group and has the kernel
// kill it if the test process dies without stopping it (a panic, a
// timeout), so that no Vault outlives its test.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
