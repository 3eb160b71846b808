//go:build !linux

package realserver

import "syscall"

// sysProcAttr returns nothing special: only Linux can tie a server's life to the test binary's.
func sysProcAttr() *syscall.SysProcAttr {
	return nil
}
