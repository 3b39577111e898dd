#!/usr/bin/env python3
"""The socket buffers of a running process, read from its own sockets.

usage: sock-buffers.py PID
Prints one JSON line per socket the process holds: its family, type, protocol and SO_SNDBUF /
SO_RCVBUF as the kernel reports them (twice what was set). Each socket is duplicated into this
process with pidfd_getfd(2) (Linux 5.6, needs ptrace rights over PID: root), because `ss` shows no
memory for raw sockets."""
import ctypes
import json
import os
import socket
import sys

SYS_PIDFD_GETFD = 438  # the same number on every architecture

pid = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(pid)
for name in sorted(os.listdir(f'/proc/{pid}/fd'), key=int):
    try:
        if not os.readlink(f'/proc/{pid}/fd/{name}').startswith('socket:'):
            continue
    except OSError:
        continue  # closed meanwhile
    fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
    if fd < 0:
        if ctypes.get_errno() == 9:  # EBADF: closed meanwhile
            continue
        raise OSError(ctypes.get_errno(), f'pidfd_getfd {pid} {name}')
    s = socket.socket(fileno=fd)
    try:
        print(json.dumps({
            'fd': int(name),
            'family': int(s.family),
            'type': int(s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)),
            'protocol': s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL),
            'sndbuf': s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
            'rcvbuf': s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
        }))
    finally:
        s.detach()
        os.close(fd)
