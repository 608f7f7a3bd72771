package main

// syncfs(2) on linux/riscv64 (not in package syscall's table).
const sysSyncfs = 267
