package main

// syncfs(2) on linux/386 (not in package syscall's table).
const sysSyncfs = 344
