package main

// syncfs(2) on linux/arm64 (not in package syscall's table).
const sysSyncfs = 267
