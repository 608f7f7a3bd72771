package main

// syncfs(2) on linux/arm (not in package syscall's table).
const sysSyncfs = 373
