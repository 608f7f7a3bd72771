// mmapwrite FILE SIZE: a process that writes to FILE only through one shared writable mapping,
// as a cache node may. FILE is created (SIZE bytes) when missing and mapped MAP_SHARED; each line
// read on stdin is copied to the start of the mapping, then "ok" is printed. It never calls
// msync: the page stays dirty between writes, and the file's size and times need not change.
// Used by the host tests (test/host/switch.test.ts); standard library only.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mmapwrite FILE SIZE")
		os.Exit(2)
	}
	size, err := strconv.Atoi(os.Args[2])
	if err != nil || size <= 0 {
		fmt.Fprintf(os.Stderr, "mmapwrite: bad size %q\n", os.Args[2])
		os.Exit(2)
	}
	f, err := os.OpenFile(os.Args[1], os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mmapwrite: %v\n", err)
		os.Exit(1)
	}
	if st, err := f.Stat(); err == nil && st.Size() < int64(size) {
		if err := f.Truncate(int64(size)); err != nil {
			fmt.Fprintf(os.Stderr, "mmapwrite: %v\n", err)
			os.Exit(1)
		}
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mmapwrite: mmap: %v\n", err)
		os.Exit(1)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		copy(mem, in.Bytes())
		fmt.Println("ok")
	}
}
