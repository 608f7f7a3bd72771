package main

// syncfs(2) on linux/amd64 (not in package syscall's table).
const sysSyncfs = 306
